package state

import (
	"fmt"

	"zombiezen.com/go/sqlite"
	"zombiezen.com/go/sqlite/sqlitex"

	"rowdrop/internal/hlc"
)

// Clock orders events: HLC first, device id as the tie-break, so every
// device orders any two events the same way.
type Clock struct {
	HLC hlc.Timestamp
	Dev string
}

// Compare returns -1, 0 or 1.
func (a Clock) Compare(b Clock) int {
	switch {
	case a.HLC < b.HLC:
		return -1
	case a.HLC > b.HLC:
		return 1
	case a.Dev < b.Dev:
		return -1
	case a.Dev > b.Dev:
		return 1
	}
	return 0
}

// Max returns the later of two clocks.
func Max(a, b Clock) Clock {
	if a.Compare(b) >= 0 {
		return a
	}
	return b
}

// IsZero reports an absent clock.
func (a Clock) IsZero() bool { return a.HLC == 0 && a.Dev == "" }

// RowMeta is the merge metadata of one row.
type RowMeta struct {
	Ins, WMax, Del Clock
	Dead           []byte // encoded values of a deleted or incomplete row
	Cells          map[string]Clock
}

// Alive reports whether the row's latest write is later than its latest delete.
func (m *RowMeta) Alive() bool { return m.WMax.Compare(m.Del) > 0 }

// CellClock is the clock of a column's current value.
func (m *RowMeta) CellClock(col string) Clock {
	if c, ok := m.Cells[col]; ok && c.Compare(m.Ins) > 0 {
		return c
	}
	return m.Ins
}

// Meta reads and writes row metadata on the base connection.
type Meta struct {
	conn                        *sqlite.Conn
	getRow, putRow              *sqlite.Stmt
	delCells, putCell, delCellQ *sqlite.Stmt
}

// NewMeta prepares metadata access.
func (d *Dir) NewMeta() (*Meta, error) {
	m := &Meta{conn: d.Base}
	for _, p := range []struct {
		s **sqlite.Stmt
		q string
	}{
		{&m.getRow, `SELECT r.ins, r.ins_dev, r.wmax, r.wmax_dev, r.del, r.del_dev, r.dead, c.col, c.hlc, c.dev
			FROM rowdrop_rows r LEFT JOIN rowdrop_cells c ON c.tbl = r.tbl AND c.pk = r.pk WHERE r.tbl=? AND r.pk=?`},
		{&m.putRow, "INSERT OR REPLACE INTO rowdrop_rows(tbl,pk,ins,ins_dev,wmax,wmax_dev,del,del_dev,dead) VALUES(?,?,?,?,?,?,?,?,?)"},
		{&m.delCells, "DELETE FROM rowdrop_cells WHERE tbl=? AND pk=?"},
		{&m.putCell, "INSERT OR REPLACE INTO rowdrop_cells(tbl,pk,col,hlc,dev) VALUES(?,?,?,?,?)"},
		{&m.delCellQ, "DELETE FROM rowdrop_cells WHERE tbl=? AND pk=? AND col=?"},
	} {
		s, err := d.Base.Prepare(p.q)
		if err != nil {
			return nil, fmt.Errorf("prepare metadata query: %w", err)
		}
		*p.s = s
	}
	return m, nil
}

// Get returns the metadata of a row, or nil if rowdrop has never seen it.
// One statement reads the row's clocks and its cell clocks together (a
// merge reads this for every change it applies).
func (m *Meta) Get(tbl string, pk []byte) (*RowMeta, error) {
	s := m.getRow
	defer s.Reset()
	s.BindText(1, tbl)
	s.BindBytes(2, pk)
	var r *RowMeta
	for {
		ok, err := s.Step()
		if err != nil {
			return nil, fmt.Errorf("read row metadata of %s: %w", tbl, err)
		}
		if !ok {
			return r, nil
		}
		if r == nil {
			r = &RowMeta{
				Ins:  Clock{hlc.Timestamp(s.ColumnInt64(0)), s.ColumnText(1)},
				WMax: Clock{hlc.Timestamp(s.ColumnInt64(2)), s.ColumnText(3)},
				Del:  Clock{hlc.Timestamp(s.ColumnInt64(4)), s.ColumnText(5)},
			}
			if !s.ColumnIsNull(6) {
				r.Dead = make([]byte, s.ColumnLen(6))
				s.ColumnBytes(6, r.Dead)
			}
		}
		if !s.ColumnIsNull(7) {
			if r.Cells == nil {
				r.Cells = map[string]Clock{}
			}
			r.Cells[s.ColumnText(7)] = Clock{hlc.Timestamp(s.ColumnInt64(8)), s.ColumnText(9)}
		}
	}
}

