package gc

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/rowdrop/rowdrop/internal/ack"
	"github.com/rowdrop/rowdrop/internal/folder"
	"github.com/rowdrop/rowdrop/internal/rdfile"
)

// Collector unit tests on a real folder: changesets and snapshots are
// real rowdrop files built with rdfile.Build (payloads are arbitrary: the
// collector reads headers and checksums only), acks are real ack.json.

const (
	self = "aaaaaaaaaaaaaaaa"
	devB = "bbbbbbbbbbbbbbbb"
	devC = "cccccccccccccccc"
)

type testFolder struct {
	t   *testing.T
	dir string
}

func newFolder(t *testing.T) *testFolder { return &testFolder{t: t, dir: t.TempDir()} }

// changesets publishes files 1..n of dev.
func (f *testFolder) changesets(dev string, n uint64) {
	f.t.Helper()
	os.MkdirAll(filepath.Join(f.dir, dev), 0o755)
	for s := uint64(1); s <= n; s++ {
		p := filepath.Join(f.dir, dev, rdfile.FileName(s))
		if _, err := os.Stat(p); err == nil {
			continue
		}
		h := rdfile.Header{Device: dev, Install: "i", Seq: s, HLC: s << 16, CreatedMS: 1}
		if _, err := rdfile.Build(p, h, strings.NewReader(strings.Repeat("x", 100))); err != nil {
			f.t.Fatal(err)
		}
	}
}

// snapshot publishes dev's snapshot number seq with clock hlc and the
// given seen vector.
func (f *testFolder) snapshot(dev string, seq, hlc uint64, seen map[string]uint64) string {
	f.t.Helper()
	os.MkdirAll(filepath.Join(f.dir, dev), 0o755)
	p := filepath.Join(f.dir, dev, rdfile.SnapshotName(seq))
	h := rdfile.Header{Kind: rdfile.KindSnapshot, Device: dev, Install: "i", Seq: seq, HLC: hlc, CreatedMS: 1, Seen: seen}
	if _, err := rdfile.Build(p, h, strings.NewReader("not really a database, the collector never opens it")); err != nil {
		f.t.Fatal(err)
	}
	return p
}

func (f *testFolder) ack(dev string, applied map[string]uint64, forgotten ...string) {
	f.t.Helper()
	if forgotten == nil {
		forgotten = []string{}
	}
	if err := folder.New(f.dir, rdfile.Limits{}).WriteAck(&ack.Ack{Device: dev, Install: "i", DeviceName: "n" + dev[:1], WrittenMS: 1_800_000_000_000, Applied: applied, Forgotten: forgotten}); err != nil {
		f.t.Fatal(err)
	}
}

// files lists every file under dev's directory.
func (f *testFolder) files(dev string) []string {
	ents, _ := os.ReadDir(filepath.Join(f.dir, dev))
	var out []string
	for _, e := range ents {
		out = append(out, e.Name())
	}
	return out
}

func (f *testFolder) plan(published uint64, forgotten ...string) *Plan {
	f.t.Helper()
	p, err := Make(Input{Folder: folder.New(f.dir, rdfile.Limits{}), Self: self, Published: published, Forgotten: forgotten})
	if err != nil {
		f.t.Fatal(err)
	}
	return p
}

func (f *testFolder) collect(published uint64, forgotten ...string) *Plan {
	f.t.Helper()
	p := f.plan(published, forgotten...)
	if _, err := Execute(context.Background(), folder.New(f.dir, rdfile.Limits{}), p, nil); err != nil {
		f.t.Fatal(err)
	}
	return p
}

func seqs(p *Plan, kind string) []uint64 {
	var out []uint64
	for _, it := range p.Delete {
		if it.Kind == kind {
			out = append(out, it.Seq)
		}
	}
	return out
}

func mentions(lines []string, s string) bool {
	for _, l := range lines {
		if strings.Contains(l, s) {
			return true
		}
	}
	return false
}

// A typical folder: self published 10, B and C 5 each, both acked all of
// self's files.
func typical(t *testing.T) *testFolder {
	f := newFolder(t)
	f.changesets(self, 10)
	f.changesets(devB, 5)
	f.changesets(devC, 5)
	f.ack(devB, map[string]uint64{self: 10, devB: 5, devC: 5})
	f.ack(devC, map[string]uint64{self: 10, devB: 5, devC: 5})
	return f
}

