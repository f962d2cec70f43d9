package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"zombiezen.com/go/sqlite"
	"zombiezen.com/go/sqlite/sqlitex"

	"github.com/rowdrop/rowdrop"
	"github.com/rowdrop/rowdrop/internal/db"
	"github.com/rowdrop/rowdrop/internal/fsx"
	"github.com/rowdrop/rowdrop/internal/rdfile"
	"github.com/rowdrop/rowdrop/watcher"
)

// watchTimings are the watcher's pacing knobs, and when it publishes
// snapshots.
type watchTimings struct {
	debounce, maxDelay, poll, rescan time.Duration
	snapEvery                        time.Duration
	snapEveryFiles                   int
}

// Snapshot defaults for watch: weekly, or every 500 files.
const (
	defaultSnapshotEvery      = 7 * 24 * time.Hour
	defaultSnapshotEveryFiles = 500
)

// newWatchCmd is `rowdrop watch`: it syncs every configured pair whenever
// its database or its folder changes, until SIGINT or SIGTERM.
//
// A signal cancels the watchers, but never a step in progress: each step
// runs on a context the signal does not reach, so it finishes whole before
// the process exits 0. Between steps the pair's state directory is
// unlocked, so `rowdrop status`, `conflicts` and `sync` work while watch
// runs; a second watch of the same pair is refused by a lock of its own.
func newWatchCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "watch [pair flags] [--debounce D] [--max-delay D] [--poll D] [--rescan D]",
		Short: "sync whenever the database or the folder changes, until stopped",
		Long: `Sync whenever the database or the shared folder changes, until SIGINT or SIGTERM;
it serves every database of the config. A signal never interrupts a step: the
step in progress finishes, then watch exits 0. status, conflicts and sync work
alongside it. It also publishes a snapshot weekly (or every 500 files) and
deletes this device's old files daily. Run it as a user service (systemd,
launchd) to keep the databases in sync.`,
		Example: `  rowdrop watch --db ~/notes/notes.db --folder ~/Sync/notes --device laptop
  rowdrop watch --config ~/.config/rowdrop/rowdrop.yaml --log-json`,
		Args: noArgs,
		RunE: a.action(a.watch),
	}
	addSettingFlags(cmd.Flags(), pairFlags|watchFlags)
	return cmd
}

// watch serves every pair until ctx is cancelled or a signal arrives.
func (a *app) watch(ctx context.Context, _ []string) error {
	pairs, err := a.pairs()
	if err != nil {
		return err
	}
	tm := a.opts.watchTimings()

	sigCtx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()

	// Open every pair once up front: a wrong path or a second watch fails
	// now, with one line, instead of inside a goroutine.
	var locks []*os.File
	defer func() {
		for _, f := range locks {
			f.Close()
		}
	}()
	for i, p := range pairs {
		s, err := a.open(sigCtx, p, lockWait, nil)
		if err != nil {
			return pairErr(pairs, p, err)
		}
		pairs[i].State = s.StateDir()
		id := s.Identity()
		s.Close()
		lf, err := lockWatch(pairs[i])
		if err != nil {
			return pairErr(pairs, p, err)
		}
		locks = append(locks, lf)
		a.log.Info("watching", "db", p.DB, "folder", p.Folder, "device", id.Name, "id", id.Device, "state", pairs[i].State)
	}

	go func() {
		<-sigCtx.Done()
		if ctx.Err() == nil {
			a.log.Info("signal received: finishing the step in progress, then exiting (signal again to force)")
		}
		// A second signal now kills the process the default way.
		stop()
	}()

	var wg sync.WaitGroup
	errs := make([]error, len(pairs))
	for i, p := range pairs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = a.watchPair(sigCtx, p, tm)
			if errs[i] != nil {
				// The other databases go on being served; say so now, not
				// only at exit.
				a.log.Error("stopped watching this database", "db", p.DB, "err", errs[i])
			}
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil && !errors.Is(err, context.Canceled) {
			return pairErr(pairs, pairs[i], err)
		}
	}
	a.log.Info("stopped")
	return nil
}

// pairErr prefixes err with the pair's name when there are several.
func pairErr(pairs []pairConfig, p pairConfig, err error) error {
	if len(pairs) > 1 {
		return fmt.Errorf("%s: %w", p.label(), err)
	}
	return err
}

