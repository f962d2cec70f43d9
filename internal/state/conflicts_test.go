package state

import (
	"encoding/json"
	"slices"
	"testing"

	"github.com/rowdrop/rowdrop/internal/changeset"
)

// A conflict log written before content ids (one entry per cell, no cid
// column) is upgraded on open: the cells of one row and pair of edits
// become one entry that keeps the first one's number.
func TestConflictLogUpgrade(t *testing.T) {
	dir := t.TempDir()
	d, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	c := d.Conn()
	mustExec(t, c, "DROP INDEX rowdrop_conflicts_cid")
	mustExec(t, c, "ALTER TABLE rowdrop_conflicts DROP COLUMN cid")
	mustExec(t, c, "ALTER TABLE rowdrop_conflicts DROP COLUMN dismissed_ms")
	enc := func(s string) []byte { return changeset.EncodeKey([]changeset.Value{changeset.Text(s)}) }
	for _, r := range []struct {
		col, win, lose string
		loserHLC       int64
	}{{"title", "B", "A", 4}, {"updated_at", "2", "1", 4}, {"body", "b", "a", 3}} {
		mustExec(t, c, `INSERT INTO rowdrop_conflicts(at_ms,kind,tbl,pk,pk_text,cols,winner,winner_dev,winner_hlc,loser,loser_dev,loser_hlc)
			VALUES(1,'cell','notes',X'01','1',?,?,'b',9,?,'a',?)`, `["`+r.col+`"]`, enc(r.win), enc(r.lose), r.loserHLC)
	}
	d.Close()
	if d, err = Open(dir); err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	cs, err := d.Conflicts(ConflictFilter{})
	if err != nil || len(cs) != 2 {
		t.Fatalf("after upgrade: %+v %v", cs, err)
	}
	slices.SortFunc(cs, func(a, b *Conflict) int { return int(a.Seq - b.Seq) })
	var cols []string
	if err := json.Unmarshal([]byte(cs[0].Cols), &cols); err != nil || !slices.Equal(cols, []string{"title", "updated_at"}) || cs[0].Seq != 1 {
		t.Fatalf("the two cells of one pair of edits are not one entry #1: %+v %v", cs[0], cols)
	}
	if w, err := changeset.DecodeKey(cs[0].Winner); err != nil || len(w) != 2 || string(w[1].Bytes) != "2" {
		t.Fatalf("merged winner values: %v %v", w, err)
	}
	if cs[0].ID == "" || cs[0].ID == cs[1].ID || cs[0].ID != ConflictID(cs[0]) {
		t.Fatalf("ids: %q %q", cs[0].ID, cs[1].ID)
	}
}
