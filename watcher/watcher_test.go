package watcher

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"zombiezen.com/go/sqlite"
	"zombiezen.com/go/sqlite/sqlitex"
)

// Generous bounds: these tests use real inotify and must not flake under
// -race on a loaded machine. Nothing asserts exact timings.
const (
	waitLong  = 5 * time.Second
	waitQuiet = 400 * time.Millisecond
)

// recorder is a handler that forwards every event to a channel.
type recorder struct {
	ch    chan Event
	calls atomic.Int32
}

func newRecorder() *recorder { return &recorder{ch: make(chan Event, 1000)} }

func (r *recorder) handle(ctx context.Context, ev Event) error {
	r.calls.Add(1)
	r.ch <- ev
	return nil
}

// fastConfig keeps the test suite quick; every test overrides what it needs.
func fastConfig() Config {
	return Config{
		Debounce:       50 * time.Millisecond,
		MaxDelay:       500 * time.Millisecond,
		PollInterval:   50 * time.Millisecond,
		RescanInterval: -1,
	}
}

// start runs Run in the background and stops it at the end of the test,
// failing if it returns anything but context.Canceled.
func start(t *testing.T, cfg Config, handle func(context.Context, Event) error) (errc <-chan error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ch := make(chan error, 1)
	go func() { ch <- Run(ctx, cfg, handle) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-ch:
			if !errors.Is(err, context.Canceled) {
				t.Errorf("Run returned %v, want context.Canceled", err)
			}
		case <-time.After(waitLong):
			t.Errorf("Run did not return after cancel")
		}
	})
	return ch
}

