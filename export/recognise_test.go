package export

import (
	"fmt"
	"strings"
	"testing"

	"zombiezen.com/go/sqlite/sqlitex"

	"github.com/rowdrop/rowdrop/internal/schema"
	"github.com/rowdrop/rowdrop/internal/state"
)

// TestClassifySignals: each signal alone tells its kind; none fires on an
// unchanged file, and without a record only emptiness is judged.
func TestClassifySignals(t *testing.T) {
	rec := state.LiveFile{FileID: "1:10", Counter: 7, AppID: 5, UserVersion: 3, Marker: 4, Token: "dev", Rows: map[string]string{"notes": "ab"}, Roots: map[string]int64{"notes": 2}}
	with := func(edit func(f *state.LiveFile)) state.LiveFile {
		f := rec
		f.Rows = map[string]string{"notes": "cd"}
		edit(&f)
		return f
	}
	for _, c := range []struct {
		name     string
		cur      state.LiveFile
		recorded bool
		baseRows bool
		kind     string
		reason   string
	}{
		{"unchanged", with(func(*state.LiveFile) {}), true, true, "", ""},
		{"edited: counter and marker grow", with(func(f *state.LiveFile) { f.Counter, f.Marker, f.Pages = 9, 5, 100 }), true, true, "", ""},
		{"emptied by deletes in the same file: an edit", with(func(f *state.LiveFile) { f.Rows = map[string]string{"notes": ""} }), true, true, "", ""},
		{"emptied, never recorded", with(func(f *state.LiveFile) { f.Rows = map[string]string{"notes": ""} }), false, true, RecognisedEmptied, "never synced"},
		{"emptied, new file", with(func(f *state.LiveFile) { f.Rows, f.FileID = map[string]string{"notes": ""}, "1:12" }), true, true, RecognisedEmptied, "file id"},
		{"emptied, table created again", with(func(f *state.LiveFile) {
			f.Rows, f.Roots = map[string]string{"notes": ""}, map[string]int64{"notes": 9}
		}), true, true, RecognisedEmptied, "created again"},
		{"empty, base empty too", with(func(f *state.LiveFile) { f.Rows, f.FileID = map[string]string{"notes": ""}, "1:12" }), true, false, RecognisedReplaced, "file id"},
		{"never recorded", with(func(f *state.LiveFile) { f.FileID = "other" }), false, true, "", ""},
		{"file id", with(func(f *state.LiveFile) { f.FileID = "1:11" }), true, true, RecognisedReplaced, "file id"},
		{"application_id", with(func(f *state.LiveFile) { f.AppID = 6 }), true, true, RecognisedReplaced, "application_id"},
		{"marker gone", with(func(f *state.LiveFile) { f.Marker, f.Token = 0, "" }), true, true, RecognisedReplaced, "marker"},
		{"marker of another device", with(func(f *state.LiveFile) { f.Token = "other" }), true, true, RecognisedReplaced, "another device"},
		{"marker went back", with(func(f *state.LiveFile) { f.Marker = 3 }), true, true, RecognisedOlder, "generation 4 to 3"},
		{"counter went back", with(func(f *state.LiveFile) { f.Counter = 6 }), true, true, RecognisedOlder, "counter"},
		{"user_version went back", with(func(f *state.LiveFile) { f.UserVersion = 2 }), true, true, RecognisedOlder, "user_version"},
	} {
		t.Run(c.name, func(t *testing.T) {
			kind, reason := Classify(rec, c.recorded, c.cur, c.baseRows)
			if kind != c.kind || !strings.Contains(reason, c.reason) {
				t.Fatalf("Classify = %q, %q; want %q, containing %q", kind, reason, c.kind, c.reason)
			}
		})
	}
}

