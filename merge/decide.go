// Package merge decides, per (table, key, column), which value wins, and
// applies the outcome to the live database and the base copy.
//
// The rules (docs/MERGE.md explains them in plain words):
//   - every change carries the clock of the export that published it
//     (HLC, device id as tie-break); per cell, the later clock wins;
//   - an INSERT writes every cell with its clock; an UPDATE only the
//     columns it changed, so concurrent edits of different columns of a
//     row both survive;
//   - a row exists iff its latest write (insert or update) is later than
//     its latest delete: delete versus edit is decided by clock, and a
//     later edit brings a deleted row back with its last known values;
//   - a cell or row edited locally and not exported yet keeps the local
//     value (it will be exported with a later clock and win everywhere);
//     this includes a row edited here that a remote delete removes: the
//     row stays and comes back everywhere, and the delete is logged as
//     lost here (elsewhere it only looks like a newer insert);
//   - whatever loses a concurrent decision goes to the conflict log of
//     at least one device (usually of every device that held the losing
//     value: each logs what it displaces).
//
// Whether two edits were concurrent is judged from what the editor had:
// an UPDATE whose old value equals the value it replaces, or a DELETE whose
// old row equals the row it removes, was made by a device that had seen it,
// and is not a conflict. Files carry no causal history, so a device that
// receives an informed overwrite before the value it overwrote (from a
// third device) cannot tell it from a concurrent edit and logs it; the
// merged data is the same either way, only the log is noisier.
package merge

import (
	"bytes"
	"encoding/json"

	"github.com/rowdrop/rowdrop/internal/changeset"
	"github.com/rowdrop/rowdrop/internal/db"
	"github.com/rowdrop/rowdrop/internal/schema"
	"github.com/rowdrop/rowdrop/internal/state"
)

// Conflict kinds in the log.
const (
	KindCell        = "cell"         // concurrent edits of one cell: the earlier lost
	KindLocalKept   = "local-kept"   // a remote value lost to an unexported local edit
	KindKey         = "key"          // two different rows inserted under one key: the earlier row lost
	KindDeleted     = "deleted"      // a row with edits the deleter had not seen was deleted
	KindEditDeleted = "edit-deleted" // an edit lost to a later delete
	KindDeleteLost  = "delete-lost"  // a delete lost to a later edit (the row stays)
	KindUnique      = "unique"       // a row clashed on a UNIQUE constraint with an earlier one and is out of the table (unique.go)
)

// outcome is what one change does.
type outcome struct {
	meta      *state.RowMeta
	base      []changeset.Value // desired base row; nil = absent
	conflicts []*state.Conflict
}

