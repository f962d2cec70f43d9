package scenario_test

import (
	"context"
	"encoding/hex"
	"fmt"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"zombiezen.com/go/sqlite"
	"zombiezen.com/go/sqlite/sqlitex"

	"github.com/rowdrop/rowdrop"
	"github.com/rowdrop/rowdrop/scenario"
)

// A notes app with what a join must keep: an INTEGER-keyed table the
// notes reference, a WITHOUT ROWID table, an FTS index and a per-device
// count kept by triggers, a trigger that rewrites a synced cell of the
// row it fires for, a device-local column.
const setwiseSchema = `
CREATE TABLE folders(id INTEGER PRIMARY KEY, name TEXT);
CREATE TABLE notes(id TEXT PRIMARY KEY, folder INTEGER REFERENCES folders(id), title TEXT, body TEXT,
	n INTEGER, score REAL, data BLOB, stamp INTEGER NOT NULL DEFAULT 0, viewed INTEGER);
CREATE TABLE tags(note TEXT, tag TEXT, PRIMARY KEY(tag, note)) WITHOUT ROWID;
CREATE TABLE counts(folder INTEGER UNIQUE, n INTEGER NOT NULL); -- no key: not synced
CREATE VIRTUAL TABLE notes_fts USING fts5(title, body, content='notes', content_rowid='rowid');
CREATE TRIGGER notes_ai AFTER INSERT ON notes BEGIN
  INSERT INTO notes_fts(rowid, title, body) VALUES (new.rowid, new.title, new.body);
  INSERT INTO counts(folder, n) VALUES (new.folder, 1) ON CONFLICT(folder) DO UPDATE SET n = n + 1;
  UPDATE notes SET stamp = 7 WHERE id = new.id;
END;
CREATE TRIGGER notes_ad AFTER DELETE ON notes BEGIN
  INSERT INTO notes_fts(notes_fts, rowid, title, body) VALUES('delete', old.rowid, old.title, old.body);
  UPDATE counts SET n = n - 1 WHERE folder = old.folder;
END;
CREATE TRIGGER notes_au AFTER UPDATE OF title, body ON notes BEGIN
  INSERT INTO notes_fts(notes_fts, rowid, title, body) VALUES('delete', old.rowid, old.title, old.body);
  INSERT INTO notes_fts(rowid, title, body) VALUES (new.rowid, new.title, new.body);
END;
`

