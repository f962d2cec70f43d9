package scenario_test

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"rowdrop/internal/rdfile"
)

// A snapshot whose checksum verifies but whose payload is not even a
// database (a joiner calls it broken) does not count as coverage for
// collection; a real one does.
func TestCollectIgnoresUnusableSnapshot(t *testing.T) {
	w, ds := gcWorld(t, 2)
	a, b := ds[0], ds[1]
	for i := 0; i < 4; i++ {
		a.Exec("INSERT INTO notes VALUES(?,?,?,?)", fmt.Sprintf("a%d", i), "a", "x", i)
		a.Export()
	}
	w.MirrorAll()
	b.Import()
	w.MirrorAll()
	// b's directory (in a's copy of the folder) gets a checksummed garbage
	// "snapshot" claiming all of a's files.
	pub := a.Published()
	h := rdfile.Header{Kind: rdfile.KindSnapshot, Device: b.ID, Seq: 1, HLC: uint64(w.NowMS) << 16, CreatedMS: w.NowMS,
		Seen: map[string]uint64{a.ID: pub[len(pub)-1]}}
	if _, err := rdfile.Build(filepath.Join(a.Folder, b.ID, rdfile.SnapshotName(1)), h, strings.NewReader(strings.Repeat("garbage ", 100))); err != nil {
		t.Fatal(err)
	}
	r := a.Collect(false)
	t.Logf("plan: snapshot %q bound %d deleted %d problems %q", r.Plan.Snapshot, r.Plan.Bound, len(r.Deleted), r.Plan.Problems)
	if len(r.Deleted) > 0 {
		t.Fatalf("a deleted %d changesets on the strength of a snapshot no device can use", len(r.Deleted))
	}
	w.Tick(1000)
	a.Snapshot()
	w.MirrorAll()
	b.Import()
	w.MirrorAll()
	if r := a.Collect(false); len(r.Deleted) == 0 {
		t.Fatalf("a real snapshot should let a collect: plan %+v", r.Plan)
	}
}
