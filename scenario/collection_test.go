package scenario_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rowdrop/rowdrop"
	"github.com/rowdrop/rowdrop/internal/folder"
	"github.com/rowdrop/rowdrop/internal/rdfile"
	"github.com/rowdrop/rowdrop/scenario"
)

// Acknowledgements, collection and devices over time, on real databases
// and real folders. Each simulated device has its own copy of the folder;
// the test is the sync tool (scenario.Mirror propagates new files, replaced
// acks and deletions).

const gcSchema = `
CREATE TABLE notes(id TEXT PRIMARY KEY, owner TEXT, body TEXT, n INTEGER);
CREATE TABLE shared(id TEXT PRIMARY KEY, v TEXT);
`

func gcWorld(t *testing.T, n int) (*scenario.World, []*scenario.Device) {
	t.Helper()
	w := scenario.NewWorld(t, gcSchema)
	var ds []*scenario.Device
	for i := 0; i < n; i++ {
		ds = append(ds, w.AddDevice(scenario.Options{Name: string(rune('a' + i)), Initialised: true, WAL: i%2 == 0}))
	}
	// Every device announces itself (its ack) before anything is
	// collected: a device nobody has heard of joins from a snapshot.
	for _, d := range ds {
		d.Import()
	}
	w.MirrorAll()
	w.Tick(1000)
	return w, ds
}

// snapshot publishes a real snapshot of d (after an import, so that it
// includes what d has received).
func snapshot(t *testing.T, w *scenario.World, d *scenario.Device) {
	t.Helper()
	d.Import()
	d.Snapshot()
}

// trySnapshot publishes a snapshot of d unless d has nothing to snapshot
// yet (it has neither exported nor applied a file).
func trySnapshot(t *testing.T, d *scenario.Device) bool {
	t.Helper()
	if len(d.Published()) == 0 && !hasApplied(t, d) {
		return false
	}
	d.Snapshot()
	return true
}

func hasApplied(t *testing.T, d *scenario.Device) bool {
	for _, x := range d.Status().Devices {
		if x.Applied > 0 {
			return true
		}
	}
	return false
}

func TestCollectEndToEnd(t *testing.T) {
	w, ds := gcWorld(t, 3)
	a, b, c := ds[0], ds[1], ds[2]
	for i := 0; i < 5; i++ {
		for _, d := range ds {
			d.Exec("INSERT INTO notes VALUES(?,?,?,?)", fmt.Sprintf("%s%d", d.Name, i), d.Name, "x", i)
			d.Export()
		}
		w.MirrorAll()
		for _, d := range ds {
			d.Import()
		}
		w.MirrorAll()
		w.Tick(1000)
	}
	aFiles := a.Published()
	if len(aFiles) < 5 {
		t.Fatalf("a published %v", aFiles)
	}
	// No snapshot: nothing goes, and the dry run says why.
	r := a.Collect(true)
	if len(r.Plan.Delete) != 0 || !strings.Contains(strings.Join(r.Plan.Why, "\n"), "no whole snapshot") {
		t.Fatalf("without a snapshot: delete %v, why %q", r.Plan.Delete, r.Plan.Why)
	}
	snapshot(t, w, b)
	w.MirrorAll()
	// Dry run: lists every file of a but the newest, deletes none.
	r = a.Collect(true)
	if len(r.Plan.Delete) != len(aFiles)-1 || len(r.Deleted) != 0 {
		t.Fatalf("dry run: plan %d files (a has %d), deleted %d", len(r.Plan.Delete), len(aFiles), len(r.Deleted))
	}
	if !slices.Equal(a.Published(), aFiles) {
		t.Fatal("dry run deleted files")
	}
	before := map[string][]uint64{b.Name: b.Published(), c.Name: c.Published()}
	r = a.Collect(false)
	if len(r.Deleted) != len(aFiles)-1 || r.Bytes == 0 || !slices.Equal(a.Published(), aFiles[len(aFiles)-1:]) {
		t.Fatalf("collected %d of %d; a keeps %v", len(r.Deleted), len(aFiles), a.Published())
	}
	// Never another device's files, in a's copy of the folder.
	for _, d := range []*scenario.Device{b, c} {
		if got := scenario.Seqs(t, a.Folder, d.ID); !slices.Equal(got, before[d.Name]) {
			t.Fatalf("a's collection touched %s's files: %v -> %v", d.Name, before[d.Name], got)
		}
	}
	// The deletions travel; everyone carries on and converges.
	w.MirrorAll()
	if got := scenario.Seqs(t, b.Folder, a.ID); len(got) != 1 {
		t.Fatalf("deletions did not travel: b still has a's %v", got)
	}
	for _, d := range ds {
		d.Exec("UPDATE notes SET body='after gc' WHERE owner=?", d.Name)
	}
	w.MirrorAll()
	w.QuiesceMirrored(10)
	w.AssertConverged()
	if got := b.Value("SELECT count(*) FROM notes WHERE body='after gc'"); got != "15" {
		t.Fatalf("b has %s rows edited after gc, want 15", got)
	}
}

