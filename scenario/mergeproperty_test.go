package scenario_test

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime/debug"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"zombiezen.com/go/sqlite"
	"zombiezen.com/go/sqlite/sqlitex"

	"github.com/rowdrop/rowdrop"
	"github.com/rowdrop/rowdrop/internal/changeset"
	"github.com/rowdrop/rowdrop/internal/db"
	"github.com/rowdrop/rowdrop/merge"
	"github.com/rowdrop/rowdrop/scenario"
)

// The property test: four devices, each with its own database, state
// directory and folder, edit a few hot rows of two tables (TEXT and INTEGER
// columns, NULLs, an INTEGER key and a composite TEXT+INTEGER key) at random
// while exporting, importing and exchanging files in random order (late,
// duplicated, truncated first, one device's files held back by a gap). Their
// clocks are skewed (within hlc.MaxDrift); some use the hinted capture path,
// some WAL, some start without an initial export (their first file carries
// export.InitialClock). At the end every file is delivered everywhere in
// random order, every device imports before it exports what it still has
// pending, and all sync until nothing moves. Then:
//
//	(a) every device holds the same synced tables (ordered dump), and each
//	    device's base copy equals its live database;
//	(b) that state is what the documented rules give when applied to the
//	    published files alone (per cell the latest write by (HLC, device);
//	    a row exists iff its latest write is later than its latest delete),
//	    computed here independently of the merge engine;
//	(c) nothing was silently lost: every value any device wrote (and so
//	    every value any device published; the published files are decoded
//	    and checked against what was written) is in the final state, or
//	    was knowingly overwritten (defined at check), or is a loser in some
//	    device's conflict log; and every delete of a shared row that was
//	    undone (the row is back with values it had when deleted) is logged
//	    as a lost delete somewhere.
//
// Seeds: 1..200 by default (20 with -short). ROWDROP_SEED=n runs seed n
// alone (failing seeds are printed with their log); ROWDROP_SEEDS=N runs N
// seeds from ROWDROP_SEED_BASE (default: a fresh random base, printed) - use
// it for thousands. ROWDROP_STEPS raises the number of random steps per
// seed, ROWDROP_PAR the number of seeds run side by side, ROWDROP_VERBOSE=1
// prints the log of passing seeds too.

// propSteps is the minimum number of random steps per seed (ROWDROP_STEPS).
var propSteps = envInt("ROWDROP_STEPS", 24)

func envInt(name string, def int) int {
	if n, err := strconv.Atoi(os.Getenv(name)); err == nil && n > 0 {
		return n
	}
	return def
}

const propSchema = `
CREATE TABLE t(id INT PRIMARY KEY, a TEXT, b INTEGER, c TEXT); -- INT, not INTEGER: not a rowid alias, so key collisions follow the LWW rules this test models (re-keying of INTEGER ids: rekey_test.go, TestMixedKeyProperty)
CREATE TABLE u(k TEXT, j INTEGER, v TEXT, w INTEGER, PRIMARY KEY(k, j)) WITHOUT ROWID;
`

type propCol struct {
	name string
	pk   bool
	text bool
}

type propTable struct {
	name string
	cols []propCol
	keys [][]changeset.Value // the hot keys, in primary-key order
}

var propTables = []propTable{
	{name: "t", cols: []propCol{{"id", true, false}, {"a", false, true}, {"b", false, false}, {"c", false, true}},
		keys: [][]changeset.Value{{changeset.Int(1)}, {changeset.Int(2)}, {changeset.Int(3)}}},
	{name: "u", cols: []propCol{{"k", true, true}, {"j", true, false}, {"v", false, true}, {"w", false, false}},
		keys: [][]changeset.Value{{changeset.Text("x"), changeset.Int(1)}, {changeset.Text("y"), changeset.Int(1)}}},
}

func (pt *propTable) pkCols() []string {
	var out []string
	for _, c := range pt.cols {
		if c.pk {
			out = append(out, c.name)
		}
	}
	return out
}

func (pt *propTable) where() string {
	var w []string
	for _, c := range pt.pkCols() {
		w = append(w, c+"=?")
	}
	return strings.Join(w, " AND ")
}

func keyArgs(key []changeset.Value) []any {
	var out []any
	for _, v := range key {
		switch v.Kind {
		case changeset.KindInteger:
			out = append(out, v.Int)
		default:
			out = append(out, string(v.Bytes))
		}
	}
	return out
}

