package export

import (
	"bytes"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"zombiezen.com/go/sqlite"

	"github.com/rowdrop/rowdrop/internal/changeset"
	"github.com/rowdrop/rowdrop/internal/rdfile"
	"github.com/rowdrop/rowdrop/internal/schema"
	"github.com/rowdrop/rowdrop/internal/state"
)

// A schema exercising every shape the capture must handle. nopk and the
// FTS5 table and its shadow tables must never appear in a file.
const roundtripSchema = `
CREATE TABLE notes(id TEXT PRIMARY KEY, title TEXT, body TEXT, n INTEGER, score REAL, data BLOB);
CREATE TABLE counters(id INTEGER PRIMARY KEY, name TEXT UNIQUE, v REAL);
CREATE TABLE links(dst TEXT NOT NULL, src TEXT NOT NULL, weight REAL, PRIMARY KEY(src, dst)) WITHOUT ROWID;
CREATE TABLE tags(tag TEXT, note TEXT, PRIMARY KEY(tag, note));
CREATE TABLE kv(k BLOB PRIMARY KEY, v) WITHOUT ROWID;
CREATE TABLE "odd ""name"""("the key" TEXT PRIMARY KEY, "värde" ANY);
CREATE TABLE nopk(x, y);
CREATE VIRTUAL TABLE notes_fts USING fts5(title, body);
`

// unicode keys, including ones that differ only by case or normalisation
// (distinct under SQLite's BINARY collation).
var unicodeKeys = []string{"ключ", "日本語のノート", "🦊 fox", "Note", "note", "e\u0301", "\u00e9", "", " ", "a\x00b"}

func bigText(seed byte) string {
	b := make([]byte, 1<<20)
	for i := range b {
		b[i] = 'a' + (byte(i)*7+seed)%26
	}
	return string(b)
}

func TestExportRoundTrip(t *testing.T) {
	for _, c := range []struct {
		name       string
		wal, hints bool
		wantMode   string
	}{
		{"rollback-journal", false, false, ModeFull},
		{"wal", true, false, ModeFull},
		{"wal-hints", true, true, ModeFast},
		{"rollback-hints", false, true, ModeFast},
	} {
		t.Run(c.name, func(t *testing.T) {
			testRoundTrip(t, c.wal, c.hints, c.wantMode)
		})
	}
}

