// Package rowdrop syncs a SQLite app database between devices that share
// only a folder (Syncthing, Dropbox, a USB stick). It never copies the live
// database file: each device captures its changes through SQLite (export),
// publishes them as immutable per-device changeset files, and merges other
// devices' files at column level (import, merge). Open a Syncer, call Sync
// (or run `rowdrop watch`), Close it.
package rowdrop

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"time"

	"zombiezen.com/go/sqlite"
	"zombiezen.com/go/sqlite/sqlitex"

	"rowdrop/export"
	importer "rowdrop/import"
	"rowdrop/internal/db"
	"rowdrop/internal/folder"
	"rowdrop/internal/hlc"
	"rowdrop/internal/rdfile"
	"rowdrop/internal/schema"
	"rowdrop/internal/state"
	"rowdrop/merge"
)

// Config names one (database, folder) pair and how to sync it.
type Config struct {
	DB         string // the app's live SQLite database
	Folder     string // the shared folder
	State      string // private state directory; default: DefaultStateDir
	DeviceName string // human name of this device; default: hostname

	Include      []string // tables to sync (empty: all with a primary key)
	Exclude      []string // tables never synced
	LocalColumns []string // "table.column" values that stay on this device

	// Hints opts into the fast capture path: rowdrop installs three small
	// triggers per synced table that record changed keys in rowdrop_dirty.
	Hints bool
	// SweepEvery forces a full diff this often when hints are on (0: 24h).
	SweepEvery time.Duration
	// MaxChangeset caps the decompressed size of a file read from the
	// folder (0: 4 GiB).
	MaxChangeset int64
	// NoRekey turns off re-keying of INTEGER id collisions. By default,
	// when two devices insert different rows under one INTEGER PRIMARY KEY
	// id, both rows survive: the later insert moves to a new (negative) id
	// on every device and the rows referencing it through declared foreign
	// keys follow (merge/rekey.go); files then apply in causal order. With
	// NoRekey the later insert replaces the earlier row, which goes whole
	// to the conflict log.
	NoRekey bool
	// MergeBatch fixes the number of changes per live write transaction
	// of an import. 0 (the default) adapts it so each stays near 50 ms;
	// tests set small values to exercise the batch pipeline.
	MergeBatch int

	// StandIns registers substitutes for SQL functions that the app's
	// triggers call but only the app defines (calibre's title_sort, say):
	// name -> "identity" (first argument), "null", "lower" or "upper".
	// Without one, a file whose apply needs the function is held.
	StandIns map[string]string

	// MassChangePercent and MassChangeMinRows set the mass-change guard:
	// an export that would delete or overwrite more than MassChangePercent
	// percent of a table holding at least MassChangeMinRows rows is held
	// (not built, not published) until confirmed; Sync then returns an
	// error wrapping ErrMassChange that says why. 0: the defaults, 50% and
	// 20 rows; a negative MassChangePercent turns the guard off.
	MassChangePercent, MassChangeMinRows int64
	// ConfirmMassChange lets this Syncer's next export through the guard
	// (`rowdrop sync --confirm-mass-change`).
	ConfirmMassChange bool

	// DeviceHorizon is how long another device may stay silent (no new
	// acknowledgement or file) before status warns that it holds back the
	// collection of old files (0: DefaultDeviceHorizon, 30 days). A silent
	// device is never dropped by itself: the user retires it.
	DeviceHorizon time.Duration

	Logger *slog.Logger
	Now    func() time.Time // clock, for tests of skew; default time.Now
	// Progress, if set, reports long work: files imported (done of total,
	// the last file), or, while joining or re-basing from a snapshot (file
	// ends in .rds), rows of it merged.
	Progress func(done, total int, file string)
}

// DefaultStateDir is the state directory for a (database, folder) pair:
// $XDG_STATE_HOME/rowdrop/<hash of both absolute paths>.
func DefaultStateDir(dbPath, folder string) string {
	base := os.Getenv("XDG_STATE_HOME")
	if base == "" {
		home, _ := os.UserHomeDir()
		base = filepath.Join(home, ".local", "state")
	}
	a, _ := filepath.Abs(dbPath)
	b, _ := filepath.Abs(folder)
	h := sha256.Sum256([]byte(a + "\x00" + b))
	return filepath.Join(base, "rowdrop", filepath.Base(a)+"-"+hex.EncodeToString(h[:6]))
}