// waitFor returns the first event satisfying ok, skipping others.
func waitFor(t *testing.T, ch <-chan Event, what string, ok func(Event) bool) Event {
	t.Helper()
	deadline := time.After(waitLong)
	for {
		select {
		case ev := <-ch:
			if ok(ev) {
				return ev
			}
		case <-deadline:
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// expectNone fails if an event satisfying bad arrives within waitQuiet.
func expectNone(t *testing.T, ch <-chan Event, what string, bad func(Event) bool) {
	t.Helper()
	deadline := time.After(waitQuiet)
	for {
		select {
		case ev := <-ch:
			if bad(ev) {
				t.Fatalf("unexpected %s: %+v", what, ev)
			}
		case <-deadline:
			return
		}
	}
}

func isStartup(ev Event) bool { return hasReason(ev, "startup") }

func hasReason(ev Event, sub string) bool {
	for _, r := range ev.Reasons {
		if strings.Contains(r, sub) {
			return true
		}
	}
	return false
}

func remoteWith(sub string) func(Event) bool {
	return func(ev Event) bool { return ev.Remote && hasReason(ev, sub) }
}

func localWith(sub string) func(Event) bool {
	return func(ev Event) bool { return ev.Local && hasReason(ev, sub) }
}

func anyEvent(Event) bool { return true }

func writeFile(t *testing.T, path, data string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

func mkdir(t *testing.T, path string) {
	t.Helper()
	if err := os.MkdirAll(path, 0o755); err != nil {
		t.Fatal(err)
	}
}

// syncBuffer collects log output from Run's goroutine.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) count(sub string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return strings.Count(s.b.String(), sub)
}

func TestStartupCallIsLocalAndRemote(t *testing.T) {
	t.Parallel()
	r := newRecorder()
	start(t, fastConfig(), r.handle)
	ev := waitFor(t, r.ch, "startup call", anyEvent)
	if !ev.Local || !ev.Remote || !isStartup(ev) {
		t.Fatalf("first call = %+v, want Local, Remote, reason startup", ev)
	}
}

func TestRemoteOnNewFilesAndSubdirectories(t *testing.T) {
	t.Parallel()
	folder := t.TempDir()
	mkdir(t, filepath.Join(folder, "dev-a"))
	cfg := fastConfig()
	cfg.Folder = folder
	r := newRecorder()
	start(t, cfg, r.handle)
	waitFor(t, r.ch, "startup call", isStartup)

	writeFile(t, filepath.Join(folder, "top.rdz"), "x")
	waitFor(t, r.ch, "Remote for a top-level file", remoteWith("top.rdz"))

	// A subdirectory that existed at start.
	writeFile(t, filepath.Join(folder, "dev-a", "0001.rdz"), "x")
	waitFor(t, r.ch, "Remote for a file in an existing subdirectory", remoteWith("dev-a/0001.rdz"))

	// A subdirectory created at runtime: its creation counts, and so do
	// files written into it afterwards.
	mkdir(t, filepath.Join(folder, "dev-b"))
	waitFor(t, r.ch, "Remote for a new subdirectory", remoteWith("dev-b"))
	writeFile(t, filepath.Join(folder, "dev-b", "0001.rdz"), "x")
	waitFor(t, r.ch, "Remote for a file in a new subdirectory", remoteWith("dev-b/0001.rdz"))

	// mkdir -p creates the inner levels before any watch can exist; they
	// must be watched all the same.
	mkdir(t, filepath.Join(folder, "dev-c", "x", "y"))
	waitFor(t, r.ch, "Remote for a nested new subdirectory", remoteWith("dev-c"))
	writeFile(t, filepath.Join(folder, "dev-c", "x", "y", "f.rdz"), "x")
	waitFor(t, r.ch, "Remote for a file deep in a new subdirectory", remoteWith("dev-c/x/y/f.rdz"))
}

func TestTempFilesIgnoredButFinalRenameCounts(t *testing.T) {
	t.Parallel()
	folder := t.TempDir()
	cfg := fastConfig()
	cfg.Folder = folder
	r := newRecorder()
	start(t, cfg, r.handle)
	waitFor(t, r.ch, "startup call", isStartup)

	tmp := filepath.Join(folder, ".syncthing.0001.rdz.tmp")
	writeFile(t, tmp, "partial")
	mkdir(t, filepath.Join(folder, ".stversions", "old"))
	writeFile(t, filepath.Join(folder, ".stversions", "old", "f"), "x")
	expectNone(t, r.ch, "call for temp files", anyEvent)

	if err := os.Rename(tmp, filepath.Join(folder, "0001.rdz")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, r.ch, "Remote for the final name", remoteWith("0001.rdz"))
}

func TestBurstIsCoalesced(t *testing.T) {
	t.Parallel()
	folder := t.TempDir()
	cfg := fastConfig()
	cfg.Folder = folder
	cfg.Debounce = 100 * time.Millisecond
	cfg.MaxDelay = time.Second

	var mu sync.Mutex
	var starts []time.Time
	handle := func(ctx context.Context, ev Event) error {
		mu.Lock()
		starts = append(starts, time.Now())
		mu.Unlock()
		return nil
	}
	start(t, cfg, handle)
	time.Sleep(200 * time.Millisecond) // let the startup call pass

	mu.Lock()
	before := len(starts)
	mu.Unlock()
	for i := range 50 {
		writeFile(t, filepath.Join(folder, fmt.Sprintf("f%02d.rdz", i)), "x")
		time.Sleep(2 * time.Millisecond)
	}
	burstEnd := time.Now()

	deadline := time.Now().Add(waitLong)
	for {
		time.Sleep(50 * time.Millisecond)
		mu.Lock()
		after := starts[before:]
		done := len(after) > 0 && after[len(after)-1].After(burstEnd)
		mu.Unlock()
		if done {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no handler call after the burst ended")
		}
	}
	time.Sleep(waitQuiet) // any stragglers
	mu.Lock()
	n := len(starts) - before
	mu.Unlock()
	if n >= 10 {
		t.Fatalf("burst of 50 writes produced %d handler calls, want fewer than 10", n)
	}
	t.Logf("burst of 50 writes -> %d handler call(s)", n)
}

func TestMaxDelayBoundsAContinuousBurst(t *testing.T) {
	t.Parallel()
	folder := t.TempDir()
	cfg := fastConfig()
	cfg.Folder = folder
	cfg.Debounce = 200 * time.Millisecond
	cfg.MaxDelay = 300 * time.Millisecond
	r := newRecorder()
	start(t, cfg, r.handle)
	waitFor(t, r.ch, "startup call", isStartup)

	// Writes every 20ms never leave a 200ms quiet period, so only MaxDelay
	// can trigger a call while they go on.
	stop := make(chan struct{})
	writerDone := make(chan struct{})
	go func() {
		defer close(writerDone)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
			_ = os.WriteFile(filepath.Join(folder, "growing.rdz"), []byte(strings.Repeat("x", i)), 0o644)
		}
	}()
	defer func() { close(stop); <-writerDone }()
	waitFor(t, r.ch, "Remote during a continuous burst", remoteWith("growing.rdz"))
}

func TestLocalOnDatabaseFiles(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	db := filepath.Join(dir, "app.db")
	writeFile(t, db, "")
	cfg := fastConfig()
	cfg.DBPath = db
	r := newRecorder()
	start(t, cfg, r.handle)
	waitFor(t, r.ch, "startup call", isStartup)

	writeFile(t, db, "page")
	waitFor(t, r.ch, "Local for the database file", localWith("app.db"))

	// -shm changes on every read and unrelated files are not ours.
	writeFile(t, db+"-shm", "x")
	writeFile(t, filepath.Join(dir, "other.db"), "x")
	expectNone(t, r.ch, "call for -shm or an unrelated file", anyEvent)

	// The -wal did not exist when Run started.
	writeFile(t, db+"-wal", "frame")
	waitFor(t, r.ch, "Local for the -wal", localWith("app.db-wal"))
	writeFile(t, db+"-journal", "j")
	waitFor(t, r.ch, "Local for the -journal", localWith("app.db-journal"))
}

func TestDataVersionChangeIsLocal(t *testing.T) {
	t.Parallel()
	var version atomic.Int64
	var failing atomic.Bool
	version.Store(7)
	logs := &syncBuffer{}
	cfg := fastConfig()
	// A database directory nobody writes to: only the probe can notice.
	cfg.DBPath = filepath.Join(t.TempDir(), "app.db")
	cfg.Logger = slog.New(slog.NewTextHandler(logs, nil))
	cfg.DataVersion = func(ctx context.Context) (int64, error) {
		if failing.Load() {
			return 0, errors.New("database is locked")
		}
		return version.Load(), nil
	}
	r := newRecorder()
	start(t, cfg, r.handle)
	waitFor(t, r.ch, "startup call", isStartup)
	expectNone(t, r.ch, "call with an unchanged version", anyEvent)

	version.Store(8)
	ev := waitFor(t, r.ch, "Local for a data_version change", localWith("data_version"))
	if ev.Remote {
		t.Errorf("data_version change produced Remote: %+v", ev)
	}

	// Errors are logged, rate-limited, and not fatal; a change made while
	// the probe fails is still noticed afterwards.
	failing.Store(true)
	time.Sleep(300 * time.Millisecond) // several polls
	version.Store(9)
	failing.Store(false)
	waitFor(t, r.ch, "Local after the probe recovered", localWith("data_version"))
	if n := logs.count("DataVersion probe failed"); n != 1 {
		t.Errorf("probe failure logged %d times, want once (rate-limited)", n)
	}
	if n := logs.count("DataVersion probe works again"); n != 1 {
		t.Errorf("probe recovery logged %d times, want once", n)
	}
}

// TestRealSQLite checks both local signals against a real WAL database
// written by another connection, as the app would.
func TestRealSQLite(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "app.db")
	writer, err := sqlite.OpenConn(path, sqlite.OpenReadWrite, sqlite.OpenCreate, sqlite.OpenWAL)
	if err != nil {
		t.Fatal(err)
	}
	defer writer.Close()
	if err := sqlitex.ExecuteScript(writer, "PRAGMA journal_mode=WAL; CREATE TABLE t (v INTEGER);", nil); err != nil {
		t.Fatal(err)
	}
	insert := func() {
		t.Helper()
		if err := sqlitex.Execute(writer, "INSERT INTO t (v) VALUES (1)", nil); err != nil {
			t.Fatal(err)
		}
	}

	t.Run("fsnotify", func(t *testing.T) {
		cfg := fastConfig()
		cfg.DBPath = path
		r := newRecorder()
		start(t, cfg, r.handle)
		waitFor(t, r.ch, "startup call", isStartup)
		insert()
		waitFor(t, r.ch, "Local for a committed insert", localWith("app.db"))
	})

	t.Run("data_version", func(t *testing.T) {
		probe, err := sqlite.OpenConn(path, sqlite.OpenReadOnly, sqlite.OpenWAL)
		if err != nil {
			t.Fatal(err)
		}
		// The probe is used only from Run's goroutine, and closed after Run
		// has returned (cleanups run in reverse order).
		t.Cleanup(func() { probe.Close() })
		cfg := fastConfig()
		cfg.DataVersion = func(ctx context.Context) (v int64, err error) {
			err = sqlitex.ExecuteTransient(probe, "PRAGMA data_version", &sqlitex.ExecOptions{
				ResultFunc: func(stmt *sqlite.Stmt) error { v = stmt.ColumnInt64(0); return nil },
			})
			return v, err
		}
		r := newRecorder()
		start(t, cfg, r.handle)
		waitFor(t, r.ch, "startup call", isStartup)
		insert()
		waitFor(t, r.ch, "Local for a committed insert", localWith("data_version"))
	})
}

func TestFolderVanishesAndComesBack(t *testing.T) {
	t.Parallel()
	folder := filepath.Join(t.TempDir(), "stick")
	mkdir(t, filepath.Join(folder, "dev-a"))
	logs := &syncBuffer{}
	cfg := fastConfig()
	cfg.Folder = folder
	cfg.Logger = slog.New(slog.NewTextHandler(logs, nil))
	r := newRecorder()
	errc := start(t, cfg, r.handle)
	waitFor(t, r.ch, "startup call", isStartup)

	if err := os.RemoveAll(folder); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(waitLong)
	for logs.count("shared folder is not available") == 0 {
		if time.Now().After(deadline) {
			t.Fatal("vanished folder was not logged")
		}
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(300 * time.Millisecond) // several polls while it is gone
	if n := logs.count("shared folder is not available"); n != 1 {
		t.Errorf("vanished folder logged %d times, want once", n)
	}
	select {
	case err := <-errc:
		t.Fatalf("Run returned while the folder was gone: %v", err)
	default:
	}

	mkdir(t, filepath.Join(folder, "dev-b"))
	waitFor(t, r.ch, "Remote when the folder came back", remoteWith("shared folder is back"))
	writeFile(t, filepath.Join(folder, "dev-b", "0002.rdz"), "x")
	waitFor(t, r.ch, "Remote for a file in the returned folder", remoteWith("dev-b/0002.rdz"))
}

func TestFolderReplacedUnderTheSamePath(t *testing.T) {
	t.Parallel()
	base := t.TempDir()
	folder := filepath.Join(base, "stick")
	mkdir(t, folder)
	cfg := fastConfig()
	cfg.Folder = folder
	r := newRecorder()
	start(t, cfg, r.handle)
	waitFor(t, r.ch, "startup call", isStartup)

	// Like a re-mount: the path never disappears for long, but it is a
	// different directory afterwards.
	if err := os.Rename(folder, filepath.Join(base, "old")); err != nil {
		t.Fatal(err)
	}
	mkdir(t, folder)
	waitFor(t, r.ch, "Remote for the replaced folder", func(ev Event) bool {
		return ev.Remote && (hasReason(ev, "replaced") || hasReason(ev, "is back"))
	})
	writeFile(t, filepath.Join(folder, "new.rdz"), "x")
	waitFor(t, r.ch, "Remote for a file in the new folder", remoteWith("new.rdz"))
}

// TestReplacedRootIsNoticedByIdentity covers a replacement that no event
// reports (a remount between two polls): the path exists at every check, only
// its identity changed. It drives check directly, without fsnotify, which is
// also how Run behaves when notifications are unavailable.
func TestReplacedRootIsNoticedByIdentity(t *testing.T) {
	t.Parallel()
	base := t.TempDir()
	folder := filepath.Join(base, "stick")
	mkdir(t, folder)
	l := newLoop(Config{Folder: folder}.withDefaults(), func(context.Context, Event) error { return nil })
	l.check(l.folder, false)
	if l.folder.state != statePresent || l.pend.active {
		t.Fatalf("after the first check: state %v, pending %v", l.folder.state, l.pend.active)
	}
	l.check(l.folder, false)
	if l.pend.active {
		t.Fatal("an unchanged folder produced a trigger")
	}
	if err := os.Rename(folder, filepath.Join(base, "old")); err != nil {
		t.Fatal(err)
	}
	mkdir(t, folder)
	l.check(l.folder, false)
	ev := l.pend.take()
	if !ev.Remote || ev.Local || !hasReason(ev, "shared folder replaced") {
		t.Fatalf("after replacement: %+v, want Remote with reason \"shared folder replaced\"", ev)
	}
}

func TestFolderMissingAtStart(t *testing.T) {
	t.Parallel()
	folder := filepath.Join(t.TempDir(), "not-yet")
	cfg := fastConfig()
	cfg.Folder = folder
	r := newRecorder()
	start(t, cfg, r.handle)
	waitFor(t, r.ch, "startup call", isStartup)

	mkdir(t, folder)
	waitFor(t, r.ch, "Remote when the folder appeared", remoteWith("shared folder is back"))
	writeFile(t, filepath.Join(folder, "f.rdz"), "x")
	waitFor(t, r.ch, "Remote for a file in it", remoteWith("f.rdz"))
}

func TestDatabaseDirectoryVanishesAndComesBack(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "appdata")
	mkdir(t, dir)
	db := filepath.Join(dir, "app.db")
	cfg := fastConfig()
	cfg.DBPath = db
	r := newRecorder()
	start(t, cfg, r.handle)
	waitFor(t, r.ch, "startup call", isStartup)

	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond)
	mkdir(t, dir)
	waitFor(t, r.ch, "Local when the directory came back", localWith("database directory is back"))
	writeFile(t, db, "x")
	waitFor(t, r.ch, "Local for the database file", localWith("app.db"))
}

