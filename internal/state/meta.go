package state

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sort"

	"zombiezen.com/go/sqlite"
	"zombiezen.com/go/sqlite/sqlitex"

	"github.com/rowdrop/rowdrop/internal/db"
	"github.com/rowdrop/rowdrop/internal/hlc"
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
	// Lin is the insert clock of the first row of the key's lineage when
	// the row under it now reuses the key (an INTEGER id inserted again
	// by a device that had seen the earlier row deleted); zero when the
	// row is the lineage's first (Lineage is then Ins). Re-keying compares
	// lineages, not rows: the id belongs to the lineage inserted first.
	Lin   Clock
	Dead  []byte // encoded values of a deleted or incomplete row
	Cells map[string]Clock
}

// Lineage is the insert clock of the first row of the key's lineage.
func (m *RowMeta) Lineage() Clock {
	if !m.Lin.IsZero() && m.Lin.Compare(m.Ins) < 0 {
		return m.Lin
	}
	return m.Ins
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
	conn           *sqlite.Conn
	getRow, putRow *sqlite.Stmt
}

// NewMeta prepares metadata access.
func (d *Dir) NewMeta() (*Meta, error) { return NewMetaOn(d.conn) }

// NewMetaOn prepares metadata access on conn, the state database or a
// snapshot's.
func NewMetaOn(conn *sqlite.Conn) (*Meta, error) {
	m := &Meta{conn: conn}
	for _, p := range []struct {
		s **sqlite.Stmt
		q string
	}{
		{&m.getRow, "SELECT ins, ins_dev, wmax, wmax_dev, del, del_dev, dead, cells FROM rowdrop_rows WHERE tbl=? AND pk=?"},
		{&m.putRow, "INSERT OR REPLACE INTO rowdrop_rows(tbl,pk,ins,ins_dev,wmax,wmax_dev,del,del_dev,dead,cells) VALUES(?,?,?,?,?,?,?,?,?,?)"},
	} {
		s, err := conn.Prepare(p.q)
		if err != nil {
			return nil, fmt.Errorf("prepare metadata query: %w", err)
		}
		*p.s = s
	}
	return m, nil
}

// Get returns the metadata of a row, or nil if rowdrop has never seen it.
// A row's clocks and its cells' clocks are one record (a merge reads and
// writes them for every change it applies).
func (m *Meta) Get(tbl string, pk []byte) (*RowMeta, error) {
	s := m.getRow
	defer s.Reset()
	s.BindText(1, tbl)
	s.BindBytes(2, pk)
	ok, err := s.Step()
	if err != nil {
		return nil, fmt.Errorf("read row metadata of %s: %w", tbl, err)
	}
	if !ok {
		return nil, nil
	}
	r, err := scanMeta(s, 0)
	if err != nil {
		return nil, fmt.Errorf("read cell clocks of a row of %s: %w", tbl, err)
	}
	return r, nil
}

// scanMeta decodes the metadata in result columns from..from+7 of s (ins,
// ins_dev, wmax, wmax_dev, del, del_dev, dead, cells).
func scanMeta(s *sqlite.Stmt, from int) (*RowMeta, error) {
	r := &RowMeta{
		Ins:  Clock{hlc.Timestamp(s.ColumnInt64(from)), s.ColumnText(from + 1)},
		WMax: Clock{hlc.Timestamp(s.ColumnInt64(from + 2)), s.ColumnText(from + 3)},
		Del:  Clock{hlc.Timestamp(s.ColumnInt64(from + 4)), s.ColumnText(from + 5)},
	}
	r.Dead = columnBlob(s, from+6)
	if b := columnBlob(s, from+7); b != nil {
		var err error
		if r.Cells, r.Lin, err = decodeCells(b); err != nil {
			return nil, err
		}
	}
	return r, nil
}

