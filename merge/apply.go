package merge

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"time"

	"zombiezen.com/go/sqlite"
	"zombiezen.com/go/sqlite/sqlitex"

	"github.com/rowdrop/rowdrop/internal/changeset"
	"github.com/rowdrop/rowdrop/internal/db"
	"github.com/rowdrop/rowdrop/internal/rows"
	"github.com/rowdrop/rowdrop/internal/schema"
	"github.com/rowdrop/rowdrop/internal/state"
)

// Engine applies other devices' changes to the live database and the base
// copy. It is used by one goroutine at a time.
type Engine struct {
	Live   *sqlite.Conn // read-write connection to the app's database
	State  *state.Dir
	Tables map[string]*schema.Table
	Log    *slog.Logger
	Now    func() time.Time
	// BatchSize bounds the changes per live write transaction, so the
	// app's writers wait at most one short batch.
	BatchSize int
	// Self is this device's id (re-keying a local row names its device).
	Self string
	// Rekey turns on re-keying of INTEGER-key collisions (rekey.go).
	Rekey bool
	// Journal: each live batch records the INTEGER-key inserts it makes
	// in the state directory's in-flight journal (state.IntendInflightKeys),
	// which the importer started. Recovered are the rows an interrupted
	// merge of the same file inserted into live, read from it for the
	// re-run (state.Dir.InflightWritten): their live rows are that merge's
	// writes, perhaps edited since, not rows created here.
	Journal   bool
	Recovered map[string]bool
	// AfterApply maps a table to SQL run after each merged row, in the
	// same live transaction (afterapply.go).
	AfterApply map[string]string
	// RowByRow turns the set-wise join off (rebase_setwise.go): every
	// snapshot row is merged one by one, as the reference the set-wise
	// join must equal.
	RowByRow bool
	// Exclusive: no app has live open (a restore's database under
	// construction), so a set-wise join copies in large chunks and does
	// not leave the app turns at the lock.
	Exclusive bool

	rk           *rekeyer     // during Apply
	refusals     *waiting     // during Apply: changes the app's rules refused (apprules.go)
	fks          *foreignKeys // re-keyed tables and references to them (rekey.go)
	rules        *appRules    // the app's rules read from its schema (apprules.go)
	checkpointed time.Time    // live's last checkpoint (by the live goroutine)
	liveFree     time.Time    // the app's turn at live's lock ends (releasedLive)

	defaults map[string][]changeset.Value // column defaults by table (shape.go)
	uniq     uniqueCache                  // UNIQUE clashes (unique.go)
}

// Source identifies the file a batch of changes comes from.
type Source struct {
	Device string
	Clock  state.Clock
	File   string // relative path, for the conflict log
	Seq    uint64
	// Seen is the file's causal context (rdfile.Header.Seen): per device,
	// the last of its files the writer had applied.
	Seen map[string]uint64
}

// Stats summarises an Apply.
type Stats struct {
	Changes   int64
	Conflicts int64
	Batches   int
	MaxLock   time.Duration // longest live write transaction
	Locks     int           // live write transactions of the merge (batches and their fix-ups)
	LongLocks int           // of those, held longer than LongLock
	Corrected int64         // cells put back after the app's triggers changed them
	Copied    int64         // of Changes, rows a snapshot's merge copied set-wise (rebase_setwise.go)
	// LiveCommits counts the live write transactions that committed: none
	// means a failed merge left live as it was.
	LiveCommits int
}

// LongLock is the hold of a live write transaction that counts as long
// (Stats.LongLocks): the app's writers wait that long for the lock.
const LongLock = 100 * time.Millisecond

// held records one live write transaction's hold.
func (s *Stats) held(d time.Duration) {
	s.MaxLock = max(s.MaxLock, d)
	s.Locks++
	if d > LongLock {
		s.LongLocks++
	}
}

// AddLocks adds o's live write transactions to s.
func (s *Stats) AddLocks(o Stats) {
	s.MaxLock = max(s.MaxLock, o.MaxLock)
	s.Locks += o.Locks
	s.LongLocks += o.LongLocks
	s.LiveCommits += o.LiveCommits
}

// item is one change on its way through Apply: decided against base,
// written to base, then to live, then recorded.
type item struct {
	table  *schema.Table
	change *changeset.Change
	key    []changeset.Value // the row's primary key (after any re-keying)
	pk     []byte            // key, encoded
	// baseMeta and baseRow are the row's metadata and base copy before the
	// change (nil: never seen, absent); decision is the merged outcome
	// (nil: the change alters nothing here).
	baseMeta *state.RowMeta
	baseRow  []changeset.Value
	decision *outcome

	// Re-keying of INTEGER-key collisions (rekey.go): the rows to move
	// before this change; the collision decision to record with it; and
	// whether the key was vacated for this insert (so no metadata, no row).
	moves       []move
	rekeyRecord *state.Rekey
	rekeyReuse  *state.Rekey // a second one: rows reusing a moved lineage (detectReuse)
	keyVacated  bool
	// lin: the first insert clock of the id's lineage that an insert
	// carries on (detect; zero: its own).
	lin state.Clock
	// Local moves (FixLocalMoves): a row created here under this id moves
	// to a new id after the file; live keeps it until then.
	localRowMoves bool

	// UNIQUE clashes (unique.go): live's row before the batch and the row
	// written there; whether that live write was made, or refused by a
	// UNIQUE index (left to fixLive); whether base holds the row out of
	// its table (held, see unique.go).
	liveBefore, liveWant     []changeset.Value
	liveWritten, liveRefused bool
	uniqueHeld               bool
	// refusal: the app's rules (a trigger's RAISE, a constraint) refused
	// the live write; it is retried after the rest (apprules.go).
	refusal error
}