func testRoundTrip(t *testing.T, wal, hints bool, wantMode string) {
	e := newEnv(t, envOpts{schema: roundtripSchema, wal: wal, hints: hints})
	tabs := e.tables()
	names := tableNames(tabs)
	if got := strings.Join(names, ","); got != `counters,kv,links,notes,odd "name",tags` {
		t.Fatalf("synced tables: %s", got)
	}
	empty := filepath.Join(e.dir, "before0.db")
	snapshotDB(t, e.live, empty)

	// Round 1: the first export carries every existing row as an INSERT.
	big1 := bigText(1)
	for i, k := range unicodeKeys {
		e.exec("INSERT INTO notes VALUES(?,?,?,?,?,?)", k, fmt.Sprintf("title %d", i), nil, int64(i)*math.MaxInt64/16, float64(i)/3, []byte{byte(i), 0, 0xff})
	}
	e.exec("INSERT INTO notes VALUES('big', 'big one', ?, NULL, -0.0, x'')", big1)
	e.exec("INSERT INTO notes VALUES('extremes', NULL, '', ?, ?, NULL)", int64(math.MinInt64), math.Inf(-1))
	e.exec(`INSERT INTO counters(name, v) VALUES('a', 1.5), ('b', NULL), ('c', 1e300);
		INSERT INTO counters VALUES(-7, 'negative', 2.5e-308);
		INSERT INTO links VALUES('n2','n1',0.5), ('n1','n2',NULL), ('ключ','🦊 fox',1);
		INSERT INTO tags VALUES('t1','Note'), ('t1','note'), ('t2','ключ');
		INSERT INTO kv VALUES(x'00', 1), (x'0001', 'text'), (x'', x'ff'), (x'deadbeef', 3.25);
		INSERT INTO "odd ""name""" VALUES('k''1', 'v'), ('k"2', 42);
		INSERT INTO nopk VALUES(1, 2);
		INSERT INTO notes_fts VALUES('hello', 'world');`)
	r1 := e.export()
	if r1.Seq != 1 || r1.Mode != ModeFull || r1.File == "" || r1.Pending {
		t.Fatalf("first export: %+v", r1)
	}
	checkFile(t, e, r1, empty, tabs)

	// Round 2: updates, deletes, inserts and key changes across tables.
	before1 := filepath.Join(e.dir, "before1.db")
	snapshotDB(t, e.live, before1)
	big2 := bigText(2)
	e.exec("UPDATE notes SET body=? WHERE id='big'", big2)
	e.exec("UPDATE notes SET title=NULL, score=score+1 WHERE id='ключ'")
	e.exec("UPDATE notes SET title='set', data=NULL, n=1.5 WHERE id='Note'")
	e.exec("UPDATE notes SET id='renamed' WHERE id='note'")
	e.exec("UPDATE notes SET data=zeroblob(3) WHERE id='🦊 fox'")
	e.exec("UPDATE notes SET score=score WHERE id='e\u0301'") // a no-op write: no change
	e.exec("DELETE FROM notes WHERE id IN ('日本語のノート', '')")
	e.exec("INSERT INTO notes(id, body) VALUES('new ☃', ?)", big1)
	e.exec(`UPDATE counters SET v=v*2 WHERE name='a';
		UPDATE counters SET v=0 WHERE name='b';
		DELETE FROM counters WHERE name='c';
		INSERT INTO counters(name) VALUES('d');
		UPDATE links SET weight=NULL WHERE src='n1';
		DELETE FROM links WHERE src='n2';
		INSERT INTO links VALUES('x','y',3);
		DELETE FROM tags WHERE tag='t1' AND note='Note';
		INSERT INTO tags VALUES('t3','x');
		UPDATE kv SET v=x'00ff' WHERE k=x'00';
		UPDATE kv SET k=x'02' WHERE k=x'0001';
		DELETE FROM kv WHERE k=x'';
		UPDATE "odd ""name""" SET "värde"=NULL WHERE "the key"='k''1';
		INSERT INTO nopk VALUES(3, 4);
		INSERT INTO notes_fts VALUES('more', 'text');`)
	r2 := e.export()
	if r2.Seq != 2 || r2.Mode != wantMode || r2.File == "" {
		t.Fatalf("second export: %+v, want mode %s", r2, wantMode)
	}
	checkFile(t, e, r2, before1, tabs)

	// Round 3: nothing changed (FTS and no-PK tables aren't synced), so
	// nothing is written and the sequence does not move.
	e.exec("INSERT INTO nopk VALUES(5, 6); INSERT INTO notes_fts VALUES('x','y');")
	r3 := e.export()
	if r3.Seq != 0 || r3.Mode != ModeNone || r3.File != "" {
		t.Fatalf("export without changes: %+v", r3)
	}
	if got := folderFiles(t, e.folder); len(got) != 2 {
		t.Fatalf("folder holds %v, want two files", got)
	}
	if n := stateInt(t, e.st, state.KeyNextSeq); n != 3 {
		t.Fatalf("next_seq = %d, want 3", n)
	}
	// invariant 7: base + unexported edits = live; nothing unexported now.
	if b, l := dumpTables(t, filepath.Join(e.st.Path, "base.db"), tabs), dumpTables(t, e.live, tabs); b != l {
		t.Fatalf("base copy differs from live after export:\nbase:\n%.2000s\nlive:\n%.2000s", b, l)
	}
	// Any SQLite can read the payload: applying both files' changesets,
	// in sequence order, to an empty copy of the schema rebuilds live.
	replica := filepath.Join(e.dir, "replica.db")
	snapshotDB(t, empty, replica)
	for _, rel := range folderFiles(t, e.folder) {
		_, _, raw := readFile(t, filepath.Join(e.folder, rel))
		conn := openRW(t, replica, false)
		err := conn.ApplyChangeset(bytes.NewReader(raw), nil, func(ct sqlite.ConflictType, _ *sqlite.ChangesetIterator) sqlite.ConflictAction {
			t.Errorf("%s: conflict %v applying to a replica", rel, ct)
			return sqlite.ChangesetAbort
		})
		conn.Close()
		if err != nil {
			t.Fatalf("apply %s with sqlite3changeset_apply: %v", rel, err)
		}
	}
	if r, l := dumpTables(t, replica, tabs), dumpTables(t, e.live, tabs); r != l {
		t.Fatalf("replica built from the files differs from live")
	}
}