// TestSetwiseJoinEqualsRowByRow: two new devices, each with rows of its
// own, join from the same snapshot and later files, one set-wise (the
// default) and one row by row (Config.JoinRowByRow, the merge as it was
// before). Their databases (what the app's triggers derived included),
// base copies, row and cell clocks, conflict logs and device records must
// be the same, and so must what they do with later edits, local and
// remote.
func TestSetwiseJoinEqualsRowByRow(t *testing.T) {
	ctx := context.Background()
	w := scenario.NewWorld(t, setwiseSchema)
	cfg := func(rowByRow bool) func(*rowdrop.Config) {
		return func(c *rowdrop.Config) {
			c.LocalColumns = []string{"notes.viewed"}
			c.JoinRowByRow = rowByRow
		}
	}
	a := w.AddDevice(scenario.Options{Name: "a", Initialised: true, Config: cfg(false)})
	b := w.AddDevice(scenario.Options{Name: "b", Initialised: true, Hints: true, Config: cfg(false)})
	a.Exec(`INSERT INTO folders VALUES(1,'inbox'),(2,'work'),(3,'old')`)
	a.Exec(`WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM n WHERE i<1500)
		INSERT INTO notes(id, folder, title, body, n, score, data, viewed)
		SELECT printf('n%04d', i), 1 + i % 3, 'title ' || i, CASE WHEN i % 7 = 0 THEN NULL ELSE 'body of note ' || i END,
			i, i / 4.0, CASE WHEN i % 5 = 0 THEN randomblob(8) END, i % 2 FROM n`)
	a.Exec(`INSERT INTO tags SELECT id, 't' || (n % 4) FROM notes WHERE n % 3 = 0`)
	a.Sync()
	w.QuiesceAmong(a, b)
	w.Tick(1000)
	// Cell clocks, tombstones, a re-inserted key, a cell the insert
	// trigger would rewrite (stamp 99, not 7).
	b.Exec(`UPDATE notes SET title = 'edited by b ' || n WHERE n % 50 = 0`)
	b.Exec(`DELETE FROM notes WHERE n % 97 = 0`)
	b.Exec(`UPDATE notes SET stamp = 99 WHERE n % 61 = 0`)
	b.Sync()
	w.Tick(1000)
	a.Exec(`UPDATE notes SET body = 'a again' WHERE n % 40 = 0`)
	a.Exec(`UPDATE notes SET viewed = 5 WHERE n < 10`)
	a.Exec(`DELETE FROM notes WHERE id = 'n0011'`)
	a.Sync()
	w.QuiesceAmong(a, b)
	w.Tick(1000)
	a.Exec(`INSERT INTO notes(id, folder, title) VALUES('n0011', 2, 'back again')`)
	a.Sync()
	w.QuiesceAmong(a, b)
	snap := a.Snapshot()
	w.Tick(1000)
	// After the snapshot: files the joiners apply on top of it.
	b.Exec(`UPDATE notes SET title = 'after the snapshot' WHERE id = 'n0002'`)
	b.Exec(`DELETE FROM notes WHERE id = 'n0003'`)
	b.Sync()
	w.QuiesceAmong(a, b)
	w.Collect(a, snap.Seen[a.ID])
	w.Collect(b, snap.Seen[b.ID])

	set := w.AddDevice(scenario.Options{Name: "setwise-joiner", Config: cfg(false)})
	row := w.AddDevice(scenario.Options{Name: "rowwise-joiner", Config: cfg(true)})
	reports := map[*scenario.Device]rowdrop.Report{}
	for _, d := range []*scenario.Device{set, row} {
		// Rows of its own: one new, one under a key the snapshot has
		// with other values (a conflict), a folder of its own.
		d.Exec(`INSERT INTO folders VALUES(50, 'mine')`)
		d.Exec(`INSERT INTO notes(id, folder, title, body) VALUES('n0005', 50, 'my own n0005', 'mine'), ('local1', 50, 'only here', NULL)`)
		for _, from := range []*scenario.Device{a, b} {
			w.DeliverAll(from, d)
			w.DeliverSnapshots(from, d)
		}
		r, err := d.S.Sync(ctx)
		if err != nil {
			t.Fatalf("%s: %v", d.Name, err)
		}
		reports[d] = r
		t.Logf("%s: export %d changes, import %d changes (%d copied), %d conflicts, %d corrected", d.Name, r.Export.Changes, r.Import.Changes, r.Import.Copied, r.Import.Conflicts, r.Import.Corrected)
	}
	if reports[set].Import.Copied < 1000 {
		t.Fatalf("the set-wise join copied %d rows, want most of the snapshot's", reports[set].Import.Copied)
	}
	if reports[row].Import.Copied != 0 {
		t.Fatalf("the row-by-row join copied %d rows set-wise", reports[row].Import.Copied)
	}
	// The insert trigger set stamp 7; the merged value is put back.
	if got := set.Value("SELECT stamp FROM notes WHERE id='n0061'"); got != "99" {
		t.Fatalf("set-wise join: stamp of n0061 is %s after the insert trigger, want the merged 99", got)
	}
	compareJoined(t, set, row)

	// Later: a remote edit, and the same local edit on both.
	w.Tick(1000)
	a.Exec(`UPDATE notes SET body = 'later from a' WHERE id IN ('n0004', 'n0006')`)
	a.Exec(`DELETE FROM notes WHERE id = 'n0008'`)
	a.Sync()
	for _, d := range []*scenario.Device{set, row} {
		w.DeliverAll(a, d)
		d.Exec(`UPDATE notes SET title = 'edited after joining' WHERE id IN ('n0010', 'local1')`)
		d.Exec(`DELETE FROM notes WHERE id = 'n0012'`)
		d.Exec(`UPDATE notes SET viewed = 9 WHERE id = 'n0013'`)
		r, err := d.S.Sync(ctx)
		if err != nil {
			t.Fatalf("%s: %v", d.Name, err)
		}
		reports[d] = r
	}
	if s, r := reports[set], reports[row]; s.Export.Changes != r.Export.Changes || s.Import.Changes != r.Import.Changes || s.Import.Conflicts != r.Import.Conflicts {
		t.Fatalf("later sync differs: set-wise exported %d, imported %d (%d conflicts); row by row exported %d, imported %d (%d conflicts)",
			s.Export.Changes, s.Import.Changes, s.Import.Conflicts, r.Export.Changes, r.Import.Changes, r.Import.Conflicts)
	}
	if reports[set].Export.Changes != 3 {
		t.Fatalf("the later local edit exported %d changes, want 3 (two titles, one delete; viewed is device-local)", reports[set].Export.Changes)
	}
	compareJoined(t, set, row)
	w.Quiesce(12)
	// (AssertConverged would read the FTS index's shadow tables, which
	// follow each device's local rowids.)
	for _, d := range []*scenario.Device{a, b, row} {
		for _, q := range convergedQ {
			if gx, gy := rowsOf(t, set.DB, q, nil), rowsOf(t, d.DB, q, nil); gx != gy {
				t.Fatalf("not converged: %s differs:\n%s: %s\n%s: %s", q, set.Name, clip(gx), d.Name, clip(gy))
			}
		}
	}
}

