package scenario_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"zombiezen.com/go/sqlite"
	"zombiezen.com/go/sqlite/sqlitex"

	"rowdrop"
)

// A notes app's schema: an FTS5 external-content index kept by triggers and
// an updated_at trigger without a WHEN guard (the echo-prone kind).
const appSchema = `
CREATE TABLE notes(id TEXT PRIMARY KEY, title TEXT, body TEXT, updated_at INTEGER NOT NULL DEFAULT 0);
CREATE VIRTUAL TABLE notes_fts USING fts5(title, body, content='notes', content_rowid='rowid');
CREATE TRIGGER notes_ai AFTER INSERT ON notes BEGIN
  INSERT INTO notes_fts(rowid, title, body) VALUES (new.rowid, new.title, new.body);
END;
CREATE TRIGGER notes_ad AFTER DELETE ON notes BEGIN
  INSERT INTO notes_fts(notes_fts, rowid, title, body) VALUES('delete', old.rowid, old.title, old.body);
END;
CREATE TRIGGER notes_au AFTER UPDATE OF title, body ON notes BEGIN
  INSERT INTO notes_fts(notes_fts, rowid, title, body) VALUES('delete', old.rowid, old.title, old.body);
  INSERT INTO notes_fts(rowid, title, body) VALUES (new.rowid, new.title, new.body);
END;
CREATE TRIGGER notes_touch AFTER UPDATE OF title, body ON notes BEGIN
  UPDATE notes SET updated_at = CAST(unixepoch('subsec')*1000 AS INTEGER) WHERE id = new.id;
END;
`

func appDevice(t *testing.T, folder, name string) (string, *rowdrop.Syncer) {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, name+".db")
	conn, err := sqlite.OpenConn(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := sqlitex.ExecuteScript(conn, appSchema, nil); err != nil {
		t.Fatal(err)
	}
	conn.Close()
	s, err := rowdrop.Open(context.Background(), rowdrop.Config{DB: path, Folder: folder, State: filepath.Join(dir, "state"), DeviceName: name})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return path, s
}

func query(t *testing.T, path, q string) string {
	t.Helper()
	conn, err := sqlite.OpenConn(path, sqlite.OpenReadOnly)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	out := ""
	err = sqlitex.ExecuteTransient(conn, q, &sqlitex.ExecOptions{ResultFunc: func(s *sqlite.Stmt) error {
		for i := 0; i < s.ColumnCount(); i++ {
			out += s.ColumnText(i) + "|"
		}
		out += "\n"
		return nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func countFiles(t *testing.T, folder string) int {
	t.Helper()
	n := 0
	filepath.WalkDir(folder, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && filepath.Ext(p) == ".rdc" {
			n++
		}
		return nil
	})
	return n
}

func TestAppTriggersNoEchoAndFTSStaysRight(t *testing.T) {
	ctx := context.Background()
	folder := t.TempDir()
	pa, a := appDevice(t, folder, "a")
	pb, b := appDevice(t, folder, "b")
	mustExec(t, pa, "INSERT INTO notes(id,title,body) VALUES('u1','groceries','apples and pears')")
	for _, s := range []*rowdrop.Syncer{a, b, a, b} {
		if _, err := s.Sync(ctx); err != nil {
			t.Fatal(err)
		}
	}
	mustExec(t, pb, "UPDATE notes SET body='apples, pears and plums' WHERE id='u1'")
	before := countFiles(t, folder)
	for i := 0; i < 4; i++ {
		for _, s := range []*rowdrop.Syncer{b, a} {
			if _, err := s.Sync(ctx); err != nil {
				t.Fatal(err)
			}
		}
	}
	// One edit, one file: applying it on A must not produce a file back.
	if got := countFiles(t, folder) - before; got != 1 {
		t.Fatalf("one edit produced %d files (echo between devices)", got)
	}
	dump := "SELECT id,title,body,updated_at FROM notes ORDER BY id"
	if da, db := query(t, pa, dump), query(t, pb, dump); da != db {
		t.Fatalf("diverged:\nA %s\nB %s", da, db)
	}
	for _, p := range []string{pa, pb} {
		if got := query(t, p, "SELECT id FROM notes WHERE rowid IN (SELECT rowid FROM notes_fts WHERE notes_fts MATCH 'plums')"); got != "u1|\n" {
			t.Fatalf("%s: FTS search for the merged word returned %q", p, got)
		}
		if got := query(t, p, "SELECT count(*) FROM notes_fts WHERE notes_fts MATCH 'plums OR apples'"); got != "1|\n" {
			t.Fatalf("%s: FTS index holds stale entries: %q", p, got)
		}
		if got := query(t, p, "PRAGMA integrity_check"); got != "ok|\n" {
			t.Fatalf("%s: integrity_check: %s", p, got)
		}
		// FTS5's own consistency check of the index against its content table.
		mustExec(t, p, "INSERT INTO notes_fts(notes_fts, rank) VALUES('integrity-check', 1)")
	}
}
