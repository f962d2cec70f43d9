package scenario_test

import (
	"bytes"
	"context"
	"fmt"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"zombiezen.com/go/sqlite"
	"zombiezen.com/go/sqlite/sqlitex"

	"github.com/rowdrop/rowdrop"
	"github.com/rowdrop/rowdrop/scenario"
)

type crashDev struct {
	name, db, state string
	keys            []string // keys this device writes (disjoint between devices)
	last            map[string]string
}

func seedFromEnv(t *testing.T) int64 {
	if s := os.Getenv("ROWDROP_SEED"); s != "" {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			t.Fatalf("ROWDROP_SEED: %v", err)
		}
		return n
	}
	return time.Now().UnixNano()
}

func TestCrashAtAnyInstant(t *testing.T) {
	trials, rng, root, folder := crashSetup(t, 30)
	var devs []*crashDev
	for i, name := range []string{"a", "b"} {
		d := &crashDev{name: name, db: filepath.Join(root, name+".db"), state: filepath.Join(root, name+"-state"), last: map[string]string{}}
		conn, err := sqlite.OpenConn(d.db)
		if err != nil {
			t.Fatal(err)
		}
		if err := sqlitex.ExecuteScript(conn, scenario.NotesSchema, nil); err != nil {
			t.Fatal(err)
		}
		if i == 1 {
			// One rollback-journal app, one WAL app.
			sqlitex.ExecuteTransient(conn, "PRAGMA journal_mode=DELETE", nil)
		}
		conn.Close()
		for k := 0; k < 6; k++ {
			d.keys = append(d.keys, fmt.Sprintf("%s-%d", name, k))
		}
		devs = append(devs, d)
	}
	span := calibrate(t, devs, folder)
	scenario.SealShared(t, rowdrop.Config{DB: devs[0].db, Folder: folder, State: devs[0].state}, rowdrop.Config{DB: devs[1].db, Folder: folder, State: devs[1].state})
	kills := 0
	for trial := 0; trial < trials; trial++ {
		d := devs[rng.Intn(len(devs))]
		// Some edits by "the app".
		for e := 0; e < 1+rng.Intn(5); e++ {
			k := d.keys[rng.Intn(len(d.keys))]
			v := fmt.Sprintf("t%d-e%d-%x", trial, e, rng.Int63())
			if rng.Intn(5) == 0 && d.last[k] != "" {
				scenario.ExecFile(t, d.db, "DELETE FROM notes WHERE id=?", k)
				d.last[k] = ""
			} else {
				scenario.ExecFile(t, d.db, "INSERT INTO notes(id,title) VALUES(?,?) ON CONFLICT(id) DO UPDATE SET title=excluded.title", k, v)
				d.last[k] = v
			}
		}
		if runKilled(t, trial, d, folder, time.Duration(rng.Int63n(int64(span)*5/4))) {
			kills++
		}
		checkAfterCrash(t, trial, d, folder)
	}
	t.Logf("%d of %d children were killed mid-run", kills, trials)
	// Restart everything in-process and converge.
	converge(t, devs, folder, 3)
	d0 := scenario.DumpNotes(t, devs[0].db)
	for _, d := range devs[1:] {
		if got := scenario.DumpNotes(t, d.db); got != d0 {
			t.Fatalf("devices diverged after crashes:\n%s\n%s", d0, got)
		}
	}
	// No write lost: each device's keys hold its last write everywhere.
	for _, d := range devs {
		for _, k := range d.keys {
			for _, other := range devs {
				got := scenario.ValueFile(t, other.db, "SELECT coalesce((SELECT title FROM notes WHERE id=?), '')", k)
				if got != d.last[k] {
					t.Fatalf("key %s on %s: got %q, last write on %s was %q", k, other.name, got, d.name, d.last[k])
				}
			}
		}
	}
}