func TestNothingWithoutCoveringSnapshot(t *testing.T) {
	f := typical(t)
	p := f.collect(10)
	if len(p.Delete) != 0 || p.Kept != 10 {
		t.Fatalf("collected %+v without any snapshot", p.Delete)
	}
	if !mentions(p.Why, "no whole snapshot") {
		t.Errorf("why: %q", p.Why)
	}
	// A snapshot that does not include self's files covers nothing.
	f.snapshot(devB, 1, 1<<40, map[string]uint64{devB: 5, devC: 5})
	if p := f.collect(10); len(p.Delete) != 0 || !mentions(p.Why, "only up to 0") {
		t.Fatalf("collected %+v under a snapshot without this device; why %q", p.Delete, p.Why)
	}
	// One that includes 1..6: exactly those go.
	f.snapshot(devC, 1, 2<<40, map[string]uint64{self: 6, devB: 5, devC: 5})
	p = f.collect(10)
	if got := seqs(p, rdfile.KindChangeset); !slices.Equal(got, []uint64{1, 2, 3, 4, 5, 6}) {
		t.Fatalf("collected %v, want 1..6", got)
	}
	if got := f.files(self); len(got) != 4 {
		t.Fatalf("left %v", got)
	}
}

// The newest whole snapshot bounds collection even when an older one
// includes more: a joiner starts from the newest.
func TestNewestSnapshotBounds(t *testing.T) {
	f := typical(t)
	f.snapshot(devB, 1, 1<<40, map[string]uint64{self: 9})
	f.snapshot(devC, 1, 2<<40, map[string]uint64{self: 4})
	p := f.plan(10)
	if p.Bound != 4 || p.Snapshot != devC+"/"+rdfile.SnapshotName(1) {
		t.Fatalf("bound %d from %s, want 4 from C's snapshot", p.Bound, p.Snapshot)
	}
	// Same clock: the higher device id is newer.
	f.snapshot(devB, 2, 2<<40, map[string]uint64{self: 8})
	if p := f.plan(10); p.Bound != 4 {
		t.Fatalf("tie on clock: bound %d from %s", p.Bound, p.Snapshot)
	}
}

// A snapshot still arriving (truncated) does not count; the newest whole
// one does.
func TestPartialSnapshotDoesNotCount(t *testing.T) {
	f := typical(t)
	f.snapshot(devB, 1, 1<<40, map[string]uint64{self: 3})
	p2 := f.snapshot(devC, 1, 2<<40, map[string]uint64{self: 9})
	data, _ := os.ReadFile(p2)
	os.WriteFile(p2, data[:len(data)-10], 0o644)
	p := f.plan(10)
	if p.Bound != 3 || !mentions(p.Problems, rdfile.SnapshotName(1)) {
		t.Fatalf("bound %d (want 3, from B's whole snapshot); problems %q", p.Bound, p.Problems)
	}
	// Damaged payload, intact length: checksum refuses it too.
	data[len(data)-1] ^= 0xff
	os.WriteFile(p2, data, 0o644)
	if p := f.plan(10); p.Bound != 3 {
		t.Fatalf("damaged snapshot counted: bound %d", p.Bound)
	}
}

func TestNothingWithoutEveryActiveAck(t *testing.T) {
	f := typical(t)
	f.snapshot(devB, 1, 1<<40, map[string]uint64{self: 10})
	// D has a directory (a file of its own) but never wrote an ack.
	const devD = "dddddddddddddddd"
	f.changesets(devD, 1)
	p := f.collect(10)
	if len(p.Delete) != 0 {
		t.Fatalf("collected %v while device D never acknowledged", seqs(p, "changeset"))
	}
	if !mentions(p.Why, devD+" has not written an acknowledgement") || !mentions(p.Why, "rowdrop devices forget "+devD) {
		t.Errorf("why does not name D and the fix: %q", p.Why)
	}
	// D acknowledges 1..3: those go, the rest wait, and why names D.
	f.ack(devD, map[string]uint64{self: 3})
	p = f.collect(10)
	if got := seqs(p, "changeset"); !slices.Equal(got, []uint64{1, 2, 3}) || !mentions(p.Why, devD+" has applied this device's files only up to 3") {
		t.Fatalf("collected %v, why %q", got, p.Why)
	}
}

