//go:build linux

package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"zombiezen.com/go/sqlite"
	"zombiezen.com/go/sqlite/sqlitex"
)

// Environment knobs.
const (
	envEnable       = "ROWDROP_E2E_SYNCTHING"     // "0" skips; otherwise runs wherever syncthing and a namespace are available
	envReport       = "ROWDROP_E2E_REPORT"        // optional: write measured numbers (JSON) here
	envBin          = "ROWDROP_E2E_BIN"           // optional: use this rowdrop binary instead of building one
	envLargeN       = "ROWDROP_E2E_LARGE_N"       // notes for the large first sync (default 20000)
	envLargeTimeout = "ROWDROP_E2E_LARGE_TIMEOUT" // seconds for the large first sync (default 300)
	envSamples      = "ROWDROP_E2E_LATENCY_N"     // latency samples (default 20)
)

const (
	convergeTimeout = 60 * time.Second
	pollEvery       = 250 * time.Millisecond
	latencyPoll     = 20 * time.Millisecond
	cleanupMargin   = 45 * time.Second // kept free before the go test deadline so Cleanup can run
)

var (
	buildOnce sync.Once
	buildBin  string
	buildErr  error
	buildDir  string

	reportMu sync.Mutex
	report   = map[string]any{}
)

func TestMain(m *testing.M) {
	code := m.Run()
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
	if err := writeReport(); err != nil {
		fmt.Fprintln(os.Stderr, "e2e: writing report:", err)
		if code == 0 {
			code = 1
		}
	}
	os.Exit(code)
}

func setReport(key string, v any) {
	reportMu.Lock()
	defer reportMu.Unlock()
	report[key] = v
}