// findStateDir returns the default state directory for the pair, unless
// it does not exist yet and another default state directory of the same
// database already publishes into this folder: then the folder was mounted
// under another path (a USB stick), and that device continues.
func findStateDir(dbPath, folder string) string {
	def := DefaultStateDir(dbPath, folder)
	if _, err := os.Stat(def); err == nil {
		return def
	}
	absDB, _ := filepath.Abs(dbPath)
	parent := filepath.Dir(def)
	ents, err := os.ReadDir(parent)
	if err != nil {
		return def
	}
	for _, e := range ents {
		dir := filepath.Join(parent, e.Name())
		dev, err1 := os.ReadFile(filepath.Join(dir, "device"))
		dbp, err2 := os.ReadFile(filepath.Join(dir, "database"))
		if err1 != nil || err2 != nil || string(dbp) != absDB || !rdfile.ValidDeviceID(string(dev)) {
			continue
		}
		if st, err := os.Stat(filepath.Join(folder, string(dev))); err == nil && st.IsDir() {
			return dir
		}
	}
	return def
}

// Syncer is one opened (database, folder) pair.
type Syncer struct {
	cfg   Config
	log   *slog.Logger
	st    *state.Dir
	id    state.Identity
	clock *hlc.Clock
	live  *sqlite.Conn // read-write: merges (and hint upkeep)
	probe *sqlite.Conn // read-only, long-lived: PRAGMA data_version
	exp   *export.Exporter
	// im is built once, in Open; its schema part (synced and excluded
	// tables) is prepared for the live schema whose fingerprint is imKey
	// ("" before the first use), and prepared again when it changes.
	im    *importer.Importer
	imKey string
	// shared is the shared folder: every read and write of it goes through it.
	shared *folder.Folder
	// liveID is the identity of the file live and probe have open
	// (export.FileID): when another file takes the path, they follow it.
	liveID string
}

// Open validates the configuration, locks the state directory and opens
// the live database. The first Open initialises the device.
func Open(ctx context.Context, cfg Config) (*Syncer, error) {
	if cfg.DB == "" || cfg.Folder == "" {
		return nil, errors.New("both a database (--db) and a shared folder (--folder) are required")
	}
	if st, err := os.Stat(cfg.DB); err != nil {
		return nil, fmt.Errorf("database %s: %w (give the path of the app's SQLite file)", cfg.DB, err)
	} else if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("database %s is not a regular file", cfg.DB)
	}
	if cfg.State == "" {
		cfg.State = findStateDir(cfg.DB, cfg.Folder)
	}
	if cfg.SweepEvery == 0 {
		cfg.SweepEvery = 24 * time.Hour
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	// Refuse a state directory or folder that would put rowdrop's files
	// next to, or the database inside, the shared folder.
	if inside(cfg.DB, cfg.Folder) {
		return nil, fmt.Errorf("database %s is inside the shared folder %s: the sync tool would copy the live file (move the database out of the folder)", cfg.DB, cfg.Folder)
	}
	if inside(cfg.State, cfg.Folder) {
		return nil, fmt.Errorf("state directory %s is inside the shared folder %s: it is private to this device (choose another --state)", cfg.State, cfg.Folder)
	}
	st, err := state.Open(cfg.State)
	if err != nil {
		return nil, err
	}
	s := &Syncer{cfg: cfg, log: log, st: st, shared: folder.New(cfg.Folder, rdfile.Limits{MaxRaw: cfg.MaxChangeset})}
	if s.id, err = st.Identity(cfg.DeviceName); err != nil {
		st.Close()
		return nil, fmt.Errorf("initialise device identity in %s: %w", cfg.State, err)
	}
	if moved, err := st.CheckInstallation(); err != nil {
		st.Close()
		return nil, fmt.Errorf("check installation of %s: %w", cfg.State, err)
	} else if moved {
		log.Warn("this state directory was copied or restored from a backup: it gets a new installation token, so a duplicate of it elsewhere can be detected", "state", cfg.State, "device", s.id.Device)
		s.id, _ = st.Identity(cfg.DeviceName)
	}
	// Plain-text breadcrumbs let findStateDir recognise this state
	// directory when the folder comes back under another path.
	absDB, _ := filepath.Abs(cfg.DB)
	_ = os.WriteFile(filepath.Join(cfg.State, "device"), []byte(s.id.Device), 0o600)
	_ = os.WriteFile(filepath.Join(cfg.State, "database"), []byte(absDB), 0o600)
	last, err := st.Int(state.KeyHLC)
	if err != nil {
		st.Close()
		return nil, err
	}
	s.clock = hlc.New(cfg.Now, hlc.Timestamp(last))
	if s.live, s.probe, s.liveID, err = openLive(cfg); err != nil {
		st.Close()
		return nil, err
	}
	s.exp = &export.Exporter{LivePath: cfg.DB, Folder: s.shared, State: st, ID: s.id, Clock: s.clock,
		Live: s.live, Hints: cfg.Hints, SweepEvery: cfg.SweepEvery, Log: log, Now: cfg.Now,
		MassPercent: massPercent(cfg.MassChangePercent), MassMinRows: int(cfg.MassChangeMinRows), ConfirmMassChange: cfg.ConfirmMassChange}
	s.im = &importer.Importer{Folder: s.shared, State: st, Self: s.id, Clock: s.clock,
		Log: log, Now: cfg.Now, Progress: cfg.Progress, Causal: !cfg.NoRekey}
	return s, nil
}

