package state

import (
	"fmt"
	"iter"

	"zombiezen.com/go/sqlite"
	"zombiezen.com/go/sqlite/sqlitex"

	"rowdrop/internal/db"
)

// Snapshot reads the merge state carried by a snapshot: another device's
// base copy with its rowdrop_* tables, opened read-only by its reader.
type Snapshot struct {
	conn *sqlite.Conn
}

// SnapshotOf reads the state of the snapshot database open on conn.
func SnapshotOf(conn *sqlite.Conn) *Snapshot { return &Snapshot{conn: conn} }

// NewMeta prepares reading the snapshot's row metadata (Meta.Get; the
// snapshot is read-only, so not Put).
func (s *Snapshot) NewMeta() (*Meta, error) { return newMeta(s.conn) }

// CountRows returns how many rows the snapshot carries metadata for.
func (s *Snapshot) CountRows() (int, error) {
	n := 0
	err := sqlitex.ExecuteTransient(s.conn, "SELECT count(*) FROM rowdrop_rows", &sqlitex.ExecOptions{ResultFunc: func(st *sqlite.Stmt) error {
		n = st.ColumnInt(0)
		return nil
	}})
	if err != nil {
		return 0, fmt.Errorf("count snapshot rows: %w", err)
	}
	return n, nil
}

// RowKeys yields the (table, key) of every row the snapshot carries
// metadata for, in table then key order; a failure to read ends the
// sequence with a non-nil error. Other statements on the snapshot may run
// while it yields.
func (s *Snapshot) RowKeys() iter.Seq2[RowKey, error] {
	return func(yield func(RowKey, error) bool) {
		list, err := s.conn.Prepare("SELECT tbl, pk FROM rowdrop_rows ORDER BY tbl, pk")
		if err != nil {
			yield(RowKey{}, fmt.Errorf("list snapshot rows: %w", err))
			return
		}
		defer list.Reset()
		for {
			ok, err := list.Step()
			if err != nil {
				yield(RowKey{}, fmt.Errorf("list snapshot rows: %w", err))
				return
			}
			if !ok {
				return
			}
			if !yield(RowKey{Table: list.ColumnText(0), PK: columnBlob(list, 1)}, nil) {
				return
			}
		}
	}
}

// RowKey names one row: its table and its encoded key.
type RowKey struct {
	Table string
	PK    []byte
}

// MergeHistory adds the snapshot's file log and re-keying records to this
// device's, in one transaction; both only grow, and a record already here
// wins.
func (d *Dir) MergeHistory(snap *Snapshot) (err error) {
	end, err := db.Begin(d.Base, "IMMEDIATE")
	if err != nil {
		return fmt.Errorf("start write transaction on the base copy: %w", err)
	}
	defer end(&err)
	// Copied as stored (the causal context's JSON text included): the
	// snapshot's reader validated them.
	err = sqlitex.Execute(snap.conn, "SELECT dev, seq, hlc, seen FROM rowdrop_filelog", &sqlitex.ExecOptions{ResultFunc: func(s *sqlite.Stmt) error {
		return sqlitex.Execute(d.Base, "INSERT OR IGNORE INTO rowdrop_filelog(dev,seq,hlc,seen) VALUES(?,?,?,?)",
			&sqlitex.ExecOptions{Args: []any{s.ColumnText(0), s.ColumnInt64(1), s.ColumnInt64(2), s.ColumnText(3)}})
	}})
	if err != nil {
		return fmt.Errorf("merge the snapshot's file log: %w", err)
	}
	err = sqlitex.Execute(snap.conn, "SELECT tbl, old_pk, new_pk, keeper_hlc, keeper_dev, mover_hlc, mover_dev FROM rowdrop_rekeys", &sqlitex.ExecOptions{ResultFunc: func(s *sqlite.Stmt) error {
		blob := func(i int) []byte {
			b := make([]byte, s.ColumnLen(i))
			s.ColumnBytes(i, b)
			return b
		}
		return sqlitex.Execute(d.Base, "INSERT OR IGNORE INTO rowdrop_rekeys(tbl,old_pk,new_pk,keeper_hlc,keeper_dev,mover_hlc,mover_dev) VALUES(?,?,?,?,?,?,?)",
			&sqlitex.ExecOptions{Args: []any{s.ColumnText(0), blob(1), blob(2), s.ColumnInt64(3), s.ColumnText(4), s.ColumnInt64(5), s.ColumnText(6)}})
	}})
	if err != nil {
		return fmt.Errorf("merge the snapshot's re-keying records: %w", err)
	}
	return nil
}