func TestMalformedAckHoldsBack(t *testing.T) {
	f := typical(t)
	f.snapshot(devB, 1, 1<<40, map[string]uint64{self: 10})
	for name, content := range map[string]string{
		"garbage":   "\x00\x01not json",
		"truncated": `{"device":"cccccccccccccccc","install":"i","device_name":"x","written_ms":1,"applied":{"aaaaaaaaaaaaaaaa":10`,
		"duplicate": `{"device":"cccccccccccccccc","install":"i","device_name":"x","written_ms":1,"applied":{"aaaaaaaaaaaaaaaa":1,"aaaaaaaaaaaaaaaa":10},"forgotten":[]}`,
		"misplaced": `{"device":"bbbbbbbbbbbbbbbb","install":"i","device_name":"x","written_ms":1,"applied":{"aaaaaaaaaaaaaaaa":10},"forgotten":[]}`,
		"beyond":    `{"device":"cccccccccccccccc","install":"i","device_name":"x","written_ms":1,"applied":{"aaaaaaaaaaaaaaaa":99},"forgotten":[]}`,
	} {
		os.WriteFile(filepath.Join(f.dir, filepath.FromSlash(folder.AckRel(devC))), []byte(content), 0o644)
		p := f.collect(10)
		if len(p.Delete) != 0 {
			t.Fatalf("%s ack of C: collected %v", name, seqs(p, "changeset"))
		}
		if !mentions(p.Problems, devC) || !mentions(p.Why, devC) {
			t.Errorf("%s ack of C: not reported: problems %q why %q", name, p.Problems, p.Why)
		}
	}
	// A directory in place of ack.json: reported, never crashes.
	os.Remove(filepath.Join(f.dir, filepath.FromSlash(folder.AckRel(devC))))
	os.Mkdir(filepath.Join(f.dir, filepath.FromSlash(folder.AckRel(devC))), 0o755)
	if p := f.collect(10); len(p.Delete) != 0 {
		t.Fatalf("collected with a directory for C's ack")
	}
}

func TestNeverAnotherDevicesFiles(t *testing.T) {
	f := typical(t)
	f.snapshot(devB, 1, 1<<40, map[string]uint64{self: 10, devB: 5, devC: 5})
	f.snapshot(devB, 2, 2<<40, map[string]uint64{self: 10, devB: 5, devC: 5})
	f.snapshot(devC, 1, 3<<40, map[string]uint64{self: 10, devB: 5, devC: 5})
	f.ack(self, map[string]uint64{self: 10, devB: 5, devC: 5})
	before := map[string][]string{devB: f.files(devB), devC: f.files(devC)}
	p := f.collect(10)
	if len(seqs(p, "changeset")) != 9 {
		t.Fatalf("collected %v, want 1..9 of self (10, the newest, stays)", seqs(p, "changeset"))
	}
	for dev, want := range before {
		if got := f.files(dev); !slices.Equal(got, want) {
			t.Fatalf("%s's files changed: %v -> %v", dev, want, got)
		}
	}
	if got := f.files(self); !slices.Equal(got, []string{rdfile.FileName(10), rdfile.AckName}) {
		t.Fatalf("self keeps %v", got)
	}
	// A plan naming someone else's file (or escaping the folder) is refused.
	for _, rel := range []string{devB + "/" + rdfile.FileName(1), "../" + self + "/x", self + "/" + rdfile.AckName, self + "/../" + devB + "/" + rdfile.FileName(2)} {
		bad := &Plan{Self: self, Delete: []Item{{Rel: rel, Kind: "changeset"}}}
		if _, err := Execute(context.Background(), folder.New(f.dir, rdfile.Limits{}), bad, nil); err == nil {
			t.Errorf("Execute deleted %s", rel)
		}
	}
	if got := f.files(devB); !slices.Equal(got, before[devB]) {
		t.Fatalf("B's files changed: %v", got)
	}
}

func TestRetiredDeviceNoLongerHoldsBack(t *testing.T) {
	f := typical(t)
	f.snapshot(devB, 1, 1<<40, map[string]uint64{self: 10})
	f.ack(devC, map[string]uint64{self: 2}) // C stopped at 2 and never came back
	if p := f.plan(10); p.Bound != 2 {
		t.Fatalf("bound %d, want 2 (C)", p.Bound)
	}
	// Retired by this device's user.
	if p := f.plan(10, devC); p.Bound != 9 || slices.Contains(p.Active, devC) || !slices.Contains(p.Retired, devC) {
		t.Fatalf("retired by self: bound %d active %v retired %v", p.Bound, p.Active, p.Retired)
	}
	// Retired by B's user: B's ack lists it, and that counts here too.
	f.ack(devB, map[string]uint64{self: 10}, devC)
	p := f.collect(10)
	if p.Bound != 9 || len(seqs(p, "changeset")) != 9 {
		t.Fatalf("retired by B: bound %d, collected %v", p.Bound, seqs(p, "changeset"))
	}
	// C's own files stay: only C may delete them.
	if len(f.files(devC)) != 6 {
		t.Fatalf("C's files: %v", f.files(devC))
	}
}

func TestPlanDeletesNothing(t *testing.T) {
	f := typical(t)
	f.snapshot(devB, 1, 1<<40, map[string]uint64{self: 10})
	before := f.files(self)
	p := f.plan(10)
	if len(p.Delete) != 9 || p.Bytes() == 0 {
		t.Fatalf("plan: %+v", p.Delete)
	}
	if !slices.Equal(f.files(self), before) {
		t.Fatal("planning deleted files")
	}
	for _, it := range p.Delete {
		if !strings.Contains(it.Reason, "every active device has applied it") {
			t.Errorf("reason %q", it.Reason)
		}
	}
}

