package scenario_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"zombiezen.com/go/sqlite"
	"zombiezen.com/go/sqlite/sqlitex"

	importer "github.com/rowdrop/rowdrop/import"
	"github.com/rowdrop/rowdrop/internal/rdfile"
	"github.com/rowdrop/rowdrop/scenario"
)

// Delivery rules, on real databases and folders: each device has its own
// folder and the test is the sync tool (the scenario harness), so duplicates, order,
// gaps and truncation are chosen, not hoped for.

const deliverySchema = `
CREATE TABLE notes(id TEXT PRIMARY KEY, title TEXT, n INTEGER);
`

func newWorld(t *testing.T, names ...string) (*scenario.World, []*scenario.Device) {
	t.Helper()
	w := scenario.NewWorld(t, deliverySchema)
	var ds []*scenario.Device
	for i, n := range names {
		ds = append(ds, w.AddDevice(scenario.Options{Name: n, Initialised: true, WAL: i%2 == 0}))
	}
	w.Tick(1000)
	return w, ds
}

// publish makes d write one row and export it as its next file.
func publish(w *scenario.World, d *scenario.Device, id, title string) uint64 {
	w.T.Helper()
	d.Exec("INSERT INTO notes VALUES(?,?,0) ON CONFLICT(id) DO UPDATE SET title=excluded.title, n=n+1", id, title)
	r := d.Export()
	if r.Seq == 0 {
		w.T.Fatalf("%s: nothing exported", d.Name)
	}
	w.Tick(1000)
	return r.Seq
}

func files(t *testing.T, d *scenario.Device) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, f := range d.Status().Files {
		out[f.Path] = f.Status
	}
	return out
}

func conflictCount(d *scenario.Device) int { return len(d.Conflicts()) }

// The same file delivered twice - before and after it was applied - is
// applied once.
func TestDuplicateDeliveryIsNoOp(t *testing.T) {
	w, ds := newWorld(t, "a", "b", "c")
	a, b, c := ds[0], ds[1], ds[2]
	publish(w, a, "n1", "one")
	publish(w, c, "n1", "concurrent") // a conflict, so a re-apply would log it again
	w.DeliverAll(a, b)
	w.DeliverAll(a, b) // twice before the import
	w.DeliverAll(c, b)
	if r := b.Import(); r.Applied != 2 {
		t.Fatalf("first import applied %d files, want 2", r.Applied)
	}
	before, nc := b.Dump(), conflictCount(b)
	w.DeliverAll(a, b) // again after
	w.DeliverAll(c, b)
	if r := b.Import(); r.Applied != 0 || r.Changes != 0 {
		t.Fatalf("re-delivered files applied again: %+v", r)
	}
	if b.Dump() != before || conflictCount(b) != nc {
		t.Fatalf("re-delivery changed something")
	}
	if r := b.Export(); r.Seq != 0 {
		t.Fatalf("a merge was re-exported as a local change: %+v", r)
	}
}

// Even when the applied cursor is rewound (the design never does this: the
// cursor commits with the merged base, and a crash between the live and
// base commits re-applies from unchanged metadata), applying the same
// changes again changes no data and exports nothing: the merge is
// idempotent on the data, not just the cursor. (The conflict log is not:
// an old insert re-applied to a row that has since died is reported as
// lost to the delete, because row metadata keeps only the latest insert
// clock. That cannot happen through Import, whose cursor is exact.)
func TestReapplyIsIdempotent(t *testing.T) {
	w, ds := newWorld(t, "a", "b", "c")
	a, b, c := ds[0], ds[1], ds[2]
	publish(w, a, "n1", "one")
	publish(w, c, "n1", "concurrent")
	publish(w, a, "n1", "two")
	a.Exec("DELETE FROM notes WHERE id='n1'")
	a.Export()
	w.Tick(1000)
	publish(w, c, "n2", "x")
	w.DeliverAll(a, b)
	w.DeliverAll(c, b)
	b.Import()
	before := b.Dump()
	b.Reopen(func() {
		conn, err := sqlite.OpenConn(filepath.Join(b.State, "base.db"), sqlite.OpenReadWrite)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		if err := sqlitex.ExecuteTransient(conn, "UPDATE rowdrop_devices SET applied=0", nil); err != nil {
			t.Fatal(err)
		}
	})
	r := b.Import()
	if r.Applied == 0 {
		t.Fatalf("rewound cursor: nothing re-applied")
	}
	if got := b.Dump(); got != before {
		t.Fatalf("re-applying changed the data:\nbefore:\n%s\nafter:\n%s", before, got)
	}
	if r := b.Export(); r.Seq != 0 {
		t.Fatalf("re-applied merge exported as a local change: %+v", r)
	}
}

