package scenario_test

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/rowdrop/rowdrop/internal/rdfile"
	"github.com/rowdrop/rowdrop/scenario"
)

// The simulated transport itself: whole, partial and repeated deliveries
// land where the importer looks, with the bytes of the original.
func TestTransport(t *testing.T) {
	w := scenario.NewWorld(t, "CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT);")
	a := w.AddDevice(scenario.Options{Name: "a", Initialised: true})
	b := w.AddDevice(scenario.Options{Name: "b", Initialised: true})
	a.Exec("INSERT INTO t VALUES(1,'x')")
	if r := a.Export(); r.Seq != 1 {
		t.Fatalf("export: %+v", r)
	}
	if got := a.Published(); len(got) != 1 || got[0] != 1 {
		t.Fatalf("published: %v", got)
	}
	orig, err := os.ReadFile(a.FilePath(1))
	if err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(b.Folder, a.ID, rdfile.FileName(1))
	w.DeliverPartial(a, 1, b, 10)
	if got, _ := os.ReadFile(dst); !bytes.Equal(got, orig[:10]) || w.Has(b, a, 1) {
		t.Fatalf("partial delivery: %d bytes, Has=%v", len(got), w.Has(b, a, 1))
	}
	if r := b.Import(); r.Waiting != 1 || r.Applied != 0 {
		t.Fatalf("import of a partial file: %+v", r)
	}
	w.Deliver(a, 1, b)
	w.Deliver(a, 1, b)
	if got, _ := os.ReadFile(dst); !bytes.Equal(got, orig) || !w.Has(b, a, 1) {
		t.Fatalf("whole delivery differs from the original")
	}
	ents, _ := os.ReadDir(filepath.Dir(dst))
	if len(ents) != 1 {
		t.Fatalf("delivery left extra files: %v", ents)
	}
	if r := b.Import(); r.Applied != 1 {
		t.Fatalf("import: %+v", r)
	}
	pf := a.ReadPublished()
	if len(pf) != 1 || pf[0].Header.Seq != 1 || len(pf[0].Changes) != 1 {
		t.Fatalf("decoded: %+v", pf)
	}
	w.Quiesce(3)
	w.AssertConverged()
	if b.Value("SELECT v FROM t WHERE id=1") != "x" {
		t.Fatalf("not merged: %s", b.Dump())
	}
}

// A seeded test replays only if its devices get the same ids when rerun
// (ids break clock ties and order files): they are derived from the test's
// name and the device's, whatever the test is called, and differ between
// subtests (one per seed) and between devices.
func TestDeviceIDsFollowTestName(t *testing.T) {
	const schema = "CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT);"
	id := func(t *testing.T, name string) string {
		return scenario.NewWorld(t, schema).AddDevice(scenario.Options{Name: name}).ID
	}
	a, again, b := id(t, "a"), id(t, "a"), id(t, "b")
	if a == "" || a != again {
		t.Fatalf("device a of one test got ids %q and %q: a rerun would not replay", a, again)
	}
	if a == b {
		t.Fatalf("devices a and b share the id %q", a)
	}
	var sub1, sub1again, sub2 string
	t.Run("1", func(t *testing.T) { sub1, sub1again = id(t, "a"), id(t, "a") })
	t.Run("2", func(t *testing.T) { sub2 = id(t, "a") })
	if sub1 != sub1again {
		t.Fatalf("device a of subtest 1 got ids %q and %q", sub1, sub1again)
	}
	if sub1 == a || sub1 == sub2 {
		t.Fatalf("each subtest (seed) must give device a its own id: top %q, 1 %q, 2 %q", a, sub1, sub2)
	}
}
