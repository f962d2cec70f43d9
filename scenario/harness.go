// Package scenario holds rowdrop's whole-product tests (the _test.go files
// here, one per concept: snapshots, joining, collection, re-keying, UNIQUE,
// crashes, ...) and their harness (the other files). It sits above the
// root package because it drives the whole product: the root, export,
// import and merge together, on real databases and real folders.
//
// Two kinds of device:
//
//   - A World's devices (AddDevice) each have their own app database,
//     their own state directory and their OWN copy of the shared folder;
//     the test is the sync tool: it copies files between the folders
//     itself (Deliver, Mirror, ...), in whatever order it likes, late,
//     twice, or truncated first and completed later. That is the only way
//     to make arrival order a test input instead of an accident. Every
//     device reads the same simulated wall clock (World.NowMS, advanced by
//     the test with Tick) plus its own skew, so clock order is
//     deterministic and skew is a parameter. Device ids are derived from
//     the test's name (see presetID), so a seeded test replays exactly.
//   - A SharedDevice (NewSharedDevice) uses one real folder in place with
//     other devices, on the real clock, as a file server or a USB stick
//     would be used.
//
// ExecFile, ValueFile and the other *File helpers reach a database by its
// path, as the app or a crashed process would.
package scenario

import (
	"context"
	"crypto/sha256"
	"encoding/base32"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"zombiezen.com/go/sqlite"
	"zombiezen.com/go/sqlite/sqlitex"

	"github.com/rowdrop/rowdrop"
	"github.com/rowdrop/rowdrop/export"
	importer "github.com/rowdrop/rowdrop/import"
	"github.com/rowdrop/rowdrop/internal/state"
)

// Epoch is where the simulated wall clock starts (2027-01-15, ms).
const Epoch int64 = 1_800_000_000_000

// World is a set of devices sharing a schema and a simulated clock.
type World struct {
	T      testing.TB
	Dir    string
	Schema string
	NowMS  int64
	Devs   []*Device
	// Quiet turns off per-step logging (property tests run many steps).
	Quiet bool
	// sealed: encryption is on (Seal, or ROWDROP_SEAL=1): new devices
	// unlock the key and are approved as they are added.
	sealed bool
}

// NewWorld starts an empty world. schema is run on every new device's
// database.
func NewWorld(t testing.TB, schema string) *World {
	return &World{T: t, Dir: worldDir(t), Schema: schema, NowMS: Epoch}
}

// worldDir picks where the devices' files live. Export and merge fsync
// every file they commit, which on a real disk costs milliseconds each and
// would make hundreds of seeded runs slow, so a tmpfs (/dev/shm) is used
// when there is one: the files and folders are still real, only the
// durability is not (crash safety is tested elsewhere). ROWDROP_SIMDIR
// chooses another parent directory ("tmp" forces t.TempDir()).
func worldDir(t testing.TB) string {
	parent := os.Getenv("ROWDROP_SIMDIR")
	if parent == "tmp" {
		return t.TempDir()
	}
	if parent == "" {
		if st, err := os.Stat("/dev/shm"); err != nil || !st.IsDir() {
			return t.TempDir()
		}
		parent = "/dev/shm"
	}
	d, err := os.MkdirTemp(parent, "rowdrop-sim-")
	if err != nil {
		return t.TempDir()
	}
	// Registered before any device, so it runs after they are closed.
	t.Cleanup(func() { os.RemoveAll(d) })
	return d
}

// Tick advances the simulated wall clock.
func (w *World) Tick(ms int64) { w.NowMS += ms }

// Options configure one device.
type Options struct {
	Name  string
	Hints bool          // fast capture path (hint triggers)
	WAL   bool          // app database in WAL mode (else rollback journal)
	Skew  time.Duration // this device's wall clock minus the world's
	// Initialised: run one empty export at creation, so the device's first
	// real export carries a real clock (not export.InitialClock, the
	// lowest precedence a device's pre-existing data gets).
	Initialised bool
	// Config, if set, adjusts the rowdrop configuration before Open.
	Config func(*rowdrop.Config)
}

// Device is one simulated device.
type Device struct {
	W      *World
	Opt    Options
	Name   string
	ID     string
	DB     string
	Folder string // this device's copy of the shared folder
	State  string
	S      *rowdrop.Syncer
	App    *sqlite.Conn // the "app": a long-lived connection writing the live DB
	cfg    rowdrop.Config
}

