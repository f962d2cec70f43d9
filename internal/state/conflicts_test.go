package state

import (
	"bytes"
	"encoding/json"
	"slices"
	"testing"

	"zombiezen.com/go/sqlite"
	"zombiezen.com/go/sqlite/sqlitex"

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

// A conflict with a big side (a 3 MiB BLOB) given as values is stored
// apart in rowdrop_conflict_values, reads back as the same encoded side,
// merges its columns into an entry of the same id and is pruned with its
// entry; small sides stay in the entry's row. A log from before the
// big-side columns is upgraded on open.
func TestConflictBigSide(t *testing.T) {
	dir := t.TempDir()
	d, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	mustExec(t, d.Conn(), "ALTER TABLE rowdrop_conflicts DROP COLUMN winner_ext")
	mustExec(t, d.Conn(), "ALTER TABLE rowdrop_conflicts DROP COLUMN loser_ext")
	d.Close()
	if d, err = Open(dir); err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	big := make([]byte, 3<<20)
	for i := range big {
		big[i] = byte(i * 7)
	}
	winner := []changeset.Value{changeset.Blob(big)}
	loser := []changeset.Value{changeset.Text("small")}
	c := &Conflict{AtMS: 5, Kind: "local-kept", Table: "files", PK: changeset.EncodeKey([]changeset.Value{changeset.Int(1)}), PKText: "1",
		Cols: `["data"]`, WinnerValues: winner, WinnerDev: "local", LoserValues: loser, LoserDev: "a", LoserHLC: 9}
	if err := d.AddConflict(c); err != nil {
		t.Fatal(err)
	}
	count := func(q string) int {
		n := -1
		if err := sqlitex.ExecuteTransient(d.Conn(), q, &sqlitex.ExecOptions{ResultFunc: func(s *sqlite.Stmt) error { n = s.ColumnInt(0); return nil }}); err != nil {
			t.Fatal(err)
		}
		return n
	}
	if n := count("SELECT count(*) FROM rowdrop_conflict_values"); n != 1 {
		t.Fatalf("%d big sides stored apart, want 1 (the winner)", n)
	}
	if n := count("SELECT length(winner) FROM rowdrop_conflicts"); n != 0 {
		t.Fatalf("the entry's own winner column holds %d bytes, want 0 (kept apart)", n)
	}
	cs, err := d.Conflicts(ConflictFilter{})
	if err != nil || len(cs) != 1 {
		t.Fatalf("conflicts: %+v %v", cs, err)
	}
	if !bytes.Equal(cs[0].Winner, changeset.EncodeKey(winner)) || !bytes.Equal(cs[0].Loser, changeset.EncodeKey(loser)) {
		t.Fatalf("sides read back differ: winner %d bytes, loser %q", len(cs[0].Winner), cs[0].Loser)
	}
	// The same two writes on another cell: one entry, both columns.
	c2 := &Conflict{AtMS: 6, Kind: "local-kept", Table: "files", PK: c.PK, PKText: "1", Cols: `["name"]`,
		WinnerValues: []changeset.Value{changeset.Text("n2")}, WinnerDev: "local", LoserValues: []changeset.Value{changeset.Text("n1")}, LoserDev: "a", LoserHLC: 9}
	if err := d.AddConflict(c2); err != nil {
		t.Fatal(err)
	}
	cs, err = d.Conflicts(ConflictFilter{})
	if err != nil || len(cs) != 1 || cs[0].Cols != `["data","name"]` {
		t.Fatalf("after a second cell: %+v %v", cs, err)
	}
	w, err := changeset.DecodeKey(cs[0].Winner)
	if err != nil || len(w) != 2 || !bytes.Equal(w[0].Bytes, big) || string(w[1].Bytes) != "n2" {
		t.Fatalf("merged winner: %d values, %v", len(w), err)
	}
	if n := count("SELECT count(*) FROM rowdrop_conflict_values"); n != 0 {
		t.Fatalf("%d big sides left apart after the entry was rewritten inline", n)
	}
	c3 := &Conflict{AtMS: 7, Kind: "cell", Table: "files", PK: changeset.EncodeKey([]changeset.Value{changeset.Int(2)}), PKText: "2", Cols: `["data"]`,
		WinnerValues: winner, WinnerDev: "b", WinnerHLC: 3, LoserValues: winner, LoserDev: "a", LoserHLC: 2}
	if err := d.AddConflict(c3); err != nil {
		t.Fatal(err)
	}
	if n := count("SELECT count(*) FROM rowdrop_conflict_values"); n != 2 {
		t.Fatalf("%d big sides stored apart, want 2", n)
	}
	if n, err := d.PruneConflicts(8); err != nil || n != 2 {
		t.Fatalf("pruned %d, %v", n, err)
	}
	if n := count("SELECT count(*) FROM rowdrop_conflict_values"); n != 0 {
		t.Fatalf("%d big sides left after pruning their entries", n)
	}
}
