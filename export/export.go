// Package export captures what changed in the app's live database since the
// last export and publishes it as one immutable changeset file of this
// device: captured (capture.go), written to the outbox with the base copy
// advanced in the same step (this file), then published into the shared
// folder (publish.go).
package export

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"zombiezen.com/go/sqlite"

	"github.com/rowdrop/rowdrop/internal/changeset"
	"github.com/rowdrop/rowdrop/internal/db"
	"github.com/rowdrop/rowdrop/internal/folder"
	"github.com/rowdrop/rowdrop/internal/hlc"
	"github.com/rowdrop/rowdrop/internal/rdfile"
	"github.com/rowdrop/rowdrop/internal/rows"
	"github.com/rowdrop/rowdrop/internal/schema"
	"github.com/rowdrop/rowdrop/internal/state"
)

// Capture modes.
const (
	ModeNone = "none" // nothing changed
	ModeFull = "full" // session diff of whole tables
	ModeFast = "fast" // session diff of the hinted keys only
)

// Exporter captures and publishes this device's changes.
type Exporter struct {
	LivePath string
	Folder   *folder.Folder // the shared folder, where Publish puts the outbox's files
	State    *state.Dir
	ID       state.Identity
	Clock    *hlc.Clock
	// Live is a read-write connection to the live database, used only to
	// install hint triggers and clear consumed hints (opt-in fast path).
	Live *sqlite.Conn
	// Hints enables the trigger-based fast path.
	Hints bool
	// SweepEvery forces a full diff this often even when hints are valid.
	SweepEvery time.Duration
	Log        *slog.Logger
	Now        func() time.Time
	// ForceFull makes the next export a full diff.
	ForceFull bool
	// MassPercent and MassMinRows set the mass-change guard (massChange):
	// an export that deletes or overwrites more than MassPercent% of a
	// table of at least MassMinRows rows (0: DefaultMassMinRows) is held.
	// MassPercent 0 or negative turns the guard off; the library's Config
	// turns it on by default (DefaultMassPercent).
	MassPercent, MassMinRows int
	// ConfirmMassChange lets the next export through the guard.
	ConfirmMassChange bool
	// Adopt makes the next export take live as the truth (adopt.go): no
	// recognition of the file, no guard.
	Adopt bool

	warnedHints bool // "hints unsupported" was logged once
}

func (e *Exporter) logger() *slog.Logger {
	if e.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return e.Log
}

// Result describes one export.
type Result struct {
	Mode    string
	Seq     uint64
	Changes int64
	Bytes   int64
	File    string // path in the shared folder ("" if nothing published)
	Tables  []string
	// Pending is set when a built file could not be published (the folder
	// is unavailable, read-only, full): it waits in the outbox and is
	// published by the next Export or Publish. PublishErr says why, naming
	// the path.
	Pending    bool
	PublishErr error
	// SchemaProblems lists synced tables left out of this export because
	// their shape changed in a way the base copy cannot follow (see
	// EnsureBase); every other table was exported.
	SchemaProblems []SchemaProblem
	// Recognised is set when the live database was not the file last
	// synced (recognise.go) and says what was done about it.
	Recognised *state.Recognition
	// Held is set when the mass-change guard kept this export back: why,
	// and how to let it through. Nothing was built or published; live
	// keeps the changes as unexported edits.
	Held string
}

// crashHook, if set (by tests), is called at the named points of an
// export; a panic there simulates a crash, an error a failure.
var crashHook func(point string) error

func hook(point string) error {
	if crashHook == nil {
		return nil
	}
	return crashHook(point)
}

func (e *Exporter) now() time.Time {
	if e.Now != nil {
		return e.Now()
	}
	return time.Now()
}