// decide merges change c (clock cl) into a row whose metadata is m (nil if
// never seen) and whose base row is b (nil if absent). lin is, for an
// insert, the first insert clock of the key's lineage that the insert
// carries on (detect: an INTEGER id reused by a writer that had seen the
// earlier row; zero: the insert starts its own). It is a pure function of
// its inputs: every device computes the same result.
func decide(t *schema.Table, c *changeset.Change, cl, lin state.Clock, m *state.RowMeta, b []changeset.Value) (*outcome, error) {
	n := len(t.Columns)
	o := &outcome{}
	nm := &state.RowMeta{}
	if m != nil {
		*nm = *m
		nm.Cells = make(map[string]state.Clock, len(m.Cells))
		for k, v := range m.Cells {
			nm.Cells[k] = v
		}
	}
	o.meta = nm
	// cur: the row's current merged values (base if materialised, else
	// the kept values of a dead or incomplete row).
	cur := make([]changeset.Value, n)
	wasAlive := b != nil
	if b != nil {
		copy(cur, b)
	} else if m != nil && m.Dead != nil {
		vals, err := changeset.DecodeKey(m.Dead)
		if err == nil && len(vals) == n {
			copy(cur, vals)
		}
	}
	local := func(i int) bool { return t.Local[t.Columns[i].Name] }
	addConflict := func(kind string, cols []string, winner, loser []changeset.Value, wcl, lcl state.Clock, note string) {
		js, _ := json.Marshal(cols)
		o.conflicts = append(o.conflicts, &state.Conflict{Kind: kind, Table: t.Name, Cols: string(js),
			WinnerValues: sideValues(winner), WinnerDev: wcl.Dev, WinnerHLC: uint64(wcl.HLC),
			LoserValues: sideValues(loser), LoserDev: lcl.Dev, LoserHLC: uint64(lcl.HLC), Note: note})
	}
	switch c.Op {
	case changeset.OpInsert:
		if m != nil && cl.Compare(m.Ins) == 0 {
			return nil, nil // the same insert again
		}
		newer := m == nil || cl.Compare(m.Ins) > 0
		var lostCols []string
		for i := 0; i < n; i++ {
			if local(i) {
				if cur[i].Kind == changeset.KindUndefined {
					cur[i] = c.New[i]
				}
				continue
			}
			cc := state.Clock{}
			if m != nil {
				cc = m.CellClock(t.Columns[i].Name)
			}
			if cl.Compare(cc) > 0 {
				if wasAlive && !cur[i].Equal(c.New[i]) && cur[i].Kind != changeset.KindUndefined {
					lostCols = append(lostCols, t.Columns[i].Name)
				}
				cur[i] = c.New[i]
			}
		}
		if newer {
			nm.Ins, nm.Lin = cl, state.Clock{}
			if !lin.IsZero() && lin.Compare(cl) < 0 {
				nm.Lin = lin
			}
			for k, v := range nm.Cells {
				if v.Compare(cl) <= 0 {
					delete(nm.Cells, k)
				}
			}
		}
		nm.WMax = state.Max(nm.WMax, cl)
		var mIns state.Clock
		if m != nil {
			mIns = m.Ins
		}
		if wasAlive && len(lostCols) > 0 {
			// Another row already lived under this key: keep it whole.
			addConflict(KindKey, allCols(t), c.New, b, cl, mIns, "two devices inserted different rows under the same key; the earlier row was replaced")
		} else if !newer && m != nil && wasAlive {
			if !rowEqual(t, c.New, cur) {
				addConflict(KindKey, allCols(t), cur, c.New, mIns, cl, "two devices inserted different rows under the same key; this earlier row lost")
			}
		} else if m != nil && !nm.Alive() {
			addConflict(KindEditDeleted, allCols(t), nil, c.New, nm.Del, cl, "an insert lost to a later delete of the same key")
		}
	case changeset.OpUpdate:
		var deadLoss []string
		for i := 0; i < n; i++ {
			nv := c.New[i]
			if nv.Kind == changeset.KindUndefined || local(i) || t.Columns[i].PK > 0 {
				continue
			}
			col := t.Columns[i].Name
			cc := state.Clock{}
			if m != nil {
				cc = m.CellClock(col)
			}
			switch cl.Compare(cc) {
			case 0:
				continue // already applied
			case 1:
				if cur[i].Kind != changeset.KindUndefined && !c.OldEqual(i, cur[i]) && !cur[i].Equal(nv) {
					// The editor had not seen the current value.
					addConflict(KindCell, []string{col}, []changeset.Value{nv}, []changeset.Value{cur[i]}, cl, cc, "")
				}
				cur[i] = nv
				if nm.Cells == nil {
					nm.Cells = map[string]state.Clock{}
				}
				nm.Cells[col] = cl
			case -1:
				if !cur[i].Equal(nv) {
					addConflict(KindCell, []string{col}, []changeset.Value{cur[i]}, []changeset.Value{nv}, cc, cl, "")
				}
			}
			deadLoss = append(deadLoss, col)
		}
		if m == nil {
			// An edit of a row whose insert has not arrived: keep the
			// values until it does. The key comes from the old record.
			for _, i := range t.PKCols() {
				cur[i] = c.Old[i]
			}
		}
		nm.WMax = state.Max(nm.WMax, cl)
		if !nm.Alive() && len(deadLoss) > 0 {
			addConflict(KindEditDeleted, deadLoss, nil, pick(t, c.New, deadLoss), nm.Del, cl, "an edit lost to a later delete of the row")
		}
	case changeset.OpDelete:
		if m != nil && cl.Compare(m.Del) <= 0 {
			return nil, nil // this or a later delete was already seen
		}
		nm.Del = cl
		if m == nil {
			copy(cur, c.Old)
		}
		if wasAlive && !nm.Alive() {
			var unseen []string
			for i := 0; i < n; i++ {
				if !local(i) && !cur[i].Equal(c.Old[i]) {
					unseen = append(unseen, t.Columns[i].Name)
				}
			}
			if len(unseen) > 0 {
				addConflict(KindDeleted, allCols(t), nil, cur, cl, nm.WMax, "the row was deleted on a device that had not seen all its edits; this is the row as it was here")
			}
		} else if nm.Alive() {
			addConflict(KindDeleteLost, allCols(t), cur, c.Old, nm.WMax, cl, "a delete lost to a later edit; the row stays")
		}
	}
	complete := true
	for i := range cur {
		if cur[i].Kind == changeset.KindUndefined {
			complete = false
		}
	}
	if nm.Alive() && complete {
		o.base = cur
		nm.Dead = nil
	} else {
		o.base = nil
		nm.Dead = changeset.EncodeKey(cur)
	}
	return o, nil
}

// sideValues is one side of a conflict as the log takes it
// (state.Conflict.WinnerValues): small values copied, since the change
// reader may reuse their bytes before the log is written, big ones
// (db.StreamMin and more, each a buffer of its own from the reader or a
// row read) kept as they are, so the log writes them without a copy.
func sideValues(v []changeset.Value) []changeset.Value {
	if v == nil {
		return nil
	}
	out := make([]changeset.Value, len(v))
	for i, x := range v {
		if len(x.Bytes) < db.StreamMin {
			x.Bytes = bytes.Clone(x.Bytes)
		}
		out[i] = x
	}
	return out
}

func encodeOpt(v []changeset.Value) []byte {
	if v == nil {
		return nil
	}
	return changeset.EncodeKey(v)
}

func allCols(t *schema.Table) []string {
	out := make([]string, len(t.Columns))
	for i, c := range t.Columns {
		out[i] = c.Name
	}
	return out
}

func pick(t *schema.Table, row []changeset.Value, cols []string) []changeset.Value {
	var out []changeset.Value
	for _, c := range cols {
		out = append(out, row[t.ColIndex(c)])
	}
	return out
}

func rowEqual(t *schema.Table, a, b []changeset.Value) bool {
	for i := range t.Columns {
		if !t.Local[t.Columns[i].Name] && !a[i].Equal(b[i]) {
			return false
		}
	}
	return true
}