// Put stores a row's metadata; cells at or below the insert clock are
// dropped (they are implied by it).
func (m *Meta) Put(tbl string, pk []byte, r *RowMeta, old *RowMeta) error {
	s := m.putRow
	defer s.Reset()
	s.BindText(1, tbl)
	s.BindBytes(2, pk)
	s.BindInt64(3, int64(r.Ins.HLC))
	s.BindText(4, r.Ins.Dev)
	s.BindInt64(5, int64(r.WMax.HLC))
	s.BindText(6, r.WMax.Dev)
	s.BindInt64(7, int64(r.Del.HLC))
	s.BindText(8, r.Del.Dev)
	if r.Dead == nil {
		s.BindNull(9)
	} else {
		s.BindBytes(9, r.Dead)
	}
	if _, err := s.Step(); err != nil {
		return fmt.Errorf("write row metadata of %s: %w", tbl, err)
	}
	// Write only the cells that changed.
	for col, c := range r.Cells {
		keep := c.Compare(r.Ins) > 0
		var prev Clock
		had := false
		if old != nil {
			prev, had = old.Cells[col]
		}
		switch {
		case keep && (!had || prev != c):
			if err := m.cell(m.putCell, tbl, pk, col, &c); err != nil {
				return err
			}
		case !keep && had:
			if err := m.cell(m.delCellQ, tbl, pk, col, nil); err != nil {
				return err
			}
		}
	}
	if old != nil {
		for col := range old.Cells {
			if _, ok := r.Cells[col]; !ok {
				if err := m.cell(m.delCellQ, tbl, pk, col, nil); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

func (m *Meta) cell(s *sqlite.Stmt, tbl string, pk []byte, col string, c *Clock) error {
	defer s.Reset()
	s.BindText(1, tbl)
	s.BindBytes(2, pk)
	s.BindText(3, col)
	if c != nil {
		s.BindInt64(4, int64(c.HLC))
		s.BindText(5, c.Dev)
	}
	if _, err := s.Step(); err != nil {
		return fmt.Errorf("write cell clock of %s.%s: %w", tbl, col, err)
	}
	return nil
}

// Close finalizes statements.
func (m *Meta) Close() {
	for _, s := range []*sqlite.Stmt{m.getRow, m.putRow, m.delCells, m.putCell, m.delCellQ} {
		s.Finalize()
	}
}

// Conflict is one entry of the conflict log.
type Conflict struct {
	ID        int64  `json:"id"`
	AtMS      int64  `json:"at_ms"`
	Kind      string `json:"kind"`
	Table     string `json:"table"`
	PK        []byte `json:"-"`
	PKText    string `json:"key"`
	Cols      string `json:"columns"` // JSON array
	Winner    []byte `json:"-"`       // encoded values (one per column in Cols, or a whole row)
	WinnerDev string `json:"winner_device"`
	WinnerHLC uint64 `json:"winner_hlc"`
	Loser     []byte `json:"-"`
	LoserDev  string `json:"loser_device"`
	LoserHLC  uint64 `json:"loser_hlc"`
	File      string `json:"file,omitempty"`
	Note      string `json:"note,omitempty"`
	Restored  int64  `json:"restored_ms,omitempty"`
}

// AddConflict appends to the conflict log.
func (d *Dir) AddConflict(c *Conflict) error {
	return sqlitex.Execute(d.Base, `INSERT INTO rowdrop_conflicts(at_ms,kind,tbl,pk,pk_text,cols,winner,winner_dev,winner_hlc,loser,loser_dev,loser_hlc,file,note)
		VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,?)`, &sqlitex.ExecOptions{Args: []any{
		c.AtMS, c.Kind, c.Table, c.PK, c.PKText, c.Cols, c.Winner, c.WinnerDev, int64(c.WinnerHLC), c.Loser, c.LoserDev, int64(c.LoserHLC), c.File, c.Note}})
}

// Conflicts lists conflict-log entries, newest first; id > 0 selects one.
func (d *Dir) Conflicts(id int64) ([]*Conflict, error) {
	var out []*Conflict
	q := `SELECT id,at_ms,kind,tbl,pk,pk_text,cols,winner,winner_dev,winner_hlc,loser,loser_dev,loser_hlc,file,note,restored_ms FROM rowdrop_conflicts`
	var args []any
	if id > 0 {
		q += " WHERE id=?"
		args = append(args, id)
	}
	q += " ORDER BY id DESC"
	err := sqlitex.Execute(d.Base, q, &sqlitex.ExecOptions{Args: args, ResultFunc: func(s *sqlite.Stmt) error {
		blob := func(i int) []byte {
			if s.ColumnIsNull(i) {
				return nil
			}
			b := make([]byte, s.ColumnLen(i))
			s.ColumnBytes(i, b)
			return b
		}
		out = append(out, &Conflict{ID: s.ColumnInt64(0), AtMS: s.ColumnInt64(1), Kind: s.ColumnText(2), Table: s.ColumnText(3),
			PK: blob(4), PKText: s.ColumnText(5), Cols: s.ColumnText(6), Winner: blob(7), WinnerDev: s.ColumnText(8),
			WinnerHLC: uint64(s.ColumnInt64(9)), Loser: blob(10), LoserDev: s.ColumnText(11), LoserHLC: uint64(s.ColumnInt64(12)),
			File: s.ColumnText(13), Note: s.ColumnText(14), Restored: s.ColumnInt64(15)})
		return nil
	}})
	return out, err
}
