package scenario

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"zombiezen.com/go/sqlite"
	"zombiezen.com/go/sqlite/sqlitex"

	"github.com/rowdrop/rowdrop"
)

// NotesSchema is the notes app most shared-folder tests sync: a text key,
// every column type, a WITHOUT ROWID table with a composite key, and a
// table without a primary key (not synced).
const NotesSchema = `
CREATE TABLE notes(id TEXT PRIMARY KEY, title TEXT, body TEXT, n INTEGER, score REAL, data BLOB);
CREATE TABLE tags(note TEXT, tag TEXT, PRIMARY KEY(tag, note)) WITHOUT ROWID;
CREATE TABLE log(msg TEXT);
`

// SharedDevice is a device on a real folder that several devices use in
// place (one directory, no simulated transport: what a folder on a file
// server or a USB stick is), with the real wall clock. Its database and
// state directory live in a temporary directory of the test.
type SharedDevice struct {
	T      testing.TB
	Name   string
	DB     string
	Folder string
	State  string
	S      *rowdrop.Syncer
}

// SharedOptions configure one SharedDevice.
type SharedOptions struct {
	Schema  string // run on the new database; default NotesSchema
	Journal string // journal_mode set after the schema ("wal", "delete"); "" leaves SQLite's default
	Hints   bool   // fast capture path (hint triggers)
}

// NewSharedDevice creates a device's database (schema, then journal mode),
// and opens a Syncer on folder with the device named name.
func NewSharedDevice(t testing.TB, folder, name string, opt SharedOptions) *SharedDevice {
	t.Helper()
	if opt.Schema == "" {
		opt.Schema = NotesSchema
	}
	dir := t.TempDir()
	d := &SharedDevice{T: t, Name: name, DB: filepath.Join(dir, name+".db"), Folder: folder, State: filepath.Join(dir, "state")}
	conn, err := sqlite.OpenConn(d.DB)
	if err != nil {
		t.Fatal(err)
	}
	if err := sqlitex.ExecuteScript(conn, opt.Schema, nil); err != nil {
		t.Fatal(err)
	}
	if opt.Journal != "" {
		if err := sqlitex.ExecuteTransient(conn, "PRAGMA journal_mode="+opt.Journal, nil); err != nil {
			t.Fatal(err)
		}
	}
	conn.Close()
	cfg := d.Config()
	cfg.DeviceName, cfg.Hints = name, opt.Hints
	d.S = d.Open(cfg)
	return d
}

// Config is the device's configuration with only its database, folder and
// state directory set; tests add what they vary.
func (d *SharedDevice) Config() rowdrop.Config {
	return rowdrop.Config{DB: d.DB, Folder: d.Folder, State: d.State}
}

// Open opens another Syncer on the device's files with cfg (see Config),
// closed when the test ends. It does not replace d.S.
func (d *SharedDevice) Open(cfg rowdrop.Config) *rowdrop.Syncer {
	d.T.Helper()
	s, err := rowdrop.Open(context.Background(), cfg)
	if err != nil {
		d.T.Fatal(err)
	}
	d.T.Cleanup(func() { s.Close() })
	return s
}

// Exec runs one statement on the device's database, as the app would (own
// connection).
func (d *SharedDevice) Exec(q string, args ...any) {
	d.T.Helper()
	ExecFile(d.T, d.DB, q, args...)
}

// Sync runs one sync cycle of d.S.
func (d *SharedDevice) Sync() rowdrop.Report {
	d.T.Helper()
	r, err := d.S.Sync(context.Background())
	if err != nil {
		d.T.Fatalf("%s: sync: %v", d.Name, err)
	}
	return r
}

// DumpNotes renders the notes and tags tables of the NotesSchema database
// at path (values quoted, types of n and score shown).
func DumpNotes(t testing.TB, path string) string {
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