func TestRescanIntervalFiresRemote(t *testing.T) {
	t.Parallel()
	cfg := fastConfig()
	cfg.Folder = t.TempDir()
	cfg.RescanInterval = 150 * time.Millisecond
	r := newRecorder()
	start(t, cfg, r.handle)
	waitFor(t, r.ch, "startup call", isStartup)
	ev := waitFor(t, r.ch, "periodic rescan", remoteWith("rescan"))
	if ev.Local {
		t.Errorf("rescan produced Local: %+v", ev)
	}
}

func TestCancelWaitsForRunningHandler(t *testing.T) {
	t.Parallel()
	folder := t.TempDir()
	cfg := fastConfig()
	cfg.Folder = folder
	entered := make(chan struct{})
	release := make(chan struct{})
	var calls, returned atomic.Int32
	handle := func(ctx context.Context, ev Event) error {
		if calls.Add(1) == 1 {
			close(entered)
			<-release // ignores ctx on purpose: Run must still wait
		}
		returned.Add(1)
		return ctx.Err()
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	errc := make(chan error, 1)
	go func() { errc <- Run(ctx, cfg, handle) }()

	<-entered
	// Triggers during the handler would normally cause a follow-up call.
	writeFile(t, filepath.Join(folder, "late.rdz"), "x")
	time.Sleep(150 * time.Millisecond)
	cancel()
	select {
	case err := <-errc:
		t.Fatalf("Run returned %v while the handler was still running", err)
	case <-time.After(200 * time.Millisecond):
	}
	close(release)
	select {
	case err := <-errc:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("Run returned %v, want context.Canceled", err)
		}
	case <-time.After(waitLong):
		t.Fatal("Run did not return after the handler finished")
	}
	if returned.Load() != 1 {
		t.Fatal("Run returned before the handler did")
	}
	time.Sleep(200 * time.Millisecond)
	if n := calls.Load(); n != 1 {
		t.Fatalf("handler called %d times, want no call after cancel", n)
	}
}