// Export runs one capture-and-publish step for the given synced tables.
func (e *Exporter) Export(ctx context.Context, tables []*schema.Table) (res Result, err error) {
	log := e.logger()
	// Finish an interrupted earlier export first: the outbox is its log.
	if err := e.recoverOutbox(); err != nil {
		return res, err
	}
	e.removeStaleTemps()
	if err := e.checkIdentity(); err != nil {
		return res, err
	}
	// A merge cut short between its live and base commits left merged
	// values in live that base lacks: captured now, they would go out as
	// this device's edits. The caller finishes the merge first (sync.go).
	if in, err := e.State.CurrentInflight(); err != nil {
		return res, err
	} else if in.Kind != state.InflightNone {
		return res, fmt.Errorf("%w: the merge of %s %s is not finished in the state directory %s; nothing is captured until it is (sync again)", ErrInflight, in.Kind, in.Name, e.State.Path)
	}
	prevProblems, err := e.State.Value(state.KeySchemaProblems)
	if err != nil {
		return res, err
	}
	tables, res.SchemaProblems, err = EnsureBase(e.State, tables)
	if err != nil {
		return res, err
	}
	if len(res.SchemaProblems) > 0 {
		cur, err := e.State.Value(state.KeySchemaProblems)
		if err != nil {
			return res, err
		}
		if cur != prevProblems { // else already reported; Status keeps showing it
			for _, p := range res.SchemaProblems {
				log.Warn("table not synced: its schema changed in a way rowdrop cannot follow", "table", p.Table, "reason", p.Reason)
			}
		}
	}
	var recognised *state.Recognition
	var liveFile state.LiveFile
	if e.Adopt {
		liveFile, err = ReadLiveFile(e.LivePath, tables)
		e.ConfirmMassChange = true
	} else {
		recognised, liveFile, err = e.Recognise(ctx, tables)
	}
	if err != nil {
		return res, err
	}
	res.Recognised = recognised
	mode := ModeFull
	if !e.Hints && e.Live != nil {
		// Hints switched off (or never on): nothing of them stays in the
		// app's database.
		removed, err := RemoveHints(e.Live)
		if err != nil {
			return res, fmt.Errorf("remove the capture hints from %s (hints are off): %w", e.LivePath, err)
		}
		if len(removed) > 0 {
			log.Info("capture hints are off: removed their triggers and table from the app's database", "db", e.LivePath, "removed", len(removed))
		}
	}
	if e.Hints && !e.ForceFull {
		mode, err = e.chooseMode(tables)
		if err != nil {
			return res, err
		}
	}
	raw, err := os.CreateTemp(e.State.Path, ".capture-")
	if err != nil {
		return res, fmt.Errorf("create capture file in state directory %s: %w", e.State.Path, err)
	}
	// By value: raw may be swapped for a rewritten capture below.
	defer func(f *os.File) { f.Close(); os.Remove(f.Name()) }(raw)
	basePath := filepath.Join(e.State.Path, "base.db")
	w := bufio.NewWriterSize(raw, 1<<20)
	// The passes over the capture below (fixups, filter, base) read one
	// after the other and keep no change's values: a big value's buffer
	// is allocated once for all of them.
	pool := &changeset.Pool{}
	var dmax int64
	var fx fixups
	start := time.Now()
	if mode == ModeFast {
		dmax, fx, err = captureFast(ctx, e.LivePath, basePath, storageTables(tables), w)
		if err != nil {
			log.Warn("fast capture failed; falling back to a full diff", "err", err)
			mode = ModeFull
			if _, serr := raw.Seek(0, io.SeekStart); serr != nil {
				return res, serr
			}
			if terr := raw.Truncate(0); terr != nil {
				return res, terr
			}
			w.Reset(raw)
		}
	}
	if mode == ModeFull {
		dmax, fx, err = captureFull(ctx, e.LivePath, basePath, e.State.Path, storageTables(tables), w)
		if err != nil {
			return res, fmt.Errorf("capture changes of %s: %w", e.LivePath, err)
		}
	}
	if err := w.Flush(); err != nil {
		return res, fmt.Errorf("write capture file: %w", err)
	}
	if !fx.empty() {
		// Edits the session diff cannot see (exact.go): rewrite the
		// capture with them merged in.
		fixed, err := os.CreateTemp(e.State.Path, ".capture-")
		if err != nil {
			return res, fmt.Errorf("create capture file in state directory %s: %w", e.State.Path, err)
		}
		defer func() { fixed.Close(); os.Remove(fixed.Name()) }()
		if _, err := raw.Seek(0, io.SeekStart); err != nil {
			return res, err
		}
		bw := bufio.NewWriterSize(fixed, 1<<20)
		if err := fx.merge(raw, storageTables(tables), bw, pool); err != nil {
			return res, err
		}
		if err := bw.Flush(); err != nil {
			return res, fmt.Errorf("write capture file: %w", err)
		}
		raw = fixed
	}
	if anyIdentity(tables) {
		// From here on, tables with an identity are keyed by it.
		rekeyed, err := rekeyIdentity(raw, e.State.Conn(), tables, e.State.Path)
		if err != nil {
			return res, err
		}
		defer func() { rekeyed.Close(); os.Remove(rekeyed.Name()) }()
		raw = rekeyed
	}
	log.Debug("captured", "mode", mode, "took", time.Since(start))
	res.Mode = mode
	changes, touched, err := e.filter(raw, tables, pool)
	if err != nil {
		return res, err
	}
	defer os.Remove(changes.Name())
	defer changes.Close()
	if touched.n == 0 {
		// Nothing to publish, but device-local columns may have changed:
		// record them in base so they are not captured again.
		res.Mode = ModeNone
		if _, err := raw.Seek(0, io.SeekStart); err != nil {
			return res, err
		}
		if err := e.advanceBase(ctx, raw, tables, 0, 0, nil, "", pool); err != nil {
			return res, err
		}
		if err := e.afterFull(mode); err != nil {
			return res, err
		}
		if err := e.clear(dmax); err != nil {
			return res, err
		}
		if err := e.releaseHold(); err != nil {
			return res, err
		}
		if err := e.RecordLiveFile(liveFile); err != nil {
			return res, err
		}
		// Files an earlier run could not publish (the USB stick was out)
		// go out now, even though nothing new changed.
		e.publishInto(&res)
		return res, nil
	}
	if held, err := e.massChange(touched); err != nil {
		return res, err
	} else if held != "" && !e.ConfirmMassChange {
		// Base, hints and sequence stay as they are: the changes remain
		// unexported edits, exported once confirmed, or undone in the app.
		res.Held = held
		if err := e.State.Set(state.KeyMassHeld, held); err != nil {
			return res, err
		}
		if err := e.RecordLiveFile(liveFile); err != nil {
			return res, err
		}
		log.Warn("export held: "+held, "db", e.LivePath)
		e.publishInto(&res)
		return res, nil
	}
	next, err := e.State.Int(state.KeyNextSeq)
	if err != nil {
		return res, err
	}
	seq := uint64(next)
	if seq == 0 {
		return res, errors.New("state directory is not initialised (no next_seq)")
	}
	if seq > rdfile.MaxSeq {
		return res, fmt.Errorf("device %s has used every sequence number the file names allow (%d); give this installation a new identity (move the state directory %s aside)", e.ID.Device, rdfile.MaxSeq, e.State.Path)
	}
	ts := e.Clock.Now()
	if fresh, err := e.baseFresh(); err != nil {
		return res, err
	} else if fresh {
		// A device's first export carries what its database held before
		// rowdrop knew it: its edit times are unknown, so it takes the
		// lowest precedence. A stale copy never overrides newer edits made
		// elsewhere; whatever differs is kept in the conflict log.
		ts = InitialClock
	}
	// The causal context: what this device had applied, and itself.
	seen, err := e.State.Applied()
	if err != nil {
		return res, err
	}
	maps.DeleteFunc(seen, func(_ string, n uint64) bool { return n == 0 })
	seen[e.ID.Device] = seq
	h := rdfile.Header{
		Device: e.ID.Device, DeviceName: e.ID.Name, Install: e.ID.Install,
		Seq: seq, HLC: uint64(ts), CreatedMS: e.now().UnixMilli(), Changes: touched.n, Seen: seen,
	}
	for _, t := range tables {
		if touched.tables[t.Name] {
			cols := append([]rdfile.Column(nil), t.Columns...)
			for i := range cols {
				cols[i].Local = t.Local[cols[i].Name]
			}
			h.Tables = append(h.Tables, rdfile.Table{Name: t.Name, Columns: cols, Fingerprint: t.Fingerprint()})
			res.Tables = append(res.Tables, t.Name)
		}
	}
	// The hash chain (docs/FORMAT.md §5.1): the sum of this device's
	// previous file, unknown only for the first file after an upgrade.
	if h.Prev, err = e.State.Sum(e.ID.Device, seq-1); err != nil {
		return res, err
	}
	outPath := filepath.Join(e.State.Outbox(), rdfile.FileName(seq))
	if _, err := changes.Seek(0, io.SeekStart); err != nil {
		return res, err
	}
	h, err = rdfile.Build(outPath, h, changes)
	if err != nil {
		return res, fmt.Errorf("build changeset file in %s: %w", e.State.Outbox(), err)
	}
	sum, err := rdfile.SumOf(h)
	if err != nil {
		return res, err
	}
	// The file is durable in the outbox; now advance base, clocks and the
	// sequence in one transaction. A crash before this commit leaves an
	// outbox file with seq >= next_seq, which recovery discards.
	if err := hook("built"); err != nil {
		os.Remove(outPath)
		return res, err
	}
	if _, err := raw.Seek(0, io.SeekStart); err != nil {
		return res, err
	}
	if err := e.advanceBase(ctx, raw, tables, seq, ts, seen, sum, pool); err != nil {
		os.Remove(outPath)
		return res, err
	}
	if err := hook("advanced"); err != nil {
		return res, err
	}
	res.Seq, res.Changes, res.Bytes = seq, touched.n, h.PayloadLen
	if err := e.afterFull(mode); err != nil {
		return res, err
	}
	if err := e.releaseHold(); err != nil {
		return res, err
	}
	e.Mark(&liveFile)
	if err := e.RecordLiveFile(liveFile); err != nil {
		return res, err
	}
	// Hints are consumed once the base copy accounts for them.
	if err := e.clear(dmax); err != nil {
		log.Warn("could not clear consumed capture hints (harmless, retried next time)", "err", err)
	}
	if e.publishInto(&res); res.Pending {
		log.Warn("changeset built but not yet published; it waits in the outbox", "seq", seq, "err", res.PublishErr)
	}
	return res, nil
}

