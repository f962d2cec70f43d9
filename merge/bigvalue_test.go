package merge

import (
	"bytes"
	"testing"

	"github.com/rowdrop/rowdrop/internal/changeset"
	"github.com/rowdrop/rowdrop/internal/state"
)

// An UPDATE whose big old value is read only as its hash
// (changeset.Reader.SumBigOld, as the import stages it) decides exactly
// as the same change read whole: no conflict when the editor had seen
// base's value, a cell conflict when base holds another one, and the same
// base row either way.
func TestDecideBigOldAsHash(t *testing.T) {
	tbl := decideTable(t)
	big := func(b byte) changeset.Value { return changeset.Text(string(bytes.Repeat([]byte{b}, 2<<20))) }
	c := update(1, map[int]changeset.Value{2: big('o')}, map[int]changeset.Value{2: big('n')})
	var buf bytes.Buffer
	w := changeset.NewWriter(&buf)
	if err := w.Write(c); err != nil {
		t.Fatal(err)
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	read := func(sum bool) *changeset.Change {
		r := changeset.NewReader(bytes.NewReader(buf.Bytes()), changeset.Limits{})
		r.SumBigOld(sum)
		c, err := r.Next()
		if err != nil {
			t.Fatal(err)
		}
		if sum && (c.Old[2].Bytes != nil || c.OldSums[2].N != 2<<20) {
			t.Fatalf("old value kept (%d bytes) or not summed (%+v)", len(c.Old[2].Bytes), c.OldSums[2])
		}
		return c
	}
	m := meta(clk(5, "a"), clk(5, "a"), state.Clock{}, map[string]state.Clock{"body": clk(5, "a")}, nil)
	for _, tc := range []struct {
		name      string
		base      changeset.Value
		conflicts int
	}{
		{"the editor saw base's value", big('o'), 0},
		{"base holds a value the editor had not seen", big('x'), 1},
		{"base holds a value of another length", txt("short"), 1},
	} {
		b := note(1, "t", "", changeset.Null())
		b[2] = tc.base
		whole, err := decide(tbl, read(false), clk(20, "b"), state.Clock{}, m, b)
		if err != nil {
			t.Fatal(err)
		}
		hashed, err := decide(tbl, read(true), clk(20, "b"), state.Clock{}, m, b)
		if err != nil {
			t.Fatal(err)
		}
		if len(whole.conflicts) != tc.conflicts || len(hashed.conflicts) != tc.conflicts {
			t.Errorf("%s: %d conflicts read whole, %d read as hash, want %d", tc.name, len(whole.conflicts), len(hashed.conflicts), tc.conflicts)
		}
		for i := range whole.base {
			if !whole.base[i].Equal(hashed.base[i]) {
				t.Errorf("%s: base column %d differs", tc.name, i)
			}
		}
	}
}
