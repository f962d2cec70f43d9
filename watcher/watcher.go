// Package watcher is the event source of `rowdrop watch`: it turns activity
// on the app's live database and in the shared folder into debounced,
// strictly serial calls of a sync handler supplied by the engine.
//
// The watcher never decides what to sync. It only answers "should the engine
// look again, and roughly why"; the handler always re-reads the real state,
// so a spurious call costs a little work while a missed one would leave the
// devices out of sync. Every design choice below leans towards calling the
// handler once too often rather than once too few, while keeping bursts of
// filesystem noise from turning into busy loops.
package watcher

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/fsnotify/fsnotify"
)

// Defaults for the zero values in Config.
const (
	DefaultDebounce       = 300 * time.Millisecond
	DefaultMaxDelay       = 3 * time.Second
	DefaultPollInterval   = time.Second
	DefaultRescanInterval = 30 * time.Second
)

const (
	// maxReasons caps Event.Reasons: a burst of thousands of writes should
	// not build a log line of thousands of entries.
	maxReasons = 10
	// errorLogEvery is how often a repeating error (probe failures, watch
	// failures) is logged again; the repeats in between are only counted.
	errorLogEvery = time.Minute
)

// Config says what to watch. The zero value of every duration selects its
// default.
type Config struct {
	// DBPath is the app's live database. The watcher watches the directory
	// that holds it (not the file: the "-wal" may not exist yet, and SQLite
	// and the app may replace files) and counts events for the database
	// file and its "-wal" and "-journal" siblings as local changes. "-shm"
	// is ignored on purpose: readers touch it, so it would make every read
	// look like a change. Empty means no filesystem watch on the database.
	DBPath string

	// Folder is the shared folder. It is watched recursively and new
	// subdirectories (one per device) are picked up at runtime. Names
	// beginning with "." (rowdrop's and Syncthing's temporary files,
	// .stfolder, .stversions) or "~syncthing~" (Syncthing's temporary files
	// on Windows) are ignored, including everything below such directories.
	// Empty means no folder watch.
	Folder string

	// Debounce is the quiet period that ends a burst before the handler
	// runs; default 300ms.
	Debounce time.Duration

	// MaxDelay bounds how long a continuous burst can postpone the handler,
	// counted from the burst's first event; default 3s. Values below
	// Debounce are raised to Debounce.
	MaxDelay time.Duration

	// PollInterval paces the DataVersion probe and the checks that notice a
	// vanished, returned or replaced Folder or database directory; default
	// 1s.
	PollInterval time.Duration

	// RescanInterval fires a Remote event periodically, for filesystems that
	// deliver no events (USB sticks, network mounts); default 30s. A
	// negative value disables it.
	RescanInterval time.Duration

	// DataVersion, if set, is polled every PollInterval; a change of its
	// value is a local event. It is meant to be a cheap probe such as
	// PRAGMA data_version on a long-lived connection, which also catches
	// commits that the filesystem events miss. It also tells when the
	// commit behind a leading edge became visible (a WAL commit writes the
	// "-wal" before it syncs and publishes it), and, right after a call,
	// what the call's own writes made it (a poll finding just that starts
	// nothing). It is called only from Run's own goroutine, never
	// concurrently with itself, but possibly while the handler runs.
	// Errors are logged (rate-limited), never fatal.
	DataVersion func(ctx context.Context) (int64, error)

	// FolderFile, if set, classifies a file name relative to Folder (with
	// the platform's separators). FileOwn marks a file this device wrote:
	// its events are the device's own echoes and start nothing; FileIgnored
	// marks another device's file that needs no call either (its
	// acknowledgement: it changes after every import, so reacting to it
	// would echo every sync back). FileComplete marks a whole file another
	// device renamed into place: its appearance starts the handler at once,
	// without waiting for a quiet period.
	FolderFile func(rel string) FileKind

	// Logger receives the watcher's logs; nil discards them.
	Logger *slog.Logger
}