// Files of different devices arrive in any order (each device's own in
// sequence): every order gives the same result.
func TestOutOfOrderAcrossDevices(t *testing.T) {
	w, ds := newWorld(t, "a", "b", "c", "x", "y", "z")
	a, b, c := ds[0], ds[1], ds[2]
	publish(w, a, "n1", "a1")
	publish(w, b, "n1", "b1")
	publish(w, c, "n2", "c1")
	publish(w, a, "n2", "a2")
	c.Exec("DELETE FROM notes WHERE id='n2'")
	c.Export()
	w.Tick(1000)
	publish(w, b, "n3", "b2")
	orders := [][]*scenario.Device{{a, b, c}, {c, b, a}, {b, c, a}}
	var want string
	for i, order := range orders {
		dst := ds[3+i]
		for _, from := range order {
			w.DeliverAll(from, dst)
			dst.Import()
		}
		got := dst.Dump()
		if i == 0 {
			want = got
		} else if got != want {
			t.Fatalf("order %d differs:\n%s\nwant:\n%s", i, got, want)
		}
	}
	// File by file, interleaving devices, each device's later files
	// delivered before its earlier ones (they wait for them).
	dst := w.AddDevice(scenario.Options{Name: "w", Initialised: true})
	for _, step := range []struct {
		from *scenario.Device
		seq  uint64
	}{{c, 2}, {b, 2}, {a, 2}, {c, 1}, {a, 1}, {b, 1}} {
		w.Deliver(step.from, step.seq, dst)
		dst.Import()
	}
	if got := dst.Dump(); got != want {
		t.Fatalf("file-by-file order differs:\n%s\nwant:\n%s", got, want)
	}
	w.Quiesce(4)
	w.AssertConverged()
	if a.Dump() != want {
		t.Fatalf("the sources themselves ended elsewhere:\n%s\nwant:\n%s", a.Dump(), want)
	}
}

// A gap in one device's sequence holds back only that device's later
// files; it is reported in Status().Files; other devices' files apply.
func TestGapHoldsOnlyThatDevice(t *testing.T) {
	w, ds := newWorld(t, "a", "b", "c")
	a, b, c := ds[0], ds[1], ds[2]
	s1 := publish(w, a, "n1", "a1")
	s2 := publish(w, a, "n2", "a2")
	s3 := publish(w, a, "n3", "a3")
	publish(w, b, "m1", "b1")
	w.Deliver(a, s2, c)
	w.Deliver(a, s3, c)
	w.DeliverAll(b, c)
	r := c.Import()
	if r.Applied != 1 || r.Waiting != 1 {
		t.Fatalf("import with a gap: %+v, want 1 applied (b's) and 1 waiting", r)
	}
	if c.Value("SELECT title FROM notes WHERE id='m1'") != "b1" {
		t.Fatalf("the other device's file was not applied")
	}
	if c.Value("SELECT count(*) FROM notes WHERE id IN ('n1','n2','n3')") != "0" {
		t.Fatalf("files after the gap were applied")
	}
	missing := rdfile.RelPath(a.ID, s1)
	st := files(t, c)
	if st[missing] != importer.StatusWaiting {
		t.Fatalf("the gap is not reported in status: %+v", c.Status().Files)
	}
	var reason string
	for _, f := range c.Status().Files {
		if f.Path == missing {
			reason = f.Reason
		}
	}
	if !strings.Contains(reason, a.ID) {
		t.Errorf("gap reason does not name the device: %q", reason)
	}
	for _, d := range c.Status().Devices {
		if d.ID == a.ID && (d.Applied != 0 || d.Pending != 2) {
			t.Errorf("device status for a: %+v", d)
		}
	}
	w.Deliver(a, s1, c)
	if r := c.Import(); r.Applied != 3 || r.Waiting != 0 {
		t.Fatalf("after the gap filled: %+v", r)
	}
	if got := c.Value("SELECT group_concat(title) FROM (SELECT title FROM notes ORDER BY id)"); got != "b1,a1,a2,a3" {
		t.Fatalf("rows after the gap filled: %s", got)
	}
	if len(c.Status().Files) != 0 {
		t.Fatalf("status still reports files: %+v", c.Status().Files)
	}
}