func TestFollowUpCallAfterSlowHandler(t *testing.T) {
	t.Parallel()
	folder := t.TempDir()
	cfg := fastConfig()
	cfg.Folder = folder
	var running, overlap atomic.Bool
	r := newRecorder()
	release := make(chan struct{})
	handle := func(ctx context.Context, ev Event) error {
		if running.Swap(true) {
			overlap.Store(true)
		}
		defer running.Store(false)
		if isStartup(ev) {
			<-release
		}
		return r.handle(ctx, ev)
	}
	start(t, cfg, handle)
	time.Sleep(50 * time.Millisecond)
	for i := range 5 {
		writeFile(t, filepath.Join(folder, fmt.Sprintf("f%d.rdz", i)), "x")
	}
	time.Sleep(200 * time.Millisecond) // the burst is over while the handler still runs
	close(release)
	waitFor(t, r.ch, "startup call", isStartup)
	ev := waitFor(t, r.ch, "one follow-up call", anyEvent)
	if !ev.Remote || !hasReason(ev, "f0.rdz") || !hasReason(ev, "f4.rdz") {
		t.Fatalf("follow-up call = %+v, want Remote with all five files", ev)
	}
	expectNone(t, r.ch, "second follow-up call", anyEvent)
	if overlap.Load() {
		t.Fatal("handler calls overlapped")
	}
}

