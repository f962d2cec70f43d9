package merge

import (
	"fmt"
	"maps"
	"slices"
	"testing"

	"zombiezen.com/go/sqlite"
	"zombiezen.com/go/sqlite/sqlitex"

	"github.com/rowdrop/rowdrop/internal/changeset"
	"github.com/rowdrop/rowdrop/internal/hlc"
	"github.com/rowdrop/rowdrop/internal/schema"
	"github.com/rowdrop/rowdrop/internal/state"
)

// decideTable is notes(id INTEGER PRIMARY KEY, title, body, seen) with
// seen a device-local column, read by schema.Inspect as the product does.
func decideTable(t *testing.T) *schema.Table {
	t.Helper()
	conn, err := sqlite.OpenConn(":memory:")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if err := sqlitex.ExecuteTransient(conn, "CREATE TABLE notes(id INTEGER PRIMARY KEY, title TEXT, body TEXT, seen INTEGER)", nil); err != nil {
		t.Fatal(err)
	}
	tables, _, err := schema.Inspect(conn, "main", schema.Filter{LocalColumns: []string{"notes.seen"}})
	if err != nil || len(tables) != 1 {
		t.Fatalf("inspect: %v, %d tables", err, len(tables))
	}
	if !tables[0].Local["seen"] {
		t.Fatal("seen is not local")
	}
	return tables[0]
}

var (
	undef   = changeset.Value{}
	ctNotes = &changeset.Table{Name: "notes", PK: []byte{1, 0, 0, 0}}
)

func clk(h int, dev string) state.Clock { return state.Clock{HLC: hlc.Timestamp(h), Dev: dev} }

func txt(s string) changeset.Value { return changeset.Text(s) }

// note is a whole row of notes.
func note(id int64, title, body string, seen changeset.Value) []changeset.Value {
	return []changeset.Value{changeset.Int(id), txt(title), txt(body), seen}
}

func insert(row []changeset.Value) *changeset.Change {
	return &changeset.Change{Table: ctNotes, Op: changeset.OpInsert, New: row}
}

func del(row []changeset.Value) *changeset.Change {
	return &changeset.Change{Table: ctNotes, Op: changeset.OpDelete, Old: row}
}

// update of row id: old and new values by column index (others undefined).
func update(id int64, old, new map[int]changeset.Value) *changeset.Change {
	c := &changeset.Change{Table: ctNotes, Op: changeset.OpUpdate, Old: make([]changeset.Value, 4), New: make([]changeset.Value, 4)}
	c.Old[0] = changeset.Int(id)
	for i, v := range old {
		c.Old[i] = v
	}
	for i, v := range new {
		c.New[i] = v
	}
	return c
}

func meta(ins, wmax, del state.Clock, cells map[string]state.Clock, dead []changeset.Value) *state.RowMeta {
	m := &state.RowMeta{Ins: ins, WMax: wmax, Del: del, Cells: cells}
	if dead != nil {
		m.Dead = changeset.EncodeKey(dead)
	}
	return m
}