// ChangeReader yields changes; *changeset.Reader is one.
type ChangeReader interface {
	Next() (*changeset.Change, error)
}

// Apply merges every change read from rd. finish runs inside the last
// base transaction, so recording "this file is applied" commits with the
// file's last changes.
//
// Work runs as a two-stage pipeline over batches. This goroutine reads
// changes, decides them (reading base and metadata) and writes their
// merged rows and metadata to base; another writes each decided batch to
// live in one short transaction (see lockTarget). Batch k+1's base work
// overlaps with live's batch k, so the two databases' work shares the
// machine's cores. That is sound because a batch never repeats a key and
// never shares a key with the batch still in flight (see flush), and live
// writes read only live. Batches on tables with UNIQUE indexes run one at
// a time: their clashes are settled in live (fixLive) before the next
// batch is decided.
//
// Base and metadata are written in transactions that span many batches
// (base.db is private, so its lock costs nobody anything), and a base
// transaction commits only after live committed every batch in it, so on
// disk base is never ahead of live. If the process dies with base behind
// live, re-applying the file is harmless: the importer finishes an
// in-flight file before any export, live already holds the merged values
// (which then look like local edits equal to the merge), and base catches
// up.
func (e *Engine) Apply(ctx context.Context, src Source, rd ChangeReader, finish func() error) (st Stats, err error) {
	a := &applier{e: e, ctx: ctx, src: src, keys: map[string]bool{}}
	completed := false
	defer func() { a.stop(&err, completed) }()
	if err := a.start(); err != nil {
		return a.st, err
	}
	for {
		c, rerr := rd.Next()
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			return a.st, fmt.Errorf("read changes: %w", rerr)
		}
		if err := a.add(c); err != nil {
			return a.st, err
		}
	}
	if err := a.end(finish); err != nil {
		return a.st, err
	}
	completed = true
	return a.st, nil
}

// applier is one Apply in progress: the deciding goroutine's side of the
// pipeline (see Apply) and what it shares between batches.
type applier struct {
	e   *Engine
	ctx context.Context
	src Source
	st  Stats

	meta             *state.Meta
	baseAcc, liveAcc *access
	rk               *rekeyer
	// uniqueTables are the tables with UNIQUE indexes: their batches run
	// one at a time (inflight.serial).
	uniqueTables map[*schema.Table]bool
	// restoreCheckpoints turns live's automatic checkpoints back on;
	// restoreFK, foreign-key enforcement on rowdrop's connection.
	restoreCheckpoints, restoreFK func()

	// size is the next batch's size; adaptive: it follows lockTarget.
	size     int
	adaptive bool

	// endBase ends the open base transaction (nil: none is open), begun at
	// baseSince.
	endBase   func(*error)
	baseSince time.Time

	// pending is the batch whose live result is not read yet; last, the
	// batch started last, whose goroutine may still be checkpointing live.
	pending, last *inflight

	// items is the batch being gathered, keys their batchKeys.
	items []*item
	keys  map[string]bool
}

// start prepares an Apply; stop undoes what it did, even if it failed.
func (a *applier) start() error {
	e := a.e
	// Batches adapt so that one live write transaction stays near
	// lockTarget: the app's writers wait at most about that long. A fixed
	// BatchSize (tests) disables the adaptation.
	a.size, a.adaptive = e.BatchSize, e.BatchSize <= 0
	if a.adaptive {
		a.size = 500
	}
	var err error
	if a.meta, err = e.State.NewMeta(); err != nil {
		return err
	}
	// Checkpoint live's WAL after each batch's commit rather than inside
	// it: SQLite runs an automatic checkpoint within the COMMIT call, after
	// the lock is released, so it would count as held without being so.
	if a.restoreCheckpoints, err = e.manualCheckpoints(); err != nil {
		return err
	}
	if a.restoreFK, err = foreignKeysOff(e.Live); err != nil {
		return err
	}
	// Read before live's goroutine starts: deciding reads them (sortForApply).
	if _, err := e.appRules(); err != nil {
		return err
	}
	if a.uniqueTables, err = e.uniqueTables(); err != nil {
		return err
	}
	a.baseAcc, a.liveAcc = newAccess(), newAccess()
	e.refusals = &waiting{}
	if a.rk, err = e.newRekeyer(a.src); err != nil {
		return err
	}
	e.rk = a.rk
	return nil
}

// stop ends an Apply, in the reverse order of start: live's goroutine
// first (it must never be left running), then the base transaction,
// which commits only if the whole Apply succeeded (completed and *err
// nil).
func (a *applier) stop(err *error, completed bool) {
	if a.last != nil {
		<-a.last.finished
	}
	if a.endBase != nil {
		if !completed && *err == nil {
			// Unwinding a panic: base may hold rows live has not got, so
			// it must not commit.
			abort := errors.New("merge interrupted")
			a.endBase(&abort)
		} else {
			a.endBase(err)
		}
	}
	if a.rk != nil {
		a.e.rk = nil
	}
	a.e.refusals = nil
	if a.liveAcc != nil {
		a.liveAcc.close()
		a.baseAcc.close()
	}
	if a.restoreFK != nil {
		a.restoreFK()
	}
	if a.restoreCheckpoints != nil {
		a.restoreCheckpoints()
	}
	if a.meta != nil {
		a.meta.Close()
	}
}

// batchKey names an item's row within the pipeline's batches.
func batchKey(it *item) string { return it.table.Name + "\x00" + string(it.pk) }