// TestRecogniseQuietOnOrdinaryWork: inserts, updates, deletes (down to
// one row), an in-place VACUUM, a checkpoint and a schema migration are
// the app's own work: never recognised as a replaced file.
func TestRecogniseQuietOnOrdinaryWork(t *testing.T) {
	for _, wal := range []bool{false, true} {
		for _, hints := range []bool{false, true} {
			t.Run(fmt.Sprintf("wal=%v/hints=%v", wal, hints), func(t *testing.T) {
				e := newEnv(t, envOpts{schema: "CREATE TABLE notes(id TEXT PRIMARY KEY, title TEXT); CREATE TABLE tags(note TEXT, tag TEXT, PRIMARY KEY(note, tag)) WITHOUT ROWID;", wal: wal, hints: hints, memFS: true})
				for i, step := range []string{
					"INSERT INTO notes VALUES('n1','a'),('n2','b'),('n3','c'); INSERT INTO tags VALUES('n1','x')",
					"UPDATE notes SET title='edited' WHERE id='n1'",
					"DELETE FROM notes WHERE id IN ('n2','n3'); DELETE FROM tags",
					"VACUUM",
					"PRAGMA wal_checkpoint(TRUNCATE)",
					"ALTER TABLE notes ADD COLUMN body TEXT; PRAGMA user_version=2",
					"INSERT INTO notes(id,title) VALUES('n4','d')",
				} {
					if strings.HasPrefix(step, "VACUUM") || strings.HasPrefix(step, "PRAGMA wal") {
						conn := openRW(t, e.live, false)
						err := sqlitex.ExecuteTransient(conn, step, nil)
						conn.Close()
						if err != nil {
							t.Fatal(err)
						}
					} else {
						e.exec(step)
					}
					if r := e.export(); r.Recognised != nil {
						t.Fatalf("step %d (%s) recognised as %+v", i, step, *r.Recognised)
					}
				}
			})
		}
	}
}

// TestRecogniseEmptiedRefills: through the Exporter alone, a database
// reset by dropping and creating its table again is refilled from the base
// copy and exports nothing.
func TestRecogniseEmptiedRefills(t *testing.T) {
	e := newEnv(t, envOpts{schema: "CREATE TABLE notes(id TEXT PRIMARY KEY, title TEXT);", memFS: true})
	e.exec("INSERT INTO notes VALUES('n1','a'),('n2','b')")
	e.export()
	base := dumpTables(t, e.live, e.tables())
	e.exec("DROP TABLE notes; CREATE TABLE notes(id TEXT PRIMARY KEY, title TEXT);")
	r := e.export()
	if r.Recognised == nil || r.Recognised.Kind != RecognisedEmptied || r.Recognised.Restored != 2 || r.Seq != 0 {
		t.Fatalf("export of an emptied database: seq %d, recognised %+v", r.Seq, r.Recognised)
	}
	if got := dumpTables(t, e.live, e.tables()); got != base {
		t.Fatalf("not refilled:\n%s", got)
	}
}

// BenchmarkReadLiveFile is the detection's cost per check, on a database
// of two synced tables of 100k rows each (the budget: 5 ms).
func BenchmarkReadLiveFile(b *testing.B) {
	for _, wal := range []bool{false, true} {
		b.Run(fmt.Sprintf("wal=%v", wal), func(b *testing.B) {
			dir := b.TempDir()
			live := dir + "/live.db"
			conn := openRW(b, live, true)
			mode := "DELETE"
			if wal {
				mode = "WAL"
			}
			if err := sqlitex.ExecuteTransient(conn, "PRAGMA journal_mode="+mode, nil); err != nil {
				b.Fatal(err)
			}
			script := `CREATE TABLE notes(id TEXT PRIMARY KEY, title TEXT, body TEXT);
CREATE TABLE items(id INTEGER PRIMARY KEY, v TEXT);
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM n WHERE i < 100000)
INSERT INTO notes SELECT printf('n%08d', i), 'title', hex(randomblob(40)) FROM n;
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM n WHERE i < 100000)
INSERT INTO items SELECT i, hex(randomblob(20)) FROM n;`
			if err := sqlitex.ExecuteScript(conn, script, nil); err != nil {
				b.Fatal(err)
			}
			conn.Close()
			ro := openRO(b, live)
			tabs, _, err := schema.Inspect(ro, "main", schema.Filter{})
			ro.Close()
			if err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			for b.Loop() {
				if _, err := ReadLiveFile(live, tabs); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