// checkFile verifies the published file of res against the reference diff
// from the database at beforePath to live.
func checkFile(t *testing.T, e *env, res Result, beforePath string, tabs []*schema.Table) {
	t.Helper()
	rel := rdfile.RelPath(e.exp.ID.Device, res.Seq)
	if want := filepath.Join(e.folder, filepath.FromSlash(rel)); res.File != want {
		t.Fatalf("published %q, want %q", res.File, want)
	}
	// Find it by listing the folder, as a reader would.
	files := folderFiles(t, e.folder)
	if len(files) == 0 || files[len(files)-1] != rel {
		t.Fatalf("folder holds %v, want %s last", files, rel)
	}
	h, got, _ := readFile(t, res.File)
	want := decodeChanges(t, bytes.NewReader(sessionDiff(t, beforePath, e.live, tableNames(tabs))))
	sameChanges(t, rel, got, want)
	if h.Kind != "changeset" || h.Device != e.exp.ID.Device || h.Install != e.exp.ID.Install || h.DeviceName != "test device" ||
		h.Seq != res.Seq || h.HLC == 0 || h.CreatedMS == 0 || h.Changes != int64(len(want)) || res.Changes != h.Changes {
		t.Fatalf("header %+v does not describe the file (result %+v, %d changes)", h, res, len(want))
	}
	// The header lists exactly the touched tables, with their shapes.
	touched := map[string]bool{}
	for _, c := range got {
		touched[strings.SplitN(c, " pk=", 2)[0]] = true
	}
	if len(h.Tables) != len(touched) {
		t.Fatalf("header lists %d tables, changes touch %d", len(h.Tables), len(touched))
	}
	for _, ht := range h.Tables {
		var st *schema.Table
		for _, s := range tabs {
			if s.Name == ht.Name {
				st = s
			}
		}
		if st == nil || !touched[ht.Name] {
			t.Fatalf("header lists table %q which the file does not touch", ht.Name)
		}
		if ht.Fingerprint != st.Fingerprint() || schema.Fingerprint(ht.Name, ht.Columns) != ht.Fingerprint {
			t.Fatalf("table %s: header fingerprint %s, schema %s", ht.Name, ht.Fingerprint, st.Fingerprint())
		}
	}
}

// Device-local columns never leave the device: INSERT and DELETE carry
// NULL there, UPDATE leaves them undefined, an UPDATE of only local columns
// is not exported at all, and the header marks them.
func TestExportLocalColumns(t *testing.T) {
	e := newEnv(t, envOpts{
		schema: `CREATE TABLE notes(id TEXT PRIMARY KEY, title TEXT, path TEXT, pos INTEGER);
			CREATE TABLE other(id INTEGER PRIMARY KEY, v);`,
		filter: schema.Filter{LocalColumns: []string{"notes.path", "notes.pos"}},
	})
	tabs := e.tables()
	empty := filepath.Join(e.dir, "before0.db")
	snapshotDB(t, e.live, empty)
	e.exec("INSERT INTO notes VALUES('a','A','/home/me/a',1), ('b','B','/home/me/b',2); INSERT INTO other VALUES(1,'x');")
	r1 := e.export()
	_, got, _ := readFile(t, r1.File)
	sameChanges(t, "first export", got, localStripped(t, sessionDiff(t, empty, e.live, tableNames(tabs)), tabs))

	before := filepath.Join(e.dir, "before1.db")
	snapshotDB(t, e.live, before)
	e.exec("UPDATE notes SET path='/elsewhere' WHERE id='a'") // local only: not exported
	e.exec("UPDATE notes SET title='B2', pos=9 WHERE id='b'") // title exported, pos not
	e.exec("INSERT INTO notes VALUES('c','C','/p',3)")
	r2 := e.export()
	if r2.Seq != 2 {
		t.Fatalf("second export: %+v", r2)
	}
	h, got, _ := readFile(t, r2.File)
	want := localStripped(t, sessionDiff(t, before, e.live, tableNames(tabs)), tabs)
	sameChanges(t, "second export", got, want)
	if len(want) != 2 {
		t.Fatalf("want 2 exported changes, got %v", want)
	}
	var local []string
	for _, c := range h.Tables[0].Columns {
		if c.Local {
			local = append(local, c.Name)
		}
	}
	if strings.Join(local, ",") != "path,pos" {
		t.Fatalf("header marks local columns %v, want path,pos", local)
	}
	// A change of local columns only: nothing published, but base follows
	// live so it is not captured again.
	e.exec("UPDATE notes SET path='/again' WHERE id='c'")
	if r := e.export(); r.Mode != ModeNone || r.Seq != 0 {
		t.Fatalf("local-only change exported: %+v", r)
	}
	if b, l := dumpTables(t, filepath.Join(e.st.Path, "base.db"), tabs), dumpTables(t, e.live, tabs); b != l {
		t.Fatalf("base differs from live after a local-only change")
	}
}

