package state

import (
	"encoding/json"
	"fmt"

	"zombiezen.com/go/sqlite"
	"zombiezen.com/go/sqlite/sqlitex"

	"github.com/rowdrop/rowdrop/internal/hlc"
)

// FileInfo is what the file log knows of one changeset.
type FileInfo struct {
	Dev  string
	Seq  uint64
	HLC  hlc.Timestamp
	Seen map[string]uint64
}

// RecordFile notes a changeset applied or published by this device.
func (d *Dir) RecordFile(f FileInfo) error {
	js, err := json.Marshal(f.Seen)
	if err != nil {
		return err
	}
	if f.Seen == nil {
		js = []byte("{}")
	}
	if err := sqlitex.Execute(d.conn, `INSERT OR REPLACE INTO rowdrop_filelog(dev,seq,hlc,seen) VALUES(?,?,?,?)`,
		&sqlitex.ExecOptions{Args: []any{f.Dev, int64(f.Seq), int64(f.HLC), string(js)}}); err != nil {
		return fmt.Errorf("record file %s/%d in the file log: %w", f.Dev, f.Seq, err)
	}
	return nil
}

// FileSum is what this device recorded of one changeset's content: its
// file sum (rdfile.File.Sum) and the size and modification time (Unix ns)
// the file had in the folder when last checked (0 when never seen here,
// e.g. a chain head taken from a snapshot).
type FileSum struct {
	Dev     string
	Seq     uint64
	Sum     string
	Size    int64
	MtimeNS int64
}

// RecordSum notes the content of changeset (f.Dev, f.Seq): applied,
// published, named by a snapshot's chain heads, or checked again
// unchanged (then with its new size and time).
func (d *Dir) RecordSum(f FileSum) error {
	if err := sqlitex.Execute(d.conn, `INSERT OR REPLACE INTO rowdrop_filesums(dev,seq,sum,size,mtime_ns) VALUES(?,?,?,?,?)`,
		&sqlitex.ExecOptions{Args: []any{f.Dev, int64(f.Seq), f.Sum, f.Size, f.MtimeNS}}); err != nil {
		return fmt.Errorf("record the sum of file %s/%d: %w", f.Dev, f.Seq, err)
	}
	return nil
}

// Sums returns what this device recorded of device dev's changesets from
// sequence number from on (the lowest still in the folder), by number.
func (d *Dir) Sums(dev string, from uint64) (map[uint64]FileSum, error) {
	out := map[uint64]FileSum{}
	err := sqlitex.Execute(d.conn, `SELECT seq, sum, size, mtime_ns FROM rowdrop_filesums WHERE dev=? AND seq>=?`,
		&sqlitex.ExecOptions{Args: []any{dev, int64(min(from, 1<<62))}, ResultFunc: func(s *sqlite.Stmt) error {
			f := FileSum{Dev: dev, Seq: uint64(s.ColumnInt64(0)), Sum: s.ColumnText(1), Size: s.ColumnInt64(2), MtimeNS: s.ColumnInt64(3)}
			out[f.Seq] = f
			return nil
		}})
	if err != nil {
		return nil, fmt.Errorf("read the recorded file sums of device %s: %w", dev, err)
	}
	return out, nil
}

// Sum returns the recorded sum of changeset (dev, seq), "" if none.
func (d *Dir) Sum(dev string, seq uint64) (string, error) {
	var out string
	err := sqlitex.Execute(d.conn, `SELECT sum FROM rowdrop_filesums WHERE dev=? AND seq=?`,
		&sqlitex.ExecOptions{Args: []any{dev, int64(seq)}, ResultFunc: func(s *sqlite.Stmt) error {
			out = s.ColumnText(0)
			return nil
		}})
	if err != nil {
		return "", fmt.Errorf("read the recorded sum of file %s/%d: %w", dev, seq, err)
	}
	return out, nil
}

// FileByClock finds the changeset of device dev whose clock is h: the
// file that wrote every value carrying clock (h, dev).
func (d *Dir) FileByClock(dev string, h hlc.Timestamp) (*FileInfo, error) {
	var out *FileInfo
	err := sqlitex.Execute(d.conn, `SELECT seq, seen FROM rowdrop_filelog WHERE dev=? AND hlc=? ORDER BY seq LIMIT 1`,
		&sqlitex.ExecOptions{Args: []any{dev, int64(h)}, ResultFunc: func(s *sqlite.Stmt) error {
			f := &FileInfo{Dev: dev, Seq: uint64(s.ColumnInt64(0)), HLC: h}
			if err := json.Unmarshal([]byte(s.ColumnText(1)), &f.Seen); err != nil {
				return fmt.Errorf("file log entry %s/%d: %w", dev, f.Seq, err)
			}
			out = f
			return nil
		}})
	if err != nil {
		return nil, fmt.Errorf("read the file log: %w", err)
	}
	return out, nil
}

// Rekey records that two different rows were inserted under one INTEGER
// key of a table: the later-inserted one (mover) lives under NewPK.
type Rekey struct {
	Table        string
	OldPK, NewPK []byte
	Keeper       Clock
	Mover        Clock
}

// AddRekey stores a re-keying decision.
func (d *Dir) AddRekey(r *Rekey) error {
	if err := sqlitex.Execute(d.conn, `INSERT OR IGNORE INTO rowdrop_rekeys(tbl,old_pk,new_pk,keeper_hlc,keeper_dev,mover_hlc,mover_dev) VALUES(?,?,?,?,?,?,?)`,
		&sqlitex.ExecOptions{Args: []any{r.Table, r.OldPK, r.NewPK, int64(r.Keeper.HLC), r.Keeper.Dev, int64(r.Mover.HLC), r.Mover.Dev}}); err != nil {
		return fmt.Errorf("record re-keying of a row of %s: %w", r.Table, err)
	}
	return nil
}

// Rekeys lists every re-keying decision.
func (d *Dir) Rekeys() ([]*Rekey, error) {
	out, err := ReadRekeys(d.conn)
	if err != nil {
		return nil, fmt.Errorf("read re-keying decisions: %w", err)
	}
	return out, nil
}

// HasLocalMoves reports whether local rows wait to leave a shared INTEGER
// id (merge.Engine.FixLocalMoves): a cheap check before every export.
func (d *Dir) HasLocalMoves() (bool, error) {
	var any bool
	err := sqlitex.Execute(d.conn, "SELECT EXISTS(SELECT 1 FROM rowdrop_local_moves)", &sqlitex.ExecOptions{ResultFunc: func(s *sqlite.Stmt) error {
		any = s.ColumnInt(0) != 0
		return nil
	}})
	if err != nil {
		return false, fmt.Errorf("read pending local moves: %w", err)
	}
	return any, nil
}
