// Package revert computes and applies the inverse of one published
// changeset file (`rowdrop revert`): an insert becomes a delete, a delete
// re-inserts the old row, an update writes back the old values of the
// columns it changed. Only rows and cells whose merge clock is still the
// file's own are reverted; whatever was changed since (by any device, or
// here and not yet exported) is skipped and listed, so a revert never
// undoes a later edit.
//
// The inverse is applied to the live database as an ordinary edit (the
// app's triggers on); the next export publishes it like any user's edit.
package revert

import (
	"errors"
	"fmt"
	"io"
	"strings"

	"zombiezen.com/go/sqlite"

	"github.com/rowdrop/rowdrop/internal/changeset"
	"github.com/rowdrop/rowdrop/internal/db"
	"github.com/rowdrop/rowdrop/internal/hlc"
	"github.com/rowdrop/rowdrop/internal/rdfile"
	"github.com/rowdrop/rowdrop/internal/rows"
	"github.com/rowdrop/rowdrop/internal/schema"
	"github.com/rowdrop/rowdrop/internal/state"
)

// Plan is what reverting one file does, per table, in the order the
// tables appear in the file.
type Plan struct {
	File   string      `json:"file"` // <device>/<seq>.rdc, relative to the shared folder
	Device string      `json:"device"`
	Seq    uint64      `json:"seq"`
	Tables []TablePlan `json:"tables"`
	ops    []op
}

// TablePlan counts what a revert does to one table and lists what it skips.
type TablePlan struct {
	Table    string `json:"table"`
	Delete   int    `json:"delete"`   // rows the file inserted, deleted again
	Reinsert int    `json:"reinsert"` // rows the file deleted, inserted again with their old values
	Cells    int    `json:"cells"`    // cells the file updated, given back their old values
	Skipped  []Skip `json:"skipped,omitempty"`
}

// Skip is a row, or one cell of it, changed since the file and so left as it is.
type Skip struct {
	Key    string `json:"key"`
	Column string `json:"column,omitempty"`
	Reason string `json:"reason"`
}

// Empty reports whether the plan changes nothing.
func (p *Plan) Empty() bool { return len(p.ops) == 0 }

type opKind int

const (
	opDelete opKind = iota
	opReinsert
	opWrite
)

type op struct {
	kind  opKind
	table *schema.Table
	key   []changeset.Value
	row   []changeset.Value // opReinsert: the whole row, in the table's column order
	cols  []int             // opWrite
	vals  []changeset.Value // opWrite
}

// Compute reads changeset file f (a header-validated file of the shared
// folder, named rel) and works out its inverse against the merge clocks in
// meta and the current rows of live (the app's database, "main"). tables
// are the synced tables as they are now.
func Compute(f *rdfile.File, rel string, tables []*schema.Table, meta *state.Meta, live *sqlite.Conn) (*Plan, error) {
	h := f.Header
	if h.Kind != rdfile.KindChangeset {
		return nil, fmt.Errorf("%s is a %s, not a changeset: only a device's changeset files can be reverted", rel, h.Kind)
	}
	if err := f.Verify(); err != nil {
		return nil, fmt.Errorf("%s cannot be reverted: %w", rel, err)
	}
	rc, err := f.Changeset()
	if err != nil {
		return nil, fmt.Errorf("%s cannot be reverted: %w", rel, err)
	}
	defer rc.Close()
	c := &computer{
		plan:    &Plan{File: rel, Device: h.Device, Seq: h.Seq},
		clock:   state.Clock{HLC: hlc.Timestamp(h.HLC), Dev: h.Device},
		meta:    meta,
		live:    live,
		current: map[string]*schema.Table{},
		fileTab: map[string]rdfile.Table{},
		byTable: map[string]int{},
		access:  map[string]*rows.Table{},
	}
	defer c.close()
	for _, t := range tables {
		c.current[t.Name] = t
	}
	for _, t := range h.Tables {
		c.fileTab[t.Name] = t
	}
	rd := changeset.NewReader(rc, changeset.Limits{})
	for {
		ch, err := rd.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("%s cannot be reverted: its changes do not read: %w", rel, err)
		}
		if err := c.change(ch); err != nil {
			return nil, fmt.Errorf("%s: %w", rel, err)
		}
	}
	return c.plan, nil
}

type computer struct {
	plan    *Plan
	clock   state.Clock
	meta    *state.Meta
	live    *sqlite.Conn
	current map[string]*schema.Table
	fileTab map[string]rdfile.Table
	byTable map[string]int // index into plan.Tables
	access  map[string]*rows.Table
}

func (c *computer) close() {
	for _, r := range c.access {
		r.Close()
	}
}

func (c *computer) table(name string) *TablePlan {
	i, ok := c.byTable[name]
	if !ok {
		i = len(c.plan.Tables)
		c.byTable[name] = i
		c.plan.Tables = append(c.plan.Tables, TablePlan{Table: name})
	}
	return &c.plan.Tables[i]
}

func keyString(key []changeset.Value) string {
	s := make([]string, len(key))
	for i, v := range key {
		s[i] = v.String()
	}
	return strings.Join(s, ",")
}

