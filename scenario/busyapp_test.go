package scenario_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"zombiezen.com/go/sqlite"
	"zombiezen.com/go/sqlite/sqlitex"

	"github.com/rowdrop/rowdrop"
	"github.com/rowdrop/rowdrop/scenario"
)

// runApp is the busy app: a separate OS process writing to its database
// with busy_timeout 5 s, one transaction per write, as a notes app would.
// It writes the last value of each key to ROWDROP_APP_OUT and exits non-zero
// on the first error.
func runApp() int {
	n, _ := strconv.Atoi(os.Getenv("ROWDROP_APP_N"))
	seed, _ := strconv.ParseInt(os.Getenv("ROWDROP_SEED"), 10, 64)
	prefix := os.Getenv("ROWDROP_APP_PREFIX")
	rng := rand.New(rand.NewSource(seed))
	conn, err := sqlite.OpenConn(os.Getenv("ROWDROP_DB"), sqlite.OpenReadWrite)
	if err != nil {
		fmt.Fprintln(os.Stderr, "app:", err)
		return 2
	}
	defer conn.Close()
	conn.SetBusyTimeout(5 * time.Second)
	last := map[string]string{}
	var keys []string
	for i := 0; i < n; i++ {
		var k string
		if len(keys) == 0 || rng.Intn(2) == 0 {
			k = fmt.Sprintf("%s-%05d", prefix, len(keys))
			keys = append(keys, k)
		} else {
			k = keys[rng.Intn(len(keys))]
		}
		v := fmt.Sprintf("%s-w%d", k, i)
		if err := sqlitex.Execute(conn, "INSERT INTO notes(id,title,n) VALUES(?,?,?) ON CONFLICT(id) DO UPDATE SET title=excluded.title, n=excluded.n", &sqlitex.ExecOptions{Args: []any{k, v, i}}); err != nil {
			fmt.Fprintf(os.Stderr, "app: write %d: %v\n", i, err)
			return 1
		}
		last[k] = v
	}
	b, _ := json.Marshal(last)
	if err := os.WriteFile(os.Getenv("ROWDROP_APP_OUT"), b, 0o644); err != nil {
		return 3
	}
	return 0
}

// A busy app: two app processes write 10k inserts and updates in total
// (one WAL database, one rollback-journal database) while both devices
// sync continuously. The apps see no error, no write is lost, and the
// longest write-lock rowdrop held on a live database is reported.
func TestBusyAppWhileSyncing(t *testing.T) {
	total := 10000
	if testing.Short() {
		total = 2000
	}
	seed := seedFromEnv(t)
	t.Logf("seed %d (rerun with ROWDROP_SEED=%d)", seed, seed)
	folder := t.TempDir()
	exe, _ := os.Executable()
	type dev struct {
		d   *scenario.SharedDevice
		out string
		cmd *exec.Cmd
	}
	var devs []*dev
	for i, name := range []string{"a", "b"} {
		mode := "wal"
		if i == 1 {
			mode = "delete"
		}
		d := scenario.NewSharedDevice(t, folder, name, scenario.SharedOptions{Journal: mode, Hints: i == 0})
		devs = append(devs, &dev{d: d, out: filepath.Join(t.TempDir(), "last.json")})
	}
	for i, v := range devs {
		v.cmd = exec.Command(exe, "-test.run=^$")
		v.cmd.Env = append(os.Environ(), "ROWDROP_CRASH_CHILD=app", "ROWDROP_DB="+v.d.DB, "ROWDROP_APP_OUT="+v.out,
			"ROWDROP_APP_PREFIX="+v.d.Name, "ROWDROP_APP_N="+strconv.Itoa(total/2), "ROWDROP_SEED="+strconv.FormatInt(seed+int64(i), 10))
		v.cmd.Stderr = os.Stderr
		if err := v.cmd.Start(); err != nil {
			t.Fatal(err)
		}
	}
	ctx := context.Background()
	var mu sync.Mutex
	var maxLock time.Duration
	var cycles int
	done := make(chan struct{})
	var wg sync.WaitGroup
	for _, v := range devs {
		wg.Add(1)
		go func(s *rowdrop.Syncer) {
			defer wg.Done()
			for {
				select {
				case <-done:
					return
				default:
				}
				r, err := s.Sync(ctx)
				if err != nil {
					t.Errorf("sync during busy app: %v", err)
					return
				}
				mu.Lock()
				cycles++
				if r.Import.MaxLock > maxLock {
					maxLock = r.Import.MaxLock
				}
				mu.Unlock()
			}
		}(v.d.S)
	}
	appErr := false
	for _, v := range devs {
		if err := v.cmd.Wait(); err != nil {
			t.Errorf("app process on %s failed: %v", v.d.Name, err)
			appErr = true
		}
	}
	close(done)
	wg.Wait()
	if appErr || t.Failed() {
		t.FailNow()
	}
	for round := 0; round < 3; round++ {
		for _, v := range devs {
			r := v.d.Sync()
			if r.Import.MaxLock > maxLock {
				maxLock = r.Import.MaxLock
			}
		}
	}
	t.Logf("%d sync cycles ran during %d app writes; longest live write-lock hold by rowdrop: %v (target <= 100ms)", cycles, total, maxLock)
	if scenario.DumpNotes(t, devs[0].d.DB) != scenario.DumpNotes(t, devs[1].d.DB) {
		t.Fatal("devices differ after the busy run")
	}
	for _, v := range devs {
		b, err := os.ReadFile(v.out)
		if err != nil {
			t.Fatal(err)
		}
		var last map[string]string
		json.Unmarshal(b, &last)
		for k, want := range last {
			for _, w := range devs {
				if got := scenario.ValueFile(t, w.d.DB, "SELECT title FROM notes WHERE id=?", k); got != want {
					t.Fatalf("%s on %s: %q, the app's last write was %q", k, w.d.Name, got, want)
				}
			}
		}
	}
}