// FileKind is what Config.FolderFile says of a name in the shared folder.
type FileKind int

// The kinds of names in the shared folder.
const (
	FileOther    FileKind = iota // anything else: counts after the quiet period
	FileOwn                      // written by this device: ignored
	FileComplete                 // another device's whole file: counts at once
	FileIgnored                  // another device's file that needs no call: ignored
)

// Event says why the handler runs. Local and Remote may both be true when
// several triggers were coalesced into one call.
type Event struct {
	// Local is set when the live database (or its directory) changed.
	Local bool
	// Remote is set when the shared folder changed or should be rescanned.
	Remote bool
	// Reasons are short human-readable causes, deduplicated and capped, for
	// logs only; callers should not parse them.
	Reasons []string
}

// Run watches what cfg describes and calls handle whenever something changed.
//
// The first call happens at start, with Local and Remote both true, so the
// engine catches up with whatever happened while rowdrop was not running.
// Afterwards a commit to the live database with no leading edge for a
// quiet period starts a call at once, or right after the running one (the
// leading edge: a single edit is exported without waiting; with
// Config.DataVersion, once the commit is visible), and so does a complete
// file of another device (Config.FolderFile). Other triggers, and those
// that follow, are coalesced: they end after a quiet period of
// cfg.Debounce (or after cfg.MaxDelay at the latest) and produce one call. Calls are strictly
// serial: triggers that arrive while the handler runs are coalesced into one
// follow-up call.
//
// Handler errors are logged and do not stop Run; the next trigger retries.
// Handler panics are not recovered. A missing, vanished or replaced Folder or
// database directory is not an error either: Run logs it, keeps polling and
// resumes watching when it is back.
//
// Run blocks until ctx is cancelled and then returns ctx.Err(), after the
// running handler, if any, has returned. Run does not interrupt the handler
// itself; the handler gets ctx and is expected to honour it. Once ctx is
// cancelled no further call starts. The only other error is a nil handle.
func Run(ctx context.Context, cfg Config, handle func(ctx context.Context, ev Event) error) error {
	if handle == nil {
		return errors.New("watcher: nil handler")
	}
	l := newLoop(cfg.withDefaults(), handle)
	fsw, err := fsnotify.NewWatcher()
	if err != nil {
		// Typically the per-user inotify instance limit. Polling (DataVersion,
		// RescanInterval, the presence checks) still works, so degrade
		// instead of refusing to run.
		l.log.Warn("watcher: filesystem notifications unavailable; relying on polling only", "err", err)
	} else {
		l.fsw = fsw
		// Close waits for fsnotify's reader goroutine, so nothing leaks.
		defer fsw.Close()
	}
	return l.run(ctx)
}

