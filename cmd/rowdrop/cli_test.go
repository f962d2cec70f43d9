package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base32"
	"encoding/json"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"zombiezen.com/go/sqlite"
	"zombiezen.com/go/sqlite/sqlitex"
)

// bin is the rowdrop binary built once for all tests.
var bin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "rowdrop-cli-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	bin = filepath.Join(dir, "rowdrop")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "go build: %v\n%s", err, out)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	// Keep the user's own config and state out of the tests.
	os.Setenv("XDG_CONFIG_HOME", filepath.Join(dir, "config"))
	os.Setenv("XDG_STATE_HOME", filepath.Join(dir, "state"))
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "ROWDROP_") {
			os.Unsetenv(kv[:strings.IndexByte(kv, '=')])
		}
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// seed returns the test's random seed: ROWDROP_TEST_SEED if set, else a
// fresh one. It is logged so a failure can be replayed.
func seed(t *testing.T) uint64 {
	t.Helper()
	s := uint64(time.Now().UnixNano())
	if v := os.Getenv("ROWDROP_TEST_SEED"); v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			t.Fatalf("ROWDROP_TEST_SEED=%q: %v", v, err)
		}
		s = n
	}
	t.Logf("seed %d (replay with ROWDROP_TEST_SEED=%d)", s, s)
	return s
}

const testSchema = `
CREATE TABLE notes(id TEXT PRIMARY KEY, title TEXT NOT NULL DEFAULT '', body TEXT NOT NULL DEFAULT '', updated_at INTEGER NOT NULL DEFAULT 0);
CREATE TABLE note_tags(note_id TEXT, tag TEXT, PRIMARY KEY(note_id, tag)) WITHOUT ROWID;
CREATE VIRTUAL TABLE notes_fts USING fts5(title, body, content='notes', content_rowid='rowid');
CREATE TRIGGER notes_ai AFTER INSERT ON notes BEGIN
  INSERT INTO notes_fts(rowid, title, body) VALUES (new.rowid, new.title, new.body);
END;
CREATE TRIGGER notes_ad AFTER DELETE ON notes BEGIN
  INSERT INTO notes_fts(notes_fts, rowid, title, body) VALUES('delete', old.rowid, old.title, old.body);
END;
CREATE TRIGGER notes_au AFTER UPDATE ON notes BEGIN
  INSERT INTO notes_fts(notes_fts, rowid, title, body) VALUES('delete', old.rowid, old.title, old.body);
  INSERT INTO notes_fts(rowid, title, body) VALUES (new.rowid, new.title, new.body);
END;
`

// device is one simulated device: a database, a state directory, and the
// folder it shares.
type device struct {
	name, db, state, folder string
}

func newDevice(t *testing.T, folder, name string) *device {
	t.Helper()
	dir := t.TempDir()
	d := &device{name: name, db: filepath.Join(dir, name+".db"), state: filepath.Join(dir, "state"), folder: folder}
	conn, err := sqlite.OpenConn(d.db)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if err := sqlitex.ExecuteScript(conn, "PRAGMA journal_mode=WAL;"+testSchema, nil); err != nil {
		t.Fatal(err)
	}
	return d
}

func (d *device) flags() []string {
	return []string{"--db", d.db, "--folder", d.folder, "--state", d.state, "--device", d.name}
}

func (d *device) exec(t *testing.T, q string, args ...any) {
	t.Helper()
	conn, err := sqlite.OpenConn(d.db, sqlite.OpenReadWrite)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetBusyTimeout(10 * time.Second)
	if err := sqlitex.Execute(conn, q, &sqlitex.ExecOptions{Args: args}); err != nil {
		t.Fatalf("%s: %s: %v", d.name, q, err)
	}
}

// execScript runs several statements in one transaction (ExecuteScript
// wraps them in a savepoint).
func (d *device) execScript(t *testing.T, script string) {
	t.Helper()
	conn, err := sqlite.OpenConn(d.db, sqlite.OpenReadWrite)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetBusyTimeout(10 * time.Second)
	if err := sqlitex.ExecuteScript(conn, script, nil); err != nil {
		t.Fatalf("%s: script: %v", d.name, err)
	}
}

