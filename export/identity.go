package export

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"slices"
	"sort"

	"zombiezen.com/go/sqlite"

	"github.com/rowdrop/rowdrop/internal/changeset"
	"github.com/rowdrop/rowdrop/internal/rows"
	"github.com/rowdrop/rowdrop/internal/schema"
)

// Identity by natural key (schema/identity.go): SQLite's session diff
// keys a table's changes by its stored primary key, which for a table with
// an identity is device-local. rekeyIdentity rewrites those changes to be
// keyed by the identity columns, which is how files, base writes and row
// clocks key them: each touched stored row's old version (base) and new
// version (the diff applied to it) are paired by natural key, so a row the
// app moved to another id (buku renumbers on delete) is an UPDATE of its
// device-local id only, and a row whose natural key was edited is a DELETE
// of the old key and an INSERT of the new one.

// storageTables returns the tables as SQLite keys them (for capture).
func storageTables(tables []*schema.Table) []*schema.Table {
	out := make([]*schema.Table, len(tables))
	for i, t := range tables {
		out[i] = t.Storage()
	}
	return out
}

func anyIdentity(tables []*schema.Table) bool {
	return slices.ContainsFunc(tables, (*schema.Table).HasIdentity)
}

// identityRows is one identity table's touched rows: old and new full
// versions by stored key.
type identityRows struct {
	t        *schema.Table
	old, new map[string][]changeset.Value
	order    []string // stored keys in first-seen order
}

// rekeyIdentity copies the captured changeset raw to a new temporary file
// in dir, with the changes of identity tables keyed by their natural key
// (after every other change, deletes first, then updates, then inserts,
// each in key order). base is the base copy, read for the old version of
// an updated row; the capture itself is keyed by the stored key.
func rekeyIdentity(raw *os.File, base *sqlite.Conn, tables []*schema.Table, dir string) (*os.File, error) {
	if _, err := raw.Seek(0, io.SeekStart); err != nil {
		return nil, err
	}
	out, err := os.CreateTemp(dir, ".capture-")
	if err != nil {
		return nil, fmt.Errorf("create capture file in state directory %s: %w", dir, err)
	}
	fail := func(err error) (*os.File, error) {
		out.Close()
		os.Remove(out.Name())
		return nil, err
	}
	bw := bufio.NewWriterSize(out, 1<<20)
	cw := changeset.NewWriter(bw)
	byName := map[string]*identityRows{}
	var ids []*identityRows
	readers := map[string]*rows.Table{}
	defer func() {
		for _, r := range readers {
			r.Close()
		}
	}()
	err = eachCaptured(raw, tables, func(t *schema.Table, c *changeset.Change) error {
		if !t.HasIdentity() {
			return cw.Write(c)
		}
		st := t.Storage()
		ir := byName[t.Name]
		if ir == nil {
			ir = &identityRows{t: t, old: map[string][]changeset.Value{}, new: map[string][]changeset.Value{}}
			byName[t.Name] = ir
			ids = append(ids, ir)
		}
		skey := c.Key()
		enc := string(changeset.EncodeKey(skey))
		if _, seen := ir.old[enc]; !seen {
			if _, seen := ir.new[enc]; !seen {
				ir.order = append(ir.order, enc)
			}
		}
		switch c.Op {
		case changeset.OpInsert:
			ir.new[enc] = cloneValues(c.New)
		case changeset.OpDelete:
			ir.old[enc] = cloneValues(c.Old)
		case changeset.OpUpdate:
			r := readers[t.Name]
			if r == nil {
				r = rows.Open(base, "main", st)
				readers[t.Name] = r
			}
			old, err := r.Get(skey)
			if err != nil {
				return err
			}
			if old == nil {
				return fmt.Errorf("table %s: the capture updates the row with key %v, which the base copy lacks (sync again; if it persists, move the state directory aside)", t.Name, skey)
			}
			nw := slices.Clone(old)
			for i, v := range c.New {
				if v.Kind != changeset.KindUndefined {
					nw[i] = v
				}
			}
			ir.old[enc], ir.new[enc] = old, cloneValues(nw)
		}
		return nil
	})
	if err != nil {
		return fail(fmt.Errorf("rekey captured changes by identity: %w", err))
	}
	for _, ir := range ids {
		if err := ir.write(cw); err != nil {
			return fail(err)
		}
	}
	if err = cw.Flush(); err == nil {
		err = bw.Flush()
	}
	if err != nil {
		return fail(fmt.Errorf("write capture file: %w", err))
	}
	return out, nil
}

// write emits the table's changes keyed by natural key.
func (ir *identityRows) write(cw *changeset.Writer) error {
	t := ir.t
	tab := &changeset.Table{Name: t.Name, PK: make([]byte, len(t.Columns))}
	for i, c := range t.Columns {
		tab.PK[i] = byte(c.PK)
	}
	olds, news := map[string][]changeset.Value{}, map[string][]changeset.Value{}
	for _, enc := range ir.order {
		if o := ir.old[enc]; o != nil {
			olds[string(changeset.EncodeKey(rows.Key(t, o)))] = o
		}
		if n := ir.new[enc]; n != nil {
			news[string(changeset.EncodeKey(rows.Key(t, n)))] = n
		}
	}
	sorted := func(m map[string][]changeset.Value) []string {
		ks := make([]string, 0, len(m))
		for k := range m {
			ks = append(ks, k)
		}
		sort.Strings(ks)
		return ks
	}
	var dels, upds, inss []*changeset.Change
	for _, k := range sorted(olds) {
		o, n := olds[k], news[k]
		if n == nil {
			dels = append(dels, &changeset.Change{Table: tab, Op: changeset.OpDelete, Old: o})
			continue
		}
		c := &changeset.Change{Table: tab, Op: changeset.OpUpdate, Old: make([]changeset.Value, len(o)), New: make([]changeset.Value, len(o))}
		changed := false
		for i := range o {
			switch {
			case t.Columns[i].PK > 0:
				c.Old[i] = o[i]
			case !o[i].Equal(n[i]):
				c.Old[i], c.New[i] = o[i], n[i]
				changed = true
			}
		}
		if changed {
			upds = append(upds, c)
		}
	}
	for _, k := range sorted(news) {
		if olds[k] == nil {
			inss = append(inss, &changeset.Change{Table: tab, Op: changeset.OpInsert, New: news[k]})
		}
	}
	for _, list := range [][]*changeset.Change{dels, upds, inss} {
		for _, c := range list {
			if err := cw.Write(c); err != nil {
				return fmt.Errorf("write change of %s: %w", t.Name, err)
			}
		}
	}
	return nil
}