// crashSetup reads the trial count (ROWDROP_CRASH_TRIALS, else n) and
// the seed, and makes the shared folder.
func crashSetup(t *testing.T, n int) (trials int, rng *rand.Rand, root, folder string) {
	t.Helper()
	trials = n
	if v, err := strconv.Atoi(os.Getenv("ROWDROP_CRASH_TRIALS")); err == nil && v > 0 {
		trials = v
	}
	seed := seedFromEnv(t)
	t.Logf("seed %d (rerun with ROWDROP_SEED=%d), %d trials", seed, seed, trials)
	root = t.TempDir()
	folder = filepath.Join(root, "folder")
	if err := os.MkdirAll(folder, 0o755); err != nil {
		t.Fatal(err)
	}
	return trials, rand.New(rand.NewSource(seed)), root, folder
}

// syncChild is a child process that runs one Sync of device d.
func syncChild(t *testing.T, d *crashDev, folder string) *exec.Cmd {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, "-test.run=^$")
	cmd.Env = append(os.Environ(), "ROWDROP_CRASH_CHILD=sync", "ROWDROP_DB="+d.db, "ROWDROP_FOLDER="+folder, "ROWDROP_STATE="+d.state)
	return cmd
}

// calibrate returns how long an uninterrupted child takes here: kill
// moments are spread over that span (and a bit past it, so some runs
// complete).
func calibrate(t *testing.T, devs []*crashDev, folder string) time.Duration {
	t.Helper()
	span := 50 * time.Millisecond
	for _, d := range devs {
		start := time.Now()
		if out, err := syncChild(t, d, folder).CombinedOutput(); err != nil {
			t.Fatalf("calibration run: %v %s", err, out)
		}
		span = max(span, time.Since(start))
	}
	t.Logf("an uninterrupted child takes about %v", span)
	return span
}

// runKilled runs a sync child of d and kills it after delay unless it has
// finished; it reports whether it was killed. A child that fails on its
// own fails the test.
func runKilled(t *testing.T, trial int, d *crashDev, folder string, delay time.Duration) bool {
	t.Helper()
	cmd := syncChild(t, d, folder)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	timer := time.AfterFunc(delay, func() { cmd.Process.Kill() })
	werr := cmd.Wait()
	if !timer.Stop() {
		return true
	}
	if werr != nil {
		t.Fatalf("trial %d: child sync failed without being killed: %v\n%s", trial, werr, out.String())
	}
	return false
}