// localStripped applies the documented local-column rule to a reference
// changeset.
func localStripped(t *testing.T, raw []byte, tabs []*schema.Table) []string {
	t.Helper()
	var out bytes.Buffer
	w := changeset.NewWriter(&out)
	rd := changeset.NewReader(bytes.NewReader(raw), changeset.Limits{})
	for {
		c, err := rd.Next()
		if err != nil {
			break
		}
		var tab *schema.Table
		for _, s := range tabs {
			if s.Name == c.Table.Name {
				tab = s
			}
		}
		keep := c.Op != changeset.OpUpdate
		for i, col := range tab.Columns {
			switch {
			case !tab.Local[col.Name]:
				if c.Op == changeset.OpUpdate && col.PK == 0 && c.New[i].Kind != changeset.KindUndefined {
					keep = true
				}
			case c.Op == changeset.OpInsert:
				c.New[i] = changeset.Null()
			case c.Op == changeset.OpDelete:
				c.Old[i] = changeset.Null()
			default:
				c.Old[i], c.New[i] = changeset.Value{}, changeset.Value{}
			}
		}
		if keep {
			if err := w.Write(c); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	return decodeChanges(t, &out)
}

// A WAL database that no process has open has no -wal or -shm file; the
// read-only capture must still work and leave the journal mode alone.
func TestExportClosedWALDatabase(t *testing.T) {
	e := newEnv(t, envOpts{schema: "CREATE TABLE t(id INTEGER PRIMARY KEY, v);", wal: true})
	e.exec("INSERT INTO t VALUES(1, 'x')")
	for _, suffix := range []string{"-wal", "-shm"} {
		if _, err := os.Stat(e.live + suffix); err == nil {
			t.Fatalf("%s still exists after the last connection closed", suffix)
		}
	}
	r := e.export()
	if r.Seq != 1 || r.Changes != 1 {
		t.Fatalf("export: %+v", r)
	}
	conn := openRO(t, e.live)
	defer conn.Close()
	if m, err := journalMode(conn); err != nil || m != "wal" {
		t.Fatalf("journal mode after export: %q %v", m, err)
	}
}

// sqlite3session_diff compares with SQL's IS under each column's collation,
// so it misses edits between values SQL calls equal. Capture must not.
func TestExportEditsSessionDiffMisses(t *testing.T) {
	for _, hints := range []bool{false, true} {
		t.Run(fmt.Sprintf("hints=%t", hints), func(t *testing.T) {
			e := newEnv(t, envOpts{hints: hints, wal: true, schema: `
				CREATE TABLE tags(id INTEGER PRIMARY KEY, name TEXT COLLATE NOCASE UNIQUE, pad TEXT COLLATE RTRIM, v, r REAL);
				CREATE TABLE names(name TEXT PRIMARY KEY COLLATE NOCASE, n INTEGER) WITHOUT ROWID;`})
			tabs := e.tables()
			e.exec(`INSERT INTO tags VALUES(1, 'rust', 'x', 4, 1.5), (2, 'go', 'y', 5, 2.5);
				INSERT INTO names VALUES('abc', 1), ('def', 2);`)
			e.export()
			before := filepath.Join(e.dir, "before.db")
			snapshotDB(t, e.live, before)
			if ref := decodeChanges(t, bytes.NewReader(sessionDiff(t, before, e.live, tableNames(tabs)))); len(ref) != 0 {
				t.Fatalf("reference diff of identical databases: %v", ref)
			}
			e.exec(`UPDATE tags SET name='Rust', pad='x ', v=4.0 WHERE id=1;
				UPDATE tags SET v=6 WHERE id=2;
				UPDATE names SET name='ABC' WHERE name='abc';
				UPDATE names SET name='DEF', n=3 WHERE name='def';`)
			// What SQLite's diff sees: only the v=6 edit and def's n.
			if ref := decodeChanges(t, bytes.NewReader(sessionDiff(t, before, e.live, tableNames(tabs)))); len(ref) != 2 {
				t.Fatalf("reference diff: %v", ref)
			}
			r := e.export()
			if hints && r.Mode != ModeFast {
				t.Fatalf("mode %s, want fast", r.Mode)
			}
			_, got, raw := readFile(t, r.File)
			tags := &changeset.Table{Name: "tags", PK: []byte{1, 0, 0, 0, 0}}
			names := &changeset.Table{Name: "names", PK: []byte{1, 0}}
			u := changeset.Value{}
			want := []*changeset.Change{
				{Table: tags, Op: changeset.OpUpdate,
					Old: []changeset.Value{changeset.Int(1), changeset.Text("rust"), changeset.Text("x"), changeset.Int(4), u},
					New: []changeset.Value{u, changeset.Text("Rust"), changeset.Text("x "), changeset.Float(4), u}},
				{Table: tags, Op: changeset.OpUpdate,
					Old: []changeset.Value{changeset.Int(2), u, u, changeset.Int(5), u},
					New: []changeset.Value{u, u, u, changeset.Int(6), u}},
				// A key renamed only in case under NOCASE is the same row,
				// under the key every device has: 'abc' unchanged, 'def'
				// updated.
				{Table: names, Op: changeset.OpUpdate,
					Old: []changeset.Value{changeset.Text("def"), changeset.Int(2)},
					New: []changeset.Value{u, changeset.Int(3)}},
			}
			var ws []string
			for _, c := range want {
				ws = append(ws, canon(c))
			}
			sort.Strings(ws)
			sameChanges(t, "exported", got, ws)
			if ents, _ := os.ReadDir(e.st.Path); true {
				for _, ent := range ents {
					if strings.HasPrefix(ent.Name(), ".") {
						t.Errorf("export left %s in the state directory", ent.Name())
					}
				}
			}
			fold := map[string]string{"names": "lower(name), n"}
			live := dumpTablesSel(t, e.live, tabs, fold)
			if b := dumpTablesSel(t, filepath.Join(e.st.Path, "base.db"), tabs, fold); b != live {
				t.Fatalf("base differs from live:\n%s\n%s", b, live)
			}
			// SQLite applies the file's changeset as it is.
			conn := openRW(t, before, false)
			err := conn.ApplyChangeset(bytes.NewReader(raw), nil, func(ct sqlite.ConflictType, _ *sqlite.ChangesetIterator) sqlite.ConflictAction {
				t.Errorf("conflict %v", ct)
				return sqlite.ChangesetAbort
			})
			conn.Close()
			if err != nil {
				t.Fatal(err)
			}
			if b := dumpTablesSel(t, before, tabs, fold); b != live {
				t.Fatalf("applying the file to the old state does not give live:\n%s\n%s", b, live)
			}
		})
	}
}

// A REPLACE deletes the rows it collides with on a UNIQUE index without
// firing their delete triggers; the hints must still see those rows.
func TestHintsSeeReplaceDeletions(t *testing.T) {
	e := newEnv(t, envOpts{hints: true, schema: `
		CREATE TABLE bm(id TEXT PRIMARY KEY, url TEXT UNIQUE, title TEXT);
		CREATE TABLE ci(id INTEGER PRIMARY KEY, name TEXT, UNIQUE(name COLLATE NOCASE) ON CONFLICT REPLACE);
		CREATE TABLE rw(k TEXT PRIMARY KEY, v);`})
	e.exec(`INSERT INTO bm VALUES('a', 'https://x', 'X'), ('b', 'https://y', 'Y');
		INSERT INTO ci VALUES(1, 'Go'), (2, 'Rust');
		INSERT INTO rw(rowid, k, v) VALUES(10, 'p', 1), (11, 'q', 2);`)
	if r := e.export(); r.Mode != ModeFull {
		t.Fatalf("first export %+v", r)
	}
	before := filepath.Join(e.dir, "before.db")
	snapshotDB(t, e.live, before)
	e.exec(`INSERT OR REPLACE INTO bm VALUES('c', 'https://x', 'X again');
		INSERT INTO ci VALUES(3, 'RUST');
		UPDATE OR REPLACE bm SET url='https://y' WHERE id='c';
		INSERT OR REPLACE INTO rw(rowid, k, v) VALUES(10, 'r', 3);`)
	r := e.export()
	if r.Mode != ModeFast {
		t.Fatalf("export %+v, want fast", r)
	}
	_, got, _ := readFile(t, r.File)
	tabs := e.tables()
	sameChanges(t, "fast export", got, decodeChanges(t, bytes.NewReader(sessionDiff(t, before, e.live, tableNames(tabs)))))
}

// A UNIQUE index on an expression: a REPLACE's victims can't be found by
// the triggers, so such a database is always captured by full diffs.
func TestHintsOffForExpressionIndex(t *testing.T) {
	e := newEnv(t, envOpts{hints: true, schema: `
		CREATE TABLE x(id INTEGER PRIMARY KEY, name TEXT);
		CREATE UNIQUE INDEX x_lower ON x(lower(name));`})
	for i := range 3 {
		e.exec("INSERT OR REPLACE INTO x VALUES(?, 'Name')", i)
		if r := e.export(); r.Mode != ModeFull || r.Seq != uint64(i+1) {
			t.Fatalf("export %d: %+v, want a full diff", i+1, r)
		}
	}
	if b, l := dumpTables(t, filepath.Join(e.st.Path, "base.db"), e.tables()), dumpTables(t, e.live, e.tables()); b != l {
		t.Fatalf("base differs from live")
	}
}
