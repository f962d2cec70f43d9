package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"zombiezen.com/go/sqlite"
	"zombiezen.com/go/sqlite/sqlitex"

	"github.com/rowdrop/rowdrop"
	"github.com/rowdrop/rowdrop/export"
	importer "github.com/rowdrop/rowdrop/import"
)

// Child processes: the benchmark re-executes its own binary (or the test
// binary, see TestMain) with childEnv set, so that peak memory (P5) is the
// import's alone and the app writer (P6) is a separate OS process, as a
// real app would be.
const (
	childEnv = "ROWDROP_BENCH_CHILD" // "import" or "app"
	argsEnv  = "ROWDROP_BENCH_ARGS"  // JSON-encoded childArgs
)

type childArgs struct {
	DB       string `json:"db"`
	Folder   string `json:"folder,omitempty"`
	State    string `json:"state,omitempty"`
	PprofDir string `json:"pprof_dir,omitempty"`
	BusyMS   int    `json:"busy_ms,omitempty"` // app: its busy timeout (0: 5 s)
	Op       string `json:"op,omitempty"`      // sync: "export" or "import"
	Name     string `json:"name,omitempty"`    // sync: the step's name (its profile's file name)
}

// importResult is what the import child reports.
type importResult struct {
	Applied   int     `json:"applied"`
	Changes   int64   `json:"changes"`
	Conflicts int64   `json:"conflicts"`
	TookS     float64 `json:"took_s"`
	MaxLockMS float64 `json:"max_lock_ms"`
	Locks     int     `json:"locks"`
	LongLocks int     `json:"long_locks"`
	VmHWMKB   int64   `json:"vm_hwm_kb"`
	// At the highest sampled RSS: how much of it the Go runtime holds (the
	// rest is SQLite's page caches and other C-side allocations).
	PeakRSSKB   int64  `json:"peak_rss_kb"`
	GoSysKB     int64  `json:"go_sys_kb"`
	GoHeapKB    int64  `json:"go_heap_inuse_kb"`
	GoHeapMaxKB int64  `json:"go_heap_inuse_max_kb"`
	Error       string `json:"error,omitempty"`
}

// appResult is what the app-writer child reports.
type appResult struct {
	Commits    int     `json:"commits"`
	Errors     int     `json:"errors"`
	FirstError string  `json:"first_error,omitempty"`
	MaxMS      float64 `json:"max_ms"`
	P99MS      float64 `json:"p99_ms"`
	P50MS      float64 `json:"p50_ms"`
	// The wait for the write lock (BEGIN IMMEDIATE), the part of a commit
	// another writer's lock causes; the rest is the app's own COMMIT
	// (its fsync, and the WAL checkpoints its connection runs).
	WaitMaxMS float64 `json:"wait_max_ms"`
	WaitP99MS float64 `json:"wait_p99_ms"`
}

func runChild(mode string) int {
	var a childArgs
	if err := json.Unmarshal([]byte(os.Getenv(argsEnv)), &a); err != nil {
		fmt.Fprintln(os.Stderr, "rowdrop-bench child: bad arguments:", err)
		return 2
	}
	var out any
	switch mode {
	case "import":
		out = childImport(a)
	case "app":
		out = childApp(a)
	case "sync":
		out = childSync(a)
	case "hog":
		// A CPU hog (P6 under load): spins until its stdin closes.
		var stop atomic.Bool
		go func() { io.Copy(io.Discard, os.Stdin); stop.Store(true) }()
		for x := 0; !stop.Load(); x++ {
		}
		return 0
	default:
		fmt.Fprintln(os.Stderr, "rowdrop-bench child: unknown mode", mode)
		return 2
	}
	js, _ := json.Marshal(out)
	fmt.Println(string(js))
	return 0
}