func valueArg(v changeset.Value) any {
	switch v.Kind {
	case changeset.KindInteger:
		return v.Int
	case changeset.KindText:
		return string(v.Bytes)
	}
	return nil
}

// cellID names a (table, key, column).
func cellID(table, key, col string) string { return table + "[" + key + "]." + col }

// readRow reads a row of the app's live database as changeset values (nil
// if absent).
func readRow(conn *sqlite.Conn, pt *propTable, key []changeset.Value) ([]changeset.Value, error) {
	var names []string
	for _, c := range pt.cols {
		names = append(names, c.name)
	}
	var row []changeset.Value
	err := sqlitex.Execute(conn, fmt.Sprintf("SELECT %s FROM %s WHERE %s", strings.Join(names, ","), pt.name, pt.where()),
		&sqlitex.ExecOptions{Args: keyArgs(key), ResultFunc: func(s *sqlite.Stmt) error {
			row = make([]changeset.Value, len(pt.cols))
			for i := range row {
				row[i] = db.Column(s, i)
			}
			return nil
		}})
	return row, err
}

func propSeeds(t *testing.T) []uint64 {
	if s := os.Getenv("ROWDROP_SEED"); s != "" {
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("ROWDROP_SEED=%q: %v", s, err)
		}
		return []uint64{n}
	}
	count, base := uint64(200), uint64(1)
	if s := os.Getenv("ROWDROP_SEEDS"); s != "" {
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("ROWDROP_SEEDS=%q: %v", s, err)
		}
		count = n
		base = uint64(time.Now().UnixNano()) % 1_000_000_000
	}
	if s := os.Getenv("ROWDROP_SEED_BASE"); s != "" {
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("ROWDROP_SEED_BASE=%q: %v", s, err)
		}
		base = n
	}
	if testing.Short() && os.Getenv("ROWDROP_SEEDS") == "" {
		count = 20
	}
	t.Logf("seeds %d..%d (rerun one with ROWDROP_SEED=n)", base, base+count-1)
	out := make([]uint64, count)
	for i := range out {
		out[i] = base + uint64(i)
	}
	return out
}