// dump renders the synced tables, with SQL types, for comparison.
func (d *device) dump(t *testing.T) string {
	t.Helper()
	s, err := dumpDB(d.db)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func dumpDB(path string) (string, error) {
	conn, err := sqlite.OpenConn(path, sqlite.OpenReadOnly)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	conn.SetBusyTimeout(10 * time.Second)
	var b strings.Builder
	for _, q := range []string{
		"SELECT quote(id), quote(title), quote(body), quote(updated_at) FROM notes ORDER BY id",
		"SELECT quote(note_id), quote(tag) FROM note_tags ORDER BY note_id, tag",
	} {
		err := sqlitex.Execute(conn, q, &sqlitex.ExecOptions{ResultFunc: func(s *sqlite.Stmt) error {
			for i := 0; i < s.ColumnCount(); i++ {
				b.WriteString(s.ColumnText(i) + "|")
			}
			b.WriteString("\n")
			return nil
		}})
		if err != nil {
			return "", err
		}
	}
	return b.String(), nil
}

// result is one finished rowdrop invocation.
type result struct {
	stdout, stderr string
	code           int
}

// rowdrop runs the binary to completion (60 s at most).
func runRD(t *testing.T, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	r := result{stdout: out.String(), stderr: errb.String()}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		r.code = ee.ExitCode()
	default:
		t.Fatalf("rowdrop %s: %v", strings.Join(args, " "), err)
	}
	if ctx.Err() != nil {
		t.Fatalf("rowdrop %s: did not finish within 60s\nstderr:\n%s", strings.Join(args, " "), r.stderr)
	}
	return r
}

// ok runs rowdrop and fails the test unless it exits 0.
func ok(t *testing.T, args ...string) result {
	t.Helper()
	r := runRD(t, args...)
	if r.code != 0 {
		t.Fatalf("rowdrop %s: exit %d\nstderr:\n%s\nstdout:\n%s", strings.Join(args, " "), r.code, r.stderr, r.stdout)
	}
	return r
}

// exits runs rowdrop and fails the test unless it exits with code.
func exits(t *testing.T, code int, args ...string) result {
	t.Helper()
	r := runRD(t, args...)
	if r.code != code {
		t.Fatalf("rowdrop %s: exit %d, want %d\nstderr:\n%s\nstdout:\n%s", strings.Join(args, " "), r.code, code, r.stderr, r.stdout)
	}
	return r
}

func (d *device) sync(t *testing.T) {
	t.Helper()
	ok(t, append([]string{"sync"}, d.flags()...)...)
}

func (d *device) status(t *testing.T) map[string]any {
	t.Helper()
	r := ok(t, append([]string{"status", "--json"}, d.flags()...)...)
	var m map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &m); err != nil {
		t.Fatalf("status --json is not a JSON object: %v\n%s", err, r.stdout)
	}
	return m
}

func sameDB(t *testing.T, devs ...*device) {
	t.Helper()
	want := devs[0].dump(t)
	for _, d := range devs[1:] {
		if got := d.dump(t); got != want {
			t.Fatalf("%s and %s differ:\n%s:\n%s\n%s:\n%s", devs[0].name, d.name, devs[0].name, want, d.name, got)
		}
	}
}

