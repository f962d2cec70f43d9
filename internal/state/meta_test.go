package state

import (
	"path/filepath"
	"reflect"
	"testing"

	"zombiezen.com/go/sqlite"
	"zombiezen.com/go/sqlite/sqlitex"
)

// A base copy written with one rowdrop_cells row per cell clock is
// upgraded on open: the clocks move into their rows, the table goes, and
// nothing else changes.
func TestUpgradeInlinesCellClocks(t *testing.T) {
	dir := t.TempDir()
	conn, err := sqlite.OpenConn(filepath.Join(dir, "base.db"))
	if err != nil {
		t.Fatal(err)
	}
	err = sqlitex.ExecuteScript(conn, `
CREATE TABLE rowdrop_rows(
	tbl TEXT NOT NULL, pk BLOB NOT NULL,
	ins INTEGER NOT NULL DEFAULT 0, ins_dev TEXT NOT NULL DEFAULT '',
	wmax INTEGER NOT NULL DEFAULT 0, wmax_dev TEXT NOT NULL DEFAULT '',
	del INTEGER NOT NULL DEFAULT 0, del_dev TEXT NOT NULL DEFAULT '',
	dead BLOB,
	PRIMARY KEY(tbl, pk)) WITHOUT ROWID;
CREATE TABLE rowdrop_cells(
	tbl TEXT NOT NULL, pk BLOB NOT NULL, col TEXT NOT NULL,
	hlc INTEGER NOT NULL, dev TEXT NOT NULL,
	PRIMARY KEY(tbl, pk, col)) WITHOUT ROWID;
INSERT INTO rowdrop_rows(tbl,pk,ins,ins_dev,wmax,wmax_dev) VALUES('notes',x'01',10,'aaaa',30,'bbbb');
INSERT INTO rowdrop_rows(tbl,pk,ins,ins_dev,wmax,wmax_dev) VALUES('notes',x'02',10,'aaaa',10,'aaaa');
INSERT INTO rowdrop_cells VALUES('notes',x'01','body',30,'bbbb');
INSERT INTO rowdrop_cells VALUES('notes',x'01','title',20,'cccc');
`, nil)
	if err != nil {
		t.Fatal(err)
	}
	conn.Close()
	for round := 0; round < 2; round++ { // the second open finds nothing to do
		d, err := Open(dir)
		if err != nil {
			t.Fatalf("open %d: %v", round, err)
		}
		m, err := d.NewMeta()
		if err != nil {
			t.Fatal(err)
		}
		got, err := m.Get("notes", []byte{1})
		if err != nil {
			t.Fatal(err)
		}
		want := map[string]Clock{"body": {30, "bbbb"}, "title": {20, "cccc"}}
		if got == nil || !reflect.DeepEqual(got.Cells, want) || got.WMax != (Clock{30, "bbbb"}) || got.Ins != (Clock{10, "aaaa"}) {
			t.Fatalf("open %d: row 1 metadata %+v, want cells %v", round, got, want)
		}
		other, err := m.Get("notes", []byte{2})
		if err != nil || other == nil || other.Cells != nil {
			t.Fatalf("open %d: row 2 metadata %+v, %v: want no cells", round, other, err)
		}
		gone := true
		sqlitex.ExecuteTransient(d.Conn(), "SELECT 1 FROM sqlite_master WHERE name='rowdrop_cells'", &sqlitex.ExecOptions{ResultFunc: func(*sqlite.Stmt) error {
			gone = false
			return nil
		}})
		if !gone {
			t.Fatalf("open %d: rowdrop_cells still there", round)
		}
		m.Close()
		d.Close()
	}
}

// Cell clocks round-trip, implied ones (not later than the insert) are
// dropped, and malformed bytes are refused rather than misread.
func TestCellClocksEncoding(t *testing.T) {
	ins := Clock{100, "aaaa"}
	cells := map[string]Clock{"b": {150, "dddd"}, "a": {200, "cccc"}, "old": {100, "aaaa"}, "older": {50, "zzzz"}}
	b := encodeCells(cells, ins, Clock{})
	got, lin, err := decodeCells(b)
	if err != nil || !lin.IsZero() {
		t.Fatal(err, lin)
	}
	if want := map[string]Clock{"a": {200, "cccc"}, "b": {150, "dddd"}}; !reflect.DeepEqual(got, want) {
		t.Fatalf("round trip: %v, want %v", got, want)
	}
	if encodeCells(map[string]Clock{"x": {1, "a"}}, ins, Clock{100, "aaaa"}) != nil {
		t.Fatal("only implied cells and a lineage equal to the insert: want nil")
	}
	for i := 0; i < len(b); i++ {
		if _, _, err := decodeCells(b[:i]); err == nil && i > 0 {
			// Cut at an entry boundary it is a valid shorter list; anywhere
			// else it must fail.
			if _, _, err2 := decodeCells(b[i:]); err2 != nil {
				t.Fatalf("cut at %d decoded as a prefix but the rest does not decode: %v", i, err2)
			}
		}
	}
	// A lineage earlier than the insert comes first, under an empty name;
	// alone it is stored too, and an old blob (without it) still decodes.
	lb := encodeCells(cells, ins, Clock{40, "eeee"})
	got, lin, err = decodeCells(lb)
	if err != nil || lin != (Clock{40, "eeee"}) || len(got) != 2 {
		t.Fatalf("with a lineage: %v %v %v", got, lin, err)
	}
	if _, lin, err := decodeCells(encodeCells(nil, ins, Clock{40, "eeee"})); err != nil || lin != (Clock{40, "eeee"}) {
		t.Fatalf("a lineage alone: %v %v", lin, err)
	}
	for _, bad := range [][]byte{{0}, {5, 'a'}, {1, 'a'}, {1, 'a', 1, 5, 'x'}, {1, 'a', 0xff}, append(append([]byte{}, b...), b...),
		append(append([]byte{}, b...), lb...), // a lineage entry not first
		{0, 0, 0},                             // a zero lineage
	} {
		if m, _, err := decodeCells(bad); err == nil {
			t.Errorf("%x decoded as %v, want an error", bad, m)
		}
	}
}
