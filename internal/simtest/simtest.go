// Package simtest runs several rowdrop devices inside one test process. Each
// device has its own app database, its own state directory and its OWN copy
// of the shared folder; the test is the sync tool: it copies files between
// the folders itself, in whatever order it likes, late, twice, or truncated
// first and completed later. That is the only way to make arrival order a
// test input instead of an accident.
//
// Every device reads the same simulated wall clock (World.NowMS, advanced by
// the test with Tick) plus its own skew, so clock order is deterministic and
// skew is a parameter.
package simtest

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/base32"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"zombiezen.com/go/sqlite"
	"zombiezen.com/go/sqlite/sqlitex"

	"rowdrop"
	"rowdrop/export"
	importer "rowdrop/import"
	"rowdrop/internal/changeset"
	"rowdrop/internal/rdfile"
	"rowdrop/internal/state"
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

func (d *Device) logf(format string, args ...any) {
	if !d.W.Quiet {
		d.W.T.Helper()
		d.W.T.Logf("%s: "+format, append([]any{d.Name}, args...)...)
	}
}

// Exec runs one statement on the app connection.
func (d *Device) Exec(q string, args ...any) {
	d.W.T.Helper()
	if err := sqlitex.Execute(d.App, q, &sqlitex.ExecOptions{Args: args}); err != nil {
		d.W.T.Fatalf("%s: %s: %v", d.Name, q, err)
	}
}

// Query returns the rows of q, each column rendered with quote().
func (d *Device) Query(q string, args ...any) [][]string {
	d.W.T.Helper()
	return query(d.W.T, d.App, q, args...)
}

// Value returns the one value q yields rendered like SQL's quote() ("" if
// no row).
func (d *Device) Value(q string, args ...any) string {
	d.W.T.Helper()
	rows := d.Query(q, args...)
	if len(rows) == 0 {
		return ""
	}
	return rows[0][0]
}