// publishInto publishes the outbox and records the outcome in res.
func (e *Exporter) publishInto(res *Result) {
	published, err := e.Publish()
	if len(published) > 0 {
		res.File = published[len(published)-1]
	}
	if err != nil {
		res.Pending, res.PublishErr = true, err
	}
}

// InitialClock stamps a device's first export (see Export).
const InitialClock = hlc.Timestamp(1)

// ErrDuplicateIdentity: another installation publishes as this device.
var ErrDuplicateIdentity = errors.New("duplicate device identity")

// ErrInflight: an import was cut short between its live and base commits
// and is not finished; Export captures nothing until it is.
var ErrInflight = errors.New("an interrupted import is not finished")

// checkIdentity refuses to publish when the folder already holds files of
// this device at or beyond the next sequence number: this state directory
// was cloned or restored from a backup, and another installation (or this
// one's past) wrote them. Publishing would reuse sequence numbers.
func (e *Exporter) checkIdentity() error {
	var next, since, checked uint64
	for _, v := range []struct {
		k   state.Key
		dst *uint64
		min int64
	}{{state.KeyNextSeq, &next, 0}, {state.KeyInstallSince, &since, 1}, {state.KeyIDCheckUpTo, &checked, 0}} {
		n, err := e.State.Int(v.k)
		if err != nil {
			return err
		}
		*v.dst = uint64(max(n, v.min))
	}
	names, err := e.Folder.Names(e.ID.Device)
	if err != nil {
		return nil // no folder or no files of ours yet
	}
	okUpTo := checked
	for _, name := range names {
		s, ok := rdfile.ParseSeq(name)
		// A sync tool's conflict copy of one of our files is checked too:
		// it is how two installations writing the same name show up.
		copyOfOurs := !ok && rdfile.IsConflictCopy(name)
		if !copyOfOurs && (!ok || s < since || s <= checked || s >= next) {
			continue
		}
		f, err := e.Folder.Open(e.ID.Device + "/" + name)
		if err != nil {
			continue // incomplete or damaged: the importer reports it
		}
		if f.Header.Install == e.ID.Install || (copyOfOurs && f.Header.Seq < since) {
			if !copyOfOurs {
				okUpTo = max(okUpTo, s)
			}
			continue
		}
		// Written under this device id by another installation.
		if state.InstallTime(f.Header.Install) < state.InstallTime(e.ID.Install) {
			return fmt.Errorf("%s was written by another installation using this device id %s (its state directory is an older copy of this one's). This installation is the newer copy and stops publishing. Nothing is lost: give it a new identity by moving its state directory aside (mv %s %s.old) and syncing again; its rows then merge at the lowest precedence and anything that differs is kept in the conflict log: %w",
				f.Path, e.ID.Device, e.State.Path, e.State.Path, ErrDuplicateIdentity)
		}
		if e.Log != nil {
			e.Log.Error("another, newer installation publishes under this device id: it was told to take a new identity; this one carries on", "file", f.Path, "device", e.ID.Device)
		}
	}
	if okUpTo > checked {
		// Only saves checking these files again: a failure is harmless.
		_ = e.State.Set(state.KeyIDCheckUpTo, okUpTo)
	}
	for _, name := range names {
		if s, ok := rdfile.ParseSeq(name); ok && s >= next {
			return fmt.Errorf("the shared folder already holds %s/%s, but this installation's next file is %d: its state directory %s was cloned or restored from a backup, so two installations share device id %s. Nothing was published. To give this installation a new identity, move the state directory aside (mv %s %s.old) and sync again: it joins as a new device, its rows merge at the lowest precedence and anything that differs is kept in the conflict log: %w",
				e.ID.Device, name, next, e.State.Path, e.ID.Device, e.State.Path, e.State.Path, ErrDuplicateIdentity)
		}
	}
	return nil
}

