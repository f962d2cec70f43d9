package scenario_test

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/rowdrop/rowdrop"
	"github.com/rowdrop/rowdrop/scenario"
)

// TestAppRulesReduce shrinks a failing seed of TestAppRulesProperty to
// the fewest operations and devices that still make devices diverge (or
// still lose a link with no conflict logged), and
// prints them as Go code for a deterministic test. A tool, not a test:
// ROWDROP_REDUCE_SEED=n runs it (ROWDROP_APPPROP_DELETES=1 or =restrict
// for those variants; ROWDROP_REDUCE_MATCH=text shrinks to the fewest that
// still fail with a message holding text, such as "held").
func TestAppRulesReduce(t *testing.T) {
	s := os.Getenv("ROWDROP_REDUCE_SEED")
	if s == "" {
		t.Skip("a tool: ROWDROP_REDUCE_SEED=n shrinks seed n of TestAppRulesProperty")
	}
	seed, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	v := appVariants[0]
	if s := os.Getenv("ROWDROP_APPPROP_DELETES"); s != "" {
		v = appVariantFor(s)
	}
	name := v.testName(seed) // device ids derive from it: the same as the run's
	if f := os.Getenv("ROWDROP_REDUCE_REPLAY"); f != "" {
		// Replay a shrunk run saved before, with diagnostics.
		var saved struct {
			Batches, Devs []int
			Ops           []savedOp
		}
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(data, &saved); err != nil {
			t.Fatal(err)
		}
		var ops []appOp
		for _, o := range saved.Ops {
			ops = append(ops, appOp{tick: o.Tick, dev: o.Dev, to: o.To, q: o.Q, args: o.Args})
		}
		t.Log(probe(t, name, func(tb testing.TB) { replayApp(tb, v, saved.Batches, saved.Devs, ops, true) }))
		return
	}
	rec := &appRecord{}
	msg := probe(t, name, func(tb testing.TB) { runAppPropRec(tb, seed, v, rec) })
	interesting := func(msg string) bool { return diverges(msg) || lost(msg) }
	match := os.Getenv("ROWDROP_REDUCE_MATCH")
	if match != "" {
		interesting = func(msg string) bool { return strings.Contains(msg, match) }
	}
	if !interesting(msg) {
		t.Fatalf("seed %d does not diverge: %q", seed, msg)
	}
	if match == "" && !diverges(msg) {
		// A link lost with no conflict logged: shrink to that, not to
		// some other failure a shrunk run may hit.
		interesting = lost
	}
	ops := rec.ops
	devs := []int{0, 1, 2, 3}
	try := func(ops []appOp, devs []int) bool {
		return interesting(probe(t, name, func(tb testing.TB) { replayApp(tb, v, rec.batches, devs, ops) }))
	}
	if !try(ops, devs) {
		t.Fatalf("the replay of seed %d does not diverge", seed)
	}
	for changed := true; changed; {
		changed = false
		for n := len(ops) / 2; n >= 1; n /= 2 {
			for i := 0; i+n <= len(ops); {
				cand := append(append([]appOp(nil), ops[:i]...), ops[i+n:]...)
				if i < len(cand) {
					// The clock still advances as it did.
					for _, op := range ops[i : i+n] {
						cand[i].tick += op.tick
					}
				}
				if try(cand, devs) {
					ops, changed = cand, true
					continue
				}
				i += n
			}
		}
		used := map[int]bool{}
		for _, op := range ops {
			used[op.dev], used[op.to] = true, true
		}
		for i := 0; i < len(devs); i++ {
			if used[devs[i]] {
				continue
			}
			cand := append(append([]int(nil), devs[:i]...), devs[i+1:]...)
			if try(ops, cand) {
				devs, changed = cand, true
				i--
			}
		}
	}
	// Round the clock advances where that keeps the divergence.
	for i := range ops {
		for _, tick := range []int64{1000, 100, 10, 1} {
			if ops[i].tick == tick {
				break
			}
			cand := append([]appOp(nil), ops...)
			cand[i].tick = tick
			if try(cand, devs) {
				ops = cand
				break
			}
		}
	}
	saved := map[string]any{"Batches": rec.batches, "Devs": devs}
	var so []savedOp
	for _, o := range ops {
		so = append(so, savedOp{o.tick, o.dev, o.to, o.q, o.args})
	}
	saved["Ops"] = so
	if data, err := json.Marshal(saved); err == nil {
		f := fmt.Sprintf("%s/rowdrop-reduce-%d.json", os.TempDir(), seed)
		if os.WriteFile(f, data, 0o644) == nil {
			t.Logf("saved in %s (ROWDROP_REDUCE_REPLAY=%s replays it)", f, f)
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "devices %v, batches %v\n", devs, rec.batches)
	for _, op := range ops {
		if op.q == "" {
			fmt.Fprintf(&b, "tick %d; d%d -> d%d\n", op.tick, op.dev, op.to)
		} else {
			fmt.Fprintf(&b, "tick %d; d%d: %s %v\n", op.tick, op.dev, op.q, op.args)
		}
	}
	t.Logf("minimal:\n%s\n%s", b.String(), probe(t, name, func(tb testing.TB) { replayApp(tb, v, rec.batches, devs, ops, true) }))
}

// savedOp is an appOp as JSON.
type savedOp struct {
	Tick    int64
	Dev, To int
	Q       string
	Args    []any
}

// diverges: the devices diverged (not another failure of a shrunk run).
func diverges(msg string) bool {
	return strings.Contains(msg, "devices differ") || strings.Contains(msg, "base copy differs")
}

// lost: a link was lost with no conflict logged (appProp.check).
func lost(msg string) bool { return strings.Contains(msg, "is in no conflict log") }

// replayApp replays recorded operations on the devices devs (indexes into
// batches), then quiesces and checks convergence.
func replayApp(tb testing.TB, v appVariant, batches []int, devs []int, ops []appOp, diag ...bool) {
	w := scenario.NewWorld(tb, v.schema())
	w.Quiet = len(diag) == 0
	verbose := len(diag) > 0 && os.Getenv("ROWDROP_REDUCE_LOG") != ""
	p := &appProp{t: tb, w: w, created: map[appLink]bool{}, deleted: map[appLink]bool{},
		pending: map[*scenario.Device]map[string]string{}, renamed: map[string]string{}, ids: map[string]map[string]bool{}}
	byIdx := map[int]*scenario.Device{}
	for _, i := range devs {
		b := batches[i]
		d := w.AddDevice(scenario.Options{Name: fmt.Sprintf("d%d", i), Initialised: true, Hints: i%2 == 1, Config: func(c *rowdrop.Config) {
			c.StandIns = map[string]string{"uuid4": "uuid"}
			c.MergeBatch = b
			if verbose {
				c.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug})).With("dev", fmt.Sprintf("d%d", i))
			}
		}})
		if err := d.App.CreateFunction("uuid4", appUUID(d.Name)); err != nil {
			tb.Fatal(err)
		}
		byIdx[i] = d
		p.devs = append(p.devs, d)
	}
	for _, op := range ops {
		w.Tick(op.tick)
		d := byIdx[op.dev]
		if verbose {
			fmt.Fprintf(os.Stderr, "--- op %+v\n", op)
		}
		if op.q != "" {
			p.exec(d, op.q, op.args...)
			p.observe()
			continue
		}
		to := byIdx[op.to]
		d.Export()
		p.exported(d)
		if to != d {
			w.DeliverAll(d, to)
			to.Import()
		}
		p.observe()
	}
	w.Tick(1000)
	w.Quiesce(12)
	if len(diag) > 0 {
		for _, d := range w.Devs {
			for _, c := range d.Conflicts() {
				tb.Errorf("%s conflict: %+v", d.Name, *c)
			}
		}
	}
	w.AssertConverged()
	p.check()
}