func query(t testing.TB, conn *sqlite.Conn, q string, args ...any) [][]string {
	t.Helper()
	var out [][]string
	err := sqlitex.Execute(conn, q, &sqlitex.ExecOptions{Args: args, ResultFunc: func(s *sqlite.Stmt) error {
		row := make([]string, s.ColumnCount())
		for i := range row {
			row[i] = s.ColumnText(i)
		}
		out = append(out, row)
		return nil
	}})
	if err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return out
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

// Published returns the sequence numbers of this device's files in its
// own folder, ascending.
func (d *Device) Published() []uint64 {
	d.W.T.Helper()
	ents, err := os.ReadDir(filepath.Join(d.Folder, d.ID))
	if err != nil {
		if os.IsNotExist(err) {
			return nil
		}
		d.W.T.Fatal(err)
	}
	var out []uint64
	for _, e := range ents {
		if s, ok := rdfile.ParseSeq(e.Name()); ok {
			out = append(out, s)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

// FilePath is where device d published file seq.
func (d *Device) FilePath(seq uint64) string {
	return filepath.Join(d.Folder, d.ID, rdfile.FileName(seq))
}

// Has reports whether file seq of device from is whole in to's folder.
func (w *World) Has(to, from *Device, seq uint64) bool {
	a, err1 := os.Stat(from.FilePath(seq))
	b, err2 := os.Stat(filepath.Join(to.Folder, from.ID, rdfile.FileName(seq)))
	return err1 == nil && err2 == nil && a.Size() == b.Size()
}

// Deliver copies file seq of device from into to's folder, the way a sync
// tool finishes a download: temp name, then rename over whatever (partial)
// file is there. Delivering again is harmless, as with a real tool.
func (w *World) Deliver(from *Device, seq uint64, to *Device) {
	w.deliver(from, seq, to, -1)
}

// DeliverPartial writes only the first n bytes of file seq under its final
// name, as a sync tool writing in place (or a pulled USB stick) leaves it.
func (w *World) DeliverPartial(from *Device, seq uint64, to *Device, n int) {
	w.deliver(from, seq, to, n)
}

func (w *World) deliver(from *Device, seq uint64, to *Device, n int) {
	w.T.Helper()
	if from == to {
		return
	}
	data, err := os.ReadFile(from.FilePath(seq))
	if err != nil {
		w.T.Fatalf("deliver %s/%d: %v", from.Name, seq, err)
	}
	if n >= 0 && n < len(data) {
		data = data[:n]
	}
	dir := filepath.Join(to.Folder, from.ID)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		w.T.Fatal(err)
	}
	dst := filepath.Join(dir, rdfile.FileName(seq))
	tmp := filepath.Join(dir, ".syncthing."+rdfile.FileName(seq)+".tmp")
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		w.T.Fatal(err)
	}
	if err := os.Rename(tmp, dst); err != nil {
		w.T.Fatal(err)
	}
}

// DeliverAll copies every published file of from into to's folder.
func (w *World) DeliverAll(from, to *Device) {
	w.T.Helper()
	for _, s := range from.Published() {
		w.Deliver(from, s, to)
	}
}

// Flood delivers every published file to every device.
func (w *World) Flood() {
	w.T.Helper()
	for _, from := range w.Devs {
		for _, to := range w.Devs {
			w.DeliverAll(from, to)
		}
	}
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

// SyncedTables lists the app's tables that have a primary key (what
// rowdrop syncs by default), by name.
func (d *Device) SyncedTables() []string {
	d.W.T.Helper()
	var out []string
	// Qualified names: inside the subquery a bare "name" is
	// pragma_table_info's own column, which made this list empty (and
	// every dump compared equal) until it was qualified.
	for _, r := range query(d.W.T, d.App, `SELECT m.name FROM sqlite_master m WHERE m.type='table' AND m.name NOT LIKE 'sqlite%' AND m.name NOT LIKE 'rowdrop%'
		AND EXISTS (SELECT 1 FROM pragma_table_info(m.name) WHERE pk>0) ORDER BY m.name`) {
		out = append(out, r[0])
	}
	return out
}

// Dump renders every synced table of the live database in primary-key
// order, each value with quote() (so types show: 1 vs '1').
func (d *Device) Dump() string {
	d.W.T.Helper()
	return dump(d.W.T, d.App, d.SyncedTables())
}

// DumpBase renders the same tables from the device's base copy.
func (d *Device) DumpBase() string {
	d.W.T.Helper()
	conn, err := sqlite.OpenConn(filepath.Join(d.State, "base.db"), sqlite.OpenReadOnly)
	if err != nil {
		d.W.T.Fatal(err)
	}
	defer conn.Close()
	return dump(d.W.T, conn, d.SyncedTables())
}

func dump(t testing.TB, conn *sqlite.Conn, tables []string) string {
	t.Helper()
	var b strings.Builder
	for _, tbl := range tables {
		var cols, pk []string
		for _, r := range query(t, conn, "SELECT name, pk FROM pragma_table_info(?) ORDER BY cid", tbl) {
			cols = append(cols, "quote("+quoteIdent(r[0])+")")
			if r[1] != "0" {
				pk = append(pk, r[1]+"\x00"+quoteIdent(r[0]))
			}
		}
		sort.Strings(pk)
		for i := range pk {
			pk[i] = pk[i][strings.IndexByte(pk[i], 0)+1:]
		}
		fmt.Fprintf(&b, "%s:\n", tbl)
		for _, r := range query(t, conn, fmt.Sprintf("SELECT %s FROM %s ORDER BY %s", strings.Join(cols, ","), quoteIdent(tbl), strings.Join(pk, ","))) {
			fmt.Fprintf(&b, "  %s\n", strings.Join(r, "|"))
		}
	}
	return b.String()
}

func quoteIdent(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }

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

// PublishedFile is one decoded changeset file.
type PublishedFile struct {
	Header  rdfile.Header
	Changes []*changeset.Change
}

// ReadPublished decodes every file device d published.
func (d *Device) ReadPublished() []PublishedFile {
	d.W.T.Helper()
	var out []PublishedFile
	for _, s := range d.Published() {
		pf, err := ReadFile(d.FilePath(s))
		if err != nil {
			d.W.T.Fatal(err)
		}
		out = append(out, pf)
	}
	return out
}

// ReadFile decodes one changeset file.
func ReadFile(path string) (PublishedFile, error) {
	var pf PublishedFile
	f, err := rdfile.Open(path, rdfile.Limits{})
	if err != nil {
		return pf, err
	}
	if err := f.Verify(); err != nil {
		return pf, err
	}
	pf.Header = f.Header
	cs, err := f.Changeset()
	if err != nil {
		return pf, err
	}
	defer cs.Close()
	rd := changeset.NewReader(bufio.NewReader(cs), changeset.Limits{})
	for {
		c, err := rd.Next()
		if err == io.EOF {
			return pf, nil
		}
		if err != nil {
			return pf, fmt.Errorf("%s: %w", path, err)
		}
		pf.Changes = append(pf.Changes, c)
	}
}

// KeyText renders a key the way the conflict log does.
func KeyText(key []changeset.Value) string {
	parts := make([]string, len(key))
	for i, v := range key {
		parts[i] = v.String()
	}
	return strings.Join(parts, ", ")
}