// A truncated file (a download in progress) waits, is reported, and is
// applied once it is complete; at every truncation length.
func TestTruncatedFileWaitsThenApplies(t *testing.T) {
	w, ds := newWorld(t, "a", "b")
	a, b := ds[0], ds[1]
	s1 := publish(w, a, "n1", "first")
	s2 := publish(w, a, "n2", "second")
	fi, err := os.Stat(a.FilePath(s1))
	if err != nil {
		t.Fatal(err)
	}
	size := int(fi.Size())
	w.Deliver(a, s2, b)
	rel := rdfile.RelPath(a.ID, s1)
	for _, n := range []int{0, 3, 4, 10, 11, size / 2, size - 33, size - 1} {
		if n < 0 || n >= size {
			continue
		}
		w.DeliverPartial(a, s1, b, n)
		r := b.Import()
		if r.Applied != 0 || r.Waiting != 1 || r.Broken != 0 || r.Held != 0 {
			t.Fatalf("truncated at %d of %d: %+v, want waiting", n, size, r)
		}
		if st := files(t, b)[rel]; st != importer.StatusWaiting {
			t.Fatalf("truncated at %d: status %q, want waiting (%+v)", n, st, b.Status().Files)
		}
		if b.Value("SELECT count(*) FROM notes") != "0" {
			t.Fatalf("truncated at %d: something was applied", n)
		}
	}
	w.Deliver(a, s1, b)
	if r := b.Import(); r.Applied != 2 || r.Waiting != 0 {
		t.Fatalf("completed file: %+v", r)
	}
	if got := b.Value("SELECT group_concat(title) FROM (SELECT title FROM notes ORDER BY id)"); got != "first,second" {
		t.Fatalf("rows: %s", got)
	}
	if len(b.Status().Files) != 0 {
		t.Fatalf("status still reports files: %+v", b.Status().Files)
	}
}

// A file whose payload is damaged in the middle (same length, bad
// checksum) is not applied; replaced by the good copy, it is.
func TestCorruptPayloadWaitsForGoodCopy(t *testing.T) {
	w, ds := newWorld(t, "a", "b")
	a, b := ds[0], ds[1]
	s1 := publish(w, a, "n1", "first")
	data, err := os.ReadFile(a.FilePath(s1))
	if err != nil {
		t.Fatal(err)
	}
	bad := append([]byte(nil), data...)
	bad[len(bad)-5] ^= 0xff
	dst := filepath.Join(b.Folder, a.ID, rdfile.FileName(s1))
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, bad, 0o644); err != nil {
		t.Fatal(err)
	}
	if r := b.Import(); r.Applied != 0 {
		t.Fatalf("damaged file applied: %+v", r)
	}
	if st := files(t, b)[rdfile.RelPath(a.ID, s1)]; st == "" {
		t.Fatalf("damaged file not reported: %+v", b.Status().Files)
	}
	w.Deliver(a, s1, b)
	if r := b.Import(); r.Applied != 1 {
		t.Fatalf("good copy not applied: %+v", r)
	}
}