// AddDevice creates a device: database with the world's schema, its own
// folder and state directory, an opened Syncer.
func (w *World) AddDevice(opt Options) *Device {
	t := w.T
	t.Helper()
	if opt.Name == "" {
		opt.Name = fmt.Sprintf("d%d", len(w.Devs))
	}
	dir := filepath.Join(w.Dir, opt.Name)
	d := &Device{W: w, Opt: opt, Name: opt.Name, DB: filepath.Join(dir, "app.db"),
		Folder: filepath.Join(dir, "folder"), State: filepath.Join(dir, "state")}
	for _, p := range []string{dir, d.Folder} {
		if err := os.MkdirAll(p, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	app, err := sqlite.OpenConn(d.DB, sqlite.OpenReadWrite|sqlite.OpenCreate)
	if err != nil {
		t.Fatal(err)
	}
	app.SetBusyTimeout(10 * time.Second)
	if opt.WAL {
		if err := sqlitex.ExecuteTransient(app, "PRAGMA journal_mode=WAL", nil); err != nil {
			t.Fatal(err)
		}
	}
	if err := sqlitex.ExecuteScript(app, w.Schema, nil); err != nil {
		t.Fatal(err)
	}
	d.App = app
	skew := opt.Skew
	d.cfg = rowdrop.Config{DB: d.DB, Folder: d.Folder, State: d.State, DeviceName: opt.Name, Hints: opt.Hints,
		Now: func() time.Time { return time.UnixMilli(w.NowMS).Add(skew) }}
	if opt.Config != nil {
		opt.Config(&d.cfg)
	}
	d.presetID()
	d.open()
	t.Cleanup(func() {
		if d.S != nil {
			d.S.Close()
		}
		d.App.Close()
	})
	w.Devs = append(w.Devs, d)
	switch {
	case w.sealed:
		w.join(d)
	case sealAll() && len(w.Devs) == 1:
		w.Seal()
		t.Logf("ROWDROP_SEAL=1: the world is encrypted")
	}
	if opt.Initialised {
		d.Export()
	}
	return d
}

// presetID gives a new device an id derived from the test's name and the
// device's: device ids break clock ties and order files, so a randomised
// test (whose seed is in its name) replays exactly when rerun.
func (d *Device) presetID() {
	t := d.W.T
	st, err := state.Open(d.cfg.State)
	if err != nil {
		t.Fatalf("%s: %v", d.Name, err)
	}
	defer st.Close()
	if dev, err := st.Value(state.KeyDevice); err != nil {
		t.Fatalf("%s: %v", d.Name, err)
	} else if dev != "" {
		return
	}
	sum := sha256.Sum256([]byte(t.Name() + "\x00" + d.Name))
	id := strings.ToLower(base32.StdEncoding.EncodeToString(sum[:10]))
	if _, err := st.CreateIdentity(id, d.Name); err != nil {
		t.Fatalf("%s: %v", d.Name, err)
	}
}

func (d *Device) open() {
	s, err := rowdrop.Open(context.Background(), d.cfg)
	if err != nil {
		d.W.T.Fatalf("%s: open: %v", d.Name, err)
	}
	d.S = s
	d.ID = s.Identity().Device
}

// Reopen closes and reopens the Syncer (a restart of the sync process).
// fn, if not nil, runs while it is closed.
func (d *Device) Reopen(fn func()) {
	d.W.T.Helper()
	if err := d.S.Close(); err != nil {
		d.W.T.Fatal(err)
	}
	d.S = nil
	if fn != nil {
		fn()
	}
	d.open()
}

// Reconfigure closes the Syncer and reopens it with fn applied to its
// configuration: a changed config file (include or exclude lists, a
// profile) taking effect at the next start.
func (d *Device) Reconfigure(fn func(*rowdrop.Config)) {
	d.W.T.Helper()
	d.Reopen(func() { fn(&d.cfg) })
}

func (d *Device) logf(format string, args ...any) {
	if !d.W.Quiet {
		d.W.T.Helper()
		d.W.T.Logf("%s: "+format, append([]any{d.Name}, args...)...)
	}
}

// Export runs one export.
func (d *Device) Export() export.Result {
	d.W.T.Helper()
	r, err := d.S.Export(context.Background())
	if err != nil {
		d.W.T.Fatalf("%s: export: %v", d.Name, err)
	}
	if r.Seq > 0 {
		d.logf("exported seq %d (%d changes, %s)", r.Seq, r.Changes, r.Mode)
	}
	return r
}

// Import runs one import.
func (d *Device) Import() importer.Result {
	d.W.T.Helper()
	r, err := d.S.Import(context.Background())
	if err != nil {
		d.W.T.Fatalf("%s: import: %v", d.Name, err)
	}
	if r.Applied > 0 || r.Waiting > 0 || r.Held > 0 || r.Broken > 0 {
		d.logf("imported %d file(s), %d changes, %d conflicts, waiting %d held %d broken %d", r.Applied, r.Changes, r.Conflicts, r.Waiting, r.Held, r.Broken)
	}
	return r
}

// Sync runs Export then Import.
func (d *Device) Sync() {
	d.W.T.Helper()
	d.Export()
	d.Import()
}

// Status returns the device's status.
func (d *Device) Status() *rowdrop.Status {
	d.W.T.Helper()
	st, err := d.S.Status(context.Background())
	if err != nil {
		d.W.T.Fatalf("%s: status: %v", d.Name, err)
	}
	return st
}

// Conflicts returns the device's conflict log.
func (d *Device) Conflicts() []*rowdrop.Conflict {
	d.W.T.Helper()
	cs, err := d.S.Conflicts()
	if err != nil {
		d.W.T.Fatalf("%s: conflicts: %v", d.Name, err)
	}
	return cs
}

// Snapshot publishes a snapshot of the device's merged state into its own
// copy of the folder.
func (d *Device) Snapshot() export.SnapshotResult {
	d.W.T.Helper()
	r, err := d.S.Snapshot(context.Background())
	if err != nil {
		d.W.T.Fatalf("%s: snapshot: %v", d.Name, err)
	}
	d.logf("snapshot %d (%d rows, seen %v)", r.Seq, r.Rows, r.Seen)
	return r
}

// Collect runs a collection (gc) on d.
func (d *Device) Collect(dryRun bool) *rowdrop.CollectReport {
	d.W.T.Helper()
	r, err := d.S.Collect(context.Background(), dryRun)
	if err != nil {
		d.W.T.Fatalf("%s: collect: %v", d.Name, err)
	}
	if len(r.Deleted) > 0 {
		d.logf("collected %d file(s), %d bytes", len(r.Deleted), r.Bytes)
	}
	return r
}

// Quiesce floods and syncs every device until a whole round exports
// nothing and applies nothing; it fails the test after max rounds.
func (w *World) Quiesce(max int) {
	w.T.Helper()
	for round := 0; round < max; round++ {
		busy := false
		for _, d := range w.Devs {
			if r := d.Export(); r.Seq > 0 {
				busy = true
			}
		}
		w.Flood()
		for _, d := range w.Devs {
			r := d.Import()
			if r.Applied > 0 {
				busy = true
			}
			if r.Waiting > 0 || r.Held > 0 || r.Broken > 0 {
				w.T.Fatalf("%s: after a full delivery, files still wait/held/broken: %+v\n%+v", d.Name, r, d.Status().Files)
			}
		}
		if !busy {
			return
		}
	}
	w.T.Fatalf("not quiescent after %d rounds of sync", max)
}

// QuiesceAmong is Quiesce among devs only: the world's other devices
// neither sync nor receive anything meanwhile.
func (w *World) QuiesceAmong(devs ...*Device) {
	w.T.Helper()
	saved := w.Devs
	w.Devs = devs
	defer func() { w.Devs = saved }()
	w.Quiesce(10)
}

// QuiesceMirrored is Quiesce with Mirror for a transport, so collections
// (deletions) and replaced acknowledgements propagate too: it syncs every
// device until a whole round exports nothing and applies nothing, and
// fails the test if a device is left waiting for, holding or unable to use
// a file (collected too early?), or after max rounds.
func (w *World) QuiesceMirrored(max int) {
	w.T.Helper()
	for round := 0; round < max; round++ {
		busy := false
		for _, d := range w.Devs {
			if d.Export().Seq > 0 {
				busy = true
			}
		}
		w.MirrorAll()
		for _, d := range w.Devs {
			r := d.Import()
			if r.Applied > 0 {
				busy = true
			}
			if r.Waiting > 0 || r.Held > 0 || r.Broken > 0 {
				w.T.Fatalf("%s: a file it needs is missing or unusable (collected too early?): %+v\n%+v", d.Name, r, d.Status().Files)
			}
		}
		w.MirrorAll()
		if !busy {
			return
		}
	}
	w.T.Fatalf("not quiescent after %d rounds", max)
}

// AssertConverged fails unless every device's live synced tables are
// identical, and each device's base copy equals its live database (nothing
// left unexported, nothing merged into one but not the other).
func (w *World) AssertConverged() {
	w.T.Helper()
	ref := w.Devs[0].Dump()
	for _, d := range w.Devs {
		got := d.Dump()
		if got != ref {
			w.T.Fatalf("devices differ:\n%s:\n%s\n%s:\n%s", w.Devs[0].Name, ref, d.Name, got)
		}
		if base := d.DumpBase(); base != got {
			w.T.Fatalf("%s: base copy differs from live after quiescence:\nlive:\n%s\nbase:\n%s", d.Name, got, base)
		}
	}
}
