// Command rowdrop-bench measures rowdrop against its own physical limits
// and prints one table of ratios measured in the same run (issue 9).
//
// Shared, noisy machines make absolute times meaningless; ratios of two
// things measured back to back on the same data are not. Every figure
// therefore compares rowdrop with the raw SQLite operation it is built on
// (a full session diff, a raw changeset apply, the changeset itself), or
// reports a bound (peak memory, longest lock) that does not depend on speed.
//
// The harness generates its own data in a work directory (deleted at the
// end unless --keep). Usage:
//
//	go run ./cmd/rowdrop-bench --quick   # small sizes, < 1 minute (CI smoke test)
//	go run ./cmd/rowdrop-bench           # full: 100k and 1M rows (~15-20 minutes on 2 cores)
//
// --quick asserts nothing about speed: the exit status is non-zero only if a
// figure could not be produced. docs/BENCH.md holds the latest full table.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime"
	"strconv"
	"strings"
	"time"
)

func main() {
	if mode := os.Getenv(childEnv); mode != "" {
		os.Exit(runChild(mode))
	}
	var o Options
	flag.BoolVar(&o.Quick, "quick", false, "small sizes (under a minute); a smoke test that asserts nothing about speed")
	flag.Int64Var(&o.Seed, "seed", 0, "random seed for the generated data and edits (0: time-based; the seed used is printed)")
	flag.StringVar(&o.Dir, "dir", "", "work directory for the generated databases (default: a new temporary directory)")
	flag.BoolVar(&o.Keep, "keep", false, "keep the work directory")
	flag.IntVar(&o.Reps, "reps", 21, "timed one-row exports per database (P1)")
	flag.StringVar(&o.Only, "only", "", "comma-separated subset of p1,p2,p5,p6,p7,latency,default,join,seal (join: J1 joining from a snapshot vs .backup, replay and the row-by-row join, J2 restore; seal: P1, P2, P3 with encryption on vs off; p1 includes P3; p2 includes P6 at rest; p6 is P6 under load)")
	flag.StringVar(&o.PprofDir, "pprof-dir", "", "write CPU profiles of the measured phases into this directory")
	verbose := flag.Bool("v", false, "log rowdrop's own messages to stderr")
	// Size overrides, for experiments and profiling.
	flag.StringVar(&o.TextRows, "text-rows", "", "override: comma-separated sizes of the TEXT-key P1 databases")
	flag.StringVar(&o.IntRows, "int-rows", "", "override: comma-separated sizes of the INTEGER-key P1 databases")
	flag.IntVar(&o.MergeRows, "merge-rows", 0, "override: rows of the P2 database (the largest TEXT size is reused when equal)")
	flag.IntVar(&o.MergeUpdates, "merge-updates", 0, "override: remote updates merged in P2")
	flag.IntVar(&o.P5Rows, "p5-rows", 0, "override: inserted rows of the P5 changeset")
	flag.IntVar(&o.P5Body, "p5-body", 0, "override: body length in bytes of the P5 rows")
	flag.IntVar(&o.LoadRows, "load-rows", 0, "override: rows imported by P6 under load")
	flag.IntVar(&o.BigValue, "big-value", 0, "override: bytes of P7's BLOB")
	flag.IntVar(&o.DiffReps, "diff-reps", 0, "override: full diffs per P1 database (median)")
	flag.Parse()
	if *verbose {
		o.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	o.Progress = os.Stderr
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	rep, err := Run(ctx, o)
	if rep != nil {
		fmt.Print(rep.Markdown())
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "rowdrop-bench:", err)
		os.Exit(1)
	}
	if missing := rep.Missing(); len(missing) > 0 {
		fmt.Fprintln(os.Stderr, "rowdrop-bench: figures not produced:", strings.Join(missing, ", "))
		os.Exit(1)
	}
}

// Options configure a run.
type Options struct {
	Quick    bool
	Seed     int64
	Dir      string
	Keep     bool
	Reps     int
	Only     string
	PprofDir string
	// Size overrides (zero: the mode's defaults).
	TextRows, IntRows                                 string
	MergeRows, MergeUpdates, P5Rows, P5Body, DiffReps int
	LoadRows, BigValue                                int
	Logger                                            *slog.Logger // rowdrop's logger (nil: discard)
	Progress                                          io.Writer    // progress lines (nil: discard)
}

// sizes are the data sizes of one mode.
type sizes struct {
	textRows     []int // P1 notes DBs with TEXT uuid keys
	intRows      []int // P1 notes DBs with INTEGER keys
	mergeRows    int   // P2: rows of the DB merged into (one of textRows)
	mergeUpdates int   // P2: remote updates merged
	p5Rows       int   // P5: inserted rows of the large changeset
	p5Body       int   // P5: body length of those rows
	loadRows     int   // P6 under load: inserted rows imported
	loadBody     int   // P6 under load: body length of those rows
	bigValue     int   // P7: bytes of the edited BLOB
	diffReps     int   // full-diff repetitions per DB below 1M rows (median)
	diffRepsBig  int   // full-diff repetitions per DB of 1M rows and more
	targetRows   int   // P1 ratio target applies at this size
}

