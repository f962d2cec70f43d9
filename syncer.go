package rowdrop

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"time"

	"zombiezen.com/go/sqlite"

	"github.com/rowdrop/rowdrop/export"
	importer "github.com/rowdrop/rowdrop/import"
	"github.com/rowdrop/rowdrop/internal/db"
	"github.com/rowdrop/rowdrop/internal/folder"
	"github.com/rowdrop/rowdrop/internal/hlc"
	"github.com/rowdrop/rowdrop/internal/profile"
	"github.com/rowdrop/rowdrop/internal/schema"
	"github.com/rowdrop/rowdrop/internal/state"
	"github.com/rowdrop/rowdrop/merge"
)

// The Syncer's lifecycle: Open, what it holds (state, live connection,
// exporter, importer), the live schema and the importer prepared for it,
// Close.

// Syncer is one opened (database, folder) pair.
type Syncer struct {
	cfg   Config
	log   *slog.Logger
	st    *state.Dir
	id    state.Identity
	clock *hlc.Clock
	live  *sqlite.Conn // read-write: merges (and hint upkeep)
	exp   *export.Exporter
	// im is built once, in Open; its schema part (synced and excluded
	// tables) is prepared for the live schema whose fingerprint is imKey
	// ("" before the first use), and prepared again when it changes.
	im    *importer.Importer
	imKey string
	// imBlocked names the tables EnsureBase left out of im (blockedKey).
	imBlocked string
	// shared is the shared folder: every read and write of it goes through it.
	shared *folder.Folder
	// liveID is the identity of the file live has open (export.FileID):
	// when another file takes the path, live follows it (followLive).
	liveID string
	// app is the app profile laid under cfg (nil: none).
	app *profile.Profile
	// exclusive: no app has live open (a restore building its database
	// under a temporary name), so a set-wise join need not leave it turns.
	exclusive bool
}

// Open validates the configuration, locks the state directory and opens
// the live database. The first Open initialises the device.
func Open(ctx context.Context, cfg Config) (*Syncer, error) {
	cfg, err := cfg.resolve()
	if err != nil {
		return nil, err
	}
	log := cfg.Logger
	// The live database first: a file that is not a SQLite database, or a
	// bad stand-in, must fail before the state directory is created.
	live, liveID, err := openLive(cfg)
	if err != nil {
		return nil, err
	}
	cfg, app, err := withProfile(cfg, live)
	if err == nil {
		err = db.RegisterStandIns(live, cfg.StandIns) // the profile's too
	}
	if err != nil {
		live.Close()
		return nil, err
	}
	st, err := state.Open(cfg.State)
	if err != nil {
		live.Close()
		return nil, err
	}
	s := &Syncer{cfg: cfg, log: log, st: st, live: live, liveID: liveID, shared: folder.New(cfg.Folder, cfg.limits()), app: app}
	fail := func(err error) (*Syncer, error) {
		live.Close()
		st.Close()
		return nil, err
	}
	if s.id, err = st.Identity(cfg.DeviceName); err != nil {
		return fail(fmt.Errorf("initialise device identity in %s: %w", cfg.State, err))
	}
	if moved, err := st.CheckInstallation(); err != nil {
		return fail(fmt.Errorf("check installation of %s: %w", cfg.State, err))
	} else if moved {
		log.Warn("this state directory was copied or restored from a backup: it gets a new installation token, so a duplicate of it elsewhere can be detected", "state", cfg.State, "device", s.id.Device)
		if s.id, err = st.Identity(cfg.DeviceName); err != nil {
			return fail(fmt.Errorf("read the new device identity in %s: %w", cfg.State, err))
		}
	}
	leaveBreadcrumbs(cfg, s.id.Device)
	last, err := st.Int(state.KeyHLC)
	if err != nil {
		return fail(err)
	}
	s.clock = hlc.New(cfg.Now, hlc.Timestamp(last))
	if err := s.boundClock(); err != nil {
		return fail(err)
	}
	s.exp = &export.Exporter{LivePath: cfg.DB, Folder: s.shared, State: st, ID: s.id, Clock: s.clock,
		Live: s.live, Hints: cfg.Hints, SweepEvery: cfg.SweepEvery, Log: log, Now: cfg.Now,
		MassPercent: massPercent(cfg.MassChangePercent), MassMinRows: int(cfg.MassChangeMinRows), ConfirmMassChange: cfg.ConfirmMassChange}
	s.im = &importer.Importer{Folder: s.shared, State: st, Self: s.id, Clock: s.clock,
		Log: log, Now: cfg.Now, Progress: cfg.Progress, Causal: !cfg.NoRekey}
	r, err := s.ring()
	if err != nil {
		return fail(err)
	}
	if r != nil {
		s.useRing(r)
	}
	return s, nil
}

// openLive opens rowdrop's read-write connection to the live database,
// with the stand-in functions, and returns the identity of the file it
// opened.
func openLive(cfg Config) (*sqlite.Conn, string, error) {
	id, err := export.FileID(cfg.DB)
	if err != nil {
		return nil, "", fmt.Errorf("database %s: %w (give the path of the app's SQLite file)", cfg.DB, err)
	}
	live, err := db.OpenLive(cfg.DB, false)
	if err != nil {
		return nil, "", err
	}
	if err := db.RegisterStandIns(live, cfg.StandIns); err != nil {
		live.Close()
		return nil, "", err
	}
	return live, id, nil
}