// converge reopens every device in-process and syncs them all, rounds
// times.
func converge(t *testing.T, devs []*crashDev, folder string, rounds int) {
	t.Helper()
	ctx := context.Background()
	var ss []*rowdrop.Syncer
	for _, d := range devs {
		s, err := rowdrop.Open(ctx, rowdrop.Config{DB: d.db, Folder: folder, State: d.state})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		ss = append(ss, s)
	}
	for round := 0; round < rounds; round++ {
		for _, s := range ss {
			if _, err := s.Sync(ctx); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// checkAfterCrash: databases intact, sequence contiguous, nothing published
// that the state does not account for.
func checkAfterCrash(t *testing.T, trial int, d *crashDev, folder string) {
	t.Helper()
	for _, p := range []string{d.db, filepath.Join(d.state, "base.db")} {
		if _, err := os.Stat(p); err != nil {
			continue
		}
		if got := scenario.ValueFile(t, p, "PRAGMA integrity_check"); got != "ok" {
			t.Fatalf("trial %d: integrity_check of %s: %s", trial, p, got)
		}
	}
	base := filepath.Join(d.state, "base.db")
	if _, err := os.Stat(base); err != nil {
		return
	}
	dev := scenario.ValueFile(t, base, "SELECT coalesce((SELECT v FROM rowdrop_state WHERE k='device'),'')")
	if dev == "" {
		return
	}
	next, _ := strconv.ParseUint(scenario.ValueFile(t, base, "SELECT coalesce((SELECT v FROM rowdrop_state WHERE k='next_seq'),1)"), 10, 64)
	seqs := scenario.Seqs(t, folder, dev)
	for i, s := range seqs {
		if s != uint64(i+1) {
			t.Fatalf("trial %d: %s published sequence %v: not contiguous from 1", trial, d.name, seqs)
		}
		if s >= next {
			t.Fatalf("trial %d: %s published %d but its state's next sequence is %d", trial, d.name, s, next)
		}
	}
}

// TestCrashDuringRekey kills sync children at random instants while two
// devices keep inserting notebooks and notes under colliding INTEGER ids:
// after every crash the state is consistent, and in the end every notebook
// exists once on both devices and every note is in the notebook its author
// chose.
func TestCrashDuringRekey(t *testing.T) {
	trials, rng, root, folder := crashSetup(t, 20)
	var devs []*crashDev
	for _, name := range []string{"a", "b"} {
		d := &crashDev{name: name, db: filepath.Join(root, name+".db"), state: filepath.Join(root, name+"-state")}
		conn, err := sqlite.OpenConn(d.db)
		if err != nil {
			t.Fatal(err)
		}
		if err := sqlitex.ExecuteScript(conn, `CREATE TABLE notebooks(id INTEGER PRIMARY KEY, uid TEXT NOT NULL, name TEXT);
			CREATE TABLE notes(id TEXT PRIMARY KEY, notebook_id INTEGER REFERENCES notebooks(id), title TEXT);`, nil); err != nil {
			t.Fatal(err)
		}
		conn.Close()
		devs = append(devs, d)
	}
	span := calibrate(t, devs, folder)
	chose := map[string]string{} // note -> notebook uid
	uids := map[string]bool{}
	for trial := 0; trial < trials; trial++ {
		d := devs[rng.Intn(len(devs))]
		uid := fmt.Sprintf("%s-nb%d", d.name, trial)
		scenario.ExecFile(t, d.db, `INSERT INTO notebooks(uid, name) VALUES(?, ?)`, uid, uid)
		uids[uid] = true
		// A note in a random notebook this device sees now.
		nbUID := scenario.ValueFile(t, d.db, `SELECT uid FROM notebooks ORDER BY uid LIMIT 1 OFFSET abs(?) % (SELECT count(*) FROM notebooks)`, rng.Int63())
		note := fmt.Sprintf("%s-n%d", d.name, trial)
		scenario.ExecFile(t, d.db, `INSERT INTO notes VALUES(?, (SELECT id FROM notebooks WHERE uid = ?), ?)`, note, nbUID, note)
		chose[note] = nbUID
		delay := time.Duration(rng.Int63n(int64(span) * 5 / 4))
		killed := runKilled(t, trial, d, folder, delay)
		if os.Getenv("ROWDROP_CRASH_KEEP") != "" {
			t.Logf("trial %d: %s inserted %s, note %s in %s, killed=%v after %v; ids %s", trial, d.name, uid, note, nbUID, killed, delay,
				scenario.ValueFile(t, d.db, `SELECT group_concat(id||'='||uid, ' ') FROM notebooks`))
		}
		checkAfterCrash(t, trial, d, folder)
	}
	converge(t, devs, folder, 4)
	render := func(d *crashDev) string {
		return scenario.ValueFile(t, d.db, `SELECT group_concat(x, ' ') FROM (SELECT n.id || '>' || coalesce(b.uid, '?') AS x FROM notes n LEFT JOIN notebooks b ON b.id = n.notebook_id ORDER BY n.id)`) +
			" | " + scenario.ValueFile(t, d.db, `SELECT group_concat(uid, ' ') FROM (SELECT uid FROM notebooks ORDER BY uid)`)
	}
	if keep := os.Getenv("ROWDROP_CRASH_KEEP"); keep != "" {
		defer func() {
			if t.Failed() {
				out, err := exec.Command("cp", "-a", root, keep).CombinedOutput()
				t.Logf("kept %s in %s: %v %s", root, keep, err, out)
			}
		}()
	}
	if a, b := render(devs[0]), render(devs[1]); a != b {
		t.Fatalf("devices diverged after crashes:\n%s\n%s", a, b)
	}
	for uid := range uids {
		if n := scenario.ValueFile(t, devs[0].db, `SELECT count(*) FROM notebooks WHERE uid = ?`, uid); n != "1" {
			t.Errorf("notebook %s present %s times", uid, n)
		}
	}
	for note, nb := range chose {
		if got := scenario.ValueFile(t, devs[0].db, `SELECT coalesce((SELECT b.uid FROM notes n JOIN notebooks b ON b.id = n.notebook_id WHERE n.id = ?), '?')`, note); got != nb {
			t.Errorf("note %s is in %s, its author chose %s", note, got, nb)
		}
	}
}