// childImport imports everything in the folder into the database.
func childImport(a childArgs) importResult {
	var r importResult
	if a.PprofDir != "" {
		if f, err := os.Create(filepath.Join(a.PprofDir, "p5-import-cpu.pprof")); err == nil {
			pprof.StartCPUProfile(f)
			defer func() { pprof.StopCPUProfile(); f.Close() }()
		}
	}
	stopSampler := sampleMemory(&r)
	ctx := context.Background()
	s, err := rowdrop.Open(ctx, rowdrop.Config{DB: a.DB, Folder: a.Folder, State: a.State, DeviceName: "p5"})
	if err != nil {
		r.Error = err.Error()
		return r
	}
	defer s.Close()
	t0 := time.Now()
	res, err := s.Import(ctx)
	r.TookS = time.Since(t0).Seconds()
	if err != nil {
		r.Error = err.Error()
	}
	stopSampler()
	r.Applied, r.Changes, r.Conflicts = res.Applied, res.Changes, res.Conflicts
	r.Locks, r.LongLocks = res.Locks, res.LongLocks
	r.MaxLockMS = float64(res.MaxLock) / float64(time.Millisecond)
	r.VmHWMKB = vmHWM()
	if a.PprofDir != "" {
		if f, err := os.Create(filepath.Join(a.PprofDir, "p5-import-heap.pprof")); err == nil {
			pprof.Lookup("heap").WriteTo(f, 0)
			f.Close()
		}
	}
	return r
}

// childSync runs one export or import (a.Op) and reports its peak RSS
// (P7): one process per step, so each step's peak is its own.
func childSync(a childArgs) importResult {
	var r importResult
	stopSampler := sampleMemory(&r)
	ctx := context.Background()
	s, err := rowdrop.Open(ctx, rowdrop.Config{DB: a.DB, Folder: a.Folder, State: a.State})
	if err != nil {
		r.Error = err.Error()
		return r
	}
	defer s.Close()
	t0 := time.Now()
	switch a.Op {
	case "export":
		var res export.Result
		res, err = s.Export(ctx)
		r.Changes = res.Changes
	case "import":
		var res importer.Result
		res, err = s.Import(ctx)
		r.Applied, r.Changes, r.Conflicts = res.Applied, res.Changes, res.Conflicts
		r.Locks, r.LongLocks = res.Locks, res.LongLocks
		r.MaxLockMS = float64(res.MaxLock) / float64(time.Millisecond)
	default:
		err = fmt.Errorf("unknown sync op %q", a.Op)
	}
	r.TookS = time.Since(t0).Seconds()
	stopSampler()
	if err != nil {
		r.Error = err.Error()
	}
	r.VmHWMKB = vmHWM()
	if a.PprofDir != "" {
		// Every allocation of the step, by where it was made: big values'
		// copies show as the largest entries of -sample_index=alloc_space.
		runtime.GC() // the profile shows allocations up to the last collection
		if f, err := os.Create(filepath.Join(a.PprofDir, a.Name+"-heap.pprof")); err == nil {
			pprof.Lookup("allocs").WriteTo(f, 0)
			f.Close()
		}
	}
	return r
}

// sampleMemory records, every 50 ms, the RSS and how much of it is Go's,
// keeping the sample with the highest RSS. The returned func stops it.
func sampleMemory(r *importResult) func() {
	done := make(chan struct{})
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		t := time.NewTicker(50 * time.Millisecond)
		defer t.Stop()
		for {
			rss := procStatus("VmRSS:")
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			r.GoHeapMaxKB = max(r.GoHeapMaxKB, int64(ms.HeapInuse>>10))
			if rss > r.PeakRSSKB {
				r.PeakRSSKB, r.GoSysKB, r.GoHeapKB = rss, int64(ms.Sys>>10), int64(ms.HeapInuse>>10)
			}
			select {
			case <-done:
				return
			case <-t.C:
			}
		}
	}()
	return func() { close(done); <-stopped }
}

// vmHWM reads this process's peak resident set size (kB) from /proc.
func vmHWM() int64 { return procStatus("VmHWM:") }