// followLive reopens the connection to the live database when another
// file took its path (VACUUM INTO + rename, a restore, a reinstalled app):
// the open one still reaches the old, unlinked file. What the new file is
// is for the export's check to tell (export/recognise.go).
func (s *Syncer) followLive() error {
	id, err := export.FileID(s.cfg.DB)
	if err != nil {
		return fmt.Errorf("database %s: %w (give the path of the app's SQLite file)", s.cfg.DB, err)
	}
	if id == s.liveID {
		return nil
	}
	live, id, err := openLive(s.cfg)
	if err != nil {
		return err
	}
	s.log.Info("the database file was replaced: following the new one", "db", s.cfg.DB)
	s.live.Close()
	s.live, s.liveID = live, id
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

// Identity is a device's identity.
type Identity struct {
	Device  string // 16-character id; names the device's directory in the shared folder
	Name    string // human name
	Install string // per-installation token, new when the state directory is copied
}

// Identity returns this device's identity.
func (s *Syncer) Identity() Identity {
	return Identity{Device: s.id.Device, Name: s.id.Name, Install: s.id.Install}
}

// StateDir returns the state directory in use.
func (s *Syncer) StateDir() string { return s.cfg.State }

// Close releases everything.
func (s *Syncer) Close() error {
	s.live.Close()
	return s.st.Close()
}

// liveSchema is one read of the live database's schema.
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
	f := schema.Filter{Include: s.cfg.Include, Exclude: s.cfg.Exclude, LocalColumns: s.cfg.LocalColumns, ExcludeWhy: excludedWhy(s.app), Identity: s.cfg.Identity}
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
		// rowdrop's own tables in the app's database (rowdrop_marker,
		// rowdrop_dirty) come and go with rowdrop's work, not the app's
		// schema; no file ever names one.
		if strings.HasPrefix(strings.ToLower(sk.Name), "rowdrop_") {
			continue
		}
		field("skipped")
		field(sk.Name)
	}
	return hex.EncodeToString(h.Sum(nil))
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
	im.Engine = &merge.Engine{Live: s.live, State: s.st, Tables: im.Tables, Log: s.log, Now: s.cfg.Now, BatchSize: s.cfg.MergeBatch, Self: s.id.Device, Rekey: !s.cfg.NoRekey, AfterApply: s.cfg.AfterApply, RowByRow: s.cfg.JoinRowByRow, Exclusive: s.exclusive}
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
	blocked := blockedKey(problems)
	if ls.key == s.imKey && blocked == s.imBlocked {
		return // prepared for this schema and these problems already
	}
	byName := map[string]*schema.Table{}
	for _, t := range synced(tables, problems) {
		byName[t.Name] = t
	}
	excluded := map[string]bool{}
	for _, sk := range ls.skipped {
		excluded[sk.Name] = true
	}
	changed := map[string]importer.Changed{}
	for _, p := range problems {
		for _, t := range tables {
			if t.Name == p.Table {
				changed[p.Table] = importer.Changed{Columns: t.Columns, Why: p.Reason}
			}
		}
	}
	s.im.Tables, s.im.Excluded, s.im.Changed, s.imKey, s.imBlocked = byName, excluded, changed, ls.key, blocked
}

// blockedKey names the tables of problems, sorted.
func blockedKey(problems []export.SchemaProblem) string {
	names := make([]string, 0, len(problems))
	for _, p := range problems {
		names = append(names, p.Table)
	}
	sort.Strings(names)
	return strings.Join(names, "\x00")
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

// boundClock sets back a persisted clock that is ahead of the wall clock
// by more than the drift bound (the clock ran ahead, and was set right
// since): kept, it would stamp every later edit with the old error, and
// other devices hold such files until their time catches up. It goes back
// to the highest clock seen within the bound (others' files, this
// device's own before), unless another device already applied a file of
// this one stamped ahead (its acknowledgement says so): that device holds
// those clocks, so re-stamping them here would split the two; the clock
// then stays (docs/MERGE.md, "A clock set back").
func (s *Syncer) boundClock() error {
	wall := s.cfg.Now()
	limit := hlc.Make(wall.Add(hlc.MaxDrift).UnixMilli(), 0xffff)
	last := s.clock.Last()
	if last <= limit {
		return nil
	}
	floor, ahead, first, err := s.st.ClockFloor(s.id.Device, limit)
	if err != nil {
		return err
	}
	if scan, err := s.shared.Scan(); err == nil && ahead > 0 {
		for dev := range scan.Dirs {
			if dev == s.id.Device {
				continue
			}
			if a, err := s.shared.ReadAck(dev); err == nil && a != nil && a.Applied[s.id.Device] >= first {
				s.log.Warn("this device's clock is ahead of its wall clock, but another device already applied a file stamped ahead: the clock stays ahead until the wall clock catches up",
					"clock", last.String(), "wall", wall.UTC().Format(time.RFC3339), "device", dev, "file", first)
				return nil
			}
		}
	}
	floor = max(floor, hlc.Make(wall.UnixMilli(), 0)) + hlc.Timestamp(ahead)
	if floor >= last {
		return nil
	}
	s.log.Warn("this device's clock was ahead of its wall clock (set right since?): set back; its files stamped ahead are re-stamped just below its next one",
		"was", last.String(), "now", floor.String(), "files_ahead", ahead)
	s.clock.Reset(floor)
	return nil
}