// openLive opens rowdrop's two connections to the live database: live
// (read-write, with the stand-in functions) and probe (read-only), and
// returns the identity of the file they opened.
func openLive(cfg Config) (live, probe *sqlite.Conn, id string, err error) {
	if id, err = export.FileID(cfg.DB); err != nil {
		return nil, nil, "", fmt.Errorf("database %s: %w", cfg.DB, err)
	}
	if live, err = db.OpenLive(cfg.DB, false); err != nil {
		return nil, nil, "", err
	}
	if err := db.RegisterStandIns(live, cfg.StandIns); err != nil {
		live.Close()
		return nil, nil, "", err
	}
	if probe, err = db.OpenLive(cfg.DB, true); err != nil {
		live.Close()
		return nil, nil, "", err
	}
	return live, probe, id, nil
}

// followLive reopens the connections to the live database when another
// file took its path (VACUUM INTO + rename, a restore, a reinstalled app):
// the open ones still reach the old, unlinked file. What the new file is
// is for the export's check (export/recognise.go) to tell.
func (s *Syncer) followLive() error {
	id, err := export.FileID(s.cfg.DB)
	if err != nil {
		return fmt.Errorf("database %s: %w (give the path of the app's SQLite file)", s.cfg.DB, err)
	}
	if id == s.liveID {
		return nil
	}
	live, probe, id, err := openLive(s.cfg)
	if err != nil {
		return err
	}
	s.log.Info("the database file was replaced: following the new one", "db", s.cfg.DB)
	s.live.Close()
	s.probe.Close()
	s.live, s.probe, s.liveID = live, probe, id
	s.exp.Live = live
	s.imKey = "" // prepare the importer again, on the new connection
	return nil
}

// massPercent is the guard's threshold for the exporter: the default for
// 0, off (0) for a negative one.
func massPercent(p int64) int {
	switch {
	case p == 0:
		return export.DefaultMassPercent
	case p < 0:
		return 0
	}
	return int(p)
}

func inside(p, dir string) bool {
	a, err1 := filepath.Abs(p)
	b, err2 := filepath.Abs(dir)
	if err1 != nil || err2 != nil {
		return false
	}
	rel, err := filepath.Rel(b, a)
	return err == nil && rel != ".." && !filepath.IsAbs(rel) && (rel == "." || len(rel) < 3 || rel[:3] != "../")
}

// Identity returns this device's identity.
func (s *Syncer) Identity() state.Identity { return s.id }

// StateDir returns the state directory in use.
func (s *Syncer) StateDir() string { return s.cfg.State }

// Close releases everything.
func (s *Syncer) Close() error {
	s.probe.Close()
	s.live.Close()
	return s.st.Close()
}

// liveSchema is one read of the live database's schema.
type liveSchema struct {
	tables  []*schema.Table
	skipped []schema.Skipped
	key     string // fingerprint of both (schemaKey)
}