// EachRowMeta calls fn with the table, encoded key and metadata of every
// row with merge metadata on conn, in one scan (a snapshot's, read for
// checking it). A row whose cell clocks do not decode is passed with a
// nil m. An error of fn stops the walk and is returned as is.
func EachRowMeta(conn *sqlite.Conn, fn func(tbl string, pk []byte, m *RowMeta) error) error {
	var fnErr error
	err := sqlitex.ExecuteTransient(conn, "SELECT tbl, pk, ins, ins_dev, wmax, wmax_dev, del, del_dev, dead, cells FROM rowdrop_rows", &sqlitex.ExecOptions{ResultFunc: func(s *sqlite.Stmt) error {
		m, err := scanMeta(s, 2)
		if err != nil {
			m = nil
		}
		fnErr = fn(s.ColumnText(0), columnBlob(s, 1), m)
		return fnErr
	}})
	if fnErr != nil {
		return fnErr
	}
	if err != nil {
		return fmt.Errorf("read row metadata: %w", err)
	}
	return nil
}

// Put stores a row's metadata; cells at or below the insert clock are
// dropped (they are implied by it).
func (m *Meta) Put(tbl string, pk []byte, r *RowMeta) error {
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
	if b := encodeCells(r.Cells, r.Ins, r.Lin); b == nil {
		s.BindNull(10)
	} else {
		s.BindBytes(10, b)
	}
	if _, err := s.Step(); err != nil {
		return fmt.Errorf("write row metadata of %s: %w", tbl, err)
	}
	return nil
}

// encodeCells encodes the cell clocks later than ins, by column name:
// per cell, the name, the HLC and the device, each length- or
// varint-prefixed. A lineage clock lin earlier than ins comes first, as
// an entry with an empty name (no column has one; blobs written before
// lineages have no such entry). Nil when there is nothing to store.
func encodeCells(cells map[string]Clock, ins, lin Clock) []byte {
	var cols []string
	for col, c := range cells {
		if c.Compare(ins) > 0 && col != "" {
			cols = append(cols, col)
		}
	}
	hasLin := !lin.IsZero() && lin.Compare(ins) < 0
	if len(cols) == 0 && !hasLin {
		return nil
	}
	sort.Strings(cols)
	var b []byte
	put := func(col string, c Clock) {
		b = binary.AppendUvarint(b, uint64(len(col)))
		b = append(b, col...)
		b = binary.AppendUvarint(b, uint64(c.HLC))
		b = binary.AppendUvarint(b, uint64(len(c.Dev)))
		b = append(b, c.Dev...)
	}
	if hasLin {
		put("", lin)
	}
	for _, col := range cols {
		put(col, cells[col])
	}
	return b
}

// decodeCells decodes encodeCells's bytes into the cell clocks and the
// lineage clock (zero if none); anything malformed (it may come from
// another device's snapshot) is an error.
func decodeCells(b []byte) (map[string]Clock, Clock, error) {
	out := map[string]Clock{}
	var lin Clock
	first := true
	str := func() (string, bool) {
		n, k := binary.Uvarint(b)
		if k <= 0 || n > uint64(len(b)-k) {
			return "", false
		}
		v := string(b[k : k+int(n)])
		b = b[k+int(n):]
		return v, true
	}
	bad := errors.New("malformed cell clocks")
	for len(b) > 0 {
		col, ok := str()
		// Only the first entry may be the lineage (empty name).
		if !ok || (col == "" && !first) {
			return nil, Clock{}, bad
		}
		h, k := binary.Uvarint(b)
		if k <= 0 {
			return nil, Clock{}, bad
		}
		b = b[k:]
		dev, ok := str()
		if !ok {
			return nil, Clock{}, bad
		}
		first = false
		if col == "" {
			if lin = (Clock{hlc.Timestamp(h), dev}); lin.IsZero() {
				return nil, Clock{}, bad
			}
			continue
		}
		if _, dup := out[col]; dup {
			return nil, Clock{}, fmt.Errorf("cell clocks name column %q twice", col)
		}
		out[col] = Clock{hlc.Timestamp(h), dev}
	}
	return out, lin, nil
}