// baseFresh reports whether the base copy does not yet account for what
// live held before rowdrop knew it: no export committed it and no other
// device's file was applied.
func (e *Exporter) baseFresh() (bool, error) {
	ready, err := e.State.Value(state.KeyBaseReady)
	if err != nil || ready == "1" {
		return false, err
	}
	imported, err := e.State.Imported()
	return !imported, err
}

func (e *Exporter) afterFull(mode string) error {
	if mode != ModeFull {
		return nil
	}
	e.ForceFull = false
	return e.State.Set(state.KeyLastFullMS, e.now().UnixMilli())
}

func (e *Exporter) clear(dmax int64) error {
	if e.Live == nil || dmax == 0 {
		return nil
	}
	return clearHints(e.Live, dmax)
}

// chooseMode decides between the fast path and a full diff, (re)installing
// the hint triggers when they are missing or stale.
func (e *Exporter) chooseMode(tables []*schema.Table) (string, error) {
	if e.Live == nil || !HintsSupported(tables) {
		return ModeFull, nil
	}
	ok, err := hintsValid(e.Live, "main", tables)
	installed := false
	if err == nil && !ok {
		// Install before the full diff's snapshot: every later edit is
		// hinted, every earlier one is seen by the diff.
		err = InstallHints(e.Live, tables)
		installed = true
	}
	if errors.Is(err, errHintsUnsupported) {
		if !e.warnedHints {
			e.warnedHints = true
			e.logger().Warn("capture hints are off for this database", "db", e.LivePath, "reason", err)
		}
		return ModeFull, nil
	}
	if err != nil {
		return "", fmt.Errorf("check or install capture triggers in %s: %w", e.LivePath, err)
	}
	if installed {
		return ModeFull, nil
	}
	if fresh, err := e.baseFresh(); err != nil || fresh {
		return ModeFull, err
	}
	if e.SweepEvery > 0 {
		lastMS, err := e.State.Int(state.KeyLastFullMS)
		if err != nil {
			return "", err
		}
		last := time.UnixMilli(lastMS)
		if e.now().Sub(last) > e.SweepEvery {
			return ModeFull, nil
		}
	}
	return ModeFast, nil
}

