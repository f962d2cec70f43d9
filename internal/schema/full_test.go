package schema

import (
	"path/filepath"
	"strings"
	"testing"

	"zombiezen.com/go/sqlite"
	"zombiezen.com/go/sqlite/sqlitex"
)

func masterOf(t *testing.T, conn *sqlite.Conn) string {
	t.Helper()
	var rows []string
	err := sqlitex.ExecuteTransient(conn, "SELECT type, name, tbl_name, coalesce(sql,'') FROM sqlite_master ORDER BY type, name", &sqlitex.ExecOptions{ResultFunc: func(s *sqlite.Stmt) error {
		rows = append(rows, strings.Join([]string{s.ColumnText(0), s.ColumnText(1), s.ColumnText(2), s.ColumnText(3)}, "|"))
		return nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	return strings.Join(rows, "\n")
}

// ReadFull, Create and Finish recreate a schema exactly: tables of every
// kind (FTS5 with its shadow tables), indexes, triggers, views and the
// database settings; rowdrop's own objects stay out.
func TestFullRoundTrip(t *testing.T) {
	src := openDB(t, `PRAGMA user_version=12;
PRAGMA application_id=1234;
CREATE TABLE notes(id TEXT PRIMARY KEY, title TEXT, body TEXT);
CREATE TABLE scratch(x);
CREATE UNIQUE INDEX notes_title ON notes(title);
CREATE VIRTUAL TABLE notes_fts USING fts5(title, body, content='notes');
CREATE TRIGGER notes_ai AFTER INSERT ON notes BEGIN INSERT INTO notes_fts(rowid, title, body) VALUES (new.rowid, new.title, new.body); END;
CREATE VIEW titles AS SELECT title FROM notes;
CREATE TABLE rowdrop_dirty(tbl TEXT);
INSERT INTO notes VALUES ('a', 'x', 'y');`)
	if err := sqlitex.ExecuteTransient(src, "PRAGMA journal_mode=WAL", nil); err != nil {
		t.Fatal(err)
	}
	full, err := ReadFull(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range full.Objects {
		if strings.HasPrefix(o.Name, "rowdrop_") || strings.HasPrefix(o.Name, "sqlite_") {
			t.Errorf("ReadFull kept %s %s", o.Type, o.Name)
		}
	}
	path := filepath.Join(t.TempDir(), "restored.db")
	dst, err := sqlite.OpenConn(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := full.Create(dst); err != nil {
		t.Fatal(err)
	}
	dst.Close()
	if err := full.FinishFile(path); err != nil {
		t.Fatal(err)
	}
	dst, err = sqlite.OpenConn(path, sqlite.OpenReadOnly)
	if err != nil {
		t.Fatal(err)
	}
	defer dst.Close()
	got, err := ReadFull(dst)
	if err != nil {
		t.Fatal(err)
	}
	want := masterOf(t, src)
	want = strings.Join(filterLines(strings.Split(want, "\n"), "rowdrop_dirty"), "\n")
	if g := masterOf(t, dst); g != want {
		t.Errorf("sqlite_master after Create:\n%s\nwant:\n%s", g, want)
	}
	for _, p := range FullPragmas {
		if got.Pragmas[p] != full.Pragmas[p] {
			t.Errorf("PRAGMA %s = %q after Create and Finish, want %q", p, got.Pragmas[p], full.Pragmas[p])
		}
	}
	if n, err := ObjectsIn(path); err != nil || n == 0 {
		t.Errorf("ObjectsIn = %d, %v", n, err)
	}
}

func filterLines(lines []string, drop string) []string {
	var out []string
	for _, l := range lines {
		if !strings.Contains(l, drop) {
			out = append(out, l)
		}
	}
	return out
}