// add takes one change into the batch being gathered, ending batches
// where the rules above need it.
func (a *applier) add(c *changeset.Change) error {
	it, err := a.e.newItem(c)
	if err != nil {
		return err
	}
	if a.rk.active() && c.Op == changeset.OpInsert && a.rk.parents[strings.ToLower(it.table.Name)] != nil {
		if err := a.detectCollision(it); err != nil {
			return err
		}
	}
	k := batchKey(it)
	if it.rekeyRecord != nil {
		// A collision's moves must be in base before the next
		// collision check reads it: the batch ends with this item.
		if a.keys[k] {
			if err := a.flush(); err != nil {
				return err
			}
		}
		a.items = append(a.items, it)
		a.keys[k] = true
		if err := a.flush(); err != nil {
			return err
		}
		return a.settle(true)
	}
	if a.keys[k] || len(a.items) >= a.size {
		// A repeated key (only a foreign writer's file can hold one)
		// starts a new batch, so it is decided after the first is
		// written, exactly as if changes were applied one by one.
		if err := a.flush(); err != nil {
			return err
		}
	}
	a.items = append(a.items, it)
	a.keys[k] = true
	return a.ctx.Err()
}

// detectCollision checks whether insert it collides with another row
// under its INTEGER key (rekey.go). A key never seen here cannot collide
// (only a change to this key writes its metadata, and it is in no
// unwritten batch): bulk inserts keep the pipeline. Otherwise the check
// reads base as of every earlier change.
func (a *applier) detectCollision(it *item) error {
	if a.pending != nil && a.pending.keys[batchKey(it)] {
		if err := a.settle(true); err != nil {
			return err
		}
	}
	m, err := a.meta.Get(it.table.Name, it.pk)
	if err != nil || m == nil {
		return err
	}
	if err := a.settle(true); err != nil {
		return err
	}
	found, err := a.e.detect(a.rk, a.meta, a.baseAcc, it)
	if err != nil || !found {
		return err
	}
	// References earlier in this batch may now mean the mover.
	a.keys = map[string]bool{}
	for _, o := range a.items {
		if err := a.rk.redirect(o.table, o.change); err != nil {
			return err
		}
		o.setKey()
		a.keys[batchKey(o)] = true
	}
	return nil
}

// openBase begins the base transaction if none is open.
func (a *applier) openBase() error {
	if a.endBase != nil {
		return nil
	}
	var err error
	if a.endBase, err = db.Begin(a.e.State.Conn(), "IMMEDIATE"); err != nil {
		return fmt.Errorf("start write transaction on the base copy: %w", err)
	}
	a.baseSince = time.Now()
	return nil
}

// fixups is what the live fix-ups of this Apply need.
func (a *applier) fixups() *uctx {
	return &uctx{src: a.src, meta: a.meta, baseAcc: a.baseAcc, liveAcc: a.liveAcc, st: &a.st}
}

// settle waits for the batch in flight and records what only its live
// write could tell. full: also until its goroutine is done with live (a
// checkpoint may follow the write), so this goroutine may use live.
func (a *applier) settle(full bool) error {
	if a.pending == nil {
		if full && a.last != nil {
			<-a.last.finished
		}
		return nil
	}
	p := a.pending
	a.pending = nil
	r := <-p.done
	a.st.AddLocks(r.st)
	a.st.Corrected += r.st.Corrected
	if a.adaptive {
		a.size = nextBatchSize(a.size, r.st.MaxLock)
	}
	if r.err != nil {
		return r.err
	}
	if err := a.e.afterLive(p.items, a.src, &a.st); err != nil {
		return err
	}
	if err := a.logRetried(); err != nil {
		return err
	}
	if full || needsFix(p.items) {
		<-p.finished
	}
	return a.e.fixLive(a.ctx, p.items, a.fixups())
}

// flush decides the gathered batch, writes its base side and hands it to
// live's goroutine, waiting first for the batch in flight if the two may
// not overlap; it commits base when baseCommitEvery has passed.
func (a *applier) flush() error {
	if len(a.items) == 0 {
		return nil
	}
	if err := a.openBase(); err != nil {
		return err
	}
	serial := false
	for _, it := range a.items {
		serial = serial || a.uniqueTables[it.table]
	}
	if a.pending != nil && (serial || a.pending.serial || a.pending.overlaps(a.keys)) {
		if err := a.settle(true); err != nil {
			return err
		}
	}
	if err := a.e.decideAndBase(a.src, a.meta, a.baseAcc, a.items, serial); err != nil {
		return err
	}
	// Not full: the next batch's goroutine waits for this one's
	// checkpoint itself, and this goroutine goes on deciding.
	if err := a.settle(false); err != nil {
		return err
	}
	a.st.Changes += int64(len(a.items))
	a.st.Batches++
	a.pending = a.e.startLive(a.ctx, a.items, a.keys, a.src, a.liveAcc, a.last, !serial && splittable(a.items))
	a.pending.serial = serial
	a.last = a.pending
	a.items, a.keys = nil, map[string]bool{}
	if time.Since(a.baseSince) >= baseCommitEvery {
		// Base may commit only what live already holds.
		if err := a.settle(true); err != nil {
			return err
		}
		if len(a.e.refusals.items) > 0 {
			return nil // refused changes are in base only, for now
		}
		var err error
		end := a.endBase
		a.endBase = nil
		if end(&err); err != nil {
			return fmt.Errorf("commit the base copy: %w", err)
		}
	}
	return nil
}