type touchedSet struct {
	n      int64
	tables map[string]bool
	// deleted counts, per table, the rows the export deletes; updated
	// holds the keys of the rows it updates (massguard.go).
	deleted map[string]int64
	updated map[string][][]byte
}

// filter decodes the captured changeset and writes the exported one:
// device-local columns are removed (an UPDATE of only local columns is
// dropped; INSERT/DELETE carry NULL there).
func (e *Exporter) filter(raw *os.File, tables []*schema.Table, pool *changeset.Pool) (*os.File, touchedSet, error) {
	ts := touchedSet{tables: map[string]bool{}, deleted: map[string]int64{}, updated: map[string][][]byte{}}
	if _, err := raw.Seek(0, io.SeekStart); err != nil {
		return nil, ts, err
	}
	out, err := os.CreateTemp(e.State.Path, ".export-")
	if err != nil {
		return nil, ts, fmt.Errorf("create export file in state directory %s: %w", e.State.Path, err)
	}
	bw := bufio.NewWriterSize(out, 1<<20)
	cw := changeset.NewWriter(bw)
	err = eachCapturedPooled(raw, tables, pool, func(t *schema.Table, c *changeset.Change) error {
		if !exportForm(t, c) {
			return nil
		}
		if err := cw.Write(c); err != nil {
			return fmt.Errorf("write export changeset: %w", err)
		}
		ts.n++
		ts.tables[t.Name] = true
		switch c.Op {
		case changeset.OpDelete:
			ts.deleted[t.Name]++
		case changeset.OpUpdate:
			ts.updated[t.Name] = append(ts.updated[t.Name], changeset.EncodeKey(rows.Key(t, c.Old)))
		}
		return nil
	})
	if err == nil {
		if err = cw.Flush(); err == nil {
			err = bw.Flush()
		}
		if err != nil {
			err = fmt.Errorf("write export changeset: %w", err)
		}
	}
	if err != nil {
		out.Close()
		os.Remove(out.Name())
		return nil, ts, err
	}
	return out, ts, nil
}