func TestHandlerErrorDoesNotStopRun(t *testing.T) {
	t.Parallel()
	cfg := fastConfig()
	cfg.Folder = t.TempDir()
	cfg.RescanInterval = 100 * time.Millisecond
	var calls atomic.Int32
	handle := func(ctx context.Context, ev Event) error {
		calls.Add(1)
		return errors.New("export failed")
	}
	start(t, cfg, handle)
	deadline := time.Now().Add(waitLong)
	for calls.Load() < 3 {
		if time.Now().After(deadline) {
			t.Fatalf("handler called %d times; want retries after errors", calls.Load())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestNilHandler(t *testing.T) {
	t.Parallel()
	if err := Run(context.Background(), Config{}, nil); err == nil {
		t.Fatal("Run with a nil handler returned nil")
	}
}

func TestReasonsAreDedupedAndCapped(t *testing.T) {
	t.Parallel()
	var p pending
	now := time.Now()
	for i := range 3 * maxReasons {
		p.add(false, true, fmt.Sprintf("r%d", i%(2*maxReasons)), now)
	}
	p.add(true, false, "r0", now)
	ev := p.take()
	if !ev.Local || !ev.Remote {
		t.Errorf("flags not merged: %+v", ev)
	}
	if len(ev.Reasons) != maxReasons+1 || ev.Reasons[maxReasons] != fmt.Sprintf("%d more not listed", maxReasons) {
		t.Errorf("reasons = %q", ev.Reasons)
	}
	if p.active || len(p.reasons) != 0 {
		t.Error("take did not reset the burst")
	}
}

// TestNoGoroutineLeak is deliberately not parallel: the other tests are
// paused while it runs, so the goroutine count is stable around it.
func TestNoGoroutineLeak(t *testing.T) {
	before := runtime.NumGoroutine()
	for range 3 {
		folder := t.TempDir()
		dir := t.TempDir()
		cfg := fastConfig()
		cfg.Folder = folder
		cfg.DBPath = filepath.Join(dir, "app.db")
		cfg.RescanInterval = 30 * time.Millisecond
		cfg.DataVersion = func(context.Context) (int64, error) { return 1, nil }
		r := newRecorder()
		ctx, cancel := context.WithCancel(context.Background())
		errc := make(chan error, 1)
		go func() { errc <- Run(ctx, cfg, r.handle) }()
		waitFor(t, r.ch, "startup call", isStartup)
		mkdir(t, filepath.Join(folder, "dev"))
		writeFile(t, filepath.Join(folder, "dev", "f"), "x")
		writeFile(t, cfg.DBPath, "x")
		time.Sleep(100 * time.Millisecond)
		cancel()
		if err := <-errc; !errors.Is(err, context.Canceled) {
			t.Fatalf("Run returned %v", err)
		}
	}
	deadline := time.Now().Add(waitLong)
	for {
		n := runtime.NumGoroutine()
		if n <= before {
			return
		}
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<16)
			t.Fatalf("goroutines: %d before, %d after\n%s", before, n, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// leadConfig has a quiet period long enough that a call within half of it
// can only be the leading edge, even on a loaded machine.
func leadConfig(folder string) Config {
	cfg := fastConfig()
	cfg.Folder = folder
	cfg.Debounce = 3 * time.Second
	cfg.MaxDelay = 6 * time.Second
	return cfg
}

// TestLeadingEdgeStartsAtOnce: a commit to the live database after a quiet
// period is handled at once, in WAL and in rollback-journal mode; what
// follows it waits for the quiet period; a write transaction that has begun
// but not committed starts nothing early.
func TestLeadingEdgeStartsAtOnce(t *testing.T) {
	t.Parallel()
	for _, mode := range []string{"WAL", "DELETE"} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			path := filepath.Join(t.TempDir(), "app.db")
			writer, err := sqlite.OpenConn(path, sqlite.OpenReadWrite, sqlite.OpenCreate)
			if err != nil {
				t.Fatal(err)
			}
			defer writer.Close()
			exec := func(q string) {
				t.Helper()
				if err := sqlitex.ExecuteTransient(writer, q, nil); err != nil {
					t.Fatal(err)
				}
			}
			exec("PRAGMA journal_mode=" + mode)
			exec("CREATE TABLE t (v INTEGER)")
			cfg := leadConfig("")
			cfg.Folder = ""
			cfg.DBPath = path
			r := newRecorder()
			start(t, cfg, r.handle)
			waitFor(t, r.ch, "startup call", isStartup)
			time.Sleep(cfg.Debounce + 200*time.Millisecond) // quiet since the startup call

			t0 := time.Now()
			exec("INSERT INTO t VALUES (1)")
			waitFor(t, r.ch, "leading-edge call", func(ev Event) bool { return ev.Local })
			if d := time.Since(t0); d >= cfg.Debounce/2 {
				t.Fatalf("a commit after a quiet period was handled after %v, want at once (quiet period %v)", d, cfg.Debounce)
			}
			t1 := time.Now()
			exec("INSERT INTO t VALUES (2)")
			waitFor(t, r.ch, "coalesced follow-up", func(ev Event) bool { return ev.Local })
			if d := time.Since(t1); d < cfg.Debounce*9/10 {
				t.Fatalf("a commit right after a call was handled after %v, want it to wait for the quiet period of %v", d, cfg.Debounce)
			}

			if mode != "DELETE" {
				return
			}
			// A transaction that began (its journal exists) but has not
			// committed is no leading edge: a call now would read the
			// database before the commit.
			time.Sleep(cfg.Debounce + 200*time.Millisecond)
			exec("BEGIN IMMEDIATE")
			exec("INSERT INTO t VALUES (3)")
			t2 := time.Now()
			if _, err := os.Stat(path + "-journal"); err != nil {
				exec("COMMIT")
				t.Skipf("no -journal file during the transaction (%v): nothing to test", err)
			}
			select {
			case ev := <-r.ch:
				if d := time.Since(t2); d < cfg.Debounce/2 {
					t.Fatalf("a call %v after a transaction began, before its commit: %+v", d, ev)
				}
			case <-time.After(cfg.Debounce / 2):
			}
			exec("COMMIT")
		})
	}
}

// TestCompleteFileStartsAtOnceAndOwnFilesAreIgnored: another device's whole
// file is handled at once even right after a call; this device's own files
// start nothing.
func TestCompleteFileStartsAtOnceAndOwnFilesAreIgnored(t *testing.T) {
	t.Parallel()
	folder := t.TempDir()
	mkdir(t, filepath.Join(folder, "own"))
	mkdir(t, filepath.Join(folder, "peer"))
	cfg := leadConfig(folder)
	cfg.FolderFile = func(rel string) FileKind {
		switch dir, base := filepath.Split(rel); {
		case dir == "own"+string(filepath.Separator):
			return FileOwn
		case strings.HasSuffix(base, ".whole"):
			return FileComplete
		}
		return FileOther
	}
	r := newRecorder()
	start(t, cfg, r.handle)
	waitFor(t, r.ch, "startup call", isStartup)

	// Right after a call (no quiet period yet): only urgency starts one.
	tmp := filepath.Join(folder, "peer", ".tmp-1")
	writeFile(t, tmp, "x")
	t0 := time.Now()
	if err := os.Rename(tmp, filepath.Join(folder, "peer", "1.whole")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, r.ch, "call for a complete file", remoteWith("1.whole"))
	if d := time.Since(t0); d >= cfg.Debounce/2 {
		t.Fatalf("a complete file was handled after %v, want at once (quiet period %v)", d, cfg.Debounce)
	}

	time.Sleep(cfg.Debounce + 200*time.Millisecond)
	writeFile(t, filepath.Join(folder, "own", "2.whole"), "x")
	expectNone(t, r.ch, "call for this device's own file", anyEvent)
	if n := r.calls.Load(); n != 2 {
		t.Fatalf("%d handler calls, want 2 (startup, the complete file)", n)
	}
}

// causalConfig has quiet periods far longer than any test: a call other
// than the startup call can then only come from a leading edge (or a
// complete file), never from a quiet period ending.
func causalConfig(dbPath string) Config {
	cfg := fastConfig()
	cfg.DBPath = dbPath
	cfg.Debounce = time.Hour
	cfg.MaxDelay = time.Hour
	cfg.PollInterval = time.Hour
	return cfg
}

// openWAL creates a WAL database at path with a table t and returns a
// writer connection.
func openWAL(t *testing.T, path string) (exec func(q string, args ...any)) {
	t.Helper()
	conn, err := sqlite.OpenConn(path, sqlite.OpenReadWrite, sqlite.OpenCreate)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	exec = func(q string, args ...any) {
		t.Helper()
		if err := sqlitex.Execute(conn, q, &sqlitex.ExecOptions{Args: args}); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	exec("PRAGMA journal_mode=WAL")
	exec("CREATE TABLE t (v TEXT)")
	return exec
}

// TestLeadWaitsForTheCommit: a write transaction that spills pages into the
// "-wal" before it commits writes the file without committing anything; a
// leading edge taken then would read the database before the commit and
// leave the edit to the follow-up a quiet period later (issue 18: a WAL
// commit writes its frames, syncs, and only then is visible). With a
// DataVersion probe the lead waits until the commit is visible: no call
// while the transaction is open, and the call after COMMIT sees the rows.
// On the code before, the first spill started a call that saw no row.
func TestLeadWaitsForTheCommit(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "app.db")
	exec := openWAL(t, path)
	probe, err := sqlite.OpenConn(path, sqlite.OpenReadOnly)
	if err != nil {
		t.Fatal(err)
	}
	defer probe.Close()
	reader, err := sqlite.OpenConn(path, sqlite.OpenReadOnly)
	if err != nil {
		t.Fatal(err)
	}
	defer reader.Close()

	cfg := causalConfig(path)
	cfg.DataVersion = func(context.Context) (int64, error) {
		var v int64
		err := sqlitex.ExecuteTransient(probe, "PRAGMA data_version", &sqlitex.ExecOptions{ResultFunc: func(s *sqlite.Stmt) error {
			v = s.ColumnInt64(0)
			return nil
		}})
		return v, err
	}
	seen := make(chan int, 100) // rows each call saw
	handle := func(ctx context.Context, ev Event) error {
		n := -1
		if err := sqlitex.ExecuteTransient(reader, "SELECT count(*) FROM t", &sqlitex.ExecOptions{ResultFunc: func(s *sqlite.Stmt) error {
			n = s.ColumnInt(0)
			return nil
		}}); err != nil {
			return err
		}
		seen <- n
		return nil
	}
	start(t, cfg, handle)
	<-seen // startup

	exec("PRAGMA cache_size=2") // pages: the transaction spills into the WAL
	exec("BEGIN")
	before := walSize(t, path)
	for i := 0; walSize(t, path) == before; i++ {
		if i > 10000 {
			t.Fatal("the open transaction never wrote the -wal: nothing to test")
		}
		exec("INSERT INTO t VALUES (?)", strings.Repeat("x", 2000))
	}
	select {
	case n := <-seen:
		t.Fatalf("a call while the transaction was still open (it saw %d rows)", n)
	case <-time.After(waitQuiet):
	}
	exec("COMMIT")
	select {
	case n := <-seen:
		if n == 0 {
			t.Fatal("the call after the commit saw no row")
		}
	case <-time.After(waitLong):
		t.Fatal("no call after the commit")
	}
}

func walSize(t *testing.T, path string) int64 {
	t.Helper()
	fi, err := os.Stat(path + "-wal")
	if errors.Is(err, os.ErrNotExist) {
		return 0
	}
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}

// TestLeadDuringACall: a commit that comes while a call runs, with no
// leading edge within a quiet period, is a leading edge: it starts right
// after that call returns. On the code before, a commit during a call (or
// within a quiet period of its end) waited for a quiet period, so the
// echo calls that follow a sync (an import's writes, rowdrop's marker, a
// poll) kept the next edit waiting (issue 18).
func TestLeadDuringACall(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "app.db")
	exec := openWAL(t, path)
	cfg := causalConfig(path)
	entered, release := make(chan struct{}), make(chan struct{})
	r := newRecorder()
	handle := func(ctx context.Context, ev Event) error {
		if isStartup(ev) {
			close(entered) // the watches are set before the startup call
			<-release      // a call that runs while the app commits
		}
		return r.handle(ctx, ev)
	}
	start(t, cfg, handle)
	<-entered
	exec("INSERT INTO t VALUES ('edit')")
	close(release)
	waitFor(t, r.ch, "startup call", isStartup)
	waitFor(t, r.ch, "call for the commit during the startup call", func(ev Event) bool { return ev.Local && hasReason(ev, "app.db-wal") })

	// Within a quiet period of that lead's start a commit is coalesced,
	// like the writes of the lead's own call.
	exec("INSERT INTO t VALUES ('soon after')")
	expectNone(t, r.ch, "call within a quiet period of the last lead", anyEvent)
}

// TestIgnoredFileStartsNothing: FileIgnored names (another device's
// acknowledgement) start no call, not even after the quiet period.
func TestIgnoredFileStartsNothing(t *testing.T) {
	t.Parallel()
	folder := t.TempDir()
	mkdir(t, filepath.Join(folder, "peer"))
	cfg := fastConfig()
	cfg.Folder = folder
	cfg.FolderFile = func(rel string) FileKind {
		if filepath.Base(rel) == "ack" {
			return FileIgnored
		}
		return FileOther
	}
	r := newRecorder()
	start(t, cfg, r.handle)
	waitFor(t, r.ch, "startup call", isStartup)
	writeFile(t, filepath.Join(folder, "peer", "ack"), "x")
	expectNone(t, r.ch, "call for an ignored file", anyEvent)
	writeFile(t, filepath.Join(folder, "peer", "other"), "x")
	waitFor(t, r.ch, "call for another file", remoteWith("other"))
}
