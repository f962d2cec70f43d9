package export

import (
	"fmt"
	"strings"

	"zombiezen.com/go/sqlite"
	"zombiezen.com/go/sqlite/sqlitex"

	"github.com/rowdrop/rowdrop/internal/changeset"
	"github.com/rowdrop/rowdrop/internal/db"
	"github.com/rowdrop/rowdrop/internal/rows"
	"github.com/rowdrop/rowdrop/internal/schema"
	"github.com/rowdrop/rowdrop/internal/state"
)

// A device's first export of a table (the base copy holds none of its rows
// and no metadata of them) captures every row as an insert, all under one
// clock: the rows go into base as they are, and their metadata is written
// once at the end, set-wise, instead of being read and written per row
// (recordLocal gives each such row Ins = WMax = the clock and nothing
// else). On a 100k-row database that per-row metadata was half of the
// first sync's time (docs/BENCH.md, D3).

// freshTables lists the tables of which base holds no row and no row
// metadata (tables matched by natural key excepted: their metadata keys
// are not the stored rows' keys).
func (e *Exporter) freshTables(tables []*schema.Table) (map[string]bool, error) {
	out := map[string]bool{}
	for _, t := range tables {
		if t.HasIdentity() {
			continue
		}
		has, err := e.State.HasRowMeta(t.Name)
		if err != nil {
			return nil, err
		}
		if has {
			continue
		}
		empty := true
		err = sqlitex.ExecuteTransient(e.State.Conn(), "SELECT 1 FROM main."+db.Quote(t.Name)+" LIMIT 1", &sqlitex.ExecOptions{ResultFunc: func(*sqlite.Stmt) error {
			empty = false
			return nil
		}})
		if err != nil {
			return nil, fmt.Errorf("read the base copy of %s: %w", t.Name, err)
		}
		if empty {
			out[t.Name] = true
		}
	}
	return out, nil
}

// insertFresh writes an insert into a fresh table's base copy, without
// metadata (stampFresh writes it); a write a UNIQUE constraint refuses is
// returned as a deferredRow, as by recordLocal.
func insertFresh(a *rows.Table, t *schema.Table, c *changeset.Change) (*deferredRow, error) {
	if err := a.Insert(c.New); err != nil {
		if !isConstraint(err) {
			return nil, err
		}
		return &deferredRow{a: a, key: cloneValues(rows.Key(t, c.New)), row: cloneValues(c.New)}, nil
	}
	return nil, nil
}

// stampFresh writes the metadata of every row the export put into the
// fresh tables, in the same transaction.
func (e *Exporter) stampFresh(tables []*schema.Table, fresh map[string]bool, clock state.Clock) error {
	if len(fresh) == 0 {
		return nil
	}
	if err := db.RegisterKeyFunc(e.State.Conn()); err != nil {
		return err
	}
	for _, t := range tables {
		if !fresh[t.Name] {
			continue
		}
		var key []string
		for _, i := range t.PKCols() {
			key = append(key, db.Quote(t.Columns[i].Name))
		}
		if err := e.State.StampInserted(t.Name, db.KeyFunc+"("+strings.Join(key, ", ")+")", clock); err != nil {
			return err
		}
	}
	return nil
}