// A device that stops syncing holds collection back; status names it once
// it is silent past the horizon; forgetting it lets collection go on.
func TestSilentDeviceHoldsBackUntilForgotten(t *testing.T) {
	w, ds := gcWorld(t, 3)
	a, b, c := ds[0], ds[1], ds[2]
	round := func(active ...*scenario.Device) {
		for _, d := range active {
			d.Exec("INSERT INTO notes VALUES(?,?,?,?) ON CONFLICT(id) DO UPDATE SET n=n+1", "k"+d.Name, d.Name, "x", 0)
			d.Export()
		}
		for _, x := range active {
			for _, y := range active {
				w.Mirror(x, y)
			}
		}
		for _, d := range active {
			d.Import()
		}
		for _, x := range active {
			for _, y := range active {
				w.Mirror(x, y)
			}
		}
	}
	round(a, b, c)
	cHas := a.Published()[len(a.Published())-1] // c has applied a's files up to here
	for i := 0; i < 4; i++ {
		w.Tick(24 * 3600 * 1000)
		round(a, b) // c is away
	}
	snapshot(t, w, b)
	w.Mirror(b, a)
	r := a.Collect(false)
	if r.Plan.Bound != cHas {
		t.Fatalf("bound %d, want %d (what c acknowledged)", r.Plan.Bound, cHas)
	}
	why := strings.Join(r.Plan.Why, "\n")
	if !strings.Contains(why, c.ID) || !strings.Contains(why, "rowdrop devices forget "+c.ID) {
		t.Fatalf("why does not name c and the fix: %q", why)
	}
	if ws := a.Status().Warnings; len(ws) != 0 {
		t.Fatalf("warnings before the horizon: %q", ws)
	}
	devs, err := a.S.Devices(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if st := deviceStatus(devs, c.ID); st != rowdrop.DeviceActive {
		t.Fatalf("c is %q before the horizon", st)
	}
	// Past the horizon: status nags, naming c and the command; c still
	// holds collection back (never dropped by itself).
	w.Tick(int64(rowdrop.DefaultDeviceHorizon / time.Millisecond))
	round(a, b)
	ws := a.Status().Warnings
	if len(ws) != 1 || !strings.Contains(ws[0], c.ID) || !strings.Contains(ws[0], "rowdrop devices forget "+c.ID) {
		t.Fatalf("warnings: %q", ws)
	}
	devs, _ = a.S.Devices(context.Background())
	if st := deviceStatus(devs, c.ID); st != rowdrop.DeviceSilent {
		t.Fatalf("c is %q past the horizon", st)
	}
	if st := deviceStatus(devs, b.ID); st != rowdrop.DeviceActive {
		t.Fatalf("b is %q", st)
	}
	if r := a.Collect(false); r.Plan.Bound != cHas {
		t.Fatalf("a silent device stopped holding back: bound %d", r.Plan.Bound)
	}
	// b's user retires c; b's ack carries it to a, whose gc goes on.
	if err := b.S.Forget(context.Background(), c.ID); err != nil {
		t.Fatal(err)
	}
	w.Mirror(b, a)
	snapshot(t, w, b)
	w.Mirror(b, a)
	r = a.Collect(false)
	if len(a.Published()) != 1 || r.Plan.Bound == cHas {
		t.Fatalf("after c was retired: bound %d, a keeps %v, why %q", r.Plan.Bound, a.Published(), r.Plan.Why)
	}
	devs, _ = a.S.Devices(context.Background())
	if st := deviceStatus(devs, c.ID); st != rowdrop.DeviceRetired {
		t.Fatalf("c is %q after forget", st)
	}
	if ws := a.Status().Warnings; len(ws) != 0 {
		t.Fatalf("a retired device still nags: %q", ws)
	}
	// c's files are c's: nobody else deleted them.
	if got := scenario.Seqs(t, a.Folder, c.ID); !slices.Equal(got, c.Published()) {
		t.Fatalf("c's files in a's folder: %v, c has %v", got, c.Published())
	}
	// Forgetting is refused for this device itself and for unknown ids.
	if err := a.S.Forget(context.Background(), a.ID); err == nil {
		t.Fatal("a forgot itself")
	}
	if err := a.S.Forget(context.Background(), "zzzzzzzzzzzzzzzz"); err == nil {
		t.Fatal("forgot an unknown device")
	}
}

func deviceStatus(devs []rowdrop.DeviceInfo, id string) string {
	for _, d := range devs {
		if d.ID == id {
			return d.Status
		}
	}
	return "absent"
}

// The acknowledgement says what the device has applied, is rewritten only
// when that changes (or as a daily heartbeat), and carries retirements.
func TestAckContent(t *testing.T) {
	w, ds := gcWorld(t, 2)
	a, b := ds[0], ds[1]
	b.Exec("INSERT INTO notes VALUES('x','b','x',1)")
	b.Export()
	w.Mirror(b, a)
	a.Import()
	got, err := folder.New(a.Folder, rdfile.Limits{}).ReadAck(a.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Applied[b.ID] != b.Published()[len(b.Published())-1] || got.Device != a.ID || got.DeviceName != "a" {
		t.Fatalf("ack of a: %+v (b published %v)", got, b.Published())
	}
	st, _ := os.Stat(filepath.Join(a.Folder, filepath.FromSlash(folder.AckRel(a.ID))))
	w.Tick(1000)
	a.Import()
	if st2, _ := os.Stat(filepath.Join(a.Folder, filepath.FromSlash(folder.AckRel(a.ID)))); !st2.ModTime().Equal(st.ModTime()) {
		t.Fatal("unchanged ack rewritten")
	}
	if again, _ := folder.New(a.Folder, rdfile.Limits{}).ReadAck(a.ID); again.WrittenMS != got.WrittenMS {
		t.Fatal("unchanged ack rewritten")
	}
	w.Tick(13 * 3600 * 1000)
	a.Import()
	if again, _ := folder.New(a.Folder, rdfile.Limits{}).ReadAck(a.ID); again.WrittenMS == got.WrittenMS {
		t.Fatal("no heartbeat after 13 hours")
	}
	// A hostile ack of b in a's folder never breaks a's sync or status.
	os.WriteFile(filepath.Join(a.Folder, filepath.FromSlash(folder.AckRel(b.ID))), []byte(`{"device":`), 0o644)
	a.Import()
	a.Status()
	devs, err := a.S.Devices(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range devs {
		if d.ID == b.ID && !strings.Contains(d.Problem, "ack.json") {
			t.Fatalf("b's malformed ack not reported: %+v", d)
		}
	}
}

// seeds returns the seeds of a randomised test: ROWDROP_SEED=n runs one,
// ROWDROP_SEEDS=k runs k from a time-based base; the default is a few
// fixed ones (more with ROWDROP_LONG=1).
func seeds(t *testing.T, quick, long int) []uint64 {
	t.Helper()
	if s := os.Getenv("ROWDROP_SEED"); s != "" {
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("ROWDROP_SEED=%q: %v", s, err)
		}
		return []uint64{n}
	}
	count, base := quick, uint64(1)
	if isLong() {
		count = long
	}
	if s := os.Getenv("ROWDROP_SEEDS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil {
			t.Fatalf("ROWDROP_SEEDS=%q: %v", s, err)
		}
		count, base = n, uint64(time.Now().UnixNano())%1_000_000_000
	}
	out := make([]uint64, count)
	for i := range out {
		out[i] = base + uint64(i)
	}
	return out
}

func isLong() bool { return os.Getenv("ROWDROP_LONG") != "" }

// PROPERTY: over random schedules of edits, exports, deliveries (any
// pair, any time), imports, snapshots and collections on 3-4 devices, plus
// one device that appears part-way through and joins from a snapshot, no
// collection ever makes a device miss a change: at the end every device
// holds exactly every change (each device edits its own rows, so the
// expected content is known), and no device that was there from the start
// ever waits for a file that is gone. Seeds: ROWDROP_SEED / ROWDROP_SEEDS;
// ROWDROP_LONG=1 for longer schedules and more seeds.
func TestCollectionNeverLosesAChange(t *testing.T) {
	steps := 100
	if isLong() {
		steps = 600
	}
	for _, seed := range seeds(t, 4, 30) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			t.Logf("seed %d (rerun: ROWDROP_SEED=%d go test -run 'TestCollectionNeverLosesAChange' ./scenario)", seed, seed)
			runCollectionSchedule(t, seed, steps)
		})
	}
}

