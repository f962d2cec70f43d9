package state

import (
	"fmt"

	"zombiezen.com/go/sqlite"
	"zombiezen.com/go/sqlite/sqlitex"

	"github.com/rowdrop/rowdrop/internal/db"
	"github.com/rowdrop/rowdrop/internal/rdfile"
)

// FileStatus is the record of a file seen in the shared folder that could
// not be applied (yet), with the reason.
type FileStatus struct {
	Path    string // in the shared folder
	Dev     string
	Seq     uint64
	Status  string // importer.StatusWaiting, StatusHeld, StatusBroken
	Reason  string
	FirstMS int64 // when first recorded
	LastMS  int64 // when last recorded
}

// RecordFileStatus records (or updates, keeping when it was first seen)
// the status of a file.
func (d *Dir) RecordFileStatus(path, dev string, seq uint64, status, reason string, atMS int64) error {
	err := db.Exec(d.conn, `INSERT INTO rowdrop_files(path,dev,seq,status,reason,first_ms,last_ms) VALUES(?,?,?,?,?,?,?)
		ON CONFLICT(path) DO UPDATE SET status=excluded.status, reason=excluded.reason, last_ms=excluded.last_ms`,
		path, dev, int64(seq), status, reason, atMS, atMS)
	if err != nil {
		return fmt.Errorf("record the status of %s in %s: %w", path, d.Path, err)
	}
	return nil
}

// ClearFileStatus drops the record of a file (applied, or no longer a
// problem).
func (d *Dir) ClearFileStatus(path string) error {
	if err := db.Exec(d.conn, "DELETE FROM rowdrop_files WHERE path=?", path); err != nil {
		return fmt.Errorf("clear the status of %s in %s: %w", path, d.Path, err)
	}
	return nil
}

// RewordFileStatus replaces the reason of a file's record if it has the
// given status.
func (d *Dir) RewordFileStatus(path, status, reason string) error {
	if err := db.Exec(d.conn, "UPDATE rowdrop_files SET reason=? WHERE path=? AND status=?", reason, path, status); err != nil {
		return fmt.Errorf("update the status of %s in %s: %w", path, d.Path, err)
	}
	return nil
}

// clearIncluded drops the records of device dev's changesets up to seq
// (a snapshot included them), not those of its snapshots.
func (d *Dir) clearIncluded(dev string, seq uint64) error {
	if err := db.Exec(d.conn, "DELETE FROM rowdrop_files WHERE dev=? AND seq<=? AND path NOT LIKE ?", dev, int64(seq), "%"+rdfile.SnapshotExt); err != nil {
		return fmt.Errorf("clear the status of files up to %d of device %s in %s: %w", seq, dev, d.Path, err)
	}
	return nil
}

// FileStatuses lists the file records, sorted by path.
func (d *Dir) FileStatuses() ([]FileStatus, error) {
	var out []FileStatus
	err := sqlitex.Execute(d.conn, "SELECT path,dev,seq,status,reason,first_ms,last_ms FROM rowdrop_files ORDER BY path", &sqlitex.ExecOptions{ResultFunc: func(s *sqlite.Stmt) error {
		out = append(out, FileStatus{Path: s.ColumnText(0), Dev: s.ColumnText(1), Seq: uint64(s.ColumnInt64(2)), Status: s.ColumnText(3),
			Reason: s.ColumnText(4), FirstMS: s.ColumnInt64(5), LastMS: s.ColumnInt64(6)})
		return nil
	}})
	if err != nil {
		return nil, fmt.Errorf("read file statuses from %s: %w", d.Path, err)
	}
	return out, nil
}
