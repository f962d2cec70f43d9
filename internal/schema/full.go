package schema

import (
	"fmt"
	"os"
	"strconv"
	"strings"

	"zombiezen.com/go/sqlite"
	"zombiezen.com/go/sqlite/sqlitex"

	"github.com/rowdrop/rowdrop/internal/db"
)

// Object is one entry of sqlite_master that has SQL: a table (synced or
// not, virtual or shadow), an index, a trigger or a view, as the app
// created it.
type Object struct {
	Type, Name, Table, SQL string
}

// Full is the app's complete schema, what a restored database must
// recreate exactly: every object of sqlite_master in creation order
// except SQLite's own (sqlite_*) and rowdrop's (rowdrop_*: the capture
// hints), and the database-wide settings.
type Full struct {
	Objects []Object
	// Pragmas are user_version, application_id, journal_mode, page_size,
	// auto_vacuum and encoding, as PRAGMA reports them.
	Pragmas map[string]string
}

// FullPragmas are the settings Full records. The first three are applied
// after the data (journal_mode last), the others to the empty file.
var FullPragmas = []string{"user_version", "application_id", "journal_mode", "page_size", "auto_vacuum", "encoding"}

// ReadFull reads the complete schema of database main on conn.
func ReadFull(conn *sqlite.Conn) (*Full, error) {
	f := &Full{Pragmas: map[string]string{}}
	err := sqlitex.ExecuteTransient(conn, `SELECT type, name, tbl_name, sql FROM main.sqlite_master
		WHERE sql IS NOT NULL AND name NOT LIKE 'sqlite\_%' ESCAPE '\' AND name NOT LIKE 'rowdrop\_%' ESCAPE '\' ORDER BY rowid`,
		&sqlitex.ExecOptions{ResultFunc: func(s *sqlite.Stmt) error {
			f.Objects = append(f.Objects, Object{Type: s.ColumnText(0), Name: s.ColumnText(1), Table: s.ColumnText(2), SQL: s.ColumnText(3)})
			return nil
		}})
	if err != nil {
		return nil, fmt.Errorf("read the app's schema (sqlite_master): %w", err)
	}
	for _, p := range FullPragmas {
		err := sqlitex.ExecuteTransient(conn, "PRAGMA main."+p, &sqlitex.ExecOptions{ResultFunc: func(s *sqlite.Stmt) error {
			f.Pragmas[p] = s.ColumnText(0)
			return nil
		}})
		if err != nil {
			return nil, fmt.Errorf("read PRAGMA %s: %w", p, err)
		}
	}
	return f, nil
}

// Create recreates the schema on conn, a connection to an empty database:
// the file-level settings first (they only take effect before the first
// table), then every object in its original order in one transaction.
// Tables a virtual table created with itself (FTS5's shadow tables) are
// not created twice.
func (f *Full) Create(conn *sqlite.Conn) (err error) {
	for _, p := range []string{"page_size", "auto_vacuum"} {
		if v, ok := f.Pragmas[p]; ok {
			if _, err := strconv.Atoi(v); err != nil {
				return fmt.Errorf("PRAGMA %s=%q in the snapshot's schema is not a number", p, v)
			}
			if err := db.Exec(conn, "PRAGMA main."+p+"="+v); err != nil {
				return fmt.Errorf("set PRAGMA %s: %w", p, err)
			}
		}
	}
	if v, ok := f.Pragmas["encoding"]; ok {
		if err := db.Exec(conn, "PRAGMA main.encoding="+quoteString(v)); err != nil {
			return fmt.Errorf("set PRAGMA encoding: %w", err)
		}
	}
	end, err := db.Begin(conn, "IMMEDIATE")
	if err != nil {
		return err
	}
	defer end(&err)
	for _, o := range f.Objects {
		if o.Type == "table" {
			exists := false
			if err = sqlitex.ExecuteTransient(conn, "SELECT 1 FROM main.sqlite_master WHERE type='table' AND name=?", &sqlitex.ExecOptions{
				Args: []any{o.Name}, ResultFunc: func(*sqlite.Stmt) error { exists = true; return nil }}); err != nil {
				return err
			}
			if exists {
				continue
			}
		}
		if err = sqlitex.ExecuteTransient(conn, o.SQL, nil); err != nil {
			return fmt.Errorf("create %s %s: %w", o.Type, o.Name, err)
		}
	}
	return nil
}

// Finish applies the settings that follow the data: user_version,
// application_id, and the journal mode (WAL persists in the file).
func (f *Full) Finish(conn *sqlite.Conn) error {
	for _, p := range []string{"user_version", "application_id"} {
		if v, ok := f.Pragmas[p]; ok {
			if _, err := strconv.ParseInt(v, 10, 64); err != nil {
				return fmt.Errorf("PRAGMA %s=%q in the snapshot's schema is not a number", p, v)
			}
			if err := db.Exec(conn, "PRAGMA main."+p+"="+v); err != nil {
				return fmt.Errorf("set PRAGMA %s: %w", p, err)
			}
		}
	}
	if v, ok := f.Pragmas["journal_mode"]; ok && v != "" {
		switch v = strings.ToLower(v); v {
		case "delete", "truncate", "persist", "wal", "off":
			if err := db.Exec(conn, "PRAGMA main.journal_mode="+v); err != nil {
				return fmt.Errorf("set PRAGMA journal_mode=%s: %w", v, err)
			}
		}
	}
	return nil
}

func quoteString(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// FinishFile applies Finish to the database file at path (no other
// connection open), then fsyncs the file: the last step before a restored
// database is renamed into place.
func (f *Full) FinishFile(path string) error {
	conn, err := sqlite.OpenConn(db.FileURI(path), sqlite.OpenReadWrite|sqlite.OpenURI)
	if err != nil {
		return fmt.Errorf("open the restored database %s: %w", path, err)
	}
	if err := f.Finish(conn); err != nil {
		conn.Close()
		return fmt.Errorf("restored database %s: %w", path, err)
	}
	// Closing the last connection checkpoints and removes a WAL; the mode
	// stays in the file.
	if err := conn.Close(); err != nil {
		return fmt.Errorf("close the restored database %s: %w", path, err)
	}
	fh, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer fh.Close()
	if err := fh.Sync(); err != nil {
		return fmt.Errorf("fsync the restored database %s: %w", path, err)
	}
	return nil
}

// ObjectsIn counts the schema objects of the database file at path,
// opened read-only.
func ObjectsIn(path string) (int, error) {
	conn, err := sqlite.OpenConn(db.FileURI(path)+"?mode=ro", sqlite.OpenReadOnly|sqlite.OpenURI)
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	n := 0
	err = sqlitex.ExecuteTransient(conn, "SELECT count(*) FROM main.sqlite_master", &sqlitex.ExecOptions{ResultFunc: func(s *sqlite.Stmt) error {
		n = s.ColumnInt(0)
		return nil
	}})
	return n, err
}