// TestDecide pins each rule of decide (see the package comment and
// docs/MERGE.md), one case per rule.
func TestDecide(t *testing.T) {
	tbl := decideTable(t)
	a5, a10, b10, b20, c30 := clk(5, "a"), clk(10, "a"), clk(10, "b"), clk(20, "b"), clk(30, "c")
	zero := state.Clock{}
	seen7 := changeset.Int(7)
	null := changeset.Null()
	cases := []struct {
		name string
		m    *state.RowMeta
		b    []changeset.Value
		c    *changeset.Change
		cl   state.Clock

		noop                bool // decide returns no outcome
		base                []changeset.Value
		dead                []changeset.Value // RowMeta.Dead decoded (nil: none)
		ins, wmax, delClock state.Clock
		cells               map[string]state.Clock
		conflicts           []string // "kind cols winner>loser"
	}{
		{
			name: "insert of a new row",
			c:    insert(note(1, "t", "x", null)), cl: a10,
			base: note(1, "t", "x", null), ins: a10, wmax: a10,
		},
		{
			name: "the same insert again changes nothing",
			m:    meta(a10, a10, zero, nil, nil), b: note(1, "t", "x", null),
			c: insert(note(1, "t", "x", null)), cl: a10,
			noop: true,
		},
		{
			name: "a later insert of a different row under a live key replaces it; the earlier is logged",
			m:    meta(a10, a10, zero, nil, nil), b: note(1, "t", "x", seen7),
			c: insert(note(1, "u", "y", null)), cl: b20,
			base: note(1, "u", "y", seen7), ins: b20, wmax: b20,
			conflicts: []string{`key ["id","title","body","seen"] b>a`},
		},
		{
			name: "an earlier insert of a different row under a live key loses and is logged",
			m:    meta(b20, b20, zero, nil, nil), b: note(1, "u", "y", seen7),
			c: insert(note(1, "t", "x", null)), cl: a10,
			base: note(1, "u", "y", seen7), ins: b20, wmax: b20,
			conflicts: []string{`key ["id","title","body","seen"] b>a`},
		},
		{
			name: "an earlier insert of the same row under a live key is no conflict",
			m:    meta(b20, b20, zero, nil, nil), b: note(1, "t", "x", seen7),
			c: insert(note(1, "t", "x", null)), cl: a10,
			base: note(1, "t", "x", seen7), ins: b20, wmax: b20,
		},
		{
			name: "an insert older than the row's delete stays dead and is logged",
			m:    meta(a5, a5, b20, nil, note(1, "t", "x", seen7)),
			c:    insert(note(1, "u", "y", null)), cl: a10,
			dead: note(1, "u", "y", seen7), ins: a10, wmax: a10, delClock: b20,
			conflicts: []string{`edit-deleted ["id","title","body","seen"] b>a`},
		},
		{
			name: "an insert newer than the row's delete revives it",
			m:    meta(a5, a5, a10, nil, note(1, "t", "x", seen7)),
			c:    insert(note(1, "u", "y", null)), cl: b20,
			base: note(1, "u", "y", seen7), ins: b20, wmax: b20, delClock: a10,
		},
		{
			name: "a newer insert keeps cells written after it",
			m:    meta(a5, c30, zero, map[string]state.Clock{"title": c30, "body": a10}, nil), b: note(1, "T", "X", null),
			c: insert(note(1, "u", "X", null)), cl: b20,
			base: note(1, "T", "X", null), ins: b20, wmax: c30,
			cells: map[string]state.Clock{"title": c30},
		},
		{
			name: "an informed newer update (its old value is the current one) is no conflict",
			m:    meta(a5, a5, zero, nil, nil), b: note(1, "t", "x", seen7),
			c: update(1, map[int]changeset.Value{1: txt("t")}, map[int]changeset.Value{1: txt("u")}), cl: b20,
			base: note(1, "u", "x", seen7), ins: a5, wmax: b20,
			cells: map[string]state.Clock{"title": b20},
		},
		{
			name: "a concurrent newer update wins its cell; the value it did not see is logged",
			m:    meta(a5, a10, zero, map[string]state.Clock{"title": a10}, nil), b: note(1, "v", "x", seen7),
			c: update(1, map[int]changeset.Value{1: txt("t")}, map[int]changeset.Value{1: txt("u")}), cl: b20,
			base: note(1, "u", "x", seen7), ins: a5, wmax: b20,
			cells:     map[string]state.Clock{"title": b20},
			conflicts: []string{`cell ["title"] b>a`},
		},
		{
			name: "an update older than its cell loses and is logged",
			m:    meta(a5, b20, zero, map[string]state.Clock{"title": b20}, nil), b: note(1, "v", "x", seen7),
			c: update(1, map[int]changeset.Value{1: txt("t")}, map[int]changeset.Value{1: txt("u")}), cl: a10,
			base: note(1, "v", "x", seen7), ins: a5, wmax: b20,
			cells:     map[string]state.Clock{"title": b20},
			conflicts: []string{`cell ["title"] b>a`},
		},
		{
			name: "an update already applied (its clock is the cell's) changes nothing",
			m:    meta(a5, b20, zero, map[string]state.Clock{"title": b20}, nil), b: note(1, "u", "x", seen7),
			c: update(1, map[int]changeset.Value{1: txt("t")}, map[int]changeset.Value{1: txt("u")}), cl: b20,
			base: note(1, "u", "x", seen7), ins: a5, wmax: b20,
			cells: map[string]state.Clock{"title": b20},
		},
		{
			name: "a clock tie on HLC is broken by device id: the larger wins",
			m:    meta(a5, a10, zero, map[string]state.Clock{"title": a10}, nil), b: note(1, "v", "x", seen7),
			c: update(1, map[int]changeset.Value{1: txt("t")}, map[int]changeset.Value{1: txt("u")}), cl: b10,
			base: note(1, "u", "x", seen7), ins: a5, wmax: b10,
			cells:     map[string]state.Clock{"title": b10},
			conflicts: []string{`cell ["title"] b>a`},
		},
		{
			name: "a clock tie on HLC is broken by device id: the smaller loses",
			m:    meta(a5, b10, zero, map[string]state.Clock{"title": b10}, nil), b: note(1, "v", "x", seen7),
			c: update(1, map[int]changeset.Value{1: txt("t")}, map[int]changeset.Value{1: txt("u")}), cl: a10,
			base: note(1, "v", "x", seen7), ins: a5, wmax: b10,
			cells:     map[string]state.Clock{"title": b10},
			conflicts: []string{`cell ["title"] b>a`},
		},
		{
			name: "concurrent updates of different columns both survive",
			m:    meta(a5, b20, zero, map[string]state.Clock{"title": b20}, nil), b: note(1, "u", "x", seen7),
			c: update(1, map[int]changeset.Value{2: txt("x")}, map[int]changeset.Value{2: txt("y")}), cl: a10,
			base: note(1, "u", "y", seen7), ins: a5, wmax: b20,
			cells: map[string]state.Clock{"title": b20, "body": a10},
		},
		{
			name: "an update of a local column is ignored",
			m:    meta(a5, a5, zero, nil, nil), b: note(1, "t", "x", seen7),
			c: update(1, map[int]changeset.Value{3: seen7}, map[int]changeset.Value{3: changeset.Int(9)}), cl: b20,
			base: note(1, "t", "x", seen7), ins: a5, wmax: b20,
		},
		{
			name: "an update of a row whose insert has not arrived keeps its values as an incomplete row",
			c:    update(1, map[int]changeset.Value{1: txt("t")}, map[int]changeset.Value{1: txt("u")}), cl: b20,
			dead: []changeset.Value{changeset.Int(1), txt("u"), undef, undef}, wmax: b20,
			cells: map[string]state.Clock{"title": b20},
		},
		{
			name: "an update older than the row's delete stays dead and is logged",
			m:    meta(a5, a5, b20, nil, note(1, "t", "x", seen7)),
			c:    update(1, map[int]changeset.Value{1: txt("t")}, map[int]changeset.Value{1: txt("u")}), cl: a10,
			dead: note(1, "u", "x", seen7), ins: a5, wmax: a10, delClock: b20,
			cells:     map[string]state.Clock{"title": a10},
			conflicts: []string{`edit-deleted ["title"] b>a`},
		},
		{
			name: "an update newer than the row's delete brings it back with its last values",
			m:    meta(a5, a5, a10, nil, note(1, "t", "x", seen7)),
			c:    update(1, map[int]changeset.Value{1: txt("t")}, map[int]changeset.Value{1: txt("u")}), cl: b20,
			base: note(1, "u", "x", seen7), ins: a5, wmax: b20, delClock: a10,
			cells: map[string]state.Clock{"title": b20},
		},
		{
			name: "an informed delete (its old row is the current one) is no conflict",
			m:    meta(a5, a5, zero, nil, nil), b: note(1, "t", "x", seen7),
			c: del(note(1, "t", "x", null)), cl: b20,
			dead: note(1, "t", "x", seen7), ins: a5, wmax: a5, delClock: b20,
		},
		{
			name: "a delete that had not seen every edit is logged with the row",
			m:    meta(a5, a10, zero, map[string]state.Clock{"body": a10}, nil), b: note(1, "t", "y", seen7),
			c: del(note(1, "t", "x", null)), cl: b20,
			dead: note(1, "t", "y", seen7), ins: a5, wmax: a10, delClock: b20,
			cells:     map[string]state.Clock{"body": a10},
			conflicts: []string{`deleted ["id","title","body","seen"] b>a`},
		},
		{
			name: "a delete older than the row's latest write loses: the row stays",
			m:    meta(a5, b20, zero, map[string]state.Clock{"title": b20}, nil), b: note(1, "u", "x", seen7),
			c: del(note(1, "t", "x", null)), cl: a10,
			base: note(1, "u", "x", seen7), ins: a5, wmax: b20, delClock: a10,
			cells:     map[string]state.Clock{"title": b20},
			conflicts: []string{`delete-lost ["id","title","body","seen"] b>a`},
		},
		{
			name: "a delete already seen (or an older one) changes nothing",
			m:    meta(a5, a5, b20, nil, note(1, "t", "x", seen7)),
			c:    del(note(1, "t", "x", null)), cl: a10,
			noop: true,
		},
		{
			name: "a delete of a row never seen keeps its values",
			c:    del(note(1, "t", "x", null)), cl: b20,
			dead: note(1, "t", "x", null), delClock: b20,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var before *state.RowMeta
			if tc.m != nil {
				before = copyMeta(tc.m)
				before.Dead = tc.m.Dead
			}
			o, err := decide(tbl, tc.c, tc.cl, state.Clock{}, tc.m, tc.b)
			if err != nil {
				t.Fatal(err)
			}
			if tc.m != nil && (!metaEqual(tc.m, before) || !maps.Equal(tc.m.Cells, before.Cells)) {
				t.Errorf("decide changed its input metadata: %+v, was %+v", tc.m, before)
			}
			if tc.noop {
				if o != nil {
					t.Fatalf("got an outcome %+v, want none", o)
				}
				return
			}
			if o == nil {
				t.Fatal("no outcome")
			}
			if !sameRow(o.base, tc.base) {
				t.Errorf("base row %v, want %v", o.base, tc.base)
			}
			var dead []changeset.Value
			if o.meta.Dead != nil {
				if dead, err = changeset.DecodeKey(o.meta.Dead); err != nil {
					t.Fatal(err)
				}
			}
			if !sameRow(dead, tc.dead) {
				t.Errorf("kept values %v, want %v", dead, tc.dead)
			}
			if o.meta.Ins != tc.ins || o.meta.WMax != tc.wmax || o.meta.Del != tc.delClock {
				t.Errorf("clocks ins %v wmax %v del %v, want %v %v %v", o.meta.Ins, o.meta.WMax, o.meta.Del, tc.ins, tc.wmax, tc.delClock)
			}
			if len(o.meta.Cells)+len(tc.cells) > 0 && !maps.Equal(o.meta.Cells, tc.cells) {
				t.Errorf("cell clocks %v, want %v", o.meta.Cells, tc.cells)
			}
			var got []string
			for _, c := range o.conflicts {
				got = append(got, fmt.Sprintf("%s %s %s>%s", c.Kind, c.Cols, c.WinnerDev, c.LoserDev))
			}
			if !slices.Equal(got, tc.conflicts) {
				t.Errorf("conflicts %q, want %q", got, tc.conflicts)
			}
		})
	}
}