// Files in the outbox are not published: an ack can't cover them, and a
// snapshot claiming more than was published is not believed.
func TestBoundNeverBeyondPublished(t *testing.T) {
	f := typical(t)
	f.ack(devB, map[string]uint64{self: 7})
	f.ack(devC, map[string]uint64{self: 7})
	f.snapshot(devB, 1, 1<<40, map[string]uint64{self: 7})
	if p := f.plan(7); p.Bound != 6 || len(p.Delete) != 6 {
		t.Fatalf("published 7: bound %d, %d files", p.Bound, len(p.Delete))
	}
	// An ack claiming more than was published is not believed either.
	f.ack(devC, map[string]uint64{self: 10})
	if p := f.plan(7); p.Bound != 0 || !mentions(p.Problems, "beyond") {
		t.Fatalf("ack claiming 10 of 7: bound %d problems %q", p.Bound, p.Problems)
	}
	f2 := typical(t)
	f2.snapshot(devB, 1, 1<<40, map[string]uint64{self: 50})
	if p := f2.plan(10); p.Bound != 0 || !mentions(p.Problems, "beyond") {
		t.Fatalf("snapshot claiming 50 of 10: bound %d problems %q", p.Bound, p.Problems)
	}
}

func TestOwnOlderSnapshotsGo(t *testing.T) {
	f := typical(t)
	f.snapshot(self, 1, 1<<40, map[string]uint64{self: 3})
	f.snapshot(self, 2, 2<<40, map[string]uint64{self: 6})
	p3 := f.snapshot(self, 3, 3<<40, map[string]uint64{self: 9})
	// Snapshot 3 is still partial: 1 goes (2 is newer and whole), 2 and 3 stay.
	data, _ := os.ReadFile(p3)
	os.WriteFile(p3, data[:len(data)/2], 0o644)
	// B's snapshot is the newest: another device's snapshots are never deleted.
	f.snapshot(devB, 1, 4<<40, map[string]uint64{self: 5})
	p := f.collect(10)
	if got := seqs(p, rdfile.KindSnapshot); !slices.Equal(got, []uint64{1}) {
		t.Fatalf("own snapshots deleted: %v, want [1]", got)
	}
	if got := seqs(p, rdfile.KindChangeset); !slices.Equal(got, []uint64{1, 2, 3, 4, 5}) {
		t.Fatalf("changesets: %v (bound from B's newest snapshot: 5)", got)
	}
	if len(f.files(devB)) != 7 {
		t.Fatalf("B's files: %v", f.files(devB))
	}
}

// A folder with hostile content in device directories never makes the
// survey fail.
func TestSurveyToleratesJunk(t *testing.T) {
	f := typical(t)
	os.WriteFile(filepath.Join(f.dir, devB, rdfile.SnapshotName(1)), []byte("RDCS junk"), 0o644)
	os.Symlink("/etc/passwd", filepath.Join(f.dir, devB, rdfile.SnapshotName(2)))
	os.Mkdir(filepath.Join(f.dir, devB, rdfile.SnapshotName(3)), 0o755)
	// A changeset under a snapshot name.
	data, _ := os.ReadFile(filepath.Join(f.dir, devB, rdfile.FileName(1)))
	os.WriteFile(filepath.Join(f.dir, devB, rdfile.SnapshotName(4)), data, 0o644)
	p := f.plan(10)
	if p.Snapshot != "" || len(p.Delete) != 0 {
		t.Fatalf("junk counted as a snapshot: %+v", p)
	}
	if !mentions(p.Problems, rdfile.SnapshotName(4)) {
		t.Errorf("problems: %q", p.Problems)
	}
}

// The newest changeset stays even when everything is acknowledged and
// covered: it is how a joining device tells that a snapshot including
// less would leave a gap.
func TestNewestChangesetStays(t *testing.T) {
	f := typical(t)
	f.snapshot(devB, 1, 1<<40, map[string]uint64{self: 10})
	p := f.collect(10)
	if got := seqs(p, rdfile.KindChangeset); len(got) != 9 || p.Kept != 1 || !mentions(p.Why, "newest changeset (10) always stays") {
		t.Fatalf("collected %v, kept %d, why %q", got, p.Kept, p.Why)
	}
	if got := f.files(self); !slices.Contains(got, rdfile.FileName(10)) {
		t.Fatalf("self keeps %v", got)
	}
	// Nothing more goes on the next run.
	if p := f.collect(10); len(p.Delete) != 0 {
		t.Fatalf("second run: %+v", p.Delete)
	}
}