// exportForm puts c in the form a file carries; false means nothing is
// left to export. Device-local columns are removed (NULL in INSERT and
// DELETE, undefined in UPDATE). An UPDATE's new key values are dropped:
// SQLite's diff writes them when a key changed only in a way its collation
// ignores ('def' -> 'DEF' under NOCASE, with another column edited), but
// the row stays the same row under the key every device has (exact.go),
// and sqlite3changeset_apply ignores them too.
func exportForm(t *schema.Table, c *changeset.Change) bool {
	any := false
	for i, col := range t.Columns {
		if c.Op == changeset.OpUpdate && col.PK > 0 {
			c.New[i] = changeset.Value{}
			continue
		}
		if !t.Local[col.Name] {
			if c.Op == changeset.OpUpdate && c.New[i].Kind != changeset.KindUndefined {
				any = true
			}
			continue
		}
		switch c.Op {
		case changeset.OpUpdate:
			c.Old[i] = changeset.Value{}
			c.New[i] = changeset.Value{}
		case changeset.OpInsert:
			c.New[i] = changeset.Null()
		case changeset.OpDelete:
			c.Old[i] = changeset.Null()
		}
	}
	return c.Op != changeset.OpUpdate || any
}

// advanceBase applies the captured (unfiltered) changes to the base copy and
// records their clocks, the new sequence number and the HLC, atomically.
func (e *Exporter) advanceBase(ctx context.Context, raw *os.File, tables []*schema.Table, seq uint64, ts hlc.Timestamp, seen map[string]uint64, sum string, pool *changeset.Pool) (err error) {
	base := e.State.Conn()
	defer db.Interruptible(ctx, base)()
	end, err := db.Begin(base, "IMMEDIATE")
	if err != nil {
		return fmt.Errorf("advance base copy: %w", err)
	}
	defer end(&err)
	meta, err := e.State.NewMeta()
	if err != nil {
		return err
	}
	defer meta.Close()
	access := map[string]*rows.Table{}
	defer func() {
		for _, a := range access {
			a.Close()
		}
	}()
	clock := state.Clock{HLC: ts, Dev: e.ID.Device}
	var deferred []*deferredRow
	// recordLocal copies what it keeps (deferred rows): the pool may lend
	// the next change the same buffers.
	err = eachCapturedPooled(raw, tables, pool, func(t *schema.Table, c *changeset.Change) error {
		a := access[t.Name]
		if a == nil {
			a = rows.Open(base, "main", t)
			access[t.Name] = a
		}
		d, err := recordLocal(meta, a, t, c, clock)
		if err != nil {
			return err
		}
		if d != nil {
			deferred = append(deferred, d)
		}
		return nil
	})
	if err != nil {
		return err
	}
	// Rows that collided on a UNIQUE constraint with a row that a later
	// change moves or deletes (a swap of unique values, say). Every other
	// row is final now, so removing their old versions and writing the
	// final ones reproduces live's state, which satisfies the constraints.
	for _, d := range deferred {
		if err = d.a.Delete(d.key); err != nil {
			return err
		}
	}
	for _, d := range deferred {
		if err = d.a.Insert(d.row); err != nil {
			return fmt.Errorf("advance base copy: %w", err)
		}
	}
	// From now on base accounts for everything live held: later exports
	// are edits with real clocks.
	if err = e.State.Set(state.KeyBaseReady, "1"); err != nil {
		return err
	}
	if err = hook("advancing"); err != nil {
		return err
	}
	if seq == 0 {
		return nil
	}
	if err = e.State.Set(state.KeyNextSeq, strconv.FormatUint(seq+1, 10)); err != nil {
		return err
	}
	if err = e.State.RecordFile(state.FileInfo{Dev: e.ID.Device, Seq: seq, HLC: ts, Seen: seen}); err != nil {
		return err
	}
	if err = e.State.RecordSum(state.FileSum{Dev: e.ID.Device, Seq: seq, Sum: sum}); err != nil {
		return err
	}
	// After the clock was set back (boundClock): the files stamped ahead
	// take clocks just below this one, as every reader reads them.
	// (Not the initial clock: it stamps data from before any sync.)
	if ts > InitialClock {
		if _, err = e.State.RestampAhead(e.ID.Device, seq, ts); err != nil {
			return err
		}
	}
	if err = e.State.Set(state.KeyHLC, strconv.FormatUint(uint64(e.Clock.Last()), 10)); err != nil {
		return err
	}
	return e.State.Set(state.KeyLastExport, e.now().UnixMilli())
}

