package state

import (
	"fmt"

	"zombiezen.com/go/sqlite"
	"zombiezen.com/go/sqlite/sqlitex"

	"github.com/rowdrop/rowdrop/internal/db"
)

// Held table parts: one table's changes of a file applied here without
// them (import/held.go), kept until the table can take them.

// Kinds of a held table part.
const (
	PartHeld     = "held"     // the table's shape differs, or it is unknown or changed here
	PartExcluded = "excluded" // the table is not synced here: applied once it is
)

// HeldPart is one table's part of an applied file, kept out of the table.
type HeldPart struct {
	Dev     string
	Table   string
	Seq     uint64
	Path    string // the file in the shared folder
	Kind    string // PartHeld or PartExcluded
	Reason  string
	FirstMS int64
}

// HoldPart records a held table part; one already recorded keeps when it
// was first held and takes p's kind and reason.
func (d *Dir) HoldPart(p HeldPart) error {
	err := db.Exec(d.conn, `INSERT INTO rowdrop_held_tables(dev, tbl, seq, path, kind, reason, first_ms) VALUES(?,?,?,?,?,?,?)
		ON CONFLICT(dev, tbl, seq) DO UPDATE SET kind=excluded.kind, reason=excluded.reason, path=excluded.path`,
		p.Dev, p.Table, int64(p.Seq), p.Path, p.Kind, p.Reason, p.FirstMS)
	if err != nil {
		return fmt.Errorf("record table %s of %s as held in %s: %w", p.Table, p.Path, d.Path, err)
	}
	return nil
}

// HeldParts lists every held table part by device, table and sequence.
func (d *Dir) HeldParts() ([]HeldPart, error) { return readHeldParts(d.conn, d.Path) }

func readHeldParts(conn *sqlite.Conn, where string) ([]HeldPart, error) {
	var out []HeldPart
	err := sqlitex.Execute(conn, "SELECT dev, tbl, seq, path, kind, reason, first_ms FROM rowdrop_held_tables ORDER BY dev, tbl, seq", &sqlitex.ExecOptions{ResultFunc: func(s *sqlite.Stmt) error {
		out = append(out, HeldPart{Dev: s.ColumnText(0), Table: s.ColumnText(1), Seq: uint64(s.ColumnInt64(2)), Path: s.ColumnText(3),
			Kind: s.ColumnText(4), Reason: s.ColumnText(5), FirstMS: s.ColumnInt64(6)})
		return nil
	}})
	if err != nil {
		return nil, fmt.Errorf("read held table parts from %s: %w", where, err)
	}
	return out, nil
}

// ReleasePart removes a held table part (it was applied).
func (d *Dir) ReleasePart(dev, tbl string, seq uint64) error {
	if err := db.Exec(d.conn, "DELETE FROM rowdrop_held_tables WHERE dev=? AND tbl=? AND seq=?", dev, tbl, int64(seq)); err != nil {
		return fmt.Errorf("release table %s of file %d of device %s in %s: %w", tbl, seq, dev, d.Path, err)
	}
	return nil
}

// SnapshotHeldTable is the table in which a snapshot carries the held
// table parts of its writer (optional: older snapshots lack it). A device
// that joins from the snapshot inherits them, so the parts the writer
// kept out of its state are applied there once its tables take them.
const SnapshotHeldTable = "rowdrop_held_tables"

// SnapshotHeldParts reads the held parts a snapshot copy on conn carries
// (none if it has no such table).
func SnapshotHeldParts(conn *sqlite.Conn) ([]HeldPart, error) {
	has := false
	if err := sqlitex.ExecuteTransient(conn, "SELECT 1 FROM main.sqlite_master WHERE type='table' AND name=?", &sqlitex.ExecOptions{
		Args: []any{SnapshotHeldTable}, ResultFunc: func(*sqlite.Stmt) error { has = true; return nil }}); err != nil {
		return nil, fmt.Errorf("read the snapshot's held table parts: %w", err)
	}
	if !has {
		return nil, nil
	}
	return readHeldParts(conn, "the snapshot")
}
