package export

import (
	"bytes"
	"path/filepath"
	"testing"

	"zombiezen.com/go/sqlite"
	"zombiezen.com/go/sqlite/sqlitex"

	"github.com/rowdrop/rowdrop/internal/schema"
)

// The exact comparison after the session diff reads only rows with an
// edit the diff cannot see: a big BLOB edit in a column without type
// affinity (one the comparison covers) is the diff's alone, so no fixup
// holds the row's values, while 4 -> 4.0 and a case-only edit under
// NOCASE in the same table are still found, with just their columns.
func TestFixupsReadOnlyMissedEdits(t *testing.T) {
	dir := t.TempDir()
	conn, err := sqlite.OpenConn(filepath.Join(dir, "live.db"), sqlite.OpenReadWrite|sqlite.OpenCreate)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	exec := func(q string, args ...any) {
		t.Helper()
		if err := sqlitex.ExecuteTransient(conn, q, &sqlitex.ExecOptions{Args: args}); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	exec("ATTACH DATABASE ? AS base", filepath.Join(dir, "base.db"))
	exec("CREATE TABLE main.files(id INTEGER PRIMARY KEY, name TEXT COLLATE NOCASE, n, data BLOB)")
	exec("CREATE TABLE base.files(id INTEGER PRIMARY KEY, name TEXT COLLATE NOCASE, n, data BLOB)")
	for _, db := range []string{"main", "base"} {
		exec("INSERT INTO " + db + ".files VALUES(1, 'photo', 4, randomblob(8)), (2, 'notes', 4, x'00'), (3, 'list', 4, x'00')")
	}
	exec("UPDATE main.files SET data = randomblob(3145728) WHERE id = 1") // seen by the diff
	exec("UPDATE main.files SET n = 4.0 WHERE id = 2")                    // missed: 4 IS 4.0
	exec("UPDATE main.files SET name = 'LIST', data = randomblob(16) WHERE id = 3")
	tabs, _, err := schema.Inspect(conn, "main", schema.Filter{})
	if err != nil || len(tabs) != 1 {
		t.Fatalf("inspect: %v %v", tabs, err)
	}
	fx := fixups{}
	if err := findFixups(conn, "main", "base", tabs[0], fx); err != nil {
		t.Fatal(err)
	}
	got := map[int64][]int{}
	for _, r := range fx["files"] {
		got[r.key[0].Int] = r.cols
		for j := range r.cols {
			if len(r.old[j].Bytes) > 1<<20 || len(r.new[j].Bytes) > 1<<20 {
				t.Errorf("row %d: a fixup holds a big value", r.key[0].Int)
			}
		}
	}
	if _, ok := got[1]; ok || len(got) != 2 {
		t.Fatalf("fixups for rows %v, want rows 2 and 3 only (row 1's BLOB edit is the diff's)", got)
	}
	if c := got[2]; len(c) != 1 || tabs[0].Columns[c[0]].Name != "n" {
		t.Errorf("row 2 fixup columns %v, want [n]", c)
	}
	if c := got[3]; len(c) == 0 || tabs[0].Columns[c[0]].Name != "name" {
		t.Errorf("row 3 fixup columns %v, want name first", c)
	}
}

// Big BLOBs go out and into the base copy exactly, now that the export's
// passes leave them in the capture file (sections of it) rather than in
// memory: an insert, an update of the BLOB and another column, and a
// delete, each published with the live values and leaving base equal to
// live.
func TestExportBigBlobs(t *testing.T) {
	for _, wal := range []bool{false, true} {
		e := newEnv(t, envOpts{schema: "CREATE TABLE files(id INTEGER PRIMARY KEY, name TEXT, data BLOB, more BLOB);", wal: wal})
		base := filepath.Join(e.st.Path, "base.db")
		for i, step := range []string{
			"INSERT INTO files VALUES(1, 'a', randomblob(3145728), randomblob(1048576)), (2, 'b', x'01', NULL)",
			"UPDATE files SET data = randomblob(2097152), name = 'a2' WHERE id = 1",
			"UPDATE files SET more = randomblob(4194304) WHERE id = 2",
			"DELETE FROM files WHERE id = 1",
		} {
			e.exec(step)
			res := e.export()
			if res.Changes == 0 {
				t.Fatalf("step %d: nothing exported", i)
			}
			_, changes, _ := readFile(t, res.File)
			if len(changes) == 0 {
				t.Fatalf("step %d: the file holds no changes", i)
			}
			if got, want := dumpTables(t, base, e.tables()), dumpTables(t, e.live, e.tables()); got != want {
				t.Fatalf("wal %v step %d: base differs from live after the export", wal, i)
			}
		}
		// The published values are the live ones: a device that applies
		// every file gets live's table.
		other := filepath.Join(e.dir, "other.db")
		conn := openRW(t, other, true)
		if err := sqlitex.ExecuteTransient(conn, "CREATE TABLE files(id INTEGER PRIMARY KEY, name TEXT, data BLOB, more BLOB)", nil); err != nil {
			t.Fatal(err)
		}
		for _, name := range folderFiles(t, e.folder) {
			_, _, raw := readFile(t, filepath.Join(e.folder, name))
			if err := conn.ApplyChangeset(bytes.NewReader(raw), nil, func(sqlite.ConflictType, *sqlite.ChangesetIterator) sqlite.ConflictAction {
				return sqlite.ChangesetAbort
			}); err != nil {
				t.Fatalf("apply %s: %v", name, err)
			}
		}
		conn.Close()
		if got, want := dumpTables(t, other, e.tables()), dumpTables(t, e.live, e.tables()); got != want {
			t.Fatalf("wal %v: the published files do not rebuild live's table", wal)
		}
		e.close()
	}
}