func TestMergeProperty(t *testing.T) {
	seeds := propSeeds(t)
	// Exports allocate (and drop) several 1 MiB buffers each; with the
	// default GC target the collector and the page faults that follow cost
	// about as much as the test itself.
	defer debug.SetGCPercent(debug.SetGCPercent(400))
	start := time.Now()
	// Each seed is independent; run them side by side (much of a seed's
	// time is file I/O and SQLite setup, so this overlaps well).
	par := envInt("ROWDROP_PAR", 4)
	sem := make(chan struct{}, max(par, 1))
	var wg sync.WaitGroup
	var mu sync.Mutex
	var failed []uint64
	for _, seed := range seeds {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			r := &recorder{seed: seed}
			ok := runSeed(r, seed)
			if ok && os.Getenv("ROWDROP_VERBOSE") != "" {
				t.Logf("seed %d:\n%s", seed, r.String())
			}
			if !ok {
				mu.Lock()
				failed = append(failed, seed)
				if len(failed) <= 3 {
					t.Errorf("seed %d failed (rerun: ROWDROP_SEED=%d go test ./scenario -run TestMergeProperty -v):\n%s", seed, seed, r.String())
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	sort.Slice(failed, func(i, j int) bool { return failed[i] < failed[j] })
	if len(failed) > 0 {
		t.Errorf("%d of %d seeds failed: %v", len(failed), len(seeds), failed)
	}
	t.Logf("%d seeds in %v", len(seeds), time.Since(start).Round(time.Millisecond))
}

// recorder is a testing.TB for one seed: it keeps the log and the first
// failure, so seeds can run concurrently inside one test and only failing
// seeds print anything.
type recorder struct {
	testing.TB
	seed     uint64
	mu       sync.Mutex
	log      strings.Builder
	failed   bool
	cleanups []func()
	tmp      []string
}

type seedFailed struct{}

func (r *recorder) Helper() {}
func (r *recorder) Logf(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	fmt.Fprintf(&r.log, format+"\n", args...)
}
func (r *recorder) Errorf(format string, args ...any) {
	r.Logf("ERROR: "+format, args...)
	r.failed = true
}
func (r *recorder) Fatalf(format string, args ...any) {
	r.Errorf(format, args...)
	panic(seedFailed{})
}
func (r *recorder) Fatal(args ...any) { r.Fatalf("%s", fmt.Sprint(args...)) }
func (r *recorder) Failed() bool      { return r.failed }
func (r *recorder) Cleanup(f func())  { r.cleanups = append(r.cleanups, f) }
func (r *recorder) TempDir() string {
	d, err := os.MkdirTemp("", "rowdrop-prop-")
	if err != nil {
		panic(err)
	}
	r.tmp = append(r.tmp, d)
	return d
}
func (r *recorder) Name() string { return fmt.Sprintf("seed=%d", r.seed) }
func (r *recorder) String() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.log.String()
}

func (r *recorder) finish() {
	for i := len(r.cleanups) - 1; i >= 0; i-- {
		r.cleanups[i]()
	}
	for _, d := range r.tmp {
		os.RemoveAll(d)
	}
}

// runSeed runs one seeded scenario; false means it failed (see r's log).
func runSeed(r *recorder, seed uint64) (ok bool) {
	defer r.finish()
	defer func() {
		if v := recover(); v != nil {
			if _, is := v.(seedFailed); !is {
				r.Errorf("panic: %v", v)
			}
			ok = false
		}
	}()
	t0 := time.Now()
	s := newMergeRun(r, seed)
	t1 := time.Now()
	s.run()
	t2 := time.Now()
	s.check()
	r.Logf("timing: setup %v, run %v, check %v", t1.Sub(t0).Round(time.Millisecond), t2.Sub(t1).Round(time.Millisecond), time.Since(t2).Round(time.Millisecond))
	return !r.failed
}

type mergeRun struct {
	r    *recorder
	rng  *rand.Rand
	w    *scenario.World
	devs []*scenario.Device
	next int64
	// overwritten[cell][value]: some device had this value in its live
	// cell when a local statement replaced it (see check).
	overwritten map[string]map[string]bool
	// written: every (cell, value) an app statement wrote, in order, with
	// the device that wrote it. A superset of what was published: a local
	// edit clobbered before it was exported would never reach a file.
	written []writtenValue
	// deletes: every DELETE of a row the deleting device's base copy
	// held, with the cells the row had, to check that deletes are not
	// lost either.
	deletes []deleted
	op      int
}

type deleted struct {
	dev, row string
	op       int
	cells    map[string]string // cell id -> value, non-NULL only
}

type writtenValue struct {
	dev, cell, value string
}

func newMergeRun(r *recorder, seed uint64) *mergeRun {
	s := &mergeRun{r: r, rng: rand.New(rand.NewPCG(seed, 0x5eed)), overwritten: map[string]map[string]bool{}}
	s.w = scenario.NewWorld(r, propSchema)
	s.w.Quiet = false
	n := 4
	for i := 0; i < n; i++ {
		opt := scenario.Options{
			Name:        fmt.Sprintf("d%d", i),
			Hints:       s.rng.IntN(2) == 0,
			WAL:         s.rng.IntN(2) == 0,
			Skew:        time.Duration(s.rng.IntN(180_001)-90_000) * time.Millisecond, // within ±90 s: below hlc.MaxDrift
			Initialised: s.rng.IntN(4) != 0,
		}
		// Small fixed batches run files through the merge pipeline in
		// many overlapping batches; 0 is the adaptive default.
		batch := []int{0, 1, 2, 5}[s.rng.IntN(4)]
		opt.Config = func(c *rowdrop.Config) { c.MergeBatch = batch }
		d := s.w.AddDevice(opt)
		r.Logf("device %s id %s hints=%v wal=%v skew=%v initialised=%v batch=%d", d.Name, d.ID, opt.Hints, opt.WAL, opt.Skew, opt.Initialised, batch)
	}
	s.devs = s.w.Devs
	return s
}

func (s *mergeRun) dev() *scenario.Device { return s.devs[s.rng.IntN(len(s.devs))] }

func (s *mergeRun) fresh(d *scenario.Device, text bool) changeset.Value {
	if s.rng.IntN(5) == 0 {
		return changeset.Null()
	}
	s.next++
	if text {
		return changeset.Text(fmt.Sprintf("%s.%d", d.Name, s.next))
	}
	idx, _ := strconv.Atoi(d.Name[1:])
	return changeset.Int(int64(idx+1)*1_000_000 + s.next)
}

func (s *mergeRun) run() {
	// Start from shared rows most of the time, so that the random steps are
	// mostly concurrent edits and deletes of the same rows (and re-inserts
	// after deletes), with a few keys left free for insert collisions.
	if s.rng.IntN(4) != 0 {
		seeders := map[*scenario.Device]bool{}
		for i := range propTables {
			pt := &propTables[i]
			for _, key := range pt.keys[:len(pt.keys)-1] {
				d := s.dev()
				s.insert(d, pt, key)
				seeders[d] = true
			}
		}
		s.r.Logf("shared start: exported by %d device(s), delivered everywhere", len(seeders))
		for _, d := range s.devs {
			if seeders[d] {
				d.Export()
			}
		}
		s.w.Flood()
		for _, d := range s.devs {
			d.Import()
		}
	}
	steps := propSteps + s.rng.IntN(propSteps/2)
	for i := 0; i < steps; i++ {
		s.w.Tick(int64(s.rng.IntN(2500)))
		switch p := s.rng.IntN(100); {
		case p < 35:
			d := s.dev()
			for n := 1 + s.rng.IntN(3); n > 0; n-- {
				s.localWrite(d)
			}
		case p < 55:
			d := s.dev()
			s.r.Logf("step %d: %s export", i, d.Name)
			d.Export()
		case p < 62:
			d := s.dev()
			s.r.Logf("step %d: %s import", i, d.Name)
			d.Import()
		case p < 82:
			// A device catches up with some peers: their files arrive
			// (whole, in sequence) and it imports.
			to := s.dev()
			if s.rng.IntN(2) == 0 {
				s.r.Logf("step %d: %s export", i, to.Name)
				to.Export()
			}
			var names []string
			for _, from := range s.devs {
				if from != to && s.rng.IntN(2) == 0 {
					s.w.DeliverAll(from, to)
					names = append(names, from.Name)
				}
			}
			s.r.Logf("step %d: %s pulls from %v and imports", i, to.Name, names)
			to.Import()
		case p < 97:
			s.deliverSome(i)
		default:
			// The sync process restarts: everything it knows must come
			// back from the state directory.
			d := s.dev()
			s.r.Logf("step %d: %s restarts", i, d.Name)
			d.Reopen(nil)
		}
	}
	// Everything arrives everywhere, file by file in random order, with
	// imports in between, so each device merges the others' files in its
	// own order; and each device imports before it exports its pending
	// edits, so unexported local edits meet the remote changes of their
	// rows.
	s.r.Logf("final: deliver everything in random order, importing on the way")
	t0 := time.Now()
	type delivery struct {
		from, to *scenario.Device
		seq      uint64
	}
	var todo []delivery
	for _, from := range s.devs {
		for _, seq := range from.Published() {
			for _, to := range s.devs {
				if to != from && !s.w.Has(to, from, seq) {
					todo = append(todo, delivery{from, to, seq})
				}
			}
		}
	}
	s.rng.Shuffle(len(todo), func(i, j int) { todo[i], todo[j] = todo[j], todo[i] })
	for _, d := range todo {
		s.w.Deliver(d.from, d.seq, d.to)
		if s.rng.IntN(3) == 0 {
			d.to.Import()
		}
	}
	for _, i := range s.rng.Perm(len(s.devs)) {
		s.devs[i].Import()
	}
	s.r.Logf("final: sync until quiescent")
	s.w.Quiesce(8)
	s.r.Logf("timing: quiesce %v", time.Since(t0).Round(time.Millisecond))
}

// deliverSome moves a few files between folders: usually whole, sometimes
// truncated (a download in progress), sometimes again (a duplicate).
func (s *mergeRun) deliverSome(step int) {
	n := 1 + s.rng.IntN(4)
	for i := 0; i < n; i++ {
		from, to := s.dev(), s.dev()
		pub := from.Published()
		if from == to || len(pub) == 0 {
			continue
		}
		seq := pub[s.rng.IntN(len(pub))]
		switch p := s.rng.IntN(10); {
		case p < 2:
			size := 0
			if fi, err := os.Stat(from.FilePath(seq)); err == nil {
				size = s.rng.IntN(int(fi.Size()))
			}
			s.r.Logf("step %d: deliver %s/%d to %s truncated at %d", step, from.Name, seq, to.Name, size)
			s.w.DeliverPartial(from, seq, to, size)
		default:
			again := ""
			if s.w.Has(to, from, seq) {
				again = " (again)"
			}
			s.r.Logf("step %d: deliver %s/%d to %s%s", step, from.Name, seq, to.Name, again)
			s.w.Deliver(from, seq, to)
		}
	}
}

// localWrite is one app statement on d: insert an absent hot row, or
// update some columns of / delete a present one.
func (s *mergeRun) localWrite(d *scenario.Device) {
	pt := &propTables[s.rng.IntN(len(propTables))]
	key := pt.keys[s.rng.IntN(len(pt.keys))]
	kt := scenario.KeyText(key)
	row, err := readRow(d.App, pt, key)
	if err != nil {
		s.r.Fatalf("read row: %v", err)
	}
	if row == nil {
		s.insert(d, pt, key)
		return
	}
	if s.rng.IntN(4) == 0 {
		for i, c := range pt.cols {
			if !c.pk {
				s.markOverwritten(pt.name, kt, c.name, row[i])
			}
		}
		s.op++
		// Only a delete of a row the device's base copy holds (published
		// or merged) means something to other devices; deleting a row
		// inserted here and never exported just cancels that insert.
		shared := inBase(s.r, d, pt, key)
		if shared {
			del := deleted{d.Name, pt.name + "[" + kt + "]", s.op, map[string]string{}}
			for i, c := range pt.cols {
				if !c.pk && row[i].Kind != changeset.KindNull {
					del.cells[cellID(pt.name, kt, c.name)] = row[i].String()
				}
			}
			s.deletes = append(s.deletes, del)
		}
		s.r.Logf("%s: DELETE %s[%s] (in base: %v)", d.Name, pt.name, kt, shared)
		d.Exec(fmt.Sprintf("DELETE FROM %s WHERE %s", pt.name, pt.where()), keyArgs(key)...)
		return
	}
	var sets, desc []string
	var args []any
	for i, c := range pt.cols {
		if c.pk || s.rng.IntN(2) == 0 {
			continue
		}
		v := s.fresh(d, c.text)
		if !v.Equal(row[i]) {
			s.markOverwritten(pt.name, kt, c.name, row[i])
		}
		sets = append(sets, c.name+"=?")
		args = append(args, valueArg(v))
		s.written = append(s.written, writtenValue{d.Name, cellID(pt.name, kt, c.name), v.String()})
		desc = append(desc, c.name+"="+v.String())
	}
	if len(sets) == 0 {
		return
	}
	s.r.Logf("%s: UPDATE %s[%s] SET %s", d.Name, pt.name, kt, strings.Join(desc, ", "))
	d.Exec(fmt.Sprintf("UPDATE %s SET %s WHERE %s", pt.name, strings.Join(sets, ","), pt.where()), append(args, keyArgs(key)...)...)
}

// insert adds hot row key with fresh values on d.
func (s *mergeRun) insert(d *scenario.Device, pt *propTable, key []changeset.Value) {
	kt := scenario.KeyText(key)
	var names, ph []string
	var args []any
	var vals []string
	for i, c := range pt.cols {
		names = append(names, c.name)
		ph = append(ph, "?")
		var v changeset.Value
		if c.pk {
			v = key[pkIndex(pt, i)]
		} else {
			v = s.fresh(d, c.text)
		}
		args = append(args, valueArg(v))
		vals = append(vals, v.String())
		if !c.pk {
			s.written = append(s.written, writtenValue{d.Name, cellID(pt.name, kt, c.name), v.String()})
		}
	}
	s.op++
	s.r.Logf("%s: INSERT %s[%s] (%s)", d.Name, pt.name, kt, strings.Join(vals, ", "))
	d.Exec(fmt.Sprintf("INSERT INTO %s(%s) VALUES(%s)", pt.name, strings.Join(names, ","), strings.Join(ph, ",")), args...)
}

// inBase reports whether d's base copy holds the row.
func inBase(r *recorder, d *scenario.Device, pt *propTable, key []changeset.Value) bool {
	conn, err := sqlite.OpenConn(filepath.Join(d.State, "base.db"), sqlite.OpenReadOnly)
	if err != nil {
		r.Fatalf("open base copy: %v", err)
	}
	defer conn.Close()
	n := 0
	if err := sqlitex.Execute(conn, "SELECT count(*) FROM sqlite_master WHERE name=?", &sqlitex.ExecOptions{Args: []any{pt.name},
		ResultFunc: func(s *sqlite.Stmt) error { n = s.ColumnInt(0); return nil }}); err != nil {
		r.Fatalf("read base copy: %v", err)
	}
	if n == 0 {
		return false // nothing exported or imported yet: base has no tables
	}
	row, err := readRow(conn, pt, key)
	if err != nil {
		r.Fatalf("read base copy: %v", err)
	}
	return row != nil
}

// pkIndex is the position of column i in the table's primary key.
func pkIndex(pt *propTable, i int) int {
	n := 0
	for j := 0; j < i; j++ {
		if pt.cols[j].pk {
			n++
		}
	}
	return n
}

func (s *mergeRun) markOverwritten(table, key, col string, v changeset.Value) {
	id := cellID(table, key, col)
	if s.overwritten[id] == nil {
		s.overwritten[id] = map[string]bool{}
	}
	s.overwritten[id][v.String()] = true
}

// check asserts (a) convergence, (b) the rules and (c) no silent loss.
//
// "Knowingly overwritten", precisely: a value V written for cell
// (table, key, column) was knowingly overwritten if, at some moment, some
// device had V in that cell of its live database and a local statement on
// that device then changed the cell or deleted the row. A device can only
// hold V in its live database if it wrote V itself or merged the file that
// carried it, so this is "an edit made on a device that had already merged
// that value" - and stricter than "made after importing it": a local edit
// made before the import, kept over V as an unexported edit, does not
// count (that displacement must be in the conflict log instead). Values are
// unique per write (except NULL, for which matching is by value and so
// lenient), so matching by value is exact.
func (s *mergeRun) check() {
	s.w.AssertConverged()
	for _, d := range s.devs {
		st := d.Status()
		if len(st.Files) != 0 {
			s.r.Errorf("%s: after quiescence, status still reports files: %+v", d.Name, st.Files)
		}
		for _, ds := range st.Devices {
			if ds.Pending != 0 || ds.Applied != ds.Published {
				s.r.Errorf("%s: after quiescence, device %s: %+v", d.Name, ds.ID, ds)
			}
		}
	}
	ref := s.devs[0]
	final := map[string]string{} // cell -> rendered value
	var actual []string
	for i := range propTables {
		pt := &propTables[i]
		for _, key := range pt.keys {
			row, err := readRow(ref.App, pt, key)
			if err != nil {
				s.r.Fatalf("read final row: %v", err)
			}
			if row != nil {
				actual = append(actual, rowText(pt.name, row))
			}
			for j, c := range pt.cols {
				if row != nil && !c.pk {
					final[cellID(pt.name, scenario.KeyText(key), c.name)] = row[j].String()
				}
			}
		}
	}
	if want := s.model(); strings.Join(want, "\n") != strings.Join(actual, "\n") {
		s.r.Errorf("final state differs from the merge rules applied to the published files:\nrules:\n%s\nactual:\n%s", strings.Join(want, "\n"), strings.Join(actual, "\n"))
	}
	logged := map[string]map[string]bool{}
	deleteLost := map[string]bool{}
	conflicts := 0
	kinds := map[string]int{}
	for _, d := range s.devs {
		for _, c := range d.Conflicts() {
			conflicts++
			kinds[c.Kind]++
			if c.Kind == merge.KindDeleteLost {
				// What lost here is a delete; the values in the entry
				// are the row it would have removed, not lost values.
				deleteLost[c.Table+"["+c.Key+"]"] = true
				continue
			}
			for col, v := range c.Loser {
				id := cellID(c.Table, c.Key, col)
				if logged[id] == nil {
					logged[id] = map[string]bool{}
				}
				logged[id][v] = true
			}
		}
	}
	accounted := func(id, vs string) bool {
		return final[id] == vs || s.overwritten[id][vs] || logged[id][vs]
	}
	authored := map[string]bool{}
	lost := 0
	for _, wv := range s.written {
		authored[wv.cell+"="+wv.value] = true
		if !accounted(wv.cell, wv.value) {
			lost++
			s.r.Errorf("silently lost: %s = %s, written by %s; final value %q; logged losers for the cell: %v",
				wv.cell, wv.value, wv.dev, final[wv.cell], keys(logged[wv.cell]))
		}
	}
	// Deletes are not lost either. A delete was undone if the row exists at
	// the end still holding a value it had when it was deleted (values are
	// unique, so that value survived the delete: the row was revived, by
	// an edit the deleter had not seen). Then some conflict log must say
	// that the delete lost. A row that exists with only new values was
	// created again under the same key (an INSERT made where the row did
	// not exist): the deleted row itself stayed deleted.
	for _, del := range s.deletes {
		if deleteLost[del.row] {
			continue
		}
		var survivors []string
		for id, v := range del.cells {
			if final[id] == v {
				survivors = append(survivors, id+"="+v)
			}
		}
		if len(survivors) > 0 {
			sort.Strings(survivors)
			lost++
			s.r.Errorf("delete of %s by %s (op %d) silently undone: the row is back with %v and no log says the delete lost", del.row, del.dev, del.op, survivors)
		}
	}
	published := 0
	for _, d := range s.devs {
		for _, f := range d.ReadPublished() {
			for _, c := range f.Changes {
				var cols []string
				for _, t := range f.Header.Tables {
					if t.Name == c.Table.Name {
						for _, col := range t.Columns {
							cols = append(cols, col.Name)
						}
					}
				}
				if c.Op == changeset.OpDelete {
					continue
				}
				kt := scenario.KeyText(c.Key())
				for i, v := range c.New {
					if v.Kind == changeset.KindUndefined || c.Table.PK[i] != 0 {
						continue
					}
					published++
					id := cellID(c.Table.Name, kt, cols[i])
					vs := v.String()
					if !authored[id+"="+vs] {
						s.r.Errorf("%s published %s = %s (file %d), which no app statement wrote", d.Name, id, vs, f.Header.Seq)
					}
					// Published values are a subset of the written ones,
					// each already checked above.
				}
			}
		}
	}
	s.r.Logf("wrote %d values, published %d, %d conflict-log entries %v, %d lost", len(s.written), published, conflicts, kinds, lost)
	if lost > 0 {
		for _, d := range s.devs {
			s.r.Logf("conflict log of %s:\n%s", d.Name, dumpConflicts(d))
		}
	}
}

func rowText(table string, row []changeset.Value) string {
	parts := make([]string, len(row))
	for i, v := range row {
		parts[i] = v.String()
	}
	return table + ": " + strings.Join(parts, ", ")
}

// model computes, independently of the merge engine, what the documented
// rules say the final state is, from the published files alone: per cell
// the value of the write (INSERT or UPDATE) with the latest clock (HLC,
// device id); a row exists iff its latest write is later than its latest
// delete.
func (s *mergeRun) model() []string {
	type clock struct {
		hlc uint64
		dev string
	}
	later := func(a, b clock) bool { return a.hlc > b.hlc || a.hlc == b.hlc && a.dev > b.dev }
	type mrow struct {
		vals       []changeset.Value
		cells      []clock
		write, del clock
	}
	rowsByKey := map[string]*mrow{}
	for _, d := range s.devs {
		for _, f := range d.ReadPublished() {
			cl := clock{f.Header.HLC, f.Header.Device}
			for _, c := range f.Changes {
				id := c.Table.Name + "\x00" + string(changeset.EncodeKey(c.Key()))
				r := rowsByKey[id]
				if r == nil {
					n := c.Table.NumCols()
					r = &mrow{vals: make([]changeset.Value, n), cells: make([]clock, n)}
					for _, i := range c.Table.PKCols() {
						if c.Op == changeset.OpInsert {
							r.vals[i] = c.New[i]
						} else {
							r.vals[i] = c.Old[i]
						}
					}
					rowsByKey[id] = r
				}
				if c.Op == changeset.OpDelete {
					if later(cl, r.del) {
						r.del = cl
					}
					continue
				}
				if later(cl, r.write) {
					r.write = cl
				}
				for i, v := range c.New {
					if v.Kind == changeset.KindUndefined || c.Table.PK[i] != 0 {
						continue
					}
					if later(cl, r.cells[i]) {
						r.cells[i], r.vals[i] = cl, v
					}
				}
			}
		}
	}
	var out []string
	for i := range propTables {
		pt := &propTables[i]
		for _, key := range pt.keys {
			r := rowsByKey[pt.name+"\x00"+string(changeset.EncodeKey(key))]
			if r != nil && later(r.write, r.del) {
				out = append(out, rowText(pt.name, r.vals))
			}
		}
	}
	return out
}

func keys(m map[string]bool) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