// convergedQ are what every device shows alike once converged (counts is
// not: no trigger follows a note's move to another folder).
var convergedQ = []string{
	"SELECT * FROM folders ORDER BY id",
	"SELECT id, folder, title, body, n, score, hex(data), stamp FROM notes ORDER BY id",
	"SELECT * FROM tags ORDER BY tag, note",
	"SELECT n.id FROM notes_fts f JOIN notes n ON n.rowid = f.rowid WHERE notes_fts MATCH 'title OR body OR edited' ORDER BY n.id",
}

// compareJoined fails the test where two joined devices differ, their own
// device ids aside.
func compareJoined(t *testing.T, x, y *scenario.Device) {
	t.Helper()
	appQ := []string{
		"SELECT * FROM folders ORDER BY id",
		"SELECT id, folder, title, body, n, score, hex(data), stamp, viewed FROM notes ORDER BY id",
		"SELECT * FROM tags ORDER BY tag, note",
		"SELECT * FROM counts ORDER BY folder",
		// What the FTS index finds, by note (its rowids are the notes'
		// rowids, which are local and follow the insert order).
		"SELECT n.id FROM notes_fts f JOIN notes n ON n.rowid = f.rowid WHERE notes_fts MATCH 'title OR body OR edited' ORDER BY n.id",
		"SELECT count(*) FROM notes_fts",
	}
	for _, q := range appQ {
		if gx, gy := rowsOf(t, x.DB, q, nil), rowsOf(t, y.DB, q, nil); gx != gy {
			t.Fatalf("%s differs:\n%s: %s\n%s: %s", q, x.Name, clip(gx), y.Name, clip(gy))
		}
	}
	for _, d := range []*scenario.Device{x, y} {
		d.Exec("INSERT INTO notes_fts(notes_fts) VALUES('integrity-check')")
	}
	baseQ := []string{
		"SELECT * FROM folders ORDER BY id",
		"SELECT id, folder, title, body, n, score, hex(data), stamp, viewed FROM notes ORDER BY id",
		"SELECT * FROM tags ORDER BY tag, note",
		"SELECT tbl, hex(pk), ins, ins_dev, wmax, wmax_dev, del, del_dev, hex(dead), hex(cells) FROM rowdrop_rows ORDER BY tbl, pk",
		"SELECT kind, tbl, hex(pk), pk_text, cols, hex(winner), winner_dev, winner_hlc, hex(loser), loser_dev, loser_hlc, file, note FROM rowdrop_conflicts ORDER BY tbl, pk, kind, cols",
		"SELECT id, name, applied, last_hlc FROM rowdrop_devices ORDER BY id",
		"SELECT dev, seq, hlc FROM rowdrop_filelog ORDER BY dev, seq",
	}
	for _, q := range baseQ {
		gx := rowsOf(t, filepath.Join(x.State, "base.db"), q, map[string]string{x.ID: "SELF", x.Name: "SELFNAME"})
		gy := rowsOf(t, filepath.Join(y.State, "base.db"), q, map[string]string{y.ID: "SELF", y.Name: "SELFNAME"})
		if gx != gy {
			t.Fatalf("base copy: %s differs:\n%s: %s\n%s: %s", q, x.Name, clip(gx), y.Name, clip(gy))
		}
	}
}

// rowsOf renders q's rows on the database at path, each value's text with
// the strings of repl replaced (also inside hex).
func rowsOf(t *testing.T, path, q string, repl map[string]string) string {
	t.Helper()
	conn, err := sqlite.OpenConn(path, sqlite.OpenReadOnly)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var pairs []string
	keys := make([]string, 0, len(repl))
	for k := range repl {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		pairs = append(pairs, k, repl[k], strings.ToUpper(hex.EncodeToString([]byte(k))), "<"+repl[k]+">")
	}
	r := strings.NewReplacer(pairs...)
	var b strings.Builder
	err = sqlitex.ExecuteTransient(conn, q, &sqlitex.ExecOptions{ResultFunc: func(s *sqlite.Stmt) error {
		row := make([]string, s.ColumnCount())
		for i := range row {
			row[i] = s.ColumnText(i)
		}
		fmt.Fprintln(&b, r.Replace(strings.Join(row, "|")))
		return nil
	}})
	if err != nil {
		t.Fatalf("%s on %s: %v", q, path, err)
	}
	return b.String()
}

func clip(s string) string {
	if len(s) > 3000 {
		return s[:3000] + "..."
	}
	return s
}