// Close finalizes statements.
func (m *Meta) Close() {
	m.getRow.Finalize()
	m.putRow.Finalize()
}

// inlineCells upgrades a base copy written before cell clocks moved into
// rowdrop_rows (one rowdrop_cells row per cell), in one transaction.
func inlineCells(conn *sqlite.Conn) (err error) {
	has := false
	err = sqlitex.ExecuteTransient(conn, "SELECT 1 FROM sqlite_master WHERE type='table' AND name='rowdrop_cells'", &sqlitex.ExecOptions{ResultFunc: func(*sqlite.Stmt) error {
		has = true
		return nil
	}})
	if err != nil || !has {
		return err
	}
	defer sqlitex.Save(conn)(&err)
	hasCol := false
	err = sqlitex.ExecuteTransient(conn, "SELECT 1 FROM pragma_table_info('rowdrop_rows') WHERE name='cells'", &sqlitex.ExecOptions{ResultFunc: func(*sqlite.Stmt) error {
		hasCol = true
		return nil
	}})
	if err != nil {
		return err
	}
	if !hasCol {
		if err = sqlitex.ExecuteTransient(conn, "ALTER TABLE rowdrop_rows ADD COLUMN cells BLOB", nil); err != nil {
			return err
		}
	}
	type rowKey struct{ tbl, pk string }
	var keys []rowKey
	cells := map[rowKey]map[string]Clock{}
	err = sqlitex.ExecuteTransient(conn, "SELECT tbl, pk, col, hlc, dev FROM rowdrop_cells", &sqlitex.ExecOptions{ResultFunc: func(s *sqlite.Stmt) error {
		k := rowKey{s.ColumnText(0), string(columnBlob(s, 1))}
		if cells[k] == nil {
			cells[k] = map[string]Clock{}
			keys = append(keys, k)
		}
		cells[k][s.ColumnText(2)] = Clock{hlc.Timestamp(s.ColumnInt64(3)), s.ColumnText(4)}
		return nil
	}})
	if err != nil {
		return err
	}
	for _, k := range keys {
		if err = sqlitex.Execute(conn, "UPDATE rowdrop_rows SET cells=? WHERE tbl=? AND pk=?", &sqlitex.ExecOptions{
			Args: []any{encodeCells(cells[k], Clock{}, Clock{}), k.tbl, []byte(k.pk)}}); err != nil {
			return err
		}
	}
	return sqlitex.ExecuteTransient(conn, "DROP TABLE rowdrop_cells", nil)
}

// columnBlob copies result column i (nil for NULL).
func columnBlob(s *sqlite.Stmt, i int) []byte {
	if s.ColumnIsNull(i) {
		return nil
	}
	b := make([]byte, s.ColumnLen(i))
	s.ColumnBytes(i, b)
	return b
}

// StampInserted gives every row of base table tbl that has no metadata
// yet the metadata of a row this device inserted at clock (Ins = WMax =
// clock, nothing else: what Put stores for a first insert), set-wise, in
// the caller's transaction. keyExpr is the row's encoded key over the
// table's key columns (db.KeyFunc).
func (d *Dir) StampInserted(tbl, keyExpr string, clock Clock) error {
	q := fmt.Sprintf(`INSERT OR IGNORE INTO rowdrop_rows(tbl,pk,ins,ins_dev,wmax,wmax_dev,del,del_dev,dead,cells)
		SELECT ?, %s, ?, ?, ?, ?, 0, '', NULL, NULL FROM main.%s ORDER BY 2`, keyExpr, db.Quote(tbl))
	if err := sqlitex.Execute(d.conn, q, &sqlitex.ExecOptions{Args: []any{tbl, int64(clock.HLC), clock.Dev, int64(clock.HLC), clock.Dev}}); err != nil {
		return fmt.Errorf("write row metadata of %s: %w", tbl, err)
	}
	return nil
}
