package db

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"zombiezen.com/go/sqlite"
	"zombiezen.com/go/sqlite/sqlitex"

	"github.com/rowdrop/rowdrop/internal/changeset"
)

// newDB creates a SQLite file (rollback journal, as an app's often is)
// with the given schema and returns its path.
func newDB(t *testing.T, schema string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "app.db")
	conn, err := sqlite.OpenConn(path, sqlite.OpenReadWrite|sqlite.OpenCreate)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if err := sqlitex.ExecuteScript(conn, schema, nil); err != nil {
		t.Fatalf("schema: %v", err)
	}
	return path
}

func openLive(t *testing.T, path string) *sqlite.Conn {
	t.Helper()
	conn, err := OpenLive(path, false)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

func exec(t *testing.T, conn *sqlite.Conn, query string, args ...any) {
	t.Helper()
	if err := Exec(conn, query, args...); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
}

// queryText returns the first column of the first row as text ("NULL" for
// NULL), or "" when there is no row.
func queryText(t *testing.T, conn *sqlite.Conn, query string, args ...any) string {
	t.Helper()
	out := ""
	err := sqlitex.Execute(conn, query, &sqlitex.ExecOptions{Args: args, ResultFunc: func(s *sqlite.Stmt) error {
		if s.ColumnType(0) == sqlite.TypeNull {
			out = "NULL"
		} else {
			out = typeNames[s.ColumnType(0)] + ":" + s.ColumnText(0)
		}
		return nil
	}})
	if err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return out
}

var typeNames = map[sqlite.ColumnType]string{sqlite.TypeInteger: "integer", sqlite.TypeFloat: "float", sqlite.TypeText: "text", sqlite.TypeBlob: "blob"}

const triggerSchema = `
CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT);
CREATE TABLE fired(id INTEGER, by TEXT);
CREATE TABLE other(id INTEGER PRIMARY KEY);
-- Two triggers on one table: SQLite fires the newest first, an order
-- WithoutTriggers must keep.
CREATE TRIGGER t_first AFTER INSERT ON t BEGIN INSERT INTO fired VALUES(new.id, 'first'); END;
create   trigger "t second" after insert on t begin insert into fired values(new.id, 'second'); end;
CREATE TRIGGER other_ins AFTER INSERT ON other BEGIN INSERT INTO fired VALUES(new.id, 'other'); END;
`

// TestWithoutTriggers pins what rowdrop's moves and corrections rely on:
// no trigger fires inside fn, every trigger is back afterwards with the
// same text and firing order (also when fn fails), other connections never
// see them missing, and a transaction around it keeps or rolls back fn's
// writes as usual.
func TestWithoutTriggers(t *testing.T) {
	path := newDB(t, triggerSchema)
	conn := openLive(t, path)
	fired := func() string {
		return queryText(t, conn, "SELECT group_concat(id || by, ',') FROM (SELECT * FROM fired ORDER BY rowid)")
	}
	triggers := func(c *sqlite.Conn) string {
		return queryText(t, c, "SELECT group_concat(name || ':' || sql, ';') FROM (SELECT * FROM sqlite_master WHERE type = 'trigger' ORDER BY rowid)")
	}
	before := triggers(conn)

	exec(t, conn, "INSERT INTO t VALUES(1, 'a')")
	if got := fired(); got != "text:1second,1first" {
		t.Fatalf("triggers before: fired %s, want 1second,1first", got)
	}
	app := openLive(t, path)
	seen := ""
	if err := WithoutTriggers(conn, func() error {
		exec(t, conn, "INSERT INTO t VALUES(2, 'b')")
		exec(t, conn, "INSERT INTO other VALUES(2)")
		seen = triggers(app) // a reader sees the committed schema
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if got := fired(); got != "text:1second,1first" {
		t.Fatalf("inside WithoutTriggers a trigger fired: %s", got)
	}
	if seen != before {
		t.Fatalf("another connection saw the triggers while they were set aside:\n%s\nwant\n%s", seen, before)
	}
	if got := triggers(conn); got != before {
		t.Fatalf("triggers afterwards:\n%s\nwant the same text and order as before:\n%s", got, before)
	}
	exec(t, conn, "INSERT INTO t VALUES(3, 'c')")
	if got := fired(); got != "text:1second,1first,3second,3first" {
		t.Fatalf("after WithoutTriggers: fired %s, want the same order as before", got)
	}

	// fn fails: triggers are back, fn's error is returned unchanged, its
	// write stays for the caller to keep or roll back.
	boom := errors.New("boom")
	if err := WithoutTriggers(conn, func() error {
		exec(t, conn, "INSERT INTO t VALUES(4, 'd')")
		return boom
	}); err != boom {
		t.Fatalf("WithoutTriggers returned %v, want fn's error unchanged", err)
	}
	if got := queryText(t, conn, "SELECT count(*) FROM t WHERE id = 4"); got != "integer:1" {
		t.Fatalf("fn's write before its error: %s rows, want 1", got)
	}
	if got := triggers(conn); got != before {
		t.Fatalf("triggers after a failing fn: %s", got)
	}

	// Inside a transaction the caller rolls back: fn's writes go, the
	// triggers are as before; nested calls are harmless.
	exec(t, conn, "BEGIN IMMEDIATE")
	if err := WithoutTriggers(conn, func() error {
		return WithoutTriggers(conn, func() error { return Exec(conn, "INSERT INTO t VALUES(5, 'e')") })
	}); err != nil {
		t.Fatal(err)
	}
	exec(t, conn, "ROLLBACK")
	if got := queryText(t, conn, "SELECT count(*) FROM t WHERE id = 5"); got != "integer:0" {
		t.Fatalf("rolled-back write: %s rows", got)
	}
	if got := triggers(conn); got != before {
		t.Fatalf("triggers after a rolled-back transaction: %s", got)
	}

	// The app's own writes afterwards fire them.
	exec(t, app, "INSERT INTO other VALUES(6)")
	if got := fired(); got != "text:1second,1first,3second,3first,6other" {
		t.Fatalf("the app's insert after WithoutTriggers: fired %s", got)
	}
	if got := queryText(t, conn, "PRAGMA integrity_check"); got != "text:ok" {
		t.Fatalf("integrity_check: %s", got)
	}
}

func TestStandIns(t *testing.T) {
	path := newDB(t, `
CREATE TABLE t(id INTEGER PRIMARY KEY, v, norm);
CREATE TRIGGER t_norm AFTER INSERT ON t BEGIN UPDATE t SET norm = app_norm(new.v) WHERE id = new.id; END;
`)
	bare := openLive(t, path)
	if err := Exec(bare, "INSERT INTO t(id, v) VALUES(1, 'x')"); err == nil || !strings.Contains(err.Error(), "app_norm") {
		t.Fatalf("without a stand-in the trigger should fail on app_norm: %v", err)
	}
	for kind, want := range map[string][5]string{ // text, integer, blob, NULL; then of ('A', 'b')
		"identity": {"text:MiXed", "integer:5", "blob:\x00b", "NULL", "text:A"},
		"null":     {"NULL", "NULL", "NULL", "NULL", "NULL"},
		"lower":    {"text:mixed", "integer:5", "blob:\x00b", "NULL", "text:a"},
		"upper":    {"text:MIXED", "integer:5", "blob:\x00b", "NULL", "text:A"},
	} {
		conn := openLive(t, path)
		if err := RegisterStandIns(conn, map[string]string{"app_norm": kind, "app_other": "identity"}); err != nil {
			t.Fatalf("%s: %v", kind, err)
		}
		exec(t, conn, "DELETE FROM t")
		for i, v := range []any{"MiXed", 5, []byte{0, 'b'}, nil} {
			exec(t, conn, "INSERT INTO t(id, v) VALUES(?, ?)", i, v)
			if got := queryText(t, conn, "SELECT norm FROM t WHERE id=?", i); got != want[i] {
				t.Errorf("%s(%v) = %q, want %q", kind, v, got, want[i])
			}
		}
		// Without arguments: only null gives NULL; the others refuse
		// (the app's function makes a value there: use uuid).
		if kind == "null" {
			if got := queryText(t, conn, "SELECT app_norm()"); got != "NULL" {
				t.Errorf("%s() without arguments = %q, want NULL", kind, got)
			}
		} else if err := Exec(conn, "SELECT app_norm()"); err == nil || !strings.Contains(err.Error(), "wrong number of arguments") {
			t.Errorf("%s() without arguments: %v, want a refusal", kind, err)
		}
		if got := queryText(t, conn, "SELECT app_norm('A', 'b')"); got != want[4] {
			t.Errorf("%s('A', 'b') = %q, want %q (of the first argument)", kind, got, want[4])
		}
	}
	// uuid makes a fresh random UUID, with or without arguments.
	conn := openLive(t, path)
	if err := RegisterStandIns(conn, map[string]string{"app_uuid": "uuid"}); err != nil {
		t.Fatal(err)
	}
	u1, u2 := queryText(t, conn, "SELECT app_uuid()"), queryText(t, conn, "SELECT app_uuid(1)")
	if len(u1) != len("text:")+36 || len(u2) != len(u1) || u1 == u2 || u1[len("text:")+14] != '4' {
		t.Errorf("uuid: %q, %q", u1, u2)
	}
	// title_sort is calibre's rule, through SQL.
	if err := RegisterStandIns(conn, map[string]string{"ts": "title_sort"}); err != nil {
		t.Fatal(err)
	}
	if got := queryText(t, conn, "SELECT ts('The Hobbit')"); got != "text:Hobbit, The" {
		t.Errorf("title_sort stand-in: %q", got)
	}
	err := RegisterStandIns(conn, map[string]string{"a": "identity", "b": "reverse"})
	if err == nil || !strings.Contains(err.Error(), `unknown kind "reverse"`) || !strings.Contains(err.Error(), "identity, null, lower, upper, title_sort, or uuid") {
		t.Errorf("unknown kind: %v", err)
	}
	if err := RegisterStandIns(conn, nil); err != nil {
		t.Errorf("no stand-ins: %v", err)
	}
}

// TestOpenLive: the app's file is opened as it is, never created, never
// switched to WAL, and refused when it is not SQLite.
func TestOpenLive(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "missing.db")
	if _, err := OpenLive(missing, false); err == nil {
		t.Error("OpenLive of a missing file succeeded")
	}
	if _, err := os.Stat(missing); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("OpenLive created %s: %v", missing, err)
	}

	junk := filepath.Join(dir, "notes.txt")
	if err := os.WriteFile(junk, []byte(strings.Repeat("not a database\n", 100)), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenLive(junk, true); err == nil || !strings.Contains(err.Error(), "is it a SQLite database") {
		t.Errorf("OpenLive of a text file: %v", err)
	}

	// A path with the characters a URI would otherwise take apart.
	odd := filepath.Join(dir, "we?ird#100%.db")
	src := newDB(t, triggerSchema)
	data, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(odd, data, 0o644); err != nil {
		t.Fatal(err)
	}
	rw := openLive(t, odd)
	exec(t, rw, "INSERT INTO t VALUES(1, 'a')")
	if got := queryText(t, rw, "PRAGMA journal_mode"); got != "text:delete" {
		t.Errorf("journal mode after OpenLive: %s, want the app's (delete)", got)
	}
	if _, err := os.Stat(odd + "-wal"); err == nil {
		t.Errorf("OpenLive left a WAL file next to the app's database")
	}

	ro, err := OpenLive(odd, true)
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	if got := queryText(t, ro, "SELECT v FROM t WHERE id=1"); got != "text:a" {
		t.Errorf("read-only read: %s", got)
	}
	if err := Exec(ro, "INSERT INTO t VALUES(2, 'b')"); err == nil {
		t.Error("a read-only connection wrote")
	}
}

// TestOpenPrivate: rowdrop's own databases are created in WAL mode with
// full sync.
func TestOpenPrivate(t *testing.T) {
	path := filepath.Join(t.TempDir(), "base.db")
	conn, err := OpenPrivate(path)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	for q, want := range map[string]string{
		"PRAGMA journal_mode":       "text:wal",
		"PRAGMA synchronous":        "integer:2",
		"PRAGMA cache_size":         "integer:-8192",
		"PRAGMA journal_size_limit": "integer:67108864",
	} {
		if got := queryText(t, conn, q); got != want {
			t.Errorf("%s = %s, want %s", q, got, want)
		}
	}
	if _, err := os.Stat(path); err != nil {
		t.Errorf("OpenPrivate did not create %s: %v", path, err)
	}
	if _, err := OpenPrivate(filepath.Join(t.TempDir(), "no", "such", "dir", "x.db")); err == nil {
		t.Error("OpenPrivate in a missing directory succeeded")
	}
}

// TestBegin: the end function commits on nil, rolls back otherwise and
// leaves the outcome as it was.
func TestBegin(t *testing.T) {
	conn := openLive(t, newDB(t, "CREATE TABLE t(id INTEGER PRIMARY KEY);"))
	end, err := Begin(conn, "IMMEDIATE")
	if err != nil {
		t.Fatal(err)
	}
	exec(t, conn, "INSERT INTO t VALUES(1)")
	var outcome error
	end(&outcome)
	if outcome != nil || !conn.AutocommitEnabled() {
		t.Fatalf("commit: %v, autocommit %v", outcome, conn.AutocommitEnabled())
	}

	end, err = Begin(conn, "DEFERRED")
	if err != nil {
		t.Fatal(err)
	}
	exec(t, conn, "INSERT INTO t VALUES(2)")
	boom := errors.New("boom")
	outcome = boom
	end(&outcome)
	if outcome != boom || !conn.AutocommitEnabled() {
		t.Fatalf("rollback: outcome %v (want boom unchanged), autocommit %v", outcome, conn.AutocommitEnabled())
	}
	if got := queryText(t, conn, "SELECT group_concat(id) FROM t"); got != "text:1" {
		t.Errorf("after commit and rollback: rows %s, want 1", got)
	}

	// A failed COMMIT (a deferred foreign key) is the outcome, and the
	// transaction is rolled back.
	conn2 := openLive(t, newDB(t, `PRAGMA foreign_keys=ON;
CREATE TABLE p(id INTEGER PRIMARY KEY);
CREATE TABLE c(id INTEGER PRIMARY KEY, p REFERENCES p(id) DEFERRABLE INITIALLY DEFERRED);`))
	exec(t, conn2, "PRAGMA foreign_keys=ON")
	end, err = Begin(conn2, "IMMEDIATE")
	if err != nil {
		t.Fatal(err)
	}
	exec(t, conn2, "INSERT INTO c VALUES(1, 99)")
	outcome = nil
	end(&outcome)
	if outcome == nil || !strings.Contains(outcome.Error(), "FOREIGN KEY") || !conn2.AutocommitEnabled() {
		t.Fatalf("failed commit: outcome %v, autocommit %v", outcome, conn2.AutocommitEnabled())
	}
	if got := queryText(t, conn2, "SELECT count(*) FROM c"); got != "integer:0" {
		t.Errorf("rows after a failed commit: %s, want 0", got)
	}
}

// TestColumnBind round-trips every kind through SQLite.
func TestColumnBind(t *testing.T) {
	conn := openLive(t, newDB(t, "CREATE TABLE t(id INTEGER PRIMARY KEY, v);"))
	vals := []changeset.Value{
		{Kind: changeset.KindInteger, Int: -7},
		{Kind: changeset.KindFloat, Float: 2.5},
		{Kind: changeset.KindText, Bytes: []byte("héllo")},
		{Kind: changeset.KindBlob, Bytes: []byte{0, 1, 2}},
		{Kind: changeset.KindBlob, Bytes: nil}, // an empty blob, not NULL
		{Kind: changeset.KindNull},
	}
	for i, v := range vals {
		stmt := conn.Prep("INSERT INTO t VALUES(?, ?)")
		stmt.BindInt64(1, int64(i))
		Bind(stmt, 2, v)
		if _, err := stmt.Step(); err != nil {
			t.Fatal(err)
		}
		if err := stmt.Reset(); err != nil {
			t.Fatal(err)
		}
	}
	var got []changeset.Value
	err := sqlitex.Execute(conn, "SELECT v FROM t ORDER BY id", &sqlitex.ExecOptions{ResultFunc: func(s *sqlite.Stmt) error {
		got = append(got, Column(s, 0))
		return nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	vals[4].Bytes = []byte{}
	if !reflect.DeepEqual(got, vals) {
		t.Errorf("round trip:\n got %v\nwant %v", got, vals)
	}
	if Quote(`a"b`) != `"a""b"` {
		t.Errorf("Quote: %s", Quote(`a"b`))
	}
}

func TestTitleSort(t *testing.T) {
	for in, want := range map[string]string{
		"The Hobbit":     "Hobbit, The",
		"a Tale of Two":  "Tale of Two, a",
		"An Essay":       "Essay, An",
		"Anthem":         "Anthem",
		"Theory":         "Theory",
		"  The  Road ":   "Road, The",
		"\"The Quoted\"": "Quoted\", The",
		"Plain":          "Plain",
		"The":            "The",
	} {
		if got := TitleSort(in); got != want {
			t.Errorf("TitleSort(%q) = %q, want %q", in, got, want)
		}
	}
}
