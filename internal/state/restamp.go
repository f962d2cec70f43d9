package state

import (
	"fmt"

	"zombiezen.com/go/sqlite"
	"zombiezen.com/go/sqlite/sqlitex"

	"github.com/rowdrop/rowdrop/internal/db"
	"github.com/rowdrop/rowdrop/internal/hlc"
)

// A device whose clock ran ahead, once set right, publishes its next file
// with a clock below those of its files stamped ahead. Every reader then
// reads those files with hlc.Restamp's clocks (just below the next one),
// and the device itself rewrites its stored clocks the same way, so its
// files stamped ahead are not held anywhere for the size of the error and
// its later edits still win over them (docs/MERGE.md).

// RestampAhead rewrites, in the caller's transaction, the clocks of device
// dev's files before seq (its own, in the file log) that are not below ts,
// the clock of its file seq: each takes hlc.Restamp's clock, everywhere
// this device stores it (row and cell clocks, the file log, re-keying
// records, the conflict log). It returns how many files were re-stamped;
// none unless the clock was set back.
func (d *Dir) RestampAhead(dev string, seq uint64, ts hlc.Timestamp) (int, error) {
	var seqs []uint64
	var stamps []hlc.Timestamp
	err := sqlitex.Execute(d.conn, "SELECT seq, hlc FROM rowdrop_filelog WHERE dev=? AND seq<? AND hlc>=? ORDER BY seq",
		&sqlitex.ExecOptions{Args: []any{dev, int64(seq), int64(ts)}, ResultFunc: func(s *sqlite.Stmt) error {
			seqs = append(seqs, uint64(s.ColumnInt64(0)))
			stamps = append(stamps, hlc.Timestamp(s.ColumnInt64(1)))
			return nil
		}})
	if err != nil || len(seqs) == 0 {
		return 0, err
	}
	// Only the files just before seq, consecutively: an older one below ts
	// ends the run.
	i := len(seqs) - 1
	for i > 0 && seqs[i-1] == seqs[i]-1 {
		i--
	}
	if seqs[len(seqs)-1] != seq-1 {
		return 0, nil
	}
	seqs, stamps = seqs[i:], stamps[i:]
	eff := hlc.Restamp(stamps, ts)
	m := map[hlc.Timestamp]hlc.Timestamp{}
	for j := range stamps {
		if eff[j] != stamps[j] {
			m[stamps[j]] = eff[j]
		}
	}
	if err := d.restamp(dev, m); err != nil {
		return 0, fmt.Errorf("re-stamp the files of device %s stamped ahead in %s: %w", dev, d.Path, err)
	}
	return len(m), nil
}

// restamp rewrites every stored clock (old, dev) to (m[old], dev).
func (d *Dir) restamp(dev string, m map[hlc.Timestamp]hlc.Timestamp) error {
	if len(m) == 0 {
		return nil
	}
	for old, nw := range m {
		for _, q := range []string{
			"UPDATE rowdrop_filelog SET hlc=? WHERE dev=? AND hlc=?",
			"UPDATE rowdrop_rows SET ins=? WHERE ins_dev=? AND ins=?",
			"UPDATE rowdrop_rows SET wmax=? WHERE wmax_dev=? AND wmax=?",
			"UPDATE rowdrop_rows SET del=? WHERE del_dev=? AND del=?",
			"UPDATE rowdrop_rekeys SET keeper_hlc=? WHERE keeper_dev=? AND keeper_hlc=?",
			"UPDATE rowdrop_rekeys SET mover_hlc=? WHERE mover_dev=? AND mover_hlc=?",
			"UPDATE rowdrop_conflicts SET winner_hlc=? WHERE winner_dev=? AND winner_hlc=?",
			"UPDATE rowdrop_conflicts SET loser_hlc=? WHERE loser_dev=? AND loser_hlc=?",
		} {
			if err := db.Exec(d.conn, q, int64(nw), dev, int64(old)); err != nil {
				return err
			}
		}
	}
	// A conflict's id hashes its clocks: the other devices see the new ones.
	if err := rehashConflicts(d.conn, "winner_dev=?1 OR loser_dev=?1", dev); err != nil {
		return err
	}
	// Cell clocks and lineages live in a blob per row: every row that has
	// some.
	type upd struct {
		tbl   string
		pk    []byte
		cells []byte
	}
	var ups []upd
	err := sqlitex.Execute(d.conn, "SELECT tbl, pk, ins, ins_dev, cells FROM rowdrop_rows WHERE cells IS NOT NULL",
		&sqlitex.ExecOptions{ResultFunc: func(s *sqlite.Stmt) error {
			cells, lin, err := decodeCells(columnBlob(s, 4))
			if err != nil {
				return nil // left as it is: the merge reports it when it reads the row
			}
			changed := false
			if nw, ok := m[lin.HLC]; ok && lin.Dev == dev {
				lin.HLC, changed = nw, true
			}
			for col, c := range cells {
				if nw, ok := m[c.HLC]; ok && c.Dev == dev {
					cells[col] = Clock{nw, dev}
					changed = true
				}
			}
			if changed {
				// ins was restamped above: the blob's clocks compare with
				// the new one.
				ins := Clock{hlc.Timestamp(s.ColumnInt64(2)), s.ColumnText(3)}
				ups = append(ups, upd{s.ColumnText(0), columnBlob(s, 1), encodeCells(cells, ins, lin)})
			}
			return nil
		}})
	if err != nil {
		return err
	}
	for _, u := range ups {
		if err := db.Exec(d.conn, "UPDATE rowdrop_rows SET cells=? WHERE tbl=? AND pk=?", u.cells, u.tbl, u.pk); err != nil {
			return err
		}
	}
	return nil
}

// ClockFloor is what a device whose clock is past limit (its wall clock
// plus the drift bound) may set itself back to: floor, the highest clock
// of the files in its file log that are within the bound (others' files it
// applied, its own published before the clock ran ahead); and its own
// files stamped past limit: how many (ahead) and the first (first).
func (d *Dir) ClockFloor(self string, limit hlc.Timestamp) (floor hlc.Timestamp, ahead int, first uint64, err error) {
	err = sqlitex.Execute(d.conn, "SELECT max(hlc) FROM rowdrop_filelog WHERE hlc<=?",
		&sqlitex.ExecOptions{Args: []any{int64(limit)}, ResultFunc: func(s *sqlite.Stmt) error {
			floor = hlc.Timestamp(s.ColumnInt64(0))
			return nil
		}})
	if err == nil {
		err = sqlitex.Execute(d.conn, "SELECT count(*), coalesce(min(seq), 0) FROM rowdrop_filelog WHERE dev=? AND hlc>?",
			&sqlitex.ExecOptions{Args: []any{self, int64(limit)}, ResultFunc: func(s *sqlite.Stmt) error {
				ahead, first = s.ColumnInt(0), uint64(s.ColumnInt64(1))
				return nil
			}})
	}
	if err != nil {
		return 0, 0, 0, fmt.Errorf("read the file log in %s: %w", d.Path, err)
	}
	return floor, ahead, first, nil
}