func (c *computer) change(ch *changeset.Change) error {
	name := ch.Table.Name
	ft, ok := c.fileTab[name]
	if !ok || len(ft.Columns) != ch.Table.NumCols() {
		return fmt.Errorf("changes of table %s do not match the file's header: %w", name, rdfile.ErrInvalid)
	}
	tp := c.table(name)
	t := c.current[name]
	// Map the file's columns to the table's now, by name.
	var m []int
	if t != nil {
		idx := map[string]int{}
		for j, col := range t.Columns {
			idx[col.Name] = j
		}
		m = make([]int, len(ft.Columns))
		for i, col := range ft.Columns {
			j, ok := idx[col.Name]
			if !ok {
				j = -1
			}
			m[i] = j
		}
		for _, j := range t.PKCols() {
			found := false
			for i, col := range ft.Columns {
				if m[i] == j && col.PK > 0 {
					found = true
				}
			}
			if !found {
				t = nil // the key changed shape: nothing here names the file's rows
				break
			}
		}
	}
	rec := ch.Old
	if ch.Op == changeset.OpInsert {
		rec = ch.New
	}
	if t == nil {
		tp.Skipped = append(tp.Skipped, Skip{Key: keyString(ch.Key()), Reason: "table is not synced here any more, or its key changed"})
		return nil
	}
	mapRow := func(vals []changeset.Value) []changeset.Value {
		row := make([]changeset.Value, len(t.Columns))
		for j := range row {
			row[j] = changeset.Null()
		}
		for i, j := range m {
			if j >= 0 && !ft.Columns[i].Local && vals[i].Kind != changeset.KindUndefined {
				row[j] = vals[i]
			}
		}
		return row
	}
	key := rows.Key(t, mapRow(rec))
	ks := keyString(key)
	rm, err := c.meta.Get(name, changeset.EncodeKey(key))
	if err != nil {
		return err
	}
	acc := c.access[name]
	if acc == nil {
		acc = rows.Open(c.live, "main", t)
		c.access[name] = acc
	}
	cur, err := acc.Get(key)
	if err != nil {
		return fmt.Errorf("read the live row %s of %s: %w", ks, name, err)
	}
	skip := func(col, why string) { tp.Skipped = append(tp.Skipped, Skip{Key: ks, Column: col, Reason: why}) }
	same := func(i int, v changeset.Value) bool { return cur != nil && m[i] >= 0 && cur[m[i]].Equal(v) }
	switch ch.Op {
	case changeset.OpInsert:
		switch {
		case rm == nil || cur == nil || !rm.Alive():
			skip("", "deleted since")
		case rm.Ins.Compare(c.clock) != 0 || rm.WMax.Compare(c.clock) != 0:
			skip("", "changed since")
		default:
			for i, col := range ft.Columns {
				if !col.Local && m[i] >= 0 && !t.Local[col.Name] && !same(i, ch.New[i]) {
					skip("", "changed here since (not synced yet)")
					return nil
				}
			}
			c.plan.ops = append(c.plan.ops, op{kind: opDelete, table: t, key: key})
			tp.Delete++
		}
	case changeset.OpDelete:
		switch {
		case rm == nil:
			skip("", "not known here")
		case rm.Alive() || cur != nil:
			skip("", "written again since")
		case rm.Del.Compare(c.clock) != 0:
			skip("", "deleted again since")
		default:
			c.plan.ops = append(c.plan.ops, op{kind: opReinsert, table: t, key: key, row: mapRow(ch.Old)})
			tp.Reinsert++
		}
	case changeset.OpUpdate:
		if rm == nil || cur == nil || !rm.Alive() {
			skip("", "deleted since")
			return nil
		}
		w := op{kind: opWrite, table: t, key: key}
		for i, col := range ft.Columns {
			if ch.New[i].Kind == changeset.KindUndefined || col.PK > 0 || col.Local || m[i] < 0 || t.Local[col.Name] {
				continue
			}
			switch {
			case rm.CellClock(col.Name).Compare(c.clock) != 0:
				skip(col.Name, "changed since")
			case !same(i, ch.New[i]):
				skip(col.Name, "changed here since (not synced yet)")
			default:
				w.cols = append(w.cols, m[i])
				w.vals = append(w.vals, ch.Old[i])
			}
		}
		if len(w.cols) > 0 {
			c.plan.ops = append(c.plan.ops, w)
			tp.Cells += len(w.cols)
		}
	}
	return nil
}

// Apply writes the plan to live ("main") in one transaction, with the
// app's triggers as they are (on): it is an edit like the user's.
func (p *Plan) Apply(live *sqlite.Conn) (err error) {
	end, err := db.Begin(live, "IMMEDIATE")
	if err != nil {
		return fmt.Errorf("revert %s: begin a transaction on the live database: %w", p.File, err)
	}
	defer end(&err)
	acc := map[string]*rows.Table{}
	defer func() {
		for _, r := range acc {
			r.Close()
		}
	}()
	for _, o := range p.ops {
		r := acc[o.table.Name]
		if r == nil {
			r = rows.Open(live, "main", o.table)
			acc[o.table.Name] = r
		}
		switch o.kind {
		case opDelete:
			err = r.Delete(o.key)
		case opReinsert:
			err = r.Insert(o.row)
		case opWrite:
			err = r.Update(o.key, o.cols, o.vals)
		}
		if err != nil {
			return fmt.Errorf("revert %s: %w (nothing was changed)", p.File, err)
		}
	}
	return nil
}