// end finishes the file once every change is read: the last batch, the
// rows held on a UNIQUE clash, the local rows to move, then finish, all
// inside the base transaction.
func (a *applier) end(finish func() error) error {
	e := a.e
	if err := a.flush(); err != nil {
		return err
	}
	if err := a.settle(true); err != nil {
		return err
	}
	// Rows held on a UNIQUE clash are settled once the whole file is in
	// (a swap of values can span batches).
	if held, err := e.anyHeld(); err != nil {
		return err
	} else if held {
		if err := a.openBase(); err != nil {
			return err
		}
		if err := e.resolveHeld(a.ctx, a.fixups()); err != nil {
			return err
		}
	}
	if err := a.endRefusals(); err != nil {
		return err
	}
	if err := a.openBase(); err != nil {
		return err
	}
	if err := e.fixLocalMoves(a.ctx, a.fixups()); err != nil {
		return err
	}
	if finish != nil {
		return finish()
	}
	return nil
}

// baseCommitEvery bounds how much base work a crash can make rowdrop redo.
const baseCommitEvery = 2 * time.Second

// inflight is a batch being written to live by another goroutine.
type inflight struct {
	items []*item
	keys  map[string]bool
	done  chan liveResult
	// finished closes once the batch's goroutine no longer uses live.
	finished chan struct{}
	// serial: the batch touches a table with UNIQUE indexes, whose
	// clashes are settled against live (fixLive) before the next batch
	// is decided.
	serial bool
}

type liveResult struct {
	st  Stats // the batch's one live write transaction and its corrections
	err error
}

func (p *inflight) overlaps(keys map[string]bool) bool {
	for k := range keys {
		if p.keys[k] {
			return true
		}
	}
	return false
}

// startLive writes a decided batch to live in its own goroutine, once the
// goroutine of the batch before it (after) is done with live. The result
// is sent before live's WAL checkpoint that may follow the write, so
// between ordinary batches the deciding goroutine does not wait for that
// checkpoint (the next live write does); a full settle still does.
func (e *Engine) startLive(ctx context.Context, items []*item, keys map[string]bool, src Source, acc *access, after *inflight, split bool) *inflight {
	p := &inflight{items: items, keys: keys, done: make(chan liveResult, 1), finished: make(chan struct{})}
	go func() {
		defer close(p.finished)
		if after != nil {
			<-after.finished
		}
		var ls Stats
		var committed func(map[string]bool) error
		intent := func(written []*item) (err error) {
			committed, err = e.journalIntent(written, acc)
			return err
		}
		if !e.journaled(items) {
			intent = nil
		}
		// A journaled batch stays one transaction: its commit record
		// covers the whole batch (see journalIntent).
		err := e.applyLiveSplit(ctx, items, src, acc, &ls, split && intent == nil, intent)
		if err == nil && committed != nil {
			err = committed(nil)
		}
		p.done <- liveResult{st: ls, err: err}
		if err == nil && time.Since(e.checkpointed) >= checkpointEvery {
			// Outside the write lock (see Apply): the app's writers go on
			// meanwhile. A checkpoint that cannot run now runs later.
			sqlitex.ExecuteTransient(e.Live, "PRAGMA wal_checkpoint(PASSIVE)", nil)
			e.checkpointed = time.Now()
		}
	}()
	return p
}

// journalCandidate reports whether item it is an insert into an
// INTEGER-keyed table where base has no row: one a re-run after a crash
// could not tell from a row created here (see writeBatch).
func (e *Engine) journalCandidate(it *item) bool {
	return e.Journal && e.rk != nil && it.decision != nil && it.baseRow == nil && it.decision.base != nil && e.rk.parents[strings.ToLower(it.table.Name)] != nil
}

// journaled reports whether a batch has inserts the journal records.
func (e *Engine) journaled(items []*item) bool {
	for _, it := range items {
		if e.journalCandidate(it) {
			return true
		}
	}
	return false
}

// journalIntent records in the in-flight journal the inserts batch items
// wrote to live, inside its live transaction, before it commits: only
// then is it known which keys live already held (rows created here, left
// alone to move later, writeBatch's localRowMoves). A key listed that
// live held before would read, after a crash before the commit, as this
// merge's own row, and the row created here would be overwritten in base
// and lost on every device. It returns what records the commit.
//
// Each key goes with the content of the row live holds under it now
// (after the app's triggers ran): a re-run that finds no commit record
// takes a key as written only where live still holds that row.
func (e *Engine) journalIntent(items []*item, acc *access) (func(map[string]bool) error, error) {
	var keys, sums []string
	for _, it := range items {
		if !e.journalCandidate(it) || it.localRowMoves {
			continue
		}
		row, err := acc.get(e.Live, "live", it.table).Get(it.key)
		if err != nil {
			return nil, err
		}
		if row == nil {
			continue // not written (refused, or deleted again by a trigger)
		}
		keys = append(keys, batchKey(it))
		sums = append(sums, state.InflightRowSum(row))
	}
	if len(keys) == 0 {
		return nil, nil
	}
	return e.State.IntendInflightKeys(time.Now().UnixNano(), keys, sums)
}

// needsFix reports whether fixLive has work for a settled batch.
func needsFix(items []*item) bool {
	for _, it := range items {
		if it.decision != nil && (it.uniqueHeld || it.liveRefused) {
			return true
		}
	}
	return false
}

// checkpointEvery spaces rowdrop's checkpoints of live's WAL during a
// merge: each one fsyncs the app's database, which slows the app's own
// commits, so not after every batch (SQLite's automatic checkpoint, off
// meanwhile, would run about every 4 MB of WAL).
const checkpointEvery = 250 * time.Millisecond