// procStatus reads one kB figure from /proc/self/status.
func procStatus(key string) int64 {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, key); ok {
			f := strings.Fields(rest)
			if len(f) > 0 {
				n, _ := strconv.ParseInt(f[0], 10, 64)
				return n
			}
		}
	}
	return 0
}

// childApp is the simulated app: it inserts one row per transaction into
// app_events, continuously, with a 5 s busy timeout, until its stdin
// closes, and reports its commit latencies. It prints "ready" after its
// first commit.
func childApp(a childArgs) appResult {
	var r appResult
	conn, err := sqlite.OpenConn(a.DB, sqlite.OpenReadWrite)
	if err != nil {
		r.Errors, r.FirstError = 1, err.Error()
		fmt.Println("ready")
		return r
	}
	defer conn.Close()
	busy := 5 * time.Second
	if a.BusyMS > 0 {
		busy = time.Duration(a.BusyMS) * time.Millisecond
	}
	conn.SetBusyTimeout(busy)
	stop := make(chan struct{})
	go func() {
		io.Copy(io.Discard, os.Stdin)
		close(stop)
	}()
	stmt, err := conn.Prepare("INSERT INTO app_events(at, payload) VALUES(?, ?)")
	if err != nil {
		r.Errors, r.FirstError = 1, err.Error()
		fmt.Println("ready")
		return r
	}
	defer stmt.Finalize()
	var lats, waits []time.Duration
	payload := strings.Repeat("x", 200)
	for {
		select {
		case <-stop:
			slices.Sort(lats)
			slices.Sort(waits)
			r.Commits = len(lats)
			if len(lats) > 0 {
				msf := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
				r.MaxMS = msf(lats[len(lats)-1])
				r.P99MS = msf(lats[len(lats)*99/100])
				r.P50MS = msf(lats[len(lats)/2])
				r.WaitMaxMS = msf(waits[len(waits)-1])
				r.WaitP99MS = msf(waits[len(waits)*99/100])
			}
			return r
		default:
		}
		t0 := time.Now()
		err := sqlitex.ExecuteTransient(conn, "BEGIN IMMEDIATE", nil)
		wait := time.Since(t0)
		if err == nil {
			stmt.BindInt64(1, t0.UnixMilli())
			stmt.BindText(2, payload)
			_, err = stmt.Step()
			stmt.Reset()
			if err == nil {
				err = sqlitex.ExecuteTransient(conn, "COMMIT", nil)
			}
			if err != nil && !conn.AutocommitEnabled() {
				sqlitex.ExecuteTransient(conn, "ROLLBACK", nil)
			}
		}
		if err != nil {
			r.Errors++
			if r.FirstError == "" {
				r.FirstError = err.Error()
			}
		} else {
			lats = append(lats, time.Since(t0))
			waits = append(waits, wait)
			if len(lats) == 1 {
				fmt.Println("ready")
			}
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// child is a running child process.
type child struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	out   *bufio.Scanner
}

func startChild(mode string, a childArgs) (*child, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	js, _ := json.Marshal(a)
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), childEnv+"="+mode, argsEnv+"="+string(js))
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	sc := bufio.NewScanner(stdout)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	return &child{cmd: cmd, stdin: stdin, out: sc}, nil
}

// waitLine waits for the next output line.
func (c *child) waitLine() (string, error) {
	if c.out.Scan() {
		return c.out.Text(), nil
	}
	if err := c.out.Err(); err != nil {
		return "", err
	}
	return "", errors.New("child exited without output")
}

// finish closes stdin, decodes the last output line into v and waits.
// It returns the child's peak RSS in kB as the kernel accounted it.
func (c *child) finish(v any) (int64, error) {
	c.stdin.Close()
	var last string
	for c.out.Scan() {
		last = c.out.Text()
	}
	werr := c.cmd.Wait()
	if last == "" {
		return 0, fmt.Errorf("child produced no result (%v)", werr)
	}
	if err := json.Unmarshal([]byte(last), v); err != nil {
		return 0, fmt.Errorf("child result %q: %w", last, err)
	}
	return peakRSS(c.cmd.ProcessState), werr
}