// deferredRow is a row whose final version could not be written in
// changeset order (SQLite emits a diff in hash order, not in an order that
// keeps UNIQUE constraints satisfied at every step).
type deferredRow struct {
	a   *rows.Table
	key []changeset.Value
	row []changeset.Value // the full final row
}

func isConstraint(err error) bool {
	return sqlite.ErrCode(err).ToPrimary() == sqlite.ResultConstraint
}

// cloneValues copies values out of the changeset reader's buffers, which
// it reuses for the next change.
func cloneValues(vals []changeset.Value) []changeset.Value {
	out := make([]changeset.Value, len(vals))
	for i, v := range vals {
		if v.Bytes != nil {
			v.Bytes = append([]byte{}, v.Bytes...)
		}
		out[i] = v
	}
	return out
}

// recordLocal applies one local change to the base copy and stamps its
// clock in the metadata. Local columns are applied to base too (so they
// never show up as differences) but get no clocks. A write that a UNIQUE
// constraint refuses is returned as a deferredRow for the caller to finish.
func recordLocal(meta *state.Meta, a *rows.Table, t *schema.Table, c *changeset.Change, clock state.Clock) (*deferredRow, error) {
	var key []changeset.Value
	if c.Op == changeset.OpInsert {
		key = rows.Key(t, c.New)
	} else {
		key = rows.Key(t, c.Old)
	}
	pk := changeset.EncodeKey(key)
	old, err := meta.Get(t.Name, pk)
	if err != nil {
		return nil, err
	}
	m := &state.RowMeta{}
	if old != nil {
		*m = *old
		m.Cells = map[string]state.Clock{}
		for k, v := range old.Cells {
			m.Cells[k] = v
		}
	}
	var d *deferredRow
	switch c.Op {
	case changeset.OpInsert:
		if err := a.Insert(c.New); err != nil {
			if !isConstraint(err) {
				return nil, err
			}
			d = &deferredRow{a: a, key: cloneValues(key), row: cloneValues(c.New)}
		}
		// An id inserted again (the app saw the row there deleted)
		// carries on the id's lineage: re-keying compares the first
		// insert under it with another device's, not this one.
		m.Lin = state.Clock{}
		if old != nil && !old.Ins.IsZero() {
			m.Lin = old.Lineage()
		}
		m.Ins, m.WMax, m.Dead = clock, clock, nil
		m.Cells = nil
	case changeset.OpDelete:
		if err := a.Delete(key); err != nil {
			return nil, err
		}
		m.Del = clock
		m.Dead = changeset.EncodeKey(c.Old)
	case changeset.OpUpdate:
		var cols []int
		var vals []changeset.Value
		synced := false
		for i, v := range c.New {
			// A new key value (see exportForm) is not applied: the row
			// keeps the key it has in base and on every other device.
			if v.Kind != changeset.KindUndefined && t.Columns[i].PK == 0 {
				cols = append(cols, i)
				vals = append(vals, v)
				if !t.Local[t.Columns[i].Name] {
					synced = true
					if m.Cells == nil {
						m.Cells = map[string]state.Clock{}
					}
					m.Cells[t.Columns[i].Name] = clock
				}
			}
		}
		if err := a.Update(key, cols, vals); err != nil {
			if !isConstraint(err) {
				return nil, err
			}
			cur, gerr := a.Get(key)
			if gerr != nil {
				return nil, gerr
			}
			if cur == nil {
				return nil, err
			}
			for j, i := range cols {
				cur[i] = vals[j]
			}
			d = &deferredRow{a: a, key: cloneValues(key), row: cloneValues(cur)}
		}
		if !synced {
			return d, nil
		}
		m.WMax = clock
	}
	return d, meta.Put(t.Name, pk, m)
}
