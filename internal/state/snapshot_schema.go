package state

import (
	"fmt"

	"zombiezen.com/go/sqlite"
	"zombiezen.com/go/sqlite/sqlitex"

	"github.com/rowdrop/rowdrop/internal/db"
	"github.com/rowdrop/rowdrop/internal/schema"
)

// SnapshotSchemaTable is the table in which a snapshot (format version 2,
// docs/FORMAT.md §14.2) carries the writer's complete schema: every
// object of its sqlite_master in creation order, then its database-wide
// settings as rows of type 'pragma' (name: the pragma, sql: its value).
// Snapshots of version 1 lack it.
const SnapshotSchemaTable = "rowdrop_schema"

const snapshotSchemaDDL = `CREATE TABLE rowdrop_schema(ord INTEGER PRIMARY KEY, type TEXT NOT NULL, name TEXT NOT NULL, tbl_name TEXT NOT NULL, sql TEXT NOT NULL)`

// PutSnapshotSchema writes f into a snapshot copy (inside the caller's
// transaction).
func PutSnapshotSchema(conn *sqlite.Conn, f *schema.Full) error {
	if err := db.Exec(conn, snapshotSchemaDDL); err != nil {
		return fmt.Errorf("create %s in the snapshot copy: %w", SnapshotSchemaTable, err)
	}
	ord := 0
	put := func(typ, name, tbl, sql string) error {
		ord++
		return db.Exec(conn, "INSERT INTO rowdrop_schema(ord,type,name,tbl_name,sql) VALUES(?,?,?,?,?)", ord, typ, name, tbl, sql)
	}
	for _, o := range f.Objects {
		if err := put(o.Type, o.Name, o.Table, o.SQL); err != nil {
			return fmt.Errorf("record %s %s in the snapshot copy: %w", o.Type, o.Name, err)
		}
	}
	for _, p := range schema.FullPragmas {
		if v, ok := f.Pragmas[p]; ok {
			if err := put("pragma", p, "", v); err != nil {
				return fmt.Errorf("record PRAGMA %s in the snapshot copy: %w", p, err)
			}
		}
	}
	return nil
}

// SnapshotSchema reads the writer's schema from a snapshot; nil (and no
// error) for a snapshot that does not carry one (version 1).
func SnapshotSchema(conn *sqlite.Conn) (*schema.Full, error) {
	has := false
	if err := sqlitex.ExecuteTransient(conn, "SELECT 1 FROM main.sqlite_master WHERE type='table' AND name=?", &sqlitex.ExecOptions{
		Args: []any{SnapshotSchemaTable}, ResultFunc: func(*sqlite.Stmt) error { has = true; return nil }}); err != nil {
		return nil, fmt.Errorf("read the snapshot's schema: %w", err)
	}
	if !has {
		return nil, nil
	}
	f := &schema.Full{Pragmas: map[string]string{}}
	err := sqlitex.ExecuteTransient(conn, "SELECT type, name, tbl_name, sql FROM rowdrop_schema ORDER BY ord", &sqlitex.ExecOptions{ResultFunc: func(s *sqlite.Stmt) error {
		if s.ColumnText(0) == "pragma" {
			f.Pragmas[s.ColumnText(1)] = s.ColumnText(3)
			return nil
		}
		f.Objects = append(f.Objects, schema.Object{Type: s.ColumnText(0), Name: s.ColumnText(1), Table: s.ColumnText(2), SQL: s.ColumnText(3)})
		return nil
	}})
	if err != nil {
		return nil, fmt.Errorf("read the snapshot's schema (%s): %w", SnapshotSchemaTable, err)
	}
	return f, nil
}