func (o Options) sizes() (sizes, error) {
	sz := sizesFor(o.Quick)
	list := func(s string) ([]int, error) {
		var out []int
		for _, f := range strings.Split(s, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(f))
			if err != nil || n <= 0 {
				return nil, fmt.Errorf("bad size %q", f)
			}
			out = append(out, n)
		}
		return out, nil
	}
	var err error
	if o.TextRows != "" {
		if sz.textRows, err = list(o.TextRows); err != nil {
			return sz, err
		}
		sz.mergeRows = sz.textRows[len(sz.textRows)-1]
	}
	if o.IntRows != "" {
		if sz.intRows, err = list(o.IntRows); err != nil {
			return sz, err
		}
	}
	for _, p := range []struct {
		v   int
		dst *int
	}{{o.MergeRows, &sz.mergeRows}, {o.MergeUpdates, &sz.mergeUpdates}, {o.P5Rows, &sz.p5Rows}, {o.P5Body, &sz.p5Body}, {o.LoadRows, &sz.loadRows}, {o.BigValue, &sz.bigValue},
		{o.DiffReps, &sz.diffReps}, {o.DiffReps, &sz.diffRepsBig}} {
		if p.v > 0 {
			*p.dst = p.v
		}
	}
	if sz.mergeUpdates > sz.mergeRows {
		return sz, fmt.Errorf("%d merge updates exceed the %d rows of the P2 database", sz.mergeUpdates, sz.mergeRows)
	}
	return sz, nil
}

func sizesFor(quick bool) sizes {
	if quick {
		return sizes{textRows: []int{2000, 20000}, intRows: []int{20000}, mergeRows: 20000, mergeUpdates: 2000,
			p5Rows: 25000, p5Body: 2000, loadRows: 20000, loadBody: 500, bigValue: 4 << 20, diffReps: 3, diffRepsBig: 1, targetRows: 1_000_000}
	}
	// P5's ~1 GB changeset is made of 2 KB rows rather than 2M rows of
	// 500 bytes: what bounds memory is the bytes in flight, and a quarter
	// of the rows keeps the full run within its time budget.
	return sizes{textRows: []int{100_000, 1_000_000}, intRows: []int{1_000_000}, mergeRows: 1_000_000, mergeUpdates: 100_000,
		p5Rows: 500_000, p5Body: 2000, loadRows: 200_000, loadBody: 500, bigValue: 50_000_000, diffReps: 3, diffRepsBig: 1, targetRows: 1_000_000}
}

// Figure is one row of the table.
type Figure struct {
	ID       string // e.g. "P1 export, TEXT keys, 1M rows"
	Measured string // both sides of the ratio, human readable
	Ratio    string
	Target   string
	Met      string // "yes", "no", or "—" when the target does not apply
	// Values holds the raw numbers (seconds, bytes, rows/s) for tests and
	// for anyone post-processing the run.
	Values map[string]float64
}

// Report is the outcome of a run.
type Report struct {
	Mode    string
	Seed    int64
	Started time.Time
	Took    time.Duration
	Machine string // cores, CPU model, load average at start and end
	Figures []Figure
	Notes   []string
	only    string
}

func (r *Report) add(f Figure) { r.Figures = append(r.Figures, f) }

// Has reports whether a figure whose ID starts with prefix was produced.
func (r *Report) Has(prefix string) bool {
	for _, f := range r.Figures {
		if strings.HasPrefix(f.ID, prefix) && f.Measured != "" {
			return true
		}
	}
	return false
}

// required lists, per phase, the figures a complete run produces.
var required = map[string][]string{
	"p1":      {"P1 export", "P1 initial export", "P3 bytes", "P3 file-level"},
	"p2":      {"P2 merge", "P6 lock"},
	"p5":      {"P5 memory"},
	"p6":      {"P6 under load"},
	"p7":      {"P7 memory"},
	"latency": {"L1 commit-to-visible"},
	"default": {"D1 default sync", "D2 default sync", "D3 first sync"},
	"join":    {"J1 join from a snapshot", "J2 restore"},
	"seal":    {"P1 seal export", "P2 seal merge", "P3 seal bytes"},
}

// Missing lists the required figures the run did not produce.
func (r *Report) Missing() []string {
	var out []string
	for _, phase := range []string{"p1", "p2", "p5", "p6", "p7", "latency", "default", "join", "seal"} {
		if !wantPhase(r.only, phase) {
			continue
		}
		for _, id := range required[phase] {
			if !r.Has(id) {
				out = append(out, id)
			}
		}
	}
	return out
}

// Markdown renders the table.
func (r *Report) Markdown() string {
	var b strings.Builder
	fmt.Fprintf(&b, "\n### rowdrop-bench, %s mode (seed %d, %s, took %s)\n\n", r.Mode, r.Seed, r.Started.Format("2006-01-02 15:04"), r.Took.Round(time.Second))
	if r.Machine != "" {
		fmt.Fprintf(&b, "Machine: %s.\n\n", r.Machine)
	}
	b.WriteString("| figure | measured | ratio | target | met? |\n| --- | --- | --- | --- | --- |\n")
	for _, f := range r.Figures {
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s |\n", f.ID, f.Measured, f.Ratio, f.Target, f.Met)
	}
	if len(r.Notes) > 0 {
		b.WriteString("\n")
		for _, n := range r.Notes {
			fmt.Fprintf(&b, "- %s\n", n)
		}
	}
	return b.String()
}