// probeTB is a testing.TB whose failures end the run (by panic) and are
// recorded instead of failing the test.
type probeTB struct {
	testing.TB
	name     string
	msg      string
	cleanups []func()
}

type probeFail struct{}

func (p *probeTB) Name() string              { return p.name }
func (p *probeTB) Helper()                   {}
func (p *probeTB) Log(...any)                {}
func (p *probeTB) Logf(string, ...any)       {}
func (p *probeTB) Cleanup(f func())          { p.cleanups = append(p.cleanups, f) }
func (p *probeTB) Fail()                     { p.fail("failed") }
func (p *probeTB) Failed() bool              { return p.msg != "" }
func (p *probeTB) FailNow()                  { p.fail("failed"); panic(probeFail{}) }
func (p *probeTB) Error(a ...any)            { p.fail(fmt.Sprint(a...)) }
func (p *probeTB) Errorf(f string, a ...any) { p.fail(fmt.Sprintf(f, a...)) }
func (p *probeTB) Fatal(a ...any)            { p.fail(fmt.Sprint(a...)); panic(probeFail{}) }
func (p *probeTB) Fatalf(f string, a ...any) { p.fail(fmt.Sprintf(f, a...)); panic(probeFail{}) }
func (p *probeTB) Skip(...any)               { panic(probeFail{}) }
func (p *probeTB) Skipf(string, ...any)      { panic(probeFail{}) }
func (p *probeTB) fail(m string)             { p.msg += m + "\n" }
func (p *probeTB) Setenv(k, v string)        { p.TB.Setenv(k, v) }
func (p *probeTB) TempDir() string           { return p.TB.TempDir() }

// probe runs fn with a probeTB named name and returns its failure
// messages ("" if none).
func probe(t *testing.T, name string, fn func(tb testing.TB)) (msg string) {
	p := &probeTB{TB: t, name: name}
	defer func() {
		for i := len(p.cleanups) - 1; i >= 0; i-- {
			p.cleanups[i]()
		}
		if r := recover(); r != nil {
			if _, ok := r.(probeFail); !ok {
				p.fail(fmt.Sprint("panic: ", r))
			}
		}
		msg = p.msg
	}()
	fn(p)
	return p.msg
}