func (c Config) withDefaults() Config {
	if c.Debounce <= 0 {
		c.Debounce = DefaultDebounce
	}
	if c.MaxDelay <= 0 {
		c.MaxDelay = DefaultMaxDelay
	}
	if c.MaxDelay < c.Debounce {
		c.MaxDelay = c.Debounce
	}
	if c.PollInterval <= 0 {
		c.PollInterval = DefaultPollInterval
	}
	if c.RescanInterval == 0 {
		c.RescanInterval = DefaultRescanInterval
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// treeState tracks whether a watched root is usable. The distinction between
// stateUnknown and the others exists so that the startup check neither logs
// "is back" nor fires an event: the startup call already covers it.
type treeState int

const (
	stateUnknown treeState = iota
	statePresent           // exists and is watched
	stateGone              // does not exist (or is not a directory); logged once
	stateBroken            // exists but cannot be watched; retried every poll
)

// tree is one watched root: the shared folder (recursive) or the directory
// holding the live database (just the directory).
type tree struct {
	root      string
	recursive bool
	what      string // for logs and reasons
	local     bool   // whether events here are Local (else Remote)

	state treeState
	// id is the root's identity when it was watched, so that a folder that
	// was replaced between two polls (stick re-mounted, directory recreated)
	// is noticed even though the path never stopped existing.
	id   os.FileInfo
	dirs map[string]struct{} // directories currently watched
}

// loop is the state of one Run. It is owned by Run's goroutine; the only
// other goroutines are fsnotify's reader and the running handler, which talk
// to it through channels.
type loop struct {
	cfg    Config
	log    *slog.Logger
	handle func(context.Context, Event) error
	fsw    *fsnotify.Watcher // nil when notifications are unavailable

	folder  *tree // nil if cfg.Folder is empty
	db      *tree // nil if cfg.DBPath is empty
	dbNames map[string]bool
	dbBase  string // the live database's file name

	pend     pending
	timer    *time.Timer // fires at pend's deadline
	running  bool
	lastLead time.Time  // when the last leading edge was taken
	done     chan error // the running handler's result; buffered so it never blocks

	version     int64
	haveVersion bool
	// ownVersion is DataVersion right after the last call returned: what
	// rowdrop's own writes (and anything the call saw) made it. ownFresh is
	// set while no poll has run since; a poll that finds ownVersion then
	// finds only the call's echo.
	ownVersion int64
	ownFresh   bool
	// await is a leading edge waiting for its commit to become visible.
	await struct {
		active bool
		from   int64     // DataVersion when the commit's first write was seen
		until  time.Time // lead anyway after this
	}
	probe       *time.Timer // fires the next visibility probe of await
	versionErrs errLog
	watchErrs   errLog
	notifyErrs  errLog
}

func newLoop(cfg Config, handle func(context.Context, Event) error) *loop {
	l := &loop{
		cfg:         cfg,
		log:         cfg.Logger,
		handle:      handle,
		done:        make(chan error, 1),
		versionErrs: errLog{every: errorLogEvery},
		watchErrs:   errLog{every: errorLogEvery},
		notifyErrs:  errLog{every: errorLogEvery},
	}
	if cfg.Folder != "" {
		l.folder = &tree{root: filepath.Clean(cfg.Folder), recursive: true, what: "shared folder", dirs: map[string]struct{}{}}
	}
	if cfg.DBPath != "" {
		p := filepath.Clean(cfg.DBPath)
		base := filepath.Base(p)
		l.db = &tree{root: filepath.Dir(p), what: "database directory", local: true, dirs: map[string]struct{}{}}
		l.dbBase = base
		l.dbNames = map[string]bool{base: true, base + "-wal": true, base + "-journal": true}
	}
	// Go 1.23+ timers: Stop/Reset need no draining, and a stopped timer
	// never delivers a stale tick.
	l.timer = time.NewTimer(time.Hour)
	l.timer.Stop()
	l.probe = time.NewTimer(time.Hour)
	l.probe.Stop()
	return l
}

func (l *loop) run(ctx context.Context) error {
	defer l.timer.Stop()
	defer l.probe.Stop()

	// Watches first, then the catch-up call: anything that changes while the
	// catch-up runs is then seen and produces a follow-up call.
	l.check(l.folder, false)
	l.check(l.db, false)
	l.pollVersion(ctx) // baseline only; the catch-up call covers the present
	l.start(ctx, Event{Local: true, Remote: true, Reasons: []string{"startup"}})

	poll := time.NewTicker(l.cfg.PollInterval)
	defer poll.Stop()
	var rescan <-chan time.Time
	if l.cfg.RescanInterval > 0 {
		t := time.NewTicker(l.cfg.RescanInterval)
		defer t.Stop()
		rescan = t.C
	}
	var (
		events <-chan fsnotify.Event
		errs   <-chan error
	)
	if l.fsw != nil {
		events, errs = l.fsw.Events, l.fsw.Errors
	}

	for {
		select {
		case <-ctx.Done():
			return l.shutdown(ctx)
		case ev, ok := <-events:
			if !ok { // only after Close; never spin on a closed channel
				events = nil
				continue
			}
			l.onNotify(ctx, ev)
		case err, ok := <-errs:
			if !ok {
				errs = nil
				continue
			}
			l.onNotifyError(err)
		case <-l.timer.C:
			l.maybeStart(ctx)
		case <-l.probe.C:
			l.probeCommit(ctx)
		case err := <-l.done:
			l.running = false
			l.noteOwnVersion(ctx)
			if err != nil && ctx.Err() == nil {
				l.log.Error("watcher: sync handler failed; will retry on the next trigger", "err", err)
			}
			l.maybeStart(ctx)
		case <-poll.C:
			l.check(l.folder, false)
			l.check(l.db, false)
			l.pollVersion(ctx)
		case <-rescan:
			// Also repairs the watch set, in case a directory creation was
			// missed (e.g. it raced with the previous walk).
			l.check(l.folder, true)
			l.trigger(false, true, "periodic rescan")
		}
	}
}

// shutdown stops watching and waits for the running handler, if any. It
// does not interrupt the handler; the cancelled ctx the handler holds does.
func (l *loop) shutdown(ctx context.Context) error {
	l.timer.Stop()
	if l.fsw != nil {
		l.fsw.Close()
	}
	if l.running {
		if err := <-l.done; err != nil && !errors.Is(err, context.Canceled) {
			l.log.Warn("watcher: sync handler failed during shutdown", "err", err)
		}
		l.running = false
	}
	return ctx.Err()
}

// trigger records one reason to run the handler and (re)arms the timer.
func (l *loop) trigger(local, remote bool, reason string) { l.triggerNow(local, remote, false, reason) }

// triggerLocal is an event on the live database's files. One that marks a
// commit (a write to the "-wal", or the "-journal" removed: a rollback
// journal's commit point) after a quiet period starts the call at once,
// the leading edge of a burst: a single edit is exported without waiting.
// Other events (a rollback journal created when a transaction begins, a
// checkpoint) wait for the quiet period: a call started then would read
// the database before the commit.
func (l *loop) triggerLocal(ctx context.Context, base string, op fsnotify.Op) {
	commit := (base == l.dbBase+"-wal" && op.Has(fsnotify.Write)) || (base == l.dbBase+"-journal" && op.Has(fsnotify.Remove))
	// Quiet: no leading edge for a quiet period, and no burst older than
	// one (the journal created when the transaction began is a younger
	// one). Counted from the last lead's start, not from the last call's
	// end: the calls that follow a sync (its own marker written into live,
	// an import's writes) would otherwise keep the next edit waiting. A
	// lead that comes while a call runs starts right after it. The own
	// writes of a lead's call come within a quiet period of its start, so
	// they are coalesced; those of a longer call start one follow-up at
	// most, which writes nothing when it finds nothing.
	now := time.Now()
	quiet := now.Sub(l.lastLead) >= l.cfg.Debounce && (!l.pend.active || now.Sub(l.pend.first) < l.cfg.Debounce)
	lead := commit && quiet && !l.await.active
	if lead && !l.committed(ctx) {
		lead = false // probeCommit makes it a lead once the commit is visible
	}
	l.triggerNow(true, false, lead, opName(op)+" "+base)
}

// probeEvery paces the visibility probes of a leading edge, for at most a
// third of the quiet period (100 ms by default).
const probeEvery = 2 * time.Millisecond

// committed reports whether the commit whose first write was just seen is
// visible to readers. A WAL commit writes its frames, then syncs the WAL
// (milliseconds, more on a busy disk), and only then becomes visible: a
// call started at the first write would read the database before it and
// leave the edit to the follow-up, a quiet period later. With a
// DataVersion probe the commit is visible once the probe's value moved
// from what it was after the last call's own writes (or at the last poll);
// when it has not moved yet, committed arms the probe timer and returns
// false. Without a probe every commit-ish event counts as visible.
func (l *loop) committed(ctx context.Context) bool {
	if l.cfg.DataVersion == nil || !l.haveVersion {
		return true
	}
	v, err := l.cfg.DataVersion(ctx)
	if err != nil {
		return true // the probe's failure is the poll's to report
	}
	ref := l.version
	if l.ownFresh {
		ref = l.ownVersion
	}
	if v != ref {
		l.version, l.ownFresh = v, false // this lead's call covers it: no poll trigger
		return true
	}
	l.await.active, l.await.from = true, v
	// The wait is bounded because the value may have moved before ref was
	// read (a commit just as a call returned): then it never moves again.
	l.await.until = time.Now().Add(l.cfg.Debounce / 3)
	l.probe.Reset(probeEvery)
	return false
}

// probeCommit is one visibility probe of an awaited leading edge: once
// DataVersion moved (or the wait is over: the commit may have been visible
// already) the pending burst becomes a lead.
func (l *loop) probeCommit(ctx context.Context) {
	if !l.await.active {
		return
	}
	v, err := l.cfg.DataVersion(ctx)
	if err == nil && v == l.await.from && time.Now().Before(l.await.until) {
		l.probe.Reset(probeEvery)
		return
	}
	l.await.active = false
	if err == nil {
		l.version, l.ownFresh = v, false
	}
	// A call may have taken the burst meanwhile, possibly before the
	// commit was visible: trigger again rather than risk missing it.
	l.triggerNow(true, false, true, "commit visible")
}

// noteOwnVersion records DataVersion after a call returned, so that
// rowdrop's own writes in it are neither mistaken for the visibility of
// the next commit nor, when the live database is watched, turned into a
// call of their own by the next poll.
func (l *loop) noteOwnVersion(ctx context.Context) {
	if l.cfg.DataVersion == nil || ctx.Err() != nil {
		return
	}
	if v, err := l.cfg.DataVersion(ctx); err == nil {
		l.ownVersion, l.ownFresh = v, true
	}
}

// triggerNow is trigger; urgent starts the call at once, or right after
// the running one.
func (l *loop) triggerNow(local, remote, urgent bool, reason string) {
	now := time.Now()
	l.pend.add(local, remote, reason, now)
	if urgent {
		l.pend.lead = true
	}
	if !l.running {
		// While the handler runs the timer is not needed: maybeStart
		// re-evaluates the deadline when it returns.
		l.timer.Reset(l.pend.deadline(l.cfg.Debounce, l.cfg.MaxDelay).Sub(now))
	}
}

// maybeStart starts the handler if a burst is pending and over.
func (l *loop) maybeStart(ctx context.Context) {
	if l.running || !l.pend.active || ctx.Err() != nil {
		return
	}
	if wait := time.Until(l.pend.deadline(l.cfg.Debounce, l.cfg.MaxDelay)); wait > 0 {
		l.timer.Reset(wait)
		return
	}
	if l.pend.lead {
		l.lastLead = time.Now()
	}
	l.start(ctx, l.pend.take())
}

func (l *loop) start(ctx context.Context, ev Event) {
	l.timer.Stop()
	l.running = true
	l.log.Debug("watcher: running sync handler", "local", ev.Local, "remote", ev.Remote, "reasons", ev.Reasons)
	go func() {
		// No recover: a handler panic is a bug and must crash loudly.
		l.done <- l.handle(ctx, ev)
	}()
}

// onNotify classifies one fsnotify event. The database and folder checks are
// independent so that overlapping paths are handled without special cases.
func (l *loop) onNotify(ctx context.Context, ev fsnotify.Event) {
	name := filepath.Clean(ev.Name)
	op := ev.Op
	if l.db != nil {
		switch {
		case name == l.db.root:
			if structural(op) {
				l.check(l.db, false) // notice now rather than at the next poll
			}
		case filepath.Dir(name) == l.db.root && l.dbNames[filepath.Base(name)] && counts(op):
			l.triggerLocal(ctx, filepath.Base(name), op)
		}
	}
	if l.folder != nil {
		if rel, ok := within(l.folder.root, name); ok {
			l.onFolderEvent(name, rel, op)
		}
	}
}

func (l *loop) onFolderEvent(name, rel string, op fsnotify.Op) {
	t := l.folder
	if rel == "." {
		if structural(op) {
			l.check(t, false) // notice now rather than at the next poll
		}
		return // a Write on the root is only kqueue/Windows directory noise
	}
	if ignoredPath(rel) {
		// Temp files: their final rename arrives as a Create of the final
		// name, which is not ignored.
		return
	}
	_, isDir := t.dirs[name]
	if isDir && (op.Has(fsnotify.Remove) || op.Has(fsnotify.Rename)) {
		l.unwatchSubtree(t, name)
	}
	if op.Has(fsnotify.Create) {
		if fi, err := os.Lstat(name); err == nil && fi.IsDir() {
			// Files may already be inside (mkdir -p, a moved-in directory);
			// the Remote trigger below makes the handler look at them.
			if err := l.addTree(t, name, nil); err != nil && !errors.Is(err, fs.ErrNotExist) {
				l.watchErrs.report(l.log, "watcher: cannot watch directory", "path", name, "err", err)
			}
		}
	}
	if !counts(op) || (isDir && !structural(op)) {
		// Chmod alone is attribute noise (indexers, backup tools); a Write
		// on a directory is kqueue/Windows reporting its children, which
		// arrive as events of their own.
		return
	}
	kind := FileOther
	if l.cfg.FolderFile != nil && !isDir {
		kind = l.cfg.FolderFile(rel)
	}
	switch kind {
	case FileOwn, FileIgnored:
		return // this device's own file (its echo), or one that needs no call
	case FileComplete:
		// Renamed into place whole: a Create, never a Write, of the final name.
		l.triggerNow(false, true, op.Has(fsnotify.Create), opName(op)+" "+filepath.ToSlash(rel))
	default:
		l.trigger(false, true, opName(op)+" "+filepath.ToSlash(rel))
	}
}

func (l *loop) onNotifyError(err error) {
	if errors.Is(err, fsnotify.ErrEventOverflow) {
		l.log.Warn("watcher: filesystem event queue overflowed; rescanning everything")
	} else {
		l.notifyErrs.report(l.log, "watcher: filesystem notification error; rescanning everything", "err", err)
	}
	// Events may have been lost, including directory creations: repair the
	// watch set and let the engine look at everything.
	l.check(l.folder, true)
	l.check(l.db, false)
	l.trigger(true, true, "fsnotify error")
}

// check verifies that t's root exists and is the directory being watched,
// and (re)establishes the watches when it came back or was replaced. With
// full set it also walks the whole tree to add missed directories and drop
// vanished ones.
func (l *loop) check(t *tree, full bool) {
	if t == nil {
		return
	}
	fi, err := os.Stat(t.root) // Stat, not Lstat: the root may be a symlink
	if err == nil && !fi.IsDir() {
		err = fmt.Errorf("%s is not a directory", t.root)
	}
	if err != nil {
		if t.state != stateGone {
			l.log.Warn("watcher: "+t.what+" is not available; waiting for it to come back", "path", t.root, "err", err)
			l.unwatchAll(t)
			t.state, t.id = stateGone, nil
		}
		return
	}
	if t.state == statePresent && os.SameFile(fi, t.id) {
		if full {
			l.resync(t)
		}
		return
	}

	prev := t.state
	// Watches of a replaced root point at the old inodes; start over.
	l.unwatchAll(t)
	if err := l.addTree(t, t.root, nil); err != nil {
		l.unwatchAll(t)
		t.state, t.id = stateBroken, nil
		l.watchErrs.report(l.log, "watcher: cannot watch "+t.what+"; retrying", "path", t.root, "err", err)
		return
	}
	t.state, t.id = statePresent, fi
	var reason string
	switch prev {
	case stateUnknown:
		return // startup: the catch-up call covers it
	case statePresent:
		reason = t.what + " replaced"
	default:
		reason = t.what + " is back"
	}
	l.log.Info("watcher: "+reason+"; watching again", "path", t.root)
	l.trigger(t.local, !t.local, reason)
}

// resync walks t and makes the watch set match the directories that exist.
func (l *loop) resync(t *tree) {
	seen := map[string]struct{}{}
	if err := l.addTree(t, t.root, seen); err != nil {
		// The root itself failed; the next check decides what that means.
		l.watchErrs.report(l.log, "watcher: cannot rescan "+t.what, "path", t.root, "err", err)
		return
	}
	for d := range t.dirs {
		if _, ok := seen[d]; !ok {
			l.unwatch(t, d)
		}
	}
}

// addTree watches dir and, for a recursive tree, all its subdirectories that
// are not ignored. It watches a directory before listing it, so that nothing
// created in between is missed. Symlinked subdirectories are not followed
// (loops, and paths outside the folder). Only an error on dir itself is
// returned; errors below it are logged, as they should not block the rest.
func (l *loop) addTree(t *tree, dir string, seen map[string]struct{}) error {
	if seen != nil {
		seen[dir] = struct{}{}
	}
	if _, ok := t.dirs[dir]; !ok {
		if err := l.addWatch(dir); err != nil {
			return err
		}
		t.dirs[dir] = struct{}{}
	}
	if !t.recursive {
		return nil
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if !e.IsDir() || ignoredName(e.Name()) {
			continue
		}
		sub := filepath.Join(dir, e.Name())
		if err := l.addTree(t, sub, seen); err != nil && !errors.Is(err, fs.ErrNotExist) {
			// ErrNotExist is the normal race with a deletion; anything else
			// (permissions, the inotify watch limit) deserves a log line.
			l.watchErrs.report(l.log, "watcher: cannot watch directory", "path", sub, "err", err)
		}
	}
	return nil
}

func (l *loop) addWatch(dir string) error {
	if l.fsw == nil {
		return nil
	}
	return l.fsw.Add(dir)
}

func (l *loop) unwatchAll(t *tree) {
	for d := range t.dirs {
		l.unwatch(t, d)
	}
}

func (l *loop) unwatchSubtree(t *tree, dir string) {
	prefix := dir + string(filepath.Separator)
	for d := range t.dirs {
		if d == dir || strings.HasPrefix(d, prefix) {
			l.unwatch(t, d)
		}
	}
}

// unwatch forgets dir in t. The fsnotify watch survives if the other tree
// still uses the same directory (the database living inside the folder).
func (l *loop) unwatch(t *tree, dir string) {
	delete(t.dirs, dir)
	for _, o := range []*tree{l.folder, l.db} {
		if o != nil && o != t {
			if _, ok := o.dirs[dir]; ok {
				return
			}
		}
	}
	if l.fsw != nil {
		// Errors only mean the kernel already dropped the watch (the
		// directory was deleted), which is what we want anyway.
		_ = l.fsw.Remove(dir)
	}
}

func (l *loop) pollVersion(ctx context.Context) {
	if l.cfg.DataVersion == nil {
		return
	}
	v, err := l.cfg.DataVersion(ctx)
	if err != nil {
		if ctx.Err() == nil {
			l.versionErrs.report(l.log, "watcher: DataVersion probe failed", "err", err)
		}
		return
	}
	l.versionErrs.ok(l.log, "watcher: DataVersion probe works again")
	// The old value is kept across failures, so a change made while the
	// probe was failing is still noticed.
	// A value that is just what the last call left is that call's own
	// echo, when the database's directory is watched: commits during the
	// call wrote the "-wal" or "-journal" and are pending already.
	echo := l.ownFresh && v == l.ownVersion && l.fsw != nil && l.db != nil && l.db.state == statePresent
	if l.haveVersion && v != l.version && !echo {
		l.trigger(true, false, "data_version changed")
	}
	l.version, l.haveVersion, l.ownFresh = v, true, false
}

// pending accumulates the triggers of the current burst.
type pending struct {
	active        bool
	lead          bool // start at once: the burst's leading edge, or a complete file
	first, last   time.Time
	local, remote bool
	reasons       []string
	seen          map[string]struct{}
	dropped       int
}

func (p *pending) add(local, remote bool, reason string, now time.Time) {
	if !p.active {
		p.active, p.first = true, now
	}
	p.last = now
	p.local = p.local || local
	p.remote = p.remote || remote
	if _, ok := p.seen[reason]; ok {
		return
	}
	if len(p.reasons) >= maxReasons {
		p.dropped++
		return
	}
	if p.seen == nil {
		p.seen = map[string]struct{}{}
	}
	p.seen[reason] = struct{}{}
	p.reasons = append(p.reasons, reason)
}

// deadline is when the burst counts as over: at once for a leading edge,
// else a quiet period after its last trigger, but never later than maxDelay
// after its first one.
func (p *pending) deadline(debounce, maxDelay time.Duration) time.Time {
	if p.lead {
		return p.first
	}
	d := p.last.Add(debounce)
	if m := p.first.Add(maxDelay); m.Before(d) {
		return m
	}
	return d
}

func (p *pending) take() Event {
	ev := Event{Local: p.local, Remote: p.remote, Reasons: p.reasons}
	if p.dropped > 0 {
		ev.Reasons = append(ev.Reasons, fmt.Sprintf("%d more not listed", p.dropped))
	}
	*p = pending{}
	return ev
}

// errLog rate-limits a repeating error: the first occurrence is logged, the
// repeats within every are only counted and reported with the next line.
type errLog struct {
	every      time.Duration
	last       time.Time
	suppressed int
	failing    bool
}

func (e *errLog) report(log *slog.Logger, msg string, args ...any) {
	now := time.Now()
	e.failing = true
	if !e.last.IsZero() && now.Sub(e.last) < e.every {
		e.suppressed++
		return
	}
	if e.suppressed > 0 {
		args = append(args, "suppressed", e.suppressed)
	}
	log.Warn(msg, args...)
	e.last, e.suppressed = now, 0
}

// ok logs a recovery once and resets the limiter, so that the next failure
// is logged right away.
func (e *errLog) ok(log *slog.Logger, msg string) {
	if !e.failing {
		return
	}
	log.Info(msg)
	*e = errLog{every: e.every}
}

// counts reports whether op can mean changed content. Chmod alone cannot.
func counts(op fsnotify.Op) bool {
	return op.Has(fsnotify.Create) || op.Has(fsnotify.Write) || op.Has(fsnotify.Remove) || op.Has(fsnotify.Rename)
}

// structural reports whether op adds or removes a name (as opposed to
// changing content or attributes).
func structural(op fsnotify.Op) bool {
	return op.Has(fsnotify.Create) || op.Has(fsnotify.Remove) || op.Has(fsnotify.Rename)
}

func opName(op fsnotify.Op) string {
	switch {
	case op.Has(fsnotify.Create):
		return "create"
	case op.Has(fsnotify.Write):
		return "write"
	case op.Has(fsnotify.Remove):
		return "remove"
	case op.Has(fsnotify.Rename):
		return "rename"
	default:
		return strings.ToLower(op.String())
	}
}

// within returns name relative to root, if name is root or below it.
func within(root, name string) (string, bool) {
	rel, err := filepath.Rel(root, name)
	if err != nil || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
		return "", false
	}
	return rel, true
}

// ignoredName reports whether a base name is a temporary or metadata file
// that must not count as a change: rowdrop's and Syncthing's temp files and
// Syncthing's .stfolder/.stversions all begin with "."; Syncthing on Windows
// uses a "~syncthing~" prefix instead.
func ignoredName(name string) bool {
	return strings.HasPrefix(name, ".") || strings.HasPrefix(name, "~syncthing~")
}

// ignoredPath reports whether any component of a folder-relative path is
// ignored, so that nothing below .stversions counts either.
func ignoredPath(rel string) bool {
	for _, c := range strings.Split(rel, string(filepath.Separator)) {
		if ignoredName(c) {
			return true
		}
	}
	return false
}