// Run runs the benchmark.
func Run(ctx context.Context, o Options) (*Report, error) {
	if o.Seed == 0 {
		o.Seed = time.Now().UnixNano() % 1_000_000_007
	}
	if o.Reps <= 0 {
		o.Reps = 21
	}
	sz, err := o.sizes()
	if err != nil {
		return nil, err
	}
	rep := &Report{Mode: "full", Seed: o.Seed, Started: time.Now(), only: o.Only}
	if o.Quick {
		rep.Mode = "quick"
	}
	if o.TextRows != "" || o.IntRows != "" || o.MergeRows != 0 || o.MergeUpdates != 0 || o.P5Rows != 0 || o.P5Body != 0 {
		rep.Mode += " (custom sizes)"
	}
	dir := o.Dir
	if dir == "" {
		d, err := os.MkdirTemp("", "rowdrop-bench-")
		if err != nil {
			return nil, err
		}
		dir = d
	} else if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	if !o.Keep {
		defer os.RemoveAll(dir)
	}
	b := &bench{o: o, sz: sz, dir: dir, rep: rep, rng: newRand(o.Seed), start: time.Now()}
	b.logf("seed %d, work directory %s", o.Seed, dir)
	load0 := loadAvg()
	err = b.run(ctx)
	rep.Took = time.Since(rep.Started)
	rep.Machine = fmt.Sprintf("%d cores, %s, %s; load average %s at start, %s at end", runtime.NumCPU(), cpuModel(), runtime.Version(), load0, loadAvg())
	if o.Quick {
		rep.Notes = append(rep.Notes, "quick mode: small sizes, a smoke test; the targets apply to the full run")
	}
	return rep, err
}

// cpuModel reads the CPU model name from /proc/cpuinfo.
func cpuModel() string {
	data, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return runtime.GOARCH
	}
	for _, line := range strings.Split(string(data), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return runtime.GOARCH
}

// loadAvg reads the 1-minute load average: the machine is shared, and a
// busy neighbour inflates absolute times (not the ratios).
func loadAvg() string {
	data, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	if f := strings.Fields(string(data)); len(f) > 0 {
		return f[0]
	}
	return "?"
}

func (b *bench) want(phase string) bool { return wantPhase(b.o.Only, phase) }

func wantPhase(only, phase string) bool {
	if only == "" {
		return true
	}
	for _, p := range strings.Split(only, ",") {
		if strings.EqualFold(strings.TrimSpace(p), phase) {
			return true
		}
	}
	return false
}

func (b *bench) run(ctx context.Context) error {
	var errs []error
	var mergeA *device
	if b.want("p1") {
		largestText := b.sz.textRows[len(b.sz.textRows)-1]
		for _, n := range b.sz.textRows {
			d, err := b.p1(ctx, false, n, n == largestText)
			if err != nil {
				errs = append(errs, fmt.Errorf("P1 TEXT %d: %w", n, err))
				continue
			}
			if n == b.sz.mergeRows && b.want("p2") {
				mergeA = d
			} else {
				d.remove()
			}
		}
		for _, n := range b.sz.intRows {
			d, err := b.p1(ctx, true, n, false)
			if err != nil {
				errs = append(errs, fmt.Errorf("P1 INTEGER %d: %w", n, err))
				continue
			}
			d.remove()
		}
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if b.want("p2") {
		if err := b.p2(ctx, mergeA); err != nil {
			errs = append(errs, fmt.Errorf("P2/P6: %w", err))
		}
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if b.want("p5") {
		if err := b.p5(ctx); err != nil {
			errs = append(errs, fmt.Errorf("P5: %w", err))
		}
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if b.want("p7") {
		if err := b.p7(ctx); err != nil {
			errs = append(errs, fmt.Errorf("P7: %w", err))
		}
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if b.want("p6") {
		if err := b.p6Load(ctx); err != nil {
			errs = append(errs, fmt.Errorf("P6 under load: %w", err))
		}
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if b.want("default") {
		if err := b.defaultPath(ctx); err != nil {
			errs = append(errs, fmt.Errorf("default path: %w", err))
		}
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if b.want("join") {
		if err := b.joinPhase(ctx); err != nil {
			errs = append(errs, fmt.Errorf("join: %w", err))
		}
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if b.want("latency") {
		if err := b.latency(ctx); err != nil {
			errs = append(errs, fmt.Errorf("latency: %w", err))
		}
	}
	if ctx.Err() == nil && b.want("seal") {
		if err := b.sealPhase(ctx); err != nil {
			errs = append(errs, fmt.Errorf("seal: %w", err))
		}
	}
	return errors.Join(errs...)
}