// lockWatch takes <state>/watch.lock for the life of the process: the
// state lock proper is released between steps, and two watches of one pair
// would only do every step twice.
func lockWatch(p pairConfig) (*os.File, error) {
	path := filepath.Join(p.State, "watch.lock")
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	if err := fsx.TryLock(f); err != nil {
		f.Close()
		if errors.Is(err, fsx.ErrLockHeld) {
			return nil, fmt.Errorf("another `rowdrop watch` already serves database %s (state %s): stop it first, or use `rowdrop sync` alongside it", p.DB, p.State)
		}
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	return f, nil
}

// collectEvery is how often watch deletes this device's files that no
// device needs any more (rowdrop gc).
const collectEvery = 24 * time.Hour

// collectDaily runs a collection when the last one is a day old. A failure
// costs only disk space: it is logged and the watch goes on.
func collectDaily(ctx context.Context, log *slog.Logger, s *rowdrop.Syncer) {
	r, err := s.MaybeCollect(ctx, collectEvery)
	switch {
	case err != nil:
		log.Warn("collection of old files failed; retried tomorrow", "err", err)
	case r != nil && len(r.Deleted) > 0:
		log.Info("collected old files", "files", len(r.Deleted), "bytes", r.Bytes, "kept", r.Plan.Kept)
	case r != nil && r.Plan.Kept > 0:
		log.Debug("collection kept this device's files", "kept", r.Plan.Kept, "why", r.Plan.Why)
	}
}

// folderFileKind tells the watcher what a name in the shared folder (rel,
// with the platform's separators) means for device own ("" while not yet
// known).
func folderFileKind(rel, own string) watcher.FileKind {
	kind, device, _ := rdfile.Classify(filepath.ToSlash(rel))
	switch {
	case kind != rdfile.NameIgnored && own != "" && device == own:
		return watcher.FileOwn
	case kind == rdfile.NameChangeset || kind == rdfile.NameSnapshot:
		return watcher.FileComplete // rowdrop and the sync tools rename files into place whole
	case kind == rdfile.NameAck:
		// Another device's acknowledgement changes after each of its
		// imports and is read only by a collection (daily, or at the
		// periodic rescan's call): a call for it would echo every sync.
		return watcher.FileIgnored
	}
	return watcher.FileOther
}

// watchPair runs the watcher for one pair until ctx is cancelled.
func (a *app) watchPair(ctx context.Context, p pairConfig, tm watchTimings) error {
	log := a.log.With("db", p.label())
	// A long-lived read-only connection for PRAGMA data_version: it sees
	// commits of every other connection, the app's and rowdrop's own.
	probe, err := db.OpenLive(p.DB, true)
	if err != nil {
		return err
	}
	defer probe.Close()
	dataVersion := func(context.Context) (int64, error) {
		var v int64
		err := sqlitex.ExecuteTransient(probe, "PRAGMA data_version", &sqlitex.ExecOptions{ResultFunc: func(st *sqlite.Stmt) error {
			v = st.ColumnInt64(0)
			return nil
		}})
		return v, err
	}
	// localOwed remembers a local change whose export failed (say, the
	// state directory stayed busy): the next step exports even if it was
	// triggered by the folder alone. Handler calls are serial.
	localOwed := false
	// This device's id, known once a step opened the pair: its own files'
	// events are echoes.
	var own atomic.Value
	own.Store("")
	folderFile := func(rel string) watcher.FileKind { return folderFileKind(rel, own.Load().(string)) }
	var last [3]int // files not applied at the last step: warn on change only
	folderGone := false
	handle := func(ctx context.Context, ev watcher.Event) error {
		if ctx.Err() != nil {
			return nil // shutting down: start nothing new
		}
		local := ev.Local || localOwed
		localOwed = local
		log.Debug("step", "local", local, "remote", ev.Remote, "reasons", ev.Reasons)
		prog := a.newProgress(p.label())
		defer prog.done()
		// Waiting for the lock may be cut short by a signal; the step
		// itself may not: it runs on a context the signal cannot cancel.
		s, err := a.open(ctx, p, lockWait, prog.callback())
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		defer s.Close()
		own.Store(s.Identity().Device)
		step := context.WithoutCancel(ctx)
		// A pulled stick or an unmounted share is a normal state, not an
		// error to repeat at every rescan: say it once, keep exporting into
		// the outbox, and publish when the watcher sees the folder return.
		if st, err := os.Stat(p.Folder); err != nil || !st.IsDir() {
			if !folderGone {
				log.Info("local changes wait in the outbox until the shared folder is back", "folder", p.Folder)
				folderGone = true
			}
			if local {
				if _, err := s.Export(step); err != nil {
					return err
				}
				localOwed = false
			}
			return nil
		}
		folderGone = false
		if local {
			r, err := s.Sync(step)
			if err != nil {
				return err
			}
			localOwed = false
			reportResult(log, r, &last, false)
			collectDaily(step, log, s)
			return a.snapshotIfDue(step, log, s, tm)
		}
		// Folder activity only: retry publishing the outbox (the folder may
		// be back) and merge what arrived; there is nothing local to export.
		if published, err := s.Publish(); err != nil {
			return err
		} else if len(published) > 0 {
			log.Info("published files from the outbox", "files", len(published))
		}
		r, err := s.Import(step)
		if err != nil {
			return err
		}
		reportResult(log, rowdrop.Report{Import: r}, &last, false)
		collectDaily(step, log, s)
		return a.snapshotIfDue(step, log, s, tm)
	}
	err = watcher.Run(ctx, watcher.Config{
		DBPath: p.DB, Folder: p.Folder,
		Debounce: tm.debounce, MaxDelay: tm.maxDelay, PollInterval: tm.poll, RescanInterval: tm.rescan,
		DataVersion: dataVersion, FolderFile: folderFile, Logger: log,
	}, handle)
	if errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}

// snapshotIfDue publishes a snapshot when enough files went by or enough
// time passed since the last one. A failure is logged, not fatal: syncing
// goes on, and the next step tries again.
func (a *app) snapshotIfDue(ctx context.Context, log *slog.Logger, s *rowdrop.Syncer, tm watchTimings) error {
	r, err := s.SnapshotIfDue(ctx, tm.snapEveryFiles, tm.snapEvery)
	if err != nil {
		log.Warn("could not publish a snapshot (retried at the next step)", "err", err)
		return nil
	}
	if r != nil {
		log.Info("published a snapshot", "file", r.File, "rows", r.Rows, "bytes", r.Bytes)
	}
	return nil
}
