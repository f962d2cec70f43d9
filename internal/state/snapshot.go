package state

import (
	"fmt"
	"strings"

	"zombiezen.com/go/sqlite"
	"zombiezen.com/go/sqlite/sqlitex"

	"github.com/rowdrop/rowdrop/internal/db"
	"github.com/rowdrop/rowdrop/internal/hlc"
)

// A snapshot is a copy of the state database stripped to the synced
// tables and the metadata tables below. The functions here work on a
// connection to such a copy (export writes one, import validates one).

// SnapshotMetaTables are the metadata tables a snapshot carries besides
// the synced tables: row and cell clocks, per device how far the copy
// includes its files and the clock of the last one (what readers judge
// "had the writer seen this value?" by), and the file log and re-keying
// records (a joiner needs them to tell which row a later reference to a
// shared INTEGER id means).
var SnapshotMetaTables = []string{"rowdrop_rows", "rowdrop_devices", "rowdrop_filelog", "rowdrop_rekeys"}

// IsSnapshotMetaTable reports whether a snapshot carries table name as
// metadata.
func IsSnapshotMetaTable(name string) bool {
	for _, t := range SnapshotMetaTables {
		if t == name {
			return true
		}
	}
	return false
}

// StripSnapshotMeta trims the metadata of a snapshot copy (inside the
// caller's transaction): row metadata of tables it does not carry goes,
// and so do devices none of whose files it includes; self is written as
// this device's own entry (how much of its own files the copy includes
// and the latest clock it holds, so readers can tell which of their
// values it had seen).
func StripSnapshotMeta(conn *sqlite.Conn, tables []string, self Device) error {
	names := make([]any, 0, len(tables))
	// An empty list is valid in SQLite (every row goes). A NULL in the
	// list would make NOT IN never true, keeping every row.
	ph := []string{}
	for _, t := range tables {
		names = append(names, t)
		ph = append(ph, "?")
	}
	if err := db.Exec(conn, fmt.Sprintf("DELETE FROM rowdrop_rows WHERE tbl NOT IN (%s)", strings.Join(ph, ",")), names...); err != nil {
		return err
	}
	if err := db.Exec(conn, "DELETE FROM rowdrop_devices WHERE applied=0 OR id=?", self.ID); err != nil {
		return err
	}
	return db.Exec(conn, "INSERT INTO rowdrop_devices(id,name,applied,last_hlc,last_applied_ms) VALUES(?,?,?,?,?)",
		self.ID, self.Name, int64(self.Applied), int64(self.LastHLC), self.LastAppliedMS)
}

// CountRowMeta counts the rows with merge metadata (live and deleted).
func CountRowMeta(conn *sqlite.Conn) (int64, error) {
	var n int64
	err := sqlitex.ExecuteTransient(conn, "SELECT count(*) FROM rowdrop_rows", &sqlitex.ExecOptions{ResultFunc: func(s *sqlite.Stmt) error {
		n = s.ColumnInt64(0)
		return nil
	}})
	if err != nil {
		return 0, fmt.Errorf("count rows with merge metadata: %w", err)
	}
	return n, nil
}

// FileLogRow is a file log entry as stored, for checking one that comes
// from another device's snapshot (FileByClock decodes trusted ones).
type FileLogRow struct {
	Dev  string
	Seq  int64
	HLC  int64
	Seen string // JSON {device: seq}
}

// ReadFileLog reads the whole file log on conn.
func ReadFileLog(conn *sqlite.Conn) ([]FileLogRow, error) {
	var out []FileLogRow
	err := sqlitex.ExecuteTransient(conn, "SELECT dev, seq, hlc, seen FROM rowdrop_filelog", &sqlitex.ExecOptions{ResultFunc: func(s *sqlite.Stmt) error {
		out = append(out, FileLogRow{Dev: s.ColumnText(0), Seq: s.ColumnInt64(1), HLC: s.ColumnInt64(2), Seen: s.ColumnText(3)})
		return nil
	}})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// ReadRekeys reads every re-keying decision on conn.
func ReadRekeys(conn *sqlite.Conn) ([]*Rekey, error) {
	var out []*Rekey
	err := sqlitex.ExecuteTransient(conn, `SELECT tbl,old_pk,new_pk,keeper_hlc,keeper_dev,mover_hlc,mover_dev FROM rowdrop_rekeys`,
		&sqlitex.ExecOptions{ResultFunc: func(s *sqlite.Stmt) error {
			out = append(out, &Rekey{Table: s.ColumnText(0), OldPK: columnBlob(s, 1), NewPK: columnBlob(s, 2),
				Keeper: Clock{hlc.Timestamp(s.ColumnInt64(3)), s.ColumnText(4)}, Mover: Clock{hlc.Timestamp(s.ColumnInt64(5)), s.ColumnText(6)}})
			return nil
		}})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// TableLayout describes table's columns on conn (name, type, key
// position), for telling whether a snapshot's metadata tables are laid out
// as this version's.
func TableLayout(conn *sqlite.Conn, table string) (string, error) {
	var cols []string
	err := sqlitex.ExecuteTransient(conn, "SELECT name, type, pk FROM pragma_table_info(?)", &sqlitex.ExecOptions{Args: []any{table}, ResultFunc: func(s *sqlite.Stmt) error {
		cols = append(cols, fmt.Sprintf("%s %s %d", s.ColumnText(0), s.ColumnText(1), s.ColumnInt(2)))
		return nil
	}})
	if err != nil {
		return "", fmt.Errorf("read the layout of table %s: %w", table, err)
	}
	return strings.Join(cols, ", "), nil
}