func TestSyncTwoDevices(t *testing.T) {
	folder := t.TempDir()
	a, b := newDevice(t, folder, "alpha"), newDevice(t, folder, "beta")
	a.exec(t, "INSERT INTO notes(id,title,body,updated_at) VALUES('n1','from alpha','a body',1)")
	a.exec(t, "INSERT INTO note_tags VALUES('n1','x')")
	b.exec(t, "INSERT INTO notes(id,title,body,updated_at) VALUES('n2','from beta','b body',2)")
	a.sync(t)
	b.sync(t)
	a.sync(t)
	sameDB(t, a, b)
	if d := a.dump(t); !strings.Contains(d, "'from beta'") || !strings.Contains(d, "'from alpha'") {
		t.Fatalf("missing rows:\n%s", d)
	}

	// Both edit one title (a conflict) and different columns of n2.
	a.exec(t, "UPDATE notes SET title='alpha title' WHERE id='n1'")
	a.exec(t, "UPDATE notes SET body='alpha body' WHERE id='n2'")
	b.exec(t, "UPDATE notes SET title='beta title' WHERE id='n1'")
	b.exec(t, "UPDATE notes SET title='beta n2' WHERE id='n2'")
	a.sync(t)
	time.Sleep(5 * time.Millisecond)
	b.sync(t) // exports later: beta's title wins
	a.sync(t)
	sameDB(t, a, b)
	d := a.dump(t)
	if !strings.Contains(d, "'n1'|'beta title'") || !strings.Contains(d, "'n2'|'beta n2'|'alpha body'") {
		t.Fatalf("unexpected merge:\n%s", d)
	}

	// The losing title is in alpha's conflict log; restore it.
	r := ok(t, append([]string{"conflicts", "--json"}, a.flags()...)...)
	var list []struct {
		ID       string         `json:"id"`
		Database string         `json:"database"`
		Table    string         `json:"table"`
		Loser    map[string]any `json:"loser"`
		Winner   map[string]any `json:"winner"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &list); err != nil {
		t.Fatalf("conflicts --json: %v\n%s", err, r.stdout)
	}
	var ids string
	for _, c := range list {
		if c.Loser["title"] == "alpha title" && c.Winner["title"] == "beta title" {
			ids = c.ID
		}
	}
	if ids == "" {
		t.Fatalf("losing title not in the conflict log: %s", r.stdout)
	}
	// Flags may follow the arguments.
	r = ok(t, append([]string{"conflicts", "show", ids, "--json"}, a.flags()...)...)
	var one map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &one); err != nil || one["kind"] == nil {
		t.Fatalf("conflicts show --json: %v\n%s", err, r.stdout)
	}
	r = ok(t, append([]string{"conflicts", "show", ids}, a.flags()...)...)
	if !strings.Contains(r.stdout, "alpha title") || !strings.Contains(r.stdout, "beta title") {
		t.Fatalf("conflicts show does not print both values:\n%s", r.stdout)
	}
	ok(t, append([]string{"conflicts", "restore", ids}, a.flags()...)...)
	a.sync(t)
	b.sync(t)
	sameDB(t, a, b)
	if d := b.dump(t); !strings.Contains(d, "'n1'|'alpha title'") {
		t.Fatalf("restored value did not sync:\n%s", d)
	}
	// Unknown ids are refused with one line.
	r = runRD(t, append([]string{"conflicts", "show", "999"}, a.flags()...)...)
	if r.code == 0 || strings.Count(strings.TrimSpace(r.stderr), "\n") != 0 || !strings.Contains(r.stderr, "999") {
		t.Fatalf("conflicts show 999: exit %d, stderr %q", r.code, r.stderr)
	}
}

func TestSyncMissingDB(t *testing.T) {
	folder := t.TempDir()
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"no --db", []string{"sync", "--folder", folder}, "--db"},
		{"nonexistent --db", []string{"sync", "--db", filepath.Join(folder, "..", "nope.db"), "--folder", folder}, "nope.db"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := runRD(t, tc.args...)
			line := strings.TrimRight(r.stderr, "\n")
			if r.code == 0 {
				t.Fatalf("exit 0, want failure; stderr %q", r.stderr)
			}
			if line == "" || strings.Contains(line, "\n") {
				t.Fatalf("want exactly one line on stderr, got %q", r.stderr)
			}
			if !strings.Contains(line, tc.want) {
				t.Fatalf("stderr %q does not name %q", line, tc.want)
			}
			if r.stdout != "" {
				t.Fatalf("stdout not empty: %q", r.stdout)
			}
		})
	}
	// A device without --folder.
	d := newDevice(t, folder, "x")
	r := runRD(t, "sync", "--db", d.db)
	if r.code == 0 || !strings.Contains(r.stderr, "--folder") {
		t.Fatalf("sync without --folder: exit %d, stderr %q", r.code, r.stderr)
	}
}

// randomDeviceID is a well-formed device id no device uses.
func randomDeviceID() string {
	var b [10]byte
	_, _ = rand.Read(b[:])
	return strings.ToLower(base32.StdEncoding.EncodeToString(b[:]))[:16]
}

func TestStatusReportsCorruptFile(t *testing.T) {
	folder := t.TempDir()
	a, b := newDevice(t, folder, "alpha"), newDevice(t, folder, "beta")
	a.exec(t, "INSERT INTO notes(id,title) VALUES('n1','hello')")
	a.sync(t)
	b.sync(t)

	planted := map[string][]byte{
		randomDeviceID(): []byte("this is not a rowdrop changeset file, just garbage bytes\x00\x01\x02"),
		randomDeviceID(): []byte("junk!"), // shorter than a header
	}
	for id, data := range planted {
		if err := os.MkdirAll(filepath.Join(folder, id), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(folder, id, "0000000001.rdc"), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	type fileStatus struct{ Path, Status, Reason string }
	check := func(when string) {
		t.Helper()
		// Exit status 3: the status is complete, but files are broken.
		r := exits(t, 3, append([]string{"status", "--json"}, b.flags()...)...)
		var st struct {
			Device  string       `json:"device"`
			Files   []fileStatus `json:"files"`
			Devices []struct {
				ID        string `json:"id"`
				Published uint64 `json:"published"`
				Applied   uint64 `json:"applied"`
			} `json:"devices"`
		}
		if err := json.Unmarshal([]byte(r.stdout), &st); err != nil {
			t.Fatalf("%s: status --json does not parse: %v\n%s", when, err, r.stdout)
		}
		for id := range planted {
			found := false
			for _, f := range st.Files {
				if strings.Contains(f.Path, id) {
					found = true
					if f.Status != "broken" || f.Reason == "" {
						t.Errorf("%s: planted file reported as %+v, want broken with a reason", when, f)
					}
				}
			}
			if !found {
				t.Errorf("%s: planted file of %s not reported: %s", when, id, r.stdout)
			}
		}
		if len(st.Devices) != 3 {
			t.Errorf("%s: want 3 other devices (alpha and the two planted), got %+v", when, st.Devices)
		}
	}
	check("before any sync")
	// A sync is not failed by another device's bad file; it is recorded,
	// and the exit status (3) says that not everything was applied.
	r := exits(t, 3, append([]string{"sync"}, b.flags()...)...)
	if !strings.Contains(r.stderr, "2 broken") || !strings.Contains(r.stderr, "rowdrop status") {
		t.Errorf("sync with broken files does not say so on stderr:\n%s", r.stderr)
	}
	check("after a sync")
	// The human view says it too.
	r = exits(t, 3, append([]string{"status"}, b.flags()...)...)
	if !strings.Contains(r.stdout, "BROKEN") {
		t.Fatalf("status does not show the broken file:\n%s", r.stdout)
	}

	// A file damaged after beta applied it is reported as well: devices
	// that join later could not apply it.
	var ast map[string]any
	if err := json.Unmarshal([]byte(exits(t, 3, append([]string{"status", "--json"}, a.flags()...)...).stdout), &ast); err != nil {
		t.Fatal(err)
	}
	alphaID := ast["device"].(string)
	garbage := make([]byte, 200)
	_, _ = rand.Read(garbage)
	if err := os.WriteFile(filepath.Join(folder, alphaID, "0000000001.rdc"), garbage, 0o644); err != nil {
		t.Fatal(err)
	}
	planted[alphaID] = garbage
	check("after damaging an applied file")
}

func TestDemo(t *testing.T) {
	start := time.Now()
	r := ok(t, "demo")
	if took := time.Since(start); took > 60*time.Second {
		t.Fatalf("demo took %v, want under a minute", took)
	}
	for _, want := range []string{"identical", "Shopping list", "integrity-check", "conflict"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("demo output lacks %q", want)
		}
	}
	if strings.Contains(r.stdout, "kept /") {
		t.Errorf("demo kept its directory without --keep")
	}
	if t.Failed() {
		t.Logf("demo output:\n%s\nstderr:\n%s", r.stdout, r.stderr)
	}
}

func TestConfigSeveralDatabases(t *testing.T) {
	dir := t.TempDir()
	f1, f2 := filepath.Join(dir, "f1"), filepath.Join(dir, "f2")
	for _, f := range []string{f1, f2} {
		if err := os.MkdirAll(f, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// Device A serves two databases through one config file.
	a1, a2 := newDevice(t, f1, "a"), newDevice(t, f2, "a")
	b1, b2 := newDevice(t, f1, "b1"), newDevice(t, f2, "b2")
	cfg := filepath.Join(dir, "rowdrop.yaml")
	yaml := fmt.Sprintf(`device: desk
databases:
  - db: %s
    folder: f1
    state: %s
  - db: %s
    folder: f2
    state: %s
    exclude: [note_tags]
`, a1.db, a1.state, a2.db, a2.state)
	if err := os.WriteFile(cfg, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	a1.exec(t, "INSERT INTO notes(id,title) VALUES('one','db one')")
	a2.exec(t, "INSERT INTO notes(id,title) VALUES('two','db two')")
	a2.exec(t, "INSERT INTO note_tags VALUES('two','local only')")
	ok(t, "sync", "--config", cfg)
	b1.sync(t)
	b2.sync(t)
	if !strings.Contains(b1.dump(t), "'db one'") || !strings.Contains(b2.dump(t), "'db two'") {
		t.Fatalf("config sync did not publish both databases:\n%s\n%s", b1.dump(t), b2.dump(t))
	}
	if strings.Contains(b2.dump(t), "local only") {
		t.Fatalf("excluded table synced:\n%s", b2.dump(t))
	}
	// status over the config: an array, one entry per database.
	r := ok(t, "status", "--json", "--config", cfg)
	var all []map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &all); err != nil || len(all) != 2 {
		t.Fatalf("status --json over two databases: %v\n%s", err, r.stdout)
	}
	if all[0]["name"] != "desk" {
		t.Fatalf("device name from the config not used: %v", all[0]["name"])
	}
	// ROWDROP_CONFIG and ROWDROP_DB pick one database; a flag beats the env.
	cmd := exec.Command(bin, "status", "--json")
	cmd.Env = append(os.Environ(), "ROWDROP_CONFIG="+cfg, "ROWDROP_DB="+a2.db)
	out, err := cmd.Output()
	var one map[string]any
	if err != nil || json.Unmarshal(out, &one) != nil || one["database"] != a2.db || one["folder"] != f2 {
		t.Fatalf("ROWDROP_DB selection: %v\n%s", err, out)
	}
	cmd = exec.Command(bin, "status", "--json", "--db", a1.db)
	cmd.Env = append(os.Environ(), "ROWDROP_CONFIG="+cfg, "ROWDROP_DB="+a2.db)
	out, err = cmd.Output()
	if err != nil || json.Unmarshal(out, &one) != nil || one["database"] != a1.db {
		t.Fatalf("--db should beat ROWDROP_DB: %v\n%s", err, out)
	}
	// --folder cannot apply to two databases at once.
	if r := runRD(t, "sync", "--config", cfg, "--folder", f1); r.code == 0 || !strings.Contains(r.stderr, "--db") {
		t.Fatalf("ambiguous --folder accepted: exit %d %q", r.code, r.stderr)
	}
}

// watchProc is a running `rowdrop watch`.
type watchProc struct {
	cmd  *exec.Cmd
	log  string
	done chan struct{}
	err  error
}

func startWatch(t *testing.T, d *device) *watchProc {
	t.Helper()
	logPath := filepath.Join(t.TempDir(), d.name+".log")
	lf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	args := append([]string{"watch", "-v", "--debounce", "50ms", "--max-delay", "500ms", "--poll", "200ms", "--rescan", "2s"}, d.flags()...)
	w := &watchProc{cmd: exec.Command(bin, args...), log: logPath, done: make(chan struct{})}
	w.cmd.Stdout, w.cmd.Stderr = lf, lf
	if err := w.cmd.Start(); err != nil {
		lf.Close()
		t.Fatal(err)
	}
	go func() {
		w.err = w.cmd.Wait()
		lf.Close()
		close(w.done)
	}()
	t.Cleanup(func() {
		select {
		case <-w.done:
		default:
			_ = w.cmd.Process.Kill()
			<-w.done
		}
		if t.Failed() {
			b, _ := os.ReadFile(logPath)
			t.Logf("%s watch log:\n%s", d.name, tail(string(b), 60))
		}
	})
	return w
}

func tail(s string, lines int) string {
	l := strings.Split(s, "\n")
	if len(l) > lines {
		l = l[len(l)-lines:]
	}
	return strings.Join(l, "\n")
}

// stop sends SIGTERM and returns the exit code (fails after 20 s).
func (w *watchProc) stop(t *testing.T) int {
	t.Helper()
	_ = w.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-w.done:
	case <-time.After(20 * time.Second):
		t.Fatalf("watch ignored SIGTERM for 20s")
	}
	var ee *exec.ExitError
	if errors.As(w.err, &ee) {
		return ee.ExitCode()
	}
	if w.err != nil {
		t.Fatalf("watch: %v", w.err)
	}
	return 0
}

// waitFor polls cond until it holds or 30 s pass.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after 30s waiting for %s", what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func converged(a, b *device, must string) func() bool {
	return func() bool {
		da, err1 := dumpDB(a.db)
		db, err2 := dumpDB(b.db)
		return err1 == nil && err2 == nil && da == db && strings.Contains(da, must)
	}
}

func TestWatchConverges(t *testing.T) {
	folder := t.TempDir()
	a, b := newDevice(t, folder, "alpha"), newDevice(t, folder, "beta")
	a.exec(t, "INSERT INTO notes(id,title) VALUES('before','written before watch started')")
	wa, wb := startWatch(t, a), startWatch(t, b)

	waitFor(t, "the note written before start to reach beta", converged(a, b, "written before watch started"))
	start := time.Now()
	a.exec(t, "INSERT INTO notes(id,title,body) VALUES('a1','edited on alpha','x')")
	waitFor(t, "alpha's edit to reach beta", converged(a, b, "edited on alpha"))
	t.Logf("alpha -> beta in %v", time.Since(start).Round(time.Millisecond))
	start = time.Now()
	b.exec(t, "UPDATE notes SET body='edited on beta' WHERE id='a1'")
	waitFor(t, "beta's edit to reach alpha", converged(a, b, "edited on beta"))
	t.Logf("beta -> alpha in %v", time.Since(start).Round(time.Millisecond))

	// status and conflicts work while watch runs (it holds the state
	// directory only during a step).
	st := b.status(t)
	if st["name"] != "beta" {
		t.Fatalf("status while watching: %v", st)
	}
	ok(t, append([]string{"conflicts", "--json"}, b.flags()...)...)
	// A second watch of the same pair is refused with one line.
	r := runRD(t, append([]string{"watch"}, b.flags()...)...)
	if r.code == 0 || !strings.Contains(r.stderr, "already") || strings.Count(strings.TrimSpace(r.stderr), "\n") != 0 {
		t.Fatalf("second watch: exit %d, stderr %q", r.code, r.stderr)
	}

	// The folder vanishes (a pulled stick) and comes back: an edit made
	// meanwhile waits in the outbox, then syncs.
	away := folder + ".away"
	if err := os.Rename(folder, away); err != nil {
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond)
	a.exec(t, "INSERT INTO notes(id,title) VALUES('a2','while the folder was away')")
	waitFor(t, "alpha to park its export in the outbox", func() bool {
		ents, _ := os.ReadDir(filepath.Join(a.state, "outbox"))
		for _, e := range ents {
			if strings.HasSuffix(e.Name(), ".rdc") {
				return true
			}
		}
		return false
	})
	if err := os.Rename(away, folder); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the parked edit to reach beta after the folder came back", converged(a, b, "while the folder was away"))

	if code := wa.stop(t); code != 0 {
		t.Fatalf("alpha watch exit %d after SIGTERM", code)
	}
	if code := wb.stop(t); code != 0 {
		t.Fatalf("beta watch exit %d after SIGTERM", code)
	}
}

// TestWatchSIGTERMRestart interrupts `watch` with SIGTERM at random moments
// after bulk edits (often mid-step), restarts it, and checks that it exits
// 0 each time, that nothing is lost or duplicated, and that an edit after
// the last restart still syncs.
func TestWatchSIGTERMRestart(t *testing.T) {
	rng := mrand.New(mrand.NewPCG(seed(t), 1))
	folder := t.TempDir()
	a, b := newDevice(t, folder, "alpha"), newDevice(t, folder, "beta")
	const rounds = 4
	for round := 0; round < rounds; round++ {
		w := startWatch(t, a)
		var script strings.Builder
		n := 500 + rng.IntN(1500)
		for i := 0; i < n; i++ {
			fmt.Fprintf(&script, "INSERT INTO notes(id,title,body) VALUES('r%d-%d','round %d','%s');", round, i, round, strings.Repeat("x", 100+rng.IntN(200)))
		}
		if round > 0 {
			fmt.Fprintf(&script, "UPDATE notes SET title=title||' (touched in round %d)' WHERE id LIKE 'r%d-%%';", round, round-1)
		}
		a.execScript(t, script.String())
		delay := time.Duration(rng.IntN(400)) * time.Millisecond
		time.Sleep(delay)
		if code := w.stop(t); code != 0 {
			t.Fatalf("round %d: watch exit %d after SIGTERM %v after the edit", round, code, delay)
		}
		t.Logf("round %d: %d inserts, SIGTERM after %v, exit 0", round, n, delay)
	}
	// Restart: it continues where it stopped, and a new edit still syncs.
	w := startWatch(t, a)
	a.exec(t, "INSERT INTO notes(id,title) VALUES('after','edit after restart')")
	waitFor(t, "the edit after restart to be published", func() bool {
		b.sync(t)
		return strings.Contains(b.dump(t), "edit after restart")
	})
	waitFor(t, "beta to hold everything alpha holds", func() bool {
		b.sync(t)
		return a.dump(t) == b.dump(t)
	})
	if code := w.stop(t); code != 0 {
		t.Fatalf("final watch exit %d", code)
	}
	// State is consistent: nothing waits, nothing is broken, alpha's files
	// are contiguous and a further sync exports nothing new.
	st := a.status(t)
	if st["outbox_waiting"].(float64) != 0 {
		t.Fatalf("outbox not empty: %v", st)
	}
	next := st["next_seq"]
	a.sync(t)
	if st2 := a.status(t); st2["next_seq"] != next {
		t.Fatalf("a sync with no edits exported again (next_seq %v -> %v): base and live disagree", next, st2["next_seq"])
	}
	bst := b.status(t)
	if files := bst["files"].([]any); len(files) != 0 {
		t.Fatalf("beta reports files not applied: %v", files)
	}
	for _, d := range bst["devices"].([]any) {
		m := d.(map[string]any)
		if m["published"] != m["applied"] {
			t.Fatalf("beta has not applied everything: %v", m)
		}
	}
	// And every one of alpha's files since the start is there, in order.
	ents, err := os.ReadDir(filepath.Join(folder, st["device"].(string)))
	if err != nil {
		t.Fatal(err)
	}
	// (Besides its changesets, alpha's directory holds its acknowledgement.)
	ents = slices.DeleteFunc(ents, func(e os.DirEntry) bool { return e.Name() == "ack.json" })
	for i, e := range ents {
		if want := fmt.Sprintf("%010d.rdc", i+1); e.Name() != want {
			t.Fatalf("alpha's files not contiguous: %s at position %d", e.Name(), i+1)
		}
	}
	if int(next.(float64)) != len(ents)+1 {
		t.Fatalf("next_seq %v but %d files published", next, len(ents))
	}
}

func TestUsage(t *testing.T) {
	if r := runRD(t); r.code != 2 || !strings.Contains(r.stderr, "rowdrop sync") {
		t.Fatalf("no arguments: exit %d, stderr %q", r.code, r.stderr)
	}
	if r := runRD(t, "help"); r.code != 0 || !strings.Contains(r.stdout, "rowdrop watch") {
		t.Fatalf("help: exit %d", r.code)
	}
	if r := runRD(t, "frobnicate"); r.code != 2 || strings.Count(strings.TrimSpace(r.stderr), "\n") != 0 {
		t.Fatalf("unknown command: exit %d, stderr %q", r.code, r.stderr)
	}
	if r := runRD(t, "sync", "--nope"); r.code != 2 {
		t.Fatalf("unknown flag: exit %d, stderr %q", r.code, r.stderr)
	}
	// A single-dash long flag (the flag package took -json) says what to
	// type instead.
	if r := runRD(t, "status", "-json"); r.code != 2 || !strings.Contains(r.stderr, "long flags take two dashes: --json") {
		t.Fatalf("single-dash long flag: exit %d, stderr %q", r.code, r.stderr)
	}
}