// lockTarget is the longest rowdrop means to hold the live write lock.
const lockTarget = 50 * time.Millisecond

// splitAfter is the time a live write transaction's changes may take
// before the rest of its batch goes to the next one (applyLiveSplit): the
// rest of lockTarget is left for its COMMIT, which writes and syncs what
// they changed (40-60 ms for a 1.4 MB transaction on a loaded machine).
const splitAfter = lockTarget * 6 / 10

// The app's turn between two of rowdrop's live write transactions.
// SQLite's busy handler, in a writer waiting for the lock, sleeps 1, 2,
// 5, 10, 15, 20, 25, 25, 25, 50, 50, 100 ms between its tries: a writer
// that only ever finds the lock free for an instant keeps missing it, and
// an app with a 200 ms busy timeout fails (issue 21, item 10). So after
// each transaction the lock stays free for half its hold, within
// [minYield, maxYield]: with holds near lockTarget that is 25 ms, the
// spacing of the app's tries until 128 ms into its wait, so one of them
// lands in a gap. The gap costs nothing while base's work paces the
// merge (live's goroutine waits for it anyway).
const (
	minYield = 10 * time.Millisecond
	maxYield = 50 * time.Millisecond
)

// yieldLive waits, before a live write transaction, until the app's turn
// after the last one (releasedLive) is over.
func (e *Engine) yieldLive(ctx context.Context) error {
	if e.Exclusive {
		return nil // no app waits for the lock
	}
	d := time.Until(e.liveFree)
	if d <= 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// releasedLive records the end of a live write transaction begun at
// start, sets the app's turn after it, and returns its hold.
func (e *Engine) releasedLive(start time.Time) time.Duration {
	now := time.Now()
	held := now.Sub(start)
	e.liveFree = now.Add(min(max(held/2, minYield), maxYield))
	return held
}

// nextBatchSize scales the batch toward lockTarget from the last hold.
func nextBatchSize(size int, held time.Duration) int {
	switch {
	case held > lockTarget:
		size = max(size*int(lockTarget)/int(held), 16)
	case held < lockTarget/2:
		size = min(size*3/2, 5000)
	}
	return size
}

type access struct{ m map[string]*rows.Table }

func newAccess() *access { return &access{m: map[string]*rows.Table{}} }

func (a *access) get(conn *sqlite.Conn, which string, t *schema.Table) *rows.Table {
	k := which + "\x00" + t.Name
	r := a.m[k]
	if r == nil {
		r = rows.Open(conn, "main", t)
		a.m[k] = r
	}
	return r
}

func (a *access) close() {
	for _, r := range a.m {
		r.Close()
	}
}

// CheckShape verifies that a change's table layout matches the local
// table, or the local table minus trailing non-key columns (a writer whose
// app has not added them yet; see shape.go).
func CheckShape(t *schema.Table, ct *changeset.Table) error { return checkNarrowShape(t, ct) }

func (e *Engine) now() time.Time {
	if e.Now != nil {
		return e.Now()
	}
	return time.Now()
}

// newItem checks a change against the local table and keys it.
func (e *Engine) newItem(c *changeset.Change) (*item, error) {
	t := e.Tables[c.Table.Name]
	if t == nil {
		return nil, fmt.Errorf("table %s is not synced here", c.Table.Name)
	}
	if err := CheckShape(t, c.Table); err != nil {
		return nil, err
	}
	if c.Table.NumCols() < len(t.Columns) {
		if e.defaults == nil {
			e.defaults = map[string][]changeset.Value{}
		}
		d := e.defaults[t.Name]
		if d == nil {
			var err error
			if d, err = columnDefaults(e.State.Conn(), t); err != nil {
				return nil, err
			}
			e.defaults[t.Name] = d
		}
		widen(t, c, d)
	}
	if e.rk != nil {
		if err := e.rk.redirect(t, c); err != nil {
			return nil, err
		}
	}
	it := &item{table: t, change: c}
	it.setKey()
	return it, nil
}

func (it *item) setKey() {
	if it.change.Op == changeset.OpInsert {
		it.key = rows.Key(it.table, it.change.New)
	} else {
		it.key = rows.Key(it.table, it.change.Old)
	}
	it.pk = changeset.EncodeKey(it.key)
}

// decideBatch reads each item's metadata and base row and decides it.
// decideChunk bounds the changes decided before their base writes, so the
// pages a decision read are still in base's page cache when they are
// written.
const decideChunk = 128

// decideAndBase decides a batch and writes its base side. Keys are
// distinct within a batch, so order is free: key order turns random
// B-tree probes into a forward walk, and one change's base write cannot
// change another's decision. Batches that re-key rows or touch UNIQUE
// indexes are decided whole first: moves and clashes reach across keys.
func (e *Engine) decideAndBase(src Source, meta *state.Meta, acc *access, items []*item, serial bool) error {
	e.sortForApply(items)
	chunk := decideChunk
	for _, it := range items {
		if serial || it.rekeyRecord != nil || len(it.moves) > 0 {
			chunk = len(items)
			break
		}
	}
	for len(items) > 0 {
		n := min(chunk, len(items))
		if err := e.decideBatch(src, meta, acc, items[:n]); err != nil {
			return err
		}
		if err := e.applyBase(items[:n], meta, acc); err != nil {
			return err
		}
		items = items[n:]
	}
	return nil
}

// decideBatch decides changes with distinct keys against base and metadata.
func (e *Engine) decideBatch(src Source, meta *state.Meta, acc *access, items []*item) error {
	for _, it := range items {
		var err error
		if it.keyVacated {
			if it.decision, err = decide(it.table, it.change, src.Clock, it.lin, nil, nil); err != nil {
				return err
			}
			continue
		}
		if it.baseMeta, err = meta.Get(it.table.Name, it.pk); err != nil {
			return err
		}
		if it.baseRow, err = acc.get(e.State.Conn(), "base", it.table).Get(it.key); err != nil {
			return err
		}
		if it.baseRow == nil && it.baseMeta != nil && e.rk != nil {
			if err := e.rk.repointDead(it.table, it.baseMeta); err != nil {
				return err
			}
		}
		if it.decision, err = decide(it.table, it.change, src.Clock, it.lin, it.baseMeta, it.baseRow); err != nil {
			return err
		}
	}
	return nil
}

// applyLive writes the merged rows into the live database in one short
// write transaction, keeping unexported local edits, then puts back any
// synced cell the app's triggers changed (with triggers off for that
// correction only), so applying a change never creates a new local change.
func (e *Engine) applyLive(ctx context.Context, items []*item, src Source, acc *access, st *Stats) error {
	return e.applyLiveSplit(ctx, items, src, acc, st, false, nil)
}

// applyLiveSplit is applyLive; with split, the batch's live write ends
// its transaction once its changes have taken splitAfter and goes on in
// the next one, as if the batch had been smaller: batch sizes follow the
// holds of the batches before (nextBatchSize), but a loaded machine can
// stretch one batch's work many times over, and the hold must not follow.
func (e *Engine) applyLiveSplit(ctx context.Context, items []*item, src Source, acc *access, st *Stats, split bool, intent func(written []*item) error) error {
	for len(items) > 0 {
		n := len(items)
		err := e.inLive(ctx, st, func() (err error) {
			n, err = e.writeBatch(items, src, acc, st, split)
			if err == nil {
				e.afterApply(items[:n])
			}
			if err == nil && intent != nil {
				err = intent(items[:n])
			}
			return err
		})
		if err != nil {
			return err
		}
		items = items[n:]
	}
	return nil
}

// splittable reports whether a batch's live write may be split over
// several transactions (applyLiveSplit): not when it moves rows
// (re-keying), whose moves and the changes after them belong together.
func splittable(items []*item) bool {
	for _, it := range items {
		if len(it.moves) > 0 || it.rekeyRecord != nil || it.keyVacated {
			return false
		}
	}
	return true
}

// writeBatch is applyLive's work, inside its transaction. With split it
// stops before the first change at which splitAfter has passed since it
// began; it returns how many of items it wrote.
func (e *Engine) writeBatch(items []*item, src Source, acc *access, st *Stats, split bool) (int, error) {
	type want struct {
		it  *item
		row []changeset.Value // nil = absent
	}
	var wants []want
	var retry, refused []*item
	began := time.Now()
	for i, it := range items {
		if split && i > 0 && time.Since(began) >= splitAfter {
			items = items[:i]
			break
		}
		if it.decision == nil {
			continue
		}
		if err := applyMoves(e.Live, "live", acc, it.moves); err != nil {
			return 0, err
		}
		lt := acc.get(e.Live, "live", it.table)
		l, err := lt.Get(it.key)
		if err != nil {
			return 0, err
		}
		recovered := it.baseRow == nil && l != nil && e.Recovered[batchKey(it)]
		if e.rk != nil && it.baseRow == nil && l != nil && it.decision.base != nil && e.rk.parents[strings.ToLower(it.table.Name)] != nil &&
			!recovered && (src.Clock.HLC > initialClock || !rowEqual(it.table, it.decision.base, l)) {
			// A row created here under the same id: it moves, with the
			// references made here, once the whole file is merged and
			// base tells them from merged ones (FixLocalMoves). Until
			// then live keeps it. Identical values are the same row
			// only as pre-existing data (see detect): a reference
			// among them may name a row of this device that moves too.
			it.localRowMoves = true
			continue
		}
		seen := l
		if w := e.refusals.supersede(it); w != nil {
			// An earlier change to this key is still refused: this one was
			// decided on base holding its row, so it applies to that.
			seen = w.liveWant
		}
		ref := it.baseRow
		if recovered {
			// This file's own insert, written by the interrupted run:
			// what differs from it in live are edits made here since.
			ref = it.decision.base
		}
		row, conflicts := liveTarget(it.table, ref, seen, it.decision.base)
		for _, c := range conflicts {
			c.WinnerDev = "local"
			c.LoserDev = src.Clock.Dev
			c.LoserHLC = uint64(src.Clock.HLC)
			it.decision.conflicts = append(it.decision.conflicts, c)
		}
		it.liveBefore, it.liveWant = l, row
		cascade, err := e.cascadeWatch(acc, it, l, row)
		if err != nil {
			return 0, err
		}
		if err := writeRow(lt, it.key, l, row); err != nil {
			if e.refusals != nil && isRefusal(e.Live, err) {
				// Perhaps the app's rules accept it once other changes of
				// the file are in: retried after the rest (apprules.go).
				it.refusal = err
				refused = append(refused, it)
				continue
			}
			if !isUnique(err) {
				return 0, fmt.Errorf("apply %s to the live database: %w", it.table.Name, err)
			}
			// Perhaps a value another change of the batch frees: retried
			// after the rest of the batch (unique.go).
			retry = append(retry, it)
			continue
		}
		it.liveWritten = true
		wants = append(wants, want{it, row})
		if err := cascade.log(e, acc, it, src); err != nil {
			return 0, err
		}
	}
	if len(retry) > 0 {
		if err := e.retryLive(acc, retry); err != nil {
			return 0, err
		}
		for _, it := range retry {
			if it.liveWritten {
				wants = append(wants, want{it, it.liveWant})
			}
		}
	}
	if e.refusals != nil {
		written, err := e.refusals.retry(e, acc, refused, src)
		if err != nil {
			return 0, err
		}
		for _, it := range written {
			wants = append(wants, want{it, it.liveWant})
		}
	}
	// Verify and correct what triggers did to the rows we wrote. Only
	// tables with triggers can differ from what was written.
	triggered, err := tablesWithTriggers(e.Live)
	if err != nil {
		return 0, err
	}
	var fixes []want
	for _, w := range wants {
		if !triggered[strings.ToLower(w.it.table.Name)] {
			continue
		}
		lt := acc.get(e.Live, "live", w.it.table)
		got, err := lt.Get(w.it.key)
		if err != nil {
			return 0, err
		}
		if !sameRow(got, w.row) {
			fixes = append(fixes, want{w.it, w.row})
		}
	}
	if len(fixes) == 0 {
		return len(items), nil
	}
	return len(items), db.WithoutTriggers(e.Live, func() error {
		for _, f := range fixes {
			lt := acc.get(e.Live, "live", f.it.table)
			got, err := lt.Get(f.it.key)
			if err != nil {
				return err
			}
			if err := writeRow(lt, f.it.key, got, f.row); err != nil {
				return fmt.Errorf("undo trigger side effects on %s: %w", f.it.table.Name, err)
			}
			st.Corrected++
		}
		return nil
	})
}

// liveTarget computes the row live should hold: the merged row, except
// that unexported local edits (live differs from base) stay.
func liveTarget(t *schema.Table, b, l, merged []changeset.Value) ([]changeset.Value, []*state.Conflict) {
	var out []*state.Conflict
	lost := func(cols []string, loser, winner []changeset.Value, note string) {
		out = append(out, &state.Conflict{Kind: KindLocalKept, Table: t.Name, Cols: jsonCols(cols), WinnerValues: sideValues(winner), LoserValues: sideValues(loser), Note: note})
	}
	switch {
	case l == nil && b == nil:
		return merged, nil
	case l == nil && b != nil:
		// Deleted here, not exported yet: the local delete is newer.
		if merged != nil && !rowEqual(t, merged, b) {
			lost(allCols(t), merged, nil, "a remote edit of a row deleted here (not yet exported); the local delete wins")
		}
		return nil, out
	case l != nil && b == nil:
		// Inserted (or revived) here, not exported yet: local wins.
		if merged != nil && !rowEqual(t, merged, l) {
			lost(allCols(t), merged, l, "a remote row under the key of a row created here (not yet exported); the local row wins")
		}
		return l, out
	}
	edited := false
	for i := range t.Columns {
		if !t.Local[t.Columns[i].Name] && !l[i].Equal(b[i]) {
			edited = true
		}
	}
	if merged == nil {
		if edited {
			// Local edits are newer than the remote delete: the row stays
			// and is exported (as an insert, base no longer has it) with a
			// later clock, so the delete loses everywhere. No other device
			// sees that decision as a conflict (to them it is a newer
			// insert), so it is logged here or nowhere.
			out = append(out, &state.Conflict{Kind: KindDeleteLost, Table: t.Name, Cols: jsonCols(allCols(t)), WinnerValues: sideValues(l), LoserValues: sideValues(b),
				Note: "a remote delete lost to an edit made here and not yet exported; the row stays (the loser is the row as the delete removed it)"})
			return l, out
		}
		return nil, nil
	}
	row := make([]changeset.Value, len(l))
	for i := range l {
		name := t.Columns[i].Name
		switch {
		case t.Local[name]:
			row[i] = l[i]
		case !l[i].Equal(b[i]):
			row[i] = l[i] // unexported local edit
			if !merged[i].Equal(b[i]) && !merged[i].Equal(l[i]) {
				lost([]string{name}, []changeset.Value{merged[i]}, []changeset.Value{l[i]}, "a remote value lost to an edit made here and not yet exported")
			}
		default:
			row[i] = merged[i]
		}
	}
	return row, out
}

// FreshLocalKey returns row with the stored key of a table matched by
// natural key set to NULL, so that SQLite gives the row a new rowid: a row
// that is not here has no id of its own here yet, and the one it carries
// (another device's, or the one it had before it was deleted here) may
// belong to another row by now. Other rows are returned as they are.
func FreshLocalKey(t *schema.Table, row []changeset.Value) []changeset.Value {
	i := t.StorageKey()
	if i < 0 || row[i].Kind == changeset.KindNull {
		return row
	}
	out := slices.Clone(row)
	out[i] = changeset.Null()
	return out
}

// writeRow turns live row cur into want with the fewest writes.
func writeRow(rt *rows.Table, key, cur, want []changeset.Value) error {
	switch {
	case cur == nil && want == nil:
		return nil
	case want == nil:
		return rt.Delete(key)
	case cur == nil:
		return rt.Insert(FreshLocalKey(rt.T, want))
	}
	var cols []int
	var vals []changeset.Value
	for i := range want {
		if !cur[i].Equal(want[i]) {
			cols = append(cols, i)
			vals = append(vals, want[i])
		}
	}
	return rt.Update(key, cols, vals)
}

func sameRow(a, b []changeset.Value) bool {
	if (a == nil) != (b == nil) || len(a) != len(b) {
		return false
	}
	for i := range a {
		if !a[i].Equal(b[i]) {
			return false
		}
	}
	return true
}

// applyBase writes a decided batch's merged rows and metadata to base,
// before live: the base transaction commits only after live committed the
// batch (Apply), so base never gets ahead of live on disk.
func (e *Engine) applyBase(items []*item, meta *state.Meta, acc *access) (err error) {
	var retry []*item
	for _, it := range items {
		if it.decision == nil {
			continue
		}
		if err = applyMoves(e.State.Conn(), "base", acc, it.moves); err != nil {
			return err
		}
		for _, mv := range it.moves {
			if !mv.liveOnly && (mv.metaOnly || !sameRow(mv.from, mv.to)) {
				if err = e.moveMeta(meta, mv); err != nil {
					return err
				}
			}
		}
		for _, rk := range []*state.Rekey{it.rekeyRecord, it.rekeyReuse} {
			if rk == nil {
				continue
			}
			if err = e.State.AddRekey(rk); err != nil {
				return err
			}
		}
		bt := acc.get(e.State.Conn(), "base", it.table)
		if err = writeRow(bt, it.key, it.baseRow, it.decision.base); err != nil {
			if !isUnique(err) {
				return fmt.Errorf("update base copy of %s: %w", it.table.Name, err)
			}
			retry = append(retry, it) // after the rest of the batch (unique.go)
		}
	}
	if len(retry) > 0 {
		if err = e.retryBase(acc, retry); err != nil {
			return err
		}
	}
	for _, it := range items {
		if it.decision == nil {
			continue
		}
		if err = e.unheld(it); err != nil {
			return err
		}
		if err = meta.Put(it.table.Name, it.pk, it.decision.meta); err != nil {
			return err
		}
	}
	return nil
}

// afterLive records, once live committed a batch, what only the live
// write could tell: local rows to move, and the conflicts (decided ones
// and those with unexported local edits).
func (e *Engine) afterLive(items []*item, src Source, st *Stats) error {
	now := e.now().UnixMilli()
	for _, it := range items {
		if it.decision == nil {
			continue
		}
		if it.localRowMoves {
			if err := e.State.AddLocalMove(state.LocalMove{Table: it.table.Name, PK: it.pk, HLC: src.Clock.HLC}); err != nil {
				return err
			}
		}
		for _, c := range it.decision.conflicts {
			c.AtMS = now
			if c.PK == nil { // another row's (a cascade's, apprules.go)
				c.PK = it.pk
				c.PKText = KeyText(it.key)
			}
			c.File = src.File
		}
		var derived map[string]bool
		if e.rules != nil {
			derived = e.rules.derived[strings.ToLower(it.table.Name)]
		}
		for _, c := range logged(it.decision.conflicts, derived) {
			if err := e.State.AddConflict(c); err != nil {
				return fmt.Errorf("write conflict log: %w", err)
			}
			if c.Seq != 0 { // a new entry, not cells joining one
				st.Conflicts++
			}
		}
	}
	return nil
}

// uniqueTables lists the tables with UNIQUE indexes besides their key, in
// base or in live. It reads live, so it runs before live's goroutine does.
func (e *Engine) uniqueTables() (map[*schema.Table]bool, error) {
	out := map[*schema.Table]bool{}
	for _, t := range e.Tables {
		for _, d := range []struct {
			conn  *sqlite.Conn
			which string
		}{{e.State.Conn(), "base"}, {e.Live, "live"}} {
			ix, err := e.uniqueIndexes(d.conn, d.which, t)
			if err != nil {
				return nil, err
			}
			out[t] = out[t] || len(ix) > 0
		}
	}
	return out, nil
}

// KeyText renders a key readably.
func KeyText(key []changeset.Value) string {
	var parts []string
	for _, v := range key {
		parts = append(parts, v.String())
	}
	return strings.Join(parts, ", ")
}

func jsonCols(cols []string) string {
	var b strings.Builder
	b.WriteString("[")
	for i, c := range cols {
		if i > 0 {
			b.WriteString(",")
		}
		fmt.Fprintf(&b, "%q", c)
	}
	b.WriteString("]")
	return b.String()
}

// tablesWithTriggers lists (lower-cased) the tables that carry triggers.
func tablesWithTriggers(conn *sqlite.Conn) (map[string]bool, error) {
	out := map[string]bool{}
	err := sqlitex.ExecuteTransient(conn, `SELECT DISTINCT lower(tbl_name) FROM main.sqlite_master WHERE type='trigger' AND name NOT LIKE 'rowdrop\_dirty\_%' ESCAPE '\'`, &sqlitex.ExecOptions{ResultFunc: func(s *sqlite.Stmt) error {
		out[s.ColumnText(0)] = true
		return nil
	}})
	if err != nil {
		return nil, fmt.Errorf("list triggers of the live database: %w", err)
	}
	return out, nil
}

// manualCheckpoints turns off live's automatic checkpoints on rowdrop's
// connection until restore.
func (e *Engine) manualCheckpoints() (restore func(), err error) {
	n := int64(-1)
	err = sqlitex.ExecuteTransient(e.Live, "PRAGMA wal_autocheckpoint", &sqlitex.ExecOptions{ResultFunc: func(s *sqlite.Stmt) error {
		n = s.ColumnInt64(0)
		return nil
	}})
	if err == nil {
		err = sqlitex.ExecuteTransient(e.Live, "PRAGMA wal_autocheckpoint=0", nil)
	}
	if err != nil {
		return nil, fmt.Errorf("set checkpoints of the live database: %w", err)
	}
	return func() {
		if n >= 0 {
			sqlitex.ExecuteTransient(e.Live, fmt.Sprintf("PRAGMA wal_autocheckpoint=%d", n), nil)
		}
	}, nil
}
