package scenario_test

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"zombiezen.com/go/sqlite"
	"zombiezen.com/go/sqlite/sqlitex"

	"rowdrop"
)

const notesSchema = `
CREATE TABLE notes(id TEXT PRIMARY KEY, title TEXT, body TEXT, n INTEGER, score REAL, data BLOB);
CREATE TABLE tags(note TEXT, tag TEXT, PRIMARY KEY(tag, note)) WITHOUT ROWID;
CREATE TABLE log(msg TEXT);
`

type device struct {
	t      *testing.T
	name   string
	db     string
	folder string
	s      *rowdrop.Syncer
}

func newDevice(t *testing.T, folder, name string, hints bool) *device {
	t.Helper()
	return newDeviceMode(t, folder, name, hints, "wal")
}

// newDeviceMode creates a device whose app database uses the given journal
// mode ("wal" or "delete").
func newDeviceMode(t *testing.T, folder, name string, hints bool, journal string) *device {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, name+".db")
	conn, err := sqlite.OpenConn(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := sqlitex.ExecuteScript(conn, notesSchema, nil); err != nil {
		t.Fatal(err)
	}
	if err := sqlitex.ExecuteTransient(conn, "PRAGMA journal_mode="+journal, nil); err != nil {
		t.Fatal(err)
	}
	conn.Close()
	s, err := rowdrop.Open(context.Background(), rowdrop.Config{DB: path, Folder: folder, State: filepath.Join(dir, "state"), DeviceName: name, Hints: hints})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return &device{t: t, name: name, db: path, folder: folder, s: s}
}

func (d *device) exec(q string, args ...any) {
	d.t.Helper()
	conn, err := sqlite.OpenConn(d.db, sqlite.OpenReadWrite)
	if err != nil {
		d.t.Fatal(err)
	}
	defer conn.Close()
	if err := sqlitex.Execute(conn, q, &sqlitex.ExecOptions{Args: args}); err != nil {
		d.t.Fatalf("%s: %v", q, err)
	}
}

func (d *device) sync() rowdrop.Report {
	d.t.Helper()
	r, err := d.s.Sync(context.Background())
	if err != nil {
		d.t.Fatalf("%s: sync: %v", d.name, err)
	}
	return r
}

func dump(t *testing.T, path string) string {
	t.Helper()
	conn, err := sqlite.OpenConn(path, sqlite.OpenReadOnly)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var b strings.Builder
	for _, q := range []string{"SELECT id, title, body, n, score, hex(data), typeof(n), typeof(score) FROM notes ORDER BY id", "SELECT tag, note FROM tags ORDER BY tag, note"} {
		err := sqlitex.ExecuteTransient(conn, q, &sqlitex.ExecOptions{ResultFunc: func(s *sqlite.Stmt) error {
			for i := 0; i < s.ColumnCount(); i++ {
				fmt.Fprintf(&b, "%q|", s.ColumnText(i))
			}
			b.WriteString("\n")
			return nil
		}})
		if err != nil {
			t.Fatal(err)
		}
	}
	return b.String()
}

func TestTwoDevicesConverge(t *testing.T) {
	folder := t.TempDir()
	a := newDevice(t, folder, "a", false)
	b := newDevice(t, folder, "b", true)
	a.exec("INSERT INTO notes VALUES('n1','hello','body one',1,1.5,x'00ff')")
	a.exec("INSERT INTO tags VALUES('n1','x')")
	b.exec("INSERT INTO notes VALUES('n2','from b','b body',NULL,2.5,NULL)")
	a.sync()
	b.sync()
	a.sync()
	if da, db := dump(t, a.db), dump(t, b.db); da != db {
		t.Fatalf("not converged:\nA:\n%s\nB:\n%s", da, db)
	}
	// Different columns of one row on both sides: both survive.
	a.exec("UPDATE notes SET title='A title' WHERE id='n1'")
	b.exec("UPDATE notes SET body='B body' WHERE id='n1'")
	a.sync()
	b.sync()
	a.sync()
	da, db := dump(t, a.db), dump(t, b.db)
	if da != db || !strings.Contains(da, `"A title"|"B body"`) {
		t.Fatalf("column merge failed:\nA:\n%s\nB:\n%s", da, db)
	}
	// Same cell on both sides: the later export wins, the other is logged.
	a.exec("UPDATE notes SET title='from A' WHERE id='n2'")
	b.exec("UPDATE notes SET title='from B' WHERE id='n2'")
	a.sync()
	b.sync() // b merges A's title, keeps its own unexported edit, exports it
	a.sync()
	da, db = dump(t, a.db), dump(t, b.db)
	if da != db || !strings.Contains(da, `"from B"`) {
		t.Fatalf("same-cell conflict:\nA:\n%s\nB:\n%s", da, db)
	}
	cs, err := b.s.Conflicts()
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, c := range cs {
		if c.Loser["title"] == "'from A'" {
			found = true
		}
	}
	if !found {
		t.Fatalf("losing value 'from A' not in conflict log: %+v", cs)
	}
	// Delete on one side.
	b.exec("DELETE FROM notes WHERE id='n1'")
	b.sync()
	a.sync()
	if da, db := dump(t, a.db), dump(t, b.db); da != db || strings.Contains(da, `"n1"|"A title"`) {
		t.Fatalf("delete:\nA:\n%s\nB:\n%s", da, db)
	}
}

// reopen opens the device again with a changeset size cap.
func reopen(t *testing.T, d *device, maxRaw int64) *rowdrop.Syncer {
	t.Helper()
	s, err := rowdrop.Open(context.Background(), rowdrop.Config{DB: d.db, Folder: d.folder, State: filepath.Join(filepath.Dir(d.db), "state"), DeviceName: d.name, MaxChangeset: maxRaw})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}