// readSchema reads the live schema; one Sync reads it once.
func (s *Syncer) readSchema() (liveSchema, error) {
	var ls liveSchema
	if err := s.followLive(); err != nil {
		return ls, err
	}
	f := schema.Filter{Include: s.cfg.Include, Exclude: s.cfg.Exclude, LocalColumns: s.cfg.LocalColumns}
	err := retryBusy(context.Background(), 20, 10*time.Millisecond, func() (e error) {
		ls.tables, ls.skipped, e = schema.Inspect(s.live, "main", f)
		return e
	})
	if err != nil {
		return liveSchema{}, fmt.Errorf("read schema of %s: %w", s.cfg.DB, err)
	}
	ls.key = schemaKey(ls.tables, ls.skipped)
	return ls, nil
}

// schemaKey fingerprints everything of the live schema that the importer
// and its merge engine depend on: the synced tables' shapes, definitions
// (constraints, foreign keys), local columns and UNIQUE indexes, and the
// tables left out.
func schemaKey(tables []*schema.Table, skipped []schema.Skipped) string {
	h := sha256.New()
	field := func(v string) { fmt.Fprintf(h, "%d:%s", len(v), v) }
	for _, t := range tables {
		field("table")
		field(t.Name)
		field(t.Fingerprint())
		field(t.CreateSQL)
		local := make([]string, 0, len(t.Local))
		for c, on := range t.Local {
			if on {
				local = append(local, c)
			}
		}
		sort.Strings(local)
		for _, c := range local {
			field(c)
		}
		for _, ix := range t.UniqueIndexes {
			field(ix.Name)
			field(ix.SQL)
		}
	}
	for _, sk := range skipped {
		field("skipped")
		field(sk.Name)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// Export captures local changes and publishes them as one file.
func (s *Syncer) Export(ctx context.Context) (export.Result, error) {
	ls, err := s.readSchema()
	if err != nil {
		return export.Result{}, err
	}
	return s.export(ctx, ls)
}

func (s *Syncer) export(ctx context.Context, ls liveSchema) (export.Result, error) {
	// An import interrupted between its live and base commits must finish
	// first, or its merged values would look like local edits.
	if in, err := s.st.CurrentInflight(); err != nil {
		return export.Result{}, err
	} else if in.Kind != state.InflightNone {
		if _, err := s.importOnce(ctx, ls, nil); err != nil {
			return export.Result{}, err
		}
	}
	// A local row that must leave a shared INTEGER id (rekey.go) never
	// leaves under it. (Checked first: preparing the merge engine for a
	// new schema runs EnsureBase, which the export runs anyway.)
	if pending, err := s.st.HasLocalMoves(); err != nil {
		return export.Result{}, err
	} else if pending {
		im, err := s.importer(ls)
		if err != nil {
			return export.Result{}, err
		}
		if err := im.Engine.FixLocalMoves(ctx); err != nil {
			return export.Result{}, err
		}
	}
	res, err := s.exp.Export(ctx, ls.tables)
	if err != nil {
		return res, err
	}
	// The export brought the base copy in line with ls (EnsureBase): the
	// importer follows what it found, without running it again.
	s.prepareImporter(ls, ls.tables, res.SchemaProblems)
	if res.Seq > 0 {
		s.log.Info("exported", "seq", res.Seq, "changes", res.Changes, "bytes", res.Bytes, "mode", res.Mode, "file", res.File)
	}
	return res, nil
}

// Import applies every applicable file from the other devices. A device
// that is new, or that misses files its devices have collected, first
// merges a usable snapshot (join.go).
func (s *Syncer) Import(ctx context.Context) (importer.Result, error) {
	ls, err := s.readSchema()
	if err != nil {
		return importer.Result{}, err
	}
	return s.importOnce(ctx, ls, nil)
}

// folderView is one listing of the shared folder and what this device has
// applied of it; one Sync takes it once and passes it on.
type folderView struct {
	scan    *folder.Scan // nil if the folder could not be read (err)
	err     error
	applied map[string]uint64
}

// viewFolder lists the folder and reads the applied vector.
func (s *Syncer) viewFolder() (*folderView, error) {
	applied, err := s.st.Applied()
	if err != nil {
		return nil, err
	}
	v := &folderView{applied: applied}
	v.scan, v.err = s.shared.Scan()
	if v.err != nil {
		v.scan = nil
	}
	return v, nil
}

// importOnce is Import for the live schema ls, with the folder view fv
// (nil: take one now, or again if the last one failed).
func (s *Syncer) importOnce(ctx context.Context, ls liveSchema, fv *folderView) (importer.Result, error) {
	im, err := s.importer(ls)
	if err != nil {
		return importer.Result{}, err
	}
	if fv == nil || fv.err != nil {
		if fv, err = s.viewFolder(); err != nil {
			return importer.Result{}, err
		}
	}
	// A merge into a file that is not the one last synced would keep its
	// differences as unexported edits: recognise it first (not while an
	// interrupted import is unfinished: its merged values are in live only).
	var liveFile *state.LiveFile
	if in, err := s.st.CurrentInflight(); err != nil {
		return importer.Result{}, err
	} else if in.Kind == state.InflightNone {
		rec, cur, err := s.exp.Recognise(ctx, s.importedTables(ls))
		if err != nil {
			return importer.Result{}, err
		}
		if rec != nil {
			s.imKey = "" // live changed under the importer: prepare it again
			if im, err = s.importer(ls); err != nil {
				return importer.Result{}, err
			}
		}
		liveFile = &cur
	}
	scan, scanErr, applied := fv.scan, fv.err, fv.applied
	rb, err := im.Rebase(ctx, scan, applied)
	if err != nil {
		return importer.Result{}, err
	}
	if err := im.Engine.FixLocalMoves(ctx); err != nil { // after a rebase
		return importer.Result{}, err
	}
	if scanErr != nil {
		return importer.Result{}, fmt.Errorf("read shared folder %s: %w (is it mounted?)", s.cfg.Folder, scanErr)
	}
	res, err := im.ImportScanned(ctx, scan, applied)
	if err == nil {
		// A value that a row held on a UNIQUE clash waits for can be freed
		// by this device's own export too, not only by an import.
		var us merge.Stats
		us, err = im.Engine.ResolveHeld(ctx)
		res.Conflicts += us.Conflicts
		res.AddLocks(us)
	}
	res.Changes += rb.Stats.Changes
	res.Conflicts += rb.Stats.Conflicts
	res.AddLocks(rb.Stats)
	if err != nil {
		return res, err
	}
	if err := im.NoteGaps(rb.Gaps, applied); err != nil {
		return res, err
	}
	if liveFile != nil {
		if res.Applied > 0 || rb.Used != "" {
			s.exp.Mark(liveFile)
		}
		if err := s.exp.RecordLiveFile(*liveFile); err != nil {
			return res, err
		}
	}
	if res.Applied > 0 {
		s.log.Info("imported", "files", res.Applied, "changes", res.Changes, "conflicts", res.Conflicts, "max_lock", res.MaxLock, "long_locks", res.LongLocks)
	}
	// Tell the other devices how far this one has got, so they can
	// collect their old files. A failure here costs only disk space
	// elsewhere: it is reported, the import stands.
	if _, err := s.writeAck(false, applied); err != nil {
		s.log.Warn("acknowledgement not written", "err", err)
	}
	return res, nil
}

// importer returns the importer, prepared for the live schema ls: when
// its fingerprint changed, the base copy is brought in line (EnsureBase)
// first. The merge engine is new for each call, as it caches what one
// import learns (held UNIQUE clashes, indexes, foreign keys).
func (s *Syncer) importer(ls liveSchema) (*importer.Importer, error) {
	if ls.key != s.imKey {
		// Tables whose shape the base copy cannot follow are left out:
		// files that touch them are held (their table is not synced here)
		// until the problem is resolved; Status says why.
		_, problems, err := export.EnsureBase(s.st, ls.tables)
		if err != nil {
			return nil, err
		}
		s.prepareImporter(ls, ls.tables, problems)
	}
	im := s.im
	im.Engine = &merge.Engine{Live: s.live, State: s.st, Tables: im.Tables, Log: s.log, Now: s.cfg.Now, BatchSize: s.cfg.MergeBatch, Self: s.id.Device, Rekey: !s.cfg.NoRekey}
	return im, nil
}

// importedTables returns the synced tables the importer was prepared for,
// in the live schema's order.
func (s *Syncer) importedTables(ls liveSchema) []*schema.Table {
	var out []*schema.Table
	for _, t := range ls.tables {
		if s.im.Tables[t.Name] != nil {
			out = append(out, t)
		}
	}
	return out
}

// prepareImporter sets the importer's tables for the live schema ls: the
// synced tables but those EnsureBase reported problems of, and the tables
// excluded here.
func (s *Syncer) prepareImporter(ls liveSchema, tables []*schema.Table, problems []export.SchemaProblem) {
	byName := map[string]*schema.Table{}
	for _, t := range synced(tables, problems) {
		byName[t.Name] = t
	}
	excluded := map[string]bool{}
	for _, sk := range ls.skipped {
		excluded[sk.Name] = true
	}
	s.im.Tables, s.im.Excluded, s.imKey = byName, excluded, ls.key
}

// synced returns the tables EnsureBase found no problem with, in order
// (what it returns itself).
func synced(tables []*schema.Table, problems []export.SchemaProblem) []*schema.Table {
	blocked := map[string]bool{}
	for _, p := range problems {
		blocked[p.Table] = true
	}
	var out []*schema.Table
	for _, t := range tables {
		if !blocked[t.Name] {
			out = append(out, t)
		}
	}
	return out
}

// retryBusy reruns a step that a busy app refused with SQLITE_BUSY without
// waiting (SQLite skips the busy handler where waiting could deadlock, and
// a rollback-journal app mid-commit can refuse a new reader): up to
// attempts reruns, sleeping step, 2*step, ... between them. Only steps that
// commit whole or not at all (schema reads, export, import) go through it.
func retryBusy(ctx context.Context, attempts int, step time.Duration, run func() error) error {
	for attempt := 0; ; attempt++ {
		err := run()
		if err == nil || attempt >= attempts || sqlite.ErrCode(err).ToPrimary() != sqlite.ResultBusy || ctx.Err() != nil {
			return err
		}
		time.Sleep(time.Duration(attempt+1) * step)
	}
}

// Report is the outcome of one Sync.
type Report struct {
	Export export.Result
	Import importer.Result
}

// Sync runs one cycle: export this device's changes, then import others'.
func (s *Syncer) Sync(ctx context.Context) (Report, error) {
	var r Report
	ls, err := s.readSchema()
	if err != nil {
		return r, err
	}
	// A new device joins from a snapshot before its first export, so that
	// rows it already holds merge into the snapshot's (snapshots.go).
	joined, fv, err := s.joinIfNew(ctx, ls)
	if err != nil {
		return r, err
	}
	if err = retryBusy(ctx, 8, 25*time.Millisecond, func() (e error) { r.Export, e = s.export(ctx, ls); return e }); err != nil {
		return r, err
	}
	if _, statErr := os.Stat(s.cfg.Folder); statErr != nil {
		return r, fmt.Errorf("shared folder %s is not available: %w (mount it, or check the --folder path; exports wait in the outbox meanwhile)", s.cfg.Folder, statErr)
	}
	err = retryBusy(ctx, 8, 25*time.Millisecond, func() (e error) { r.Import, e = s.importOnce(ctx, ls, fv); return e })
	r.Import.Changes += joined.Changes
	r.Import.Conflicts += joined.Conflicts
	r.Import.AddLocks(joined)
	if err != nil {
		return r, err
	}
	if r.Export.PublishErr != nil {
		// Imports went ahead; the export waits in the outbox and is retried.
		return r, fmt.Errorf("exported changes wait in the outbox: %w", r.Export.PublishErr)
	}
	if r.Export.Held != "" {
		// Imports went ahead; the export waits for the user's word.
		return r, fmt.Errorf("%w: this device's changes were not published: %s", ErrMassChange, r.Export.Held)
	}
	return r, nil
}

// ErrMassChange: the mass-change guard held this device's export (Config,
// MassChangePercent); Sync's error says which tables and how to confirm.
var ErrMassChange = errors.New("export held by the mass-change guard")

// DataVersion polls PRAGMA data_version on a long-lived connection: it
// changes when another connection commits to the live database.
func (s *Syncer) DataVersion(ctx context.Context) (int64, error) {
	var v int64
	err := sqlitex.ExecuteTransient(s.probe, "PRAGMA data_version", &sqlitex.ExecOptions{ResultFunc: func(st *sqlite.Stmt) error {
		v = st.ColumnInt64(0)
		return nil
	}})
	return v, err
}

// Publish retries publishing files waiting in the outbox.
func (s *Syncer) Publish() ([]string, error) { return s.exp.Publish() }
