package state

import (
	"fmt"
	"iter"

	"zombiezen.com/go/sqlite"

	"github.com/rowdrop/rowdrop/internal/db"
)

// What a rebase (merge/rebase.go) reads of a snapshot and adds to this
// device's state; the snapshot's row metadata is read with NewMetaOn.

// RowKey names one row: its table and its encoded key.
type RowKey struct {
	Table string
	PK    []byte
}

// RowKeysInOrder yields the (table, key) of every row with merge metadata
// on conn (a snapshot's), in table then key order, so a rebase meets rows
// in the same order on every device. A failure to read ends the sequence
// with a non-nil error. Other statements on conn may run while it yields.
func RowKeysInOrder(conn *sqlite.Conn) iter.Seq2[RowKey, error] {
	return func(yield func(RowKey, error) bool) {
		list, err := conn.Prepare("SELECT tbl, pk FROM rowdrop_rows ORDER BY tbl, pk")
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
			if !ok || !yield(RowKey{Table: list.ColumnText(0), PK: columnBlob(list, 1)}, nil) {
				return
			}
		}
	}
}

// MergeHistory adds the file log and re-keying records of the snapshot
// open on snap to this device's, in one transaction; both only grow, and
// a record already here wins. File log entries are copied as stored (the
// snapshot's reader checked them).
func (d *Dir) MergeHistory(snap *sqlite.Conn) (err error) {
	files, err := ReadFileLog(snap)
	if err != nil {
		return fmt.Errorf("merge the snapshot's file log: %w", err)
	}
	rekeys, err := ReadRekeys(snap)
	if err != nil {
		return fmt.Errorf("merge the snapshot's re-keying records: %w", err)
	}
	end, err := db.Begin(d.conn, "IMMEDIATE")
	if err != nil {
		return fmt.Errorf("start write transaction on the base copy: %w", err)
	}
	defer end(&err)
	for _, f := range files {
		if err := db.Exec(d.conn, "INSERT OR IGNORE INTO rowdrop_filelog(dev,seq,hlc,seen) VALUES(?,?,?,?)", f.Dev, f.Seq, f.HLC, f.Seen); err != nil {
			return fmt.Errorf("merge the snapshot's file log: %w", err)
		}
	}
	for _, r := range rekeys {
		if err := d.AddRekey(r); err != nil {
			return fmt.Errorf("merge the snapshot's re-keying records: %w", err)
		}
	}
	return nil
}