func writeReport() error {
	path := os.Getenv(envReport)
	reportMu.Lock()
	defer reportMu.Unlock()
	if path == "" || len(report) == 0 {
		return nil
	}
	report["generated_at"] = time.Now().UTC().Format(time.RFC3339)
	if out, err := exec.Command("syncthing", "--version").Output(); err == nil {
		report["syncthing_version"] = strings.TrimSpace(string(out))
	}
	b, err := json.MarshalIndent(report, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

// ------------------------------------------------------------ prerequisites

// requireE2E skips unless the real-Syncthing tests are enabled and possible.
func requireE2E(t *testing.T) {
	t.Helper()
	if os.Getenv(envEnable) == "0" || testing.Short() {
		t.Skipf("real-Syncthing e2e test: skipped (%s=0 or -short)", envEnable)
	}
	var missing []string
	for _, c := range []string{"bash", "syncthing", "unshare", "nsenter", "setsid", "ip", "curl", "jq"} {
		if _, err := exec.LookPath(c); err != nil {
			missing = append(missing, c)
		}
	}
	if len(missing) > 0 {
		t.Skipf("real-Syncthing e2e test: missing commands %v (Debian: apt-get install -y syncthing util-linux iproute2 curl jq)", missing)
	}
	if exec.Command("unshare", "-n", "true").Run() != nil && exec.Command("unshare", "-r", "-n", "true").Run() != nil {
		t.Skip("real-Syncthing e2e test: cannot create a network namespace here (needs root/CAP_SYS_ADMIN or unprivileged user namespaces); Syncthing is never run outside one")
	}
}

// budget caps d so that at least cleanupMargin remains before the go test deadline.
func budget(t *testing.T, d time.Duration) time.Duration {
	if dl, ok := t.Deadline(); ok {
		if left := time.Until(dl) - cleanupMargin; left < d {
			if left < time.Second {
				left = time.Second
			}
			return left
		}
	}
	return d
}

func envInt(t *testing.T, name string, def int) int {
	t.Helper()
	s := os.Getenv(name)
	if s == "" {
		return def
	}
	n, err := strconv.Atoi(s)
	if err != nil || n <= 0 {
		t.Fatalf("%s=%q: want a positive integer", name, s)
	}
	return n
}

// rowdropBin builds rowdrop/cmd/rowdrop once per test binary (or uses $ROWDROP_E2E_BIN).
func rowdropBin(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		if p := os.Getenv(envBin); p != "" {
			buildBin, buildErr = filepath.Abs(p)
			return
		}
		root, err := filepath.Abs("..") // go test runs in the package directory
		if err != nil {
			buildErr = err
			return
		}
		buildDir, err = os.MkdirTemp("", "rowdrop-e2e-bin-")
		if err != nil {
			buildErr = err
			return
		}
		buildBin = filepath.Join(buildDir, "rowdrop")
		cmd := exec.Command("go", "build", "-o", buildBin, "github.com/rowdrop/rowdrop/cmd/rowdrop")
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build rowdrop/cmd/rowdrop: %v (or set %s to a prebuilt binary)\n%s", err, envBin, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return buildBin
}

// ------------------------------------------------------------- the pair

type pair struct {
	t      *testing.T
	script string
	work   string
}

// startPair brings up two Syncthing instances (in a loopback-only network
// namespace) syncing dirA <-> dirB, and registers their teardown.
func startPair(t *testing.T, dirA, dirB string) *pair {
	t.Helper()
	script, err := filepath.Abs("stpair.sh")
	if err != nil {
		t.Fatal(err)
	}
	p := &pair{t: t, script: script, work: filepath.Join(t.TempDir(), "stpair")}
	t.Logf("stpair work dir: %s (if the test binary dies: STPAIR_WORK=%s %s down)", p.work, p.work, script)
	t.Cleanup(func() {
		if t.Failed() {
			if out, err := p.run(30*time.Second, "status"); err == nil {
				t.Logf("stpair status at failure:\n%s", out)
			}
			for _, side := range []string{"a", "b"} {
				t.Logf("syncthing %s log (tail):\n%s", strings.ToUpper(side), tailFile(filepath.Join(p.work, side, "syncthing.log"), 8<<10))
			}
		}
		if _, err := p.run(2*time.Minute, "down"); err != nil {
			t.Errorf("stpair down: %v", err)
		}
	})
	if _, err := p.run(budget(t, 3*time.Minute), "up", dirA, dirB); err != nil {
		t.Fatalf("stpair up: %v", err)
	}
	return p
}

// run calls stpair.sh with this pair's work dir; returns stdout.
func (p *pair) run(timeout time.Duration, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", append([]string{p.script}, args...)...)
	cmd.Env = append(os.Environ(), "STPAIR_WORK="+p.work)
	cmd.WaitDelay = 10 * time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if s := strings.TrimSpace(stderr.String()); s != "" {
		p.t.Logf("stpair %s:\n%s", args[0], s)
	}
	if err != nil {
		return stdout.String(), fmt.Errorf("stpair.sh %s: %w", strings.Join(args, " "), err)
	}
	return stdout.String(), nil
}

func (p *pair) mustRun(timeout time.Duration, args ...string) string {
	p.t.Helper()
	out, err := p.run(timeout, args...)
	if err != nil {
		p.t.Fatal(err)
	}
	return out
}

// ------------------------------------------------------------- devices

type device struct {
	name   string // "A" or "B"; also rowdrop's --device
	db     string
	folder string // this device's Syncthing folder
	state  string
	log    string
	bin    string

	cmd     *exec.Cmd
	done    chan struct{}
	waitErr error
}

func newDevice(t *testing.T, root, name, folder, bin string) *device {
	t.Helper()
	d := &device{
		name:   name,
		db:     filepath.Join(root, "db-"+name, "notes.db"),
		folder: folder,
		state:  filepath.Join(root, "state-"+name),
		log:    filepath.Join(root, "rowdrop-"+name+".log"),
		bin:    bin,
	}
	for _, dir := range []string{filepath.Dir(d.db), d.state, folder} {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	createNotesDB(t, d.db)
	return d
}

func (d *device) flags() []string {
	return []string{"--db", d.db, "--folder", d.folder, "--state", d.state, "--device", d.name}
}

// startWatch runs `rowdrop watch` for this device until the test ends.
func (d *device) startWatch(t *testing.T) {
	t.Helper()
	if d.cmd != nil {
		t.Fatalf("device %s: watch already started", d.name)
	}
	logf, err := os.OpenFile(d.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	d.cmd = exec.Command(d.bin, append([]string{"watch"}, d.flags()...)...)
	d.cmd.Stdout, d.cmd.Stderr = logf, logf
	d.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	if err := d.cmd.Start(); err != nil {
		logf.Close()
		t.Fatalf("device %s: start rowdrop watch: %v", d.name, err)
	}
	d.done = make(chan struct{})
	go func() {
		d.waitErr = d.cmd.Wait()
		logf.Close()
		close(d.done)
	}()
	t.Logf("device %s: rowdrop watch pid %d (log %s)", d.name, d.cmd.Process.Pid, d.log)
	t.Cleanup(func() {
		exitedEarly := d.exited()
		if !exitedEarly {
			_ = d.cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-d.done:
			case <-time.After(20 * time.Second):
				t.Errorf("device %s: rowdrop watch ignored SIGTERM for 20s; killing it", d.name)
				_ = d.cmd.Process.Kill()
				<-d.done
			}
		}
		switch {
		case exitedEarly:
			t.Errorf("device %s: rowdrop watch exited before the end of the test: %v", d.name, d.waitErr)
		case d.waitErr != nil:
			t.Errorf("device %s: rowdrop watch did not exit cleanly on SIGTERM: %v", d.name, d.waitErr)
		}
		if t.Failed() {
			t.Logf("device %s: rowdrop watch log (tail):\n%s", d.name, tailFile(d.log, 32<<10))
		}
	})
}

func (d *device) exited() bool {
	if d.done == nil {
		return false
	}
	select {
	case <-d.done:
		return true
	default:
		return false
	}
}

// checkAlive fails the test if this device's watch process has died.
func (d *device) checkAlive(t *testing.T) {
	t.Helper()
	if d.exited() {
		t.Fatalf("device %s: rowdrop watch exited: %v\nlog (tail):\n%s", d.name, d.waitErr, tailFile(d.log, 32<<10))
	}
}

// rowdrop runs a one-shot rowdrop subcommand for this device; returns stdout.
func (d *device) rowdrop(t *testing.T, sub ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	args := append(append([]string{}, sub...), d.flags()...)
	cmd := exec.CommandContext(ctx, d.bin, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("device %s: rowdrop %s: %v\nstderr:\n%s", d.name, strings.Join(sub, " "), err, stderr.String())
	}
	return stdout.String()
}

// ------------------------------------------------------------- notes DB

const notesSchema = `CREATE TABLE notes (
	id TEXT PRIMARY KEY,
	title TEXT,
	body TEXT,
	updated_at INTEGER
)`

func createNotesDB(t *testing.T, path string) {
	t.Helper()
	conn, err := sqlite.OpenConn(path, sqlite.OpenReadWrite|sqlite.OpenCreate|sqlite.OpenWAL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if err := sqlitex.ExecuteTransient(conn, notesSchema, nil); err != nil {
		t.Fatalf("create notes in %s: %v", path, err)
	}
}

func openRW(path string) (*sqlite.Conn, error) {
	conn, err := sqlite.OpenConn(path, sqlite.OpenReadWrite)
	if err != nil {
		return nil, err
	}
	conn.SetBusyTimeout(15 * time.Second)
	return conn, nil
}

func openRO(path string) (*sqlite.Conn, error) {
	conn, err := sqlite.OpenConn(path, sqlite.OpenReadOnly)
	if err != nil {
		return nil, err
	}
	conn.SetBusyTimeout(5 * time.Second)
	return conn, nil
}

// execDB runs one statement in its own (auto-committed) transaction.
func execDB(t *testing.T, path, query string, args ...any) {
	t.Helper()
	conn, err := openRW(path)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if err := sqlitex.Execute(conn, query, &sqlitex.ExecOptions{Args: args}); err != nil {
		t.Fatalf("%s: %s: %v", path, query, err)
	}
	if n := conn.Changes(); n != 1 {
		t.Fatalf("%s: %s %v: changed %d rows, want 1", path, query, args, n)
	}
}

func insertNote(t *testing.T, path, id, title, body string, updatedAt int64) {
	t.Helper()
	execDB(t, path, "INSERT INTO notes(id, title, body, updated_at) VALUES (?, ?, ?, ?)", id, title, body, updatedAt)
}

// insertMany inserts n notes in one transaction.
func insertMany(t *testing.T, path, prefix string, n int) {
	t.Helper()
	conn, err := openRW(path)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	err = func() (err error) {
		end, err := sqlitex.ImmediateTransaction(conn)
		if err != nil {
			return err
		}
		defer end(&err)
		stmt := conn.Prep("INSERT INTO notes(id, title, body, updated_at) VALUES (?, ?, ?, ?)")
		for i := range n {
			stmt.BindText(1, fmt.Sprintf("%s-%06d", prefix, i))
			stmt.BindText(2, fmt.Sprintf("title %d", i))
			stmt.BindText(3, fmt.Sprintf("body of note %d: %s", i, strings.Repeat("x", i%97)))
			stmt.BindInt64(4, int64(1_700_000_000+i))
			if _, err := stmt.Step(); err != nil {
				return err
			}
			if err := stmt.Reset(); err != nil {
				return err
			}
		}
		return nil
	}()
	if err != nil {
		t.Fatalf("insert %d notes into %s: %v", n, path, err)
	}
}

type note struct {
	ID, Title, Body string
	UpdatedAt       int64
	lit             string // exact, typed SQL literal form of the row (NULLs, types)
}

// dumpNotes reads all notes ordered by id through a read-only connection.
func dumpNotes(path string) ([]note, error) {
	conn, err := openRO(path)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	var rows []note
	err = sqlitex.ExecuteTransient(conn,
		`SELECT id, title, body, updated_at,
			quote(id) || '|' || quote(title) || '|' || quote(body) || '|' || quote(updated_at)
		 FROM notes ORDER BY id`,
		&sqlitex.ExecOptions{ResultFunc: func(s *sqlite.Stmt) error {
			rows = append(rows, note{
				ID: s.ColumnText(0), Title: s.ColumnText(1), Body: s.ColumnText(2),
				UpdatedAt: s.ColumnInt64(3), lit: s.ColumnText(4),
			})
			return nil
		}})
	return rows, err
}

func countNotes(path string) (int, error) {
	conn, err := openRO(path)
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	n := -1
	err = sqlitex.ExecuteTransient(conn, "SELECT count(*) FROM notes", &sqlitex.ExecOptions{
		ResultFunc: func(s *sqlite.Stmt) error { n = s.ColumnInt(0); return nil },
	})
	return n, err
}

func noteTitle(conn *sqlite.Conn, id string) (string, bool, error) {
	var title string
	found := false
	err := sqlitex.Execute(conn, "SELECT title FROM notes WHERE id = ?", &sqlitex.ExecOptions{
		Args:       []any{id},
		ResultFunc: func(s *sqlite.Stmt) error { title, found = s.ColumnText(0), true; return nil },
	})
	return title, found, err
}

func sameNotes(a, b []note) bool {
	return slices.EqualFunc(a, b, func(x, y note) bool { return x.lit == y.lit })
}

func byID(rows []note) map[string]note {
	m := make(map[string]note, len(rows))
	for _, r := range rows {
		m[r.ID] = r
	}
	return m
}

func renderNotes(rows []note, max int) string {
	var sb strings.Builder
	for i, r := range rows {
		if i == max {
			fmt.Fprintf(&sb, "  ... %d more\n", len(rows)-max)
			break
		}
		sb.WriteString("  " + r.lit + "\n")
	}
	return sb.String()
}

// waitConverged polls both DBs until they hold identical notes and, if
// given, want(notes) holds. Returns the converged notes and the wait time.
func waitConverged(t *testing.T, a, b *device, timeout time.Duration, want func([]note) error) ([]note, time.Duration) {
	t.Helper()
	timeout = budget(t, timeout)
	start := time.Now()
	var ra, rb []note
	var errA, errB, wantErr error
	for {
		a.checkAlive(t)
		b.checkAlive(t)
		ra, errA = dumpNotes(a.db)
		rb, errB = dumpNotes(b.db)
		if errA == nil && errB == nil && sameNotes(ra, rb) {
			wantErr = nil
			if want != nil {
				wantErr = want(ra)
			}
			if wantErr == nil {
				return ra, time.Since(start)
			}
		}
		if time.Since(start) > timeout {
			break
		}
		time.Sleep(pollEvery)
	}
	t.Fatalf("DBs did not converge within %v (read errors: A=%v B=%v; condition: %v)\nA (%d notes):\n%sB (%d notes):\n%s",
		timeout, errA, errB, wantErr, len(ra), renderNotes(ra, 40), len(rb), renderNotes(rb, 40))
	return nil, 0
}

func hasNotes(ids ...string) func([]note) error {
	return func(rows []note) error {
		m := byID(rows)
		for _, id := range ids {
			if _, ok := m[id]; !ok {
				return fmt.Errorf("note %q missing", id)
			}
		}
		return nil
	}
}

// --------------------------------------------------------- folder watching

// snapshotFolder lists the non-dot files under dir (what rowdrop writes),
// with size and mtime; dot entries (.stfolder, Syncthing temp files, probes)
// are skipped.
func snapshotFolder(dir string) map[string]string {
	m := map[string]string{}
	_ = filepath.WalkDir(dir, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		if p != dir && strings.HasPrefix(e.Name(), ".") {
			if e.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if e.Type().IsRegular() {
			if info, err := e.Info(); err == nil {
				m[p] = fmt.Sprintf("%d/%d", info.Size(), info.ModTime().UnixNano())
			}
		}
		return nil
	})
	return m
}

// waitFolderExport waits until rowdrop has written something new into the
// device's folder since before, and the folder has then been quiet for a second.
func waitFolderExport(t *testing.T, d *device, before map[string]string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(budget(t, timeout))
	changed := false
	last, lastChange := before, time.Now()
	for time.Now().Before(deadline) {
		d.checkAlive(t)
		cur := snapshotFolder(d.folder)
		if !mapsEqual(cur, last) {
			last, lastChange = cur, time.Now()
			changed = changed || !mapsEqual(cur, before)
		}
		if changed && time.Since(lastChange) >= time.Second {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("device %s: rowdrop watch wrote nothing new into %s within %v after local edits", d.name, d.folder, timeout)
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// ------------------------------------------------------------- helpers

func tailFile(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("(%v)", err)
	}
	if len(b) > n {
		b = append([]byte("...\n"), b[len(b)-n:]...)
	}
	return string(b)
}

func median(xs []time.Duration) time.Duration {
	s := slices.Clone(xs)
	slices.Sort(s)
	n := len(s)
	if n == 0 {
		return 0
	}
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

type env struct {
	root string
	bin  string
	pair *pair
	a, b *device
}

// setup: prerequisites, rowdrop binary, two folders, two notes DBs, the
// Syncthing pair up. The watches are not started.
func setup(t *testing.T) *env {
	t.Helper()
	requireE2E(t)
	bin := rowdropBin(t)
	root := t.TempDir()
	e := &env{root: root, bin: bin}
	dirA, dirB := filepath.Join(root, "folder-A"), filepath.Join(root, "folder-B")
	e.a = newDevice(t, root, "A", dirA, bin)
	e.b = newDevice(t, root, "B", dirB, bin)
	e.pair = startPair(t, dirA, dirB)
	return e
}

// ------------------------------------------------------------- the tests

// Scenario 1: edits on both sides converge.
func TestSyncthingEditsConverge(t *testing.T) {
	e := setup(t)
	e.a.startWatch(t)
	e.b.startWatch(t)

	insertNote(t, e.a.db, "note-a1", "from A", "written on A", 100)
	insertNote(t, e.b.db, "note-b1", "from B", "written on B", 200)
	_, took := waitConverged(t, e.a, e.b, convergeTimeout, hasNotes("note-a1", "note-b1"))
	t.Logf("inserts on both sides converged in %v", took)

	execDB(t, e.a.db, "UPDATE notes SET title = ?, updated_at = ? WHERE id = ?", "B's note, edited on A", 300, "note-b1")
	rows, took := waitConverged(t, e.a, e.b, convergeTimeout, func(rows []note) error {
		if got := byID(rows)["note-b1"]; got.Title != "B's note, edited on A" || got.UpdatedAt != 300 {
			return fmt.Errorf("note-b1 = %+v, want A's update", got)
		}
		return nil
	})
	t.Logf("update on A of B's note converged in %v; notes:\n%s", took, renderNotes(rows, 10))
	if len(rows) != 2 {
		t.Errorf("got %d notes, want 2", len(rows))
	}

	for _, d := range []*device{e.a, e.b} {
		out := d.rowdrop(t, "status", "--json")
		if !json.Valid([]byte(out)) {
			t.Errorf("device %s: rowdrop status --json printed invalid JSON:\n%s", d.name, out)
		} else {
			t.Logf("device %s: rowdrop status --json: %s", d.name, strings.TrimSpace(out))
		}
	}
}

// Scenario 2: concurrent edits while the link is paused; the losing title
// ends up in rowdrop's conflict log.
func TestSyncthingConcurrentConflict(t *testing.T) {
	e := setup(t)
	e.a.startWatch(t)
	e.b.startWatch(t)

	insertNote(t, e.a.db, "c1", "c1 original title", "c1 original body", 1)
	insertNote(t, e.a.db, "c2", "c2 original title", "c2 original body", 1)
	waitConverged(t, e.a, e.b, convergeTimeout, hasNotes("c1", "c2"))

	e.pair.mustRun(time.Minute, "pause")
	beforeA, beforeB := snapshotFolder(e.a.folder), snapshotFolder(e.b.folder)

	const titleA, titleB = "c1-title-from-A-7f3a", "c1-title-from-B-91c4"
	// Same column of the same note on both sides: a real conflict.
	execDB(t, e.a.db, "UPDATE notes SET title = ? WHERE id = ?", titleA, "c1")
	// Different columns of the same note: both edits must survive.
	execDB(t, e.a.db, "UPDATE notes SET title = ? WHERE id = ?", "c2 title edited on A", "c2")
	insertNote(t, e.a.db, "pa", "inserted on A while paused", "", 10)
	time.Sleep(200 * time.Millisecond) // B's edits are the later ones in wall-clock time
	execDB(t, e.b.db, "UPDATE notes SET title = ? WHERE id = ?", titleB, "c1")
	execDB(t, e.b.db, "UPDATE notes SET body = ? WHERE id = ?", "c2 body edited on B", "c2")
	insertNote(t, e.b.db, "pb", "inserted on B while paused", "", 20)

	// Both watches export their side before the link comes back, so the
	// edits really cross in Syncthing.
	waitFolderExport(t, e.a, beforeA, 30*time.Second)
	waitFolderExport(t, e.b, beforeB, 30*time.Second)
	// The link really is down: neither side has seen the other's new note.
	for _, c := range []struct {
		d  *device
		id string
	}{{e.a, "pb"}, {e.b, "pa"}} {
		rows, err := dumpNotes(c.d.db)
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := byID(rows)[c.id]; ok {
			t.Fatalf("device %s already has %q while the link is paused: pause is not isolating", c.d.name, c.id)
		}
	}

	resumeAt := time.Now()
	e.pair.mustRun(2*time.Minute, "resume")
	rows, took := waitConverged(t, e.a, e.b, convergeTimeout, func(rows []note) error {
		m := byID(rows)
		if err := hasNotes("c1", "c2", "pa", "pb")(rows); err != nil {
			return err
		}
		if c1 := m["c1"]; c1.Title != titleA && c1.Title != titleB {
			return fmt.Errorf("c1 title %q is neither side's edit", c1.Title)
		}
		if c2 := m["c2"]; c2.Title != "c2 title edited on A" || c2.Body != "c2 body edited on B" {
			return fmt.Errorf("c2 = %q / %q: want A's title and B's body (different-column edits)", c2.Title, c2.Body)
		}
		return nil
	})
	winner := byID(rows)["c1"].Title
	loser := titleA
	if winner == titleA {
		loser = titleB
	}
	t.Logf("converged %v after resume was called (%v after it returned); c1 winner %q, loser %q",
		time.Since(resumeAt).Round(time.Millisecond), took, winner, loser)

	// The losing title must show up in the conflict log of at least one device.
	deadline := time.Now().Add(budget(t, 30*time.Second))
	var outs [2]string
	for {
		found := false
		for i, d := range []*device{e.a, e.b} {
			outs[i] = d.rowdrop(t, "conflicts", "--json")
			var arr []json.RawMessage
			if err := json.Unmarshal([]byte(outs[i]), &arr); err != nil {
				t.Fatalf("device %s: rowdrop conflicts --json is not a JSON array: %v\n%s", d.name, err, outs[i])
			}
			if strings.Contains(outs[i], loser) {
				t.Logf("device %s: losing title found in conflict log (%d entries)", d.name, len(arr))
				found = true
			}
		}
		if found {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("losing title %q not in any conflict log\nA: %s\nB: %s", loser, outs[0], outs[1])
		}
		time.Sleep(time.Second)
	}
}

// Scenario 3: a large first sync. The notes exist on A before A's watch starts.
func TestSyncthingLargeFirstSync(t *testing.T) {
	e := setup(t)
	n := envInt(t, envLargeN, 20000)
	timeout := time.Duration(envInt(t, envLargeTimeout, 300)) * time.Second

	t0 := time.Now()
	insertMany(t, e.a.db, "bulk", n)
	t.Logf("inserted %d notes on A in %v", n, time.Since(t0))

	e.b.startWatch(t)
	e.a.startWatch(t)
	start := time.Now()
	deadline := start.Add(budget(t, timeout))
	lastLog := start
	for {
		e.a.checkAlive(t)
		e.b.checkAlive(t)
		cb, err := countNotes(e.b.db)
		if err == nil && cb == n {
			break
		}
		if time.Since(lastLog) > 10*time.Second {
			t.Logf("  %v: B has %d/%d notes (err %v)", time.Since(start).Round(time.Second), cb, n, err)
			lastLog = time.Now()
		}
		if time.Now().After(deadline) {
			t.Fatalf("B has %d/%d notes after %v (err %v)", cb, n, time.Since(start), err)
		}
		time.Sleep(pollEvery)
	}
	rows, _ := waitConverged(t, e.a, e.b, 30*time.Second, func(rows []note) error {
		if len(rows) != n {
			return fmt.Errorf("%d notes, want %d", len(rows), n)
		}
		return nil
	})
	took := time.Since(start)
	t.Logf("large first sync: %d notes reached B and both DBs are identical %v after A's watch started", len(rows), took)
	setReport("large_first_sync_notes", n)
	setReport("large_first_sync_ms", took.Milliseconds())
}

// Latency: one-row update on A until B's DB shows it, next to Syncthing's
// own small-file latency measured on the same pair in the same run.
func TestSyncthingLatency(t *testing.T) {
	e := setup(t)
	samples := envInt(t, envSamples, 20)
	e.a.startWatch(t)
	e.b.startWatch(t)

	insertNote(t, e.a.db, "lat", "initial", "latency probe note", 0)
	waitConverged(t, e.a, e.b, convergeTimeout, hasNotes("lat"))
	time.Sleep(2 * time.Second) // let both sides settle

	var lat []time.Duration
	for i := range samples {
		want := fmt.Sprintf("lat-%d-%d", i, time.Now().UnixNano())
		execDB(t, e.a.db, "UPDATE notes SET title = ?, updated_at = ? WHERE id = ?", want, int64(i+1), "lat")
		t0 := time.Now()
		deadline := t0.Add(budget(t, convergeTimeout))
		for {
			got, err := pollTitle(e.b.db, "lat")
			if err == nil && got == want {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("sample %d: B did not show %q within %v (last %q, err %v)", i, want, convergeTimeout, got, err)
			}
			e.a.checkAlive(t)
			e.b.checkAlive(t)
			time.Sleep(latencyPoll)
		}
		d := time.Since(t0)
		lat = append(lat, d)
		t.Logf("  rowdrop sample %d/%d: %v", i+1, samples, d.Round(time.Millisecond))
		time.Sleep(300 * time.Millisecond)
	}
	rdMedian := median(lat)

	out := e.pair.mustRun(budget(t, time.Duration(samples)*time.Minute), "latency", strconv.Itoa(samples))
	stMedian, err := parseMedianMS(out)
	if err != nil {
		t.Fatalf("stpair latency: %v (output %q)", err, out)
	}

	ms := make([]int64, len(lat))
	for i, d := range lat {
		ms[i] = d.Milliseconds()
	}
	t.Logf("rowdrop A->B one-row update latency: median %d ms over %d samples %v", rdMedian.Milliseconds(), samples, ms)
	t.Logf("Syncthing A->B small-file latency:   median %d ms (%s)", stMedian, strings.TrimSpace(out))
	t.Logf("rowdrop overhead over Syncthing:     %d ms", rdMedian.Milliseconds()-stMedian)
	setReport("samples", samples)
	setReport("rowdrop_latency_median_ms", rdMedian.Milliseconds())
	setReport("rowdrop_latency_samples_ms", ms)
	setReport("syncthing_small_file_latency_median_ms", stMedian)
	setReport("syncthing_small_file_latency", strings.TrimSpace(out))
}

func pollTitle(path, id string) (string, error) {
	conn, err := openRO(path)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	title, ok, err := noteTitle(conn, id)
	if err == nil && !ok {
		err = errors.New("no such note")
	}
	return title, err
}

// parseMedianMS reads median_ms=N from `stpair.sh latency` output.
func parseMedianMS(out string) (int64, error) {
	for _, f := range strings.Fields(out) {
		if v, ok := strings.CutPrefix(f, "median_ms="); ok {
			return strconv.ParseInt(v, 10, 64)
		}
	}
	return 0, errors.New("no median_ms= in output")
}
