package scenario_test

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"zombiezen.com/go/sqlite"
	"zombiezen.com/go/sqlite/sqlitex"

	"github.com/rowdrop/rowdrop"
	"github.com/rowdrop/rowdrop/scenario"
)

// calibre-like: a trigger calls a SQL function only the app registers.
const calibreSchema = `
CREATE TABLE books(id TEXT PRIMARY KEY, title TEXT, sort TEXT);
CREATE TRIGGER books_insert_trg AFTER INSERT ON books BEGIN
  UPDATE books SET sort=title_sort(NEW.title) WHERE id=NEW.id;
END;
`

func appConn(t *testing.T, path string) *sqlite.Conn {
	t.Helper()
	conn, err := sqlite.OpenConn(path)
	if err != nil {
		t.Fatal(err)
	}
	err = conn.CreateFunction("title_sort", &sqlite.FunctionImpl{NArgs: 1, AllowIndirect: true, Scalar: func(_ sqlite.Context, a []sqlite.Value) (sqlite.Value, error) {
		return sqlite.TextValue(strings.TrimPrefix(a[0].Text(), "The ")), nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	return conn
}

// A trigger needing a function rowdrop lacks holds the file with a reason
// naming the function (nothing half-applied); a configured stand-in lets it
// apply.
func TestMissingAppFunctionHoldsThenStandIn(t *testing.T) {
	ctx := context.Background()
	folder := t.TempDir()
	var paths []string
	for _, n := range []string{"a", "b"} {
		p := filepath.Join(t.TempDir(), n+".db")
		c := appConn(t, p)
		if err := sqlitex.ExecuteScript(c, calibreSchema, nil); err != nil {
			t.Fatal(err)
		}
		c.Close()
		paths = append(paths, p)
	}
	c := appConn(t, paths[0])
	if err := sqlitex.ExecuteTransient(c, "INSERT INTO books(id,title) VALUES('b1','The Hobbit')", nil); err != nil {
		t.Fatal(err)
	}
	c.Close()
	stA := filepath.Join(filepath.Dir(paths[0]), "state")
	stB := filepath.Join(filepath.Dir(paths[1]), "state")
	a, err := rowdrop.Open(ctx, rowdrop.Config{DB: paths[0], Folder: folder, State: stA})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if _, err := a.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	b, err := rowdrop.Open(ctx, rowdrop.Config{DB: paths[1], Folder: folder, State: stB})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Sync(ctx); err != nil {
		t.Fatalf("a held file must not fail the sync: %v", err)
	}
	st, _ := b.Status(ctx)
	held := ""
	for _, f := range st.Files {
		held += f.Status + ": " + f.Reason + "\n"
	}
	if !strings.Contains(held, "held") || !strings.Contains(held, "title_sort") || !strings.Contains(held, "books_insert_trg") {
		t.Fatalf("expected a held file naming title_sort, got:\n%s", held)
	}
	if got := scenario.ValueFile(t, paths[1], "SELECT count(*) FROM books"); got != "0" {
		t.Fatalf("a held file reached the database: %s rows", got)
	}
	// Held with live untouched: nothing is left in flight, so the next
	// sync (and its export) goes on.
	if _, err := b.Sync(ctx); err != nil {
		t.Fatalf("a file held before touching live must not stop the next sync: %v", err)
	}
	b.Close()
	b, err = rowdrop.Open(ctx, rowdrop.Config{DB: paths[1], Folder: folder, State: stB, StandIns: map[string]string{"title_sort": "identity"}})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if _, err := b.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	// The merged row is the origin's, sort column included (the stand-in's
	// result is a trigger side effect, put back to the merged value).
	if got := scenario.ValueFile(t, paths[1], "SELECT title||'|'||sort FROM books WHERE id='b1'"); got != "The Hobbit|Hobbit" {
		t.Fatalf("after the stand-in: %q", got)
	}
	st, _ = b.Status(ctx)
	if len(st.Files) != 0 {
		t.Fatalf("file still reported after applying: %+v", st.Files)
	}
}

// Joplin-like: the app's index is FTS4, a module rowdrop's SQLite lacks,
// kept by a trigger on a synced table. Reading never touches it; applying a
// change that fires the trigger holds the file with the module named, and
// excluding nothing else, other tables keep syncing.
func TestMissingModuleTriggerHolds(t *testing.T) {
	ctx := context.Background()
	folder := t.TempDir()
	schemaSQL := `
CREATE TABLE notes(id TEXT PRIMARY KEY, body TEXT);
CREATE TABLE folders(id TEXT PRIMARY KEY, title TEXT);
PRAGMA writable_schema=ON;
INSERT INTO sqlite_master VALUES('table','notes_fts','notes_fts',0,'CREATE VIRTUAL TABLE notes_fts USING fts4(content="notes", body)');
PRAGMA writable_schema=OFF;`
	trigger := `CREATE TRIGGER notes_fts_ai AFTER INSERT ON notes BEGIN INSERT INTO notes_fts(docid, body) VALUES(new.rowid, new.body); END`
	var paths, states []string
	for _, n := range []string{"a", "b"} {
		dir := t.TempDir()
		p := filepath.Join(dir, n+".db")
		scenario.ScriptFile(t, p, schemaSQL)
		paths, states = append(paths, p), append(states, filepath.Join(dir, "state"))
	}
	// Only B's app has the trigger (a creating connection with FTS4 would
	// be the app's own; here the statement just has to be stored).
	scenario.ScriptFile(t, paths[1], "PRAGMA writable_schema=ON; INSERT INTO sqlite_master VALUES('trigger','notes_fts_ai','notes',0,'"+strings.ReplaceAll(trigger, "'", "''")+"'); PRAGMA writable_schema=OFF;")
	scenario.ExecFile(t, paths[0], "INSERT INTO notes VALUES('n1','hello')")
	scenario.ExecFile(t, paths[0], "INSERT INTO folders VALUES('f1','inbox')")
	var ss []*rowdrop.Syncer
	for i := range paths {
		s, err := rowdrop.Open(ctx, rowdrop.Config{DB: paths[i], Folder: folder, State: states[i]})
		if err != nil {
			t.Fatalf("open must not trip over the FTS4 table: %v", err)
		}
		defer s.Close()
		ss = append(ss, s)
	}
	for _, s := range []*rowdrop.Syncer{ss[0], ss[1]} {
		if _, err := s.Sync(ctx); err != nil {
			t.Fatalf("sync: %v", err)
		}
	}
	st, _ := ss[1].Status(ctx)
	reason := ""
	for _, f := range st.Files {
		reason += f.Status + ": " + f.Reason
	}
	if !strings.Contains(reason, "held") || !strings.Contains(reason, "fts4") || !strings.Contains(reason, "notes_fts_ai") {
		t.Fatalf("expected the file held naming the fts4 module, got %q", reason)
	}
	if got := scenario.ValueFile(t, paths[1], "SELECT count(*) FROM notes"); got != "0" {
		t.Fatalf("held file partly applied: %s notes", got)
	}
	for _, sk := range st.Skipped {
		if sk.Name == "notes_fts" && sk.Kind != "excluded" {
			t.Fatalf("FTS4 table should be excluded as derived data: %+v", sk)
		}
	}
}