func runCollectionSchedule(t *testing.T, seed uint64, steps int) {
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	w, ds := gcWorld(t, 3+rng.IntN(2))
	w.Quiet = true
	model := map[string]string{} // id -> body, rows of the notes table
	next := 0
	collected, snapshots, goneAtJoin := 0, 0, 0
	joinAt := steps/4 + rng.IntN(steps/2)
	var late *scenario.Device
	pick := func() *scenario.Device { return ds[rng.IntN(len(ds))] }
	imp := func(d *scenario.Device, step int) {
		r := d.Import()
		if d != late && r.Waiting > 0 {
			t.Fatalf("step %d: %s waits for a file that is gone (collected too early): %+v", step, d.Name, d.Status().Files)
		}
	}
	for step := 0; step < steps; step++ {
		if step == joinAt {
			// Everyone catches up and collects what it can, then a
			// device nobody has heard of appears. With everything
			// delivered, it must join at once from the snapshots in the
			// folder: one of them covers every collected file.
			w.MirrorAll()
			for _, d := range ds {
				imp(d, step)
			}
			w.MirrorAll()
			for _, d := range ds {
				collected += len(d.Collect(false).Deleted)
			}
			w.MirrorAll()
			goneAtJoin = collected
			late = w.AddDevice(scenario.Options{Name: "late"})
			ds = append(ds, late)
			w.MirrorAll()
			if r := late.Import(); r.Waiting > 0 || r.Held > 0 || r.Broken > 0 {
				t.Fatalf("step %d: the new device cannot join from the folder (%d files collected): %+v\n%+v", step, collected, r, late.Status().Files)
			}
		}
		d := pick()
		switch r := rng.IntN(100); {
		case r < 35: // an edit of one of d's own rows
			var own []string
			for id := range model {
				if strings.HasPrefix(id, d.Name+"-") {
					own = append(own, id)
				}
			}
			slices.Sort(own)
			switch {
			case len(own) == 0 || rng.IntN(3) == 0:
				id := fmt.Sprintf("%s-%d", d.Name, next)
				next++
				d.Exec("INSERT INTO notes VALUES(?,?,?,0)", id, d.Name, "v0")
				model[id] = "v0"
			case rng.IntN(4) == 0:
				id := own[rng.IntN(len(own))]
				d.Exec("DELETE FROM notes WHERE id=?", id)
				delete(model, id)
			default:
				id := own[rng.IntN(len(own))]
				v := fmt.Sprintf("v%d", step)
				d.Exec("UPDATE notes SET body=?, n=n+1 WHERE id=?", v, id)
				model[id] = v
			}
			// Concurrent edits of a shared row: only convergence is checked.
			if rng.IntN(3) == 0 {
				d.Exec("INSERT INTO shared VALUES('s',?) ON CONFLICT(id) DO UPDATE SET v=excluded.v", d.Name+fmt.Sprint(step))
			}
		case r < 50:
			d.Export()
		case r < 72:
			w.Mirror(pick(), d)
		case r < 87:
			imp(d, step)
		case r < 93:
			imp(d, step)
			if trySnapshot(t, d) {
				snapshots++
			}
		default:
			collected += len(d.Collect(false).Deleted)
		}
		w.Tick(int64(1 + rng.IntN(5000)))
	}
	// The end: everything is delivered. The late device may still lack a
	// snapshot covering what was collected before anyone knew it: any
	// snapshot an up-to-date device makes now covers it (collection never
	// goes past what every known device applied).
	for round := 0; round < 3; round++ {
		w.MirrorAll()
		for _, d := range ds {
			d.Export()
		}
		w.MirrorAll()
		for _, d := range ds {
			d.Import()
		}
	}
	w.MirrorAll()
	ds[0].Snapshot()
	w.MirrorAll()
	for round := 0; round < 3; round++ {
		w.QuiesceMirrored(10)
		for _, d := range ds {
			trySnapshot(t, d)
			w.MirrorAll()
			collected += len(d.Collect(false).Deleted)
		}
	}
	w.QuiesceMirrored(10)
	w.AssertConverged()
	want := &strings.Builder{}
	ids := make([]string, 0, len(model))
	for id := range model {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for _, id := range ids {
		fmt.Fprintf(want, "%s=%s\n", id, model[id])
	}
	for _, d := range ds {
		got := &strings.Builder{}
		for _, r := range d.Query("SELECT id, body FROM notes ORDER BY id") {
			fmt.Fprintf(got, "%s=%s\n", r[0], r[1])
		}
		if got.String() != want.String() {
			t.Fatalf("%s misses changes:\ngot:\n%s\nwant:\n%s", d.Name, got, want)
		}
	}
	t.Logf("%d devices (one joined at step %d, %d files gone by then), %d steps, %d rows, %d snapshots, %d files collected", len(ds), joinAt, goneAtJoin, steps, len(model), snapshots, collected)
	if collected == 0 {
		t.Fatalf("nothing was ever collected: the schedule tests nothing")
	}
}

// A long simulated run: three devices editing every "day", a snapshot and
// a collection every few days. The folder's size stays bounded instead of
// growing with history.
func TestFolderSizeStaysBounded(t *testing.T) {
	days := 120 // long enough that published bytes outgrow the snapshots even with compact (v4) headers
	if isLong() {
		days = 365
	}
	w, ds := gcWorld(t, 3)
	w.Quiet = true
	rng := rand.New(rand.NewPCG(7, 7))
	var table strings.Builder
	fmt.Fprintf(&table, "%5s %10s %10s %8s\n", "day", "folder B", "no-gc B", "files")
	var grown int64 // what the folder would hold without collection
	var peak, late int64
	for day := 1; day <= days; day++ {
		for _, d := range ds {
			for e := 0; e < 5; e++ {
				d.Exec("INSERT INTO notes VALUES(?,?,?,0) ON CONFLICT(id) DO UPDATE SET body=excluded.body, n=n+1",
					fmt.Sprintf("%s-%d", d.Name, rng.IntN(20)), d.Name, strings.Repeat(fmt.Sprint(day), 50))
			}
			if r := d.Export(); r.File != "" {
				if st, err := os.Stat(r.File); err == nil {
					grown += st.Size()
				}
			}
		}
		w.MirrorAll()
		for _, d := range ds {
			d.Import()
		}
		w.MirrorAll()
		if day%7 == 0 {
			s := ds[(day/7)%len(ds)]
			snapshot(t, w, s)
			w.MirrorAll()
			for _, d := range ds {
				d.Collect(false)
			}
			w.MirrorAll()
		}
		size := ds[0].FolderBytes()
		peak = max(peak, size)
		if day > days/2 {
			late = max(late, size)
		}
		if day%10 == 0 || day == days {
			fmt.Fprintf(&table, "%5d %10d %10d %8d\n", day, size, grown, len(scenario.RelFiles(t, ds[0].Folder)))
		}
		w.Tick(24 * 3600 * 1000)
	}
	t.Logf("folder bytes over time (device a's copy; no-gc = changeset bytes ever published):\n%s", table.String())
	w.QuiesceMirrored(10)
	w.AssertConverged()
	// Bounded: about one week of changesets, a snapshot per device and
	// the acks, whatever the length of the run.
	const bound = 64 << 10
	if peak > bound {
		t.Fatalf("folder peaked at %d bytes, over the bound of %d", peak, bound)
	}
	if grown < 2*late {
		t.Fatalf("run too short to show anything: %d bytes published, folder late in the run %d", grown, late)
	}
}

// A device away for long is retired, the others collect past it; it comes
// back with edits made offline: it re-bases on a snapshot, its offline
// edits survive and reach everyone, and it gets everything it missed.
func TestRetiredDeviceRejoinsWithOfflineEdits(t *testing.T) {
	w, ds := gcWorld(t, 3)
	a, b, c := ds[0], ds[1], ds[2]
	for _, d := range ds {
		d.Exec("INSERT INTO notes VALUES(?,?,'before',0)", d.Name+"-1", d.Name)
	}
	w.QuiesceMirrored(10)
	// c goes away and edits offline.
	away := []*scenario.Device{a, b}
	c.Exec("UPDATE notes SET body='offline edit' WHERE id='c-1'")
	c.Exec("INSERT INTO notes VALUES('c-2','c','made offline',0)")
	c.Exec("UPDATE notes SET body='c edits a row of a' WHERE id='a-1'")
	for day := 0; day < 40; day++ {
		w.Tick(24 * 3600 * 1000)
		for _, d := range away {
			d.Exec("INSERT INTO notes VALUES(?,?,?,0) ON CONFLICT(id) DO UPDATE SET body=excluded.body", fmt.Sprintf("%s-%d", d.Name, 2+day%5), d.Name, fmt.Sprint("day ", day))
			d.Export()
		}
		for _, x := range away {
			for _, y := range away {
				w.Mirror(x, y)
			}
		}
		for _, d := range away {
			d.Import()
		}
	}
	if ws := a.Status().Warnings; len(ws) != 1 || !strings.Contains(ws[0], c.ID) {
		t.Fatalf("no warning about c: %q", ws)
	}
	if err := a.S.Forget(context.Background(), c.ID); err != nil {
		t.Fatal(err)
	}
	w.Mirror(a, b)
	for _, d := range away {
		d.Import()
		d.Snapshot()
		for _, x := range away {
			for _, y := range away {
				w.Mirror(x, y)
			}
		}
	}
	gone := 0
	for _, d := range away {
		r := d.Collect(false)
		gone += len(r.Deleted)
	}
	if gone == 0 {
		t.Fatal("nothing collected after c was retired")
	}
	// c comes back: it sees the folder as it is now.
	w.MirrorAll()
	if _, err := c.S.Sync(context.Background()); err != nil {
		t.Fatal(err)
	}
	w.QuiesceMirrored(10)
	w.AssertConverged()
	for _, want := range []string{"c-1|offline edit", "c-2|made offline", "a-1|c edits a row of a", "a-6|day 39", "b-6|day 39"} {
		id, body, _ := strings.Cut(want, "|")
		if got := a.Value("SELECT body FROM notes WHERE id=?", id); got != body {
			t.Errorf("%s: body %q on a, want %q", id, got, body)
		}
	}
	t.Logf("%d files were collected while c was away", gone)
}

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
