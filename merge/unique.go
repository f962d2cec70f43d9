package merge

// UNIQUE constraints besides the primary key.
//
// Two devices can insert different rows that clash on a UNIQUE column (the
// same URL bookmarked on both under different ids). Writing the second
// fails with SQLITE_CONSTRAINT_UNIQUE; rowdrop must neither fail forever
// nor let the outcome depend on arrival order.
//
// The rule: among the rows that are alive by their clocks (the candidates),
// the rows kept in the tables are chosen greedily in the order of their
// insert clocks (RowMeta.Ins, then key): a row is kept unless it clashes
// with a kept row inserted earlier. That choice is a function of the
// candidates alone, so it is the same on every device whatever the order
// in which files arrived. A candidate left out is "held": its metadata
// stays alive, its values are kept in rowdrop_rows.dead, it is listed in
// rowdrop_unique_held and it goes to the conflict log (kind "unique",
// whole row) so `rowdrop conflicts restore` can bring it back. It comes
// back by itself when the row that holds its value lets go of it (deleted,
// value changed, itself held), and any later change to it is merged as
// usual and meets the constraint again.
//
// How the rule is kept, all on the base copy (the merged state, which has
// the live table's UNIQUE indexes: export.EnsureBase mirrors them):
//   - a write that fails with a UNIQUE error is retried after the rest of
//     its batch (a swap of unique values inside one file fails for
//     whichever row comes first in key order, not in statement order);
//   - if it still fails, the row is held for now;
//   - after the whole file (and after every import, since an export can
//     free a value too), resolveHeld visits the held rows in insert-clock
//     order: a held row that clashes with no kept row inserted earlier
//     takes its place in the table and the later rows it clashes with are
//     held instead. One pass reaches the greedy choice: a row can only be
//     displaced by an earlier one. Rows held only for a moment (a swap
//     spread over two batches) come back in that pass and are never
//     logged.
//
// Live follows base as everywhere (liveTarget: unexported local edits
// stay). A write to live can also fail because of an unexported local row
// or edit holding the value; a local change counts as the latest (it would
// be exported later, with a later clock, and lose everywhere), so it is
// undone in live — the row as the app had it goes to the conflict log —
// and the merged write is made.
//
// Not handled: UNIQUE indexes on expressions and partial UNIQUE indexes
// (rowdrop cannot tell which row holds the value; the file is held with a
// reason naming the table).

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"time"

	"zombiezen.com/go/sqlite"
	"zombiezen.com/go/sqlite/sqlitex"

	"github.com/rowdrop/rowdrop/internal/changeset"
	"github.com/rowdrop/rowdrop/internal/db"
	"github.com/rowdrop/rowdrop/internal/schema"
	"github.com/rowdrop/rowdrop/internal/state"
)

func isUnique(err error) bool { return sqlite.ErrCode(err) == sqlite.ResultConstraintUnique }

// uniqueIndex is a UNIQUE index other than the primary key's.
type uniqueIndex struct {
	name     string
	cols     []int
	coll     []string
	unusable bool // on an expression, or partial
}

func (ix uniqueIndex) colNames(t *schema.Table) []string {
	var out []string
	for _, c := range ix.cols {
		out = append(out, t.Columns[c].Name)
	}
	return out
}

// uniqueIndexes reads t's UNIQUE indexes on conn (which: "base" or "live").
func (e *Engine) uniqueIndexes(conn *sqlite.Conn, which string, t *schema.Table) ([]uniqueIndex, error) {
	k := which + "\x00" + t.Name
	if ix, ok := e.uniq.idx[k]; ok {
		return ix, nil
	}
	var out []uniqueIndex
	err := sqlitex.ExecuteTransient(conn, fmt.Sprintf("PRAGMA main.index_list(%s)", db.Quote(t.Name)), &sqlitex.ExecOptions{ResultFunc: func(s *sqlite.Stmt) error {
		if s.GetText("origin") != "pk" && s.GetInt64("unique") != 0 {
			out = append(out, uniqueIndex{name: s.GetText("name"), unusable: s.GetInt64("partial") != 0})
		}
		return nil
	}})
	if err != nil {
		return nil, fmt.Errorf("list indexes of %s: %w", t.Name, err)
	}
	for i := range out {
		ix := &out[i]
		err := sqlitex.ExecuteTransient(conn, fmt.Sprintf("PRAGMA main.index_xinfo(%s)", db.Quote(ix.name)), &sqlitex.ExecOptions{ResultFunc: func(s *sqlite.Stmt) error {
			if s.GetInt64("key") == 0 {
				return nil
			}
			c := t.ColIndex(s.GetText("name"))
			if s.GetInt64("cid") < 0 || c < 0 {
				ix.unusable = true
				return nil
			}
			ix.cols = append(ix.cols, c)
			ix.coll = append(ix.coll, s.GetText("coll"))
			return nil
		}})
		if err != nil {
			return nil, fmt.Errorf("read index %s of %s: %w", ix.name, t.Name, err)
		}
	}
	if e.uniq.idx == nil {
		e.uniq.idx = map[string][]uniqueIndex{}
	}
	e.uniq.idx[k] = out
	return out, nil
}

// clash is a row holding some of another row's UNIQUE values.
type clash struct {
	key  []changeset.Value
	pk   []byte
	cols []string // the index's columns
}

// findClashes lists the rows of t on conn, other than the one under key
// self, that hold the values row has on a UNIQUE index (NULLs never clash).
func (e *Engine) findClashes(conn *sqlite.Conn, which string, t *schema.Table, row, self []changeset.Value) ([]clash, error) {
	idx, err := e.uniqueIndexes(conn, which, t)
	if err != nil {
		return nil, err
	}
	selfPK := changeset.EncodeKey(self)
	seen := map[string]bool{}
	var out []clash
	var pkCols []string
	for _, i := range t.PKCols() {
		pkCols = append(pkCols, db.Quote(t.Columns[i].Name))
	}
	for _, ix := range idx {
		if ix.unusable || len(ix.cols) == 0 {
			continue
		}
		var conds []string
		skip := false
		for j, c := range ix.cols {
			if k := row[c].Kind; k == changeset.KindNull || k == changeset.KindUndefined {
				skip = true
			}
			conds = append(conds, fmt.Sprintf("%s = ?%d COLLATE %s", db.Quote(t.Columns[c].Name), j+1, db.Quote(ix.coll[j])))
		}
		if skip {
			continue
		}
		q := fmt.Sprintf("SELECT %s FROM main.%s WHERE %s", strings.Join(pkCols, ", "), db.Quote(t.Name), strings.Join(conds, " AND "))
		s, err := conn.Prepare(q)
		if err != nil {
			return nil, fmt.Errorf("look up UNIQUE index %s of %s: %w", ix.name, t.Name, err)
		}
		for j, c := range ix.cols {
			db.Bind(s, j+1, row[c])
		}
		for {
			ok, err := s.Step()
			if err != nil {
				s.Reset()
				return nil, fmt.Errorf("look up UNIQUE index %s of %s: %w", ix.name, t.Name, err)
			}
			if !ok {
				break
			}
			key := make([]changeset.Value, s.ColumnCount())
			for i := range key {
				key[i] = db.Column(s, i)
			}
			pk := changeset.EncodeKey(key)
			if bytes.Equal(pk, selfPK) || seen[string(pk)] {
				continue
			}
			seen[string(pk)] = true
			out = append(out, clash{key: key, pk: pk, cols: ix.colNames(t)})
		}
		s.Reset()
		s.ClearBindings()
	}
	return out, nil
}

// uniqueCache is the Engine's UNIQUE bookkeeping.
type uniqueCache struct {
	idx   map[string][]uniqueIndex
	held  map[string]int // held rows per table (an upper bound), nil = not read yet
	dirty bool           // a row was held during this Engine's work
}

// heldIn bounds the rows of table tbl held in rowdrop_unique_held.
func (e *Engine) heldIn(tbl string) (int, error) {
	if e.uniq.held == nil {
		held, err := e.State.HeldCounts()
		if err != nil {
			return 0, err
		}
		e.uniq.held = held
	}
	return e.uniq.held[tbl], nil
}

func (e *Engine) anyHeld() (bool, error) {
	if _, err := e.heldIn(""); err != nil {
		return false, err
	}
	for _, n := range e.uniq.held {
		if n > 0 {
			return true, nil
		}
	}
	return false, nil
}

// retryLive writes again, after the rest of the batch, the rows whose first
// write to live failed on a UNIQUE constraint. Those failing still are
// marked liveFailed and left to fixLive.
func (e *Engine) retryLive(acc *access, retry []*item) error {
	for _, it := range retry {
		lt := acc.get(e.Live, "live", it.table)
		cur, err := lt.Get(it.key)
		if err != nil {
			return err
		}
		if err := writeRow(lt, it.key, cur, it.liveWant); err != nil {
			if !isUnique(err) {
				return fmt.Errorf("apply %s to the live database: %w", it.table.Name, err)
			}
			it.liveRefused = true
			continue
		}
		it.liveWritten = true
	}
	return nil
}

// retryBase writes again, after the rest of the batch, the rows whose first
// write to base failed on a UNIQUE constraint; a row failing still is held
// (see the top of this file) until resolveHeld decides.
func (e *Engine) retryBase(acc *access, retry []*item) error {
	for _, it := range retry {
		bt := acc.get(e.State.Conn(), "base", it.table)
		err := writeRow(bt, it.key, it.baseRow, it.decision.base)
		if err == nil {
			continue
		}
		if !isUnique(err) {
			return fmt.Errorf("update base copy of %s: %w", it.table.Name, err)
		}
		idx, ierr := e.uniqueIndexes(e.State.Conn(), "base", it.table)
		if ierr != nil {
			return ierr
		}
		for _, ix := range idx {
			if ix.unusable {
				return fmt.Errorf("update base copy of %s (key %s): %w; its UNIQUE index %s is on an expression or partial, and rowdrop cannot resolve clashes on such an index: change the clashing row in the app on one device", it.table.Name, KeyText(it.key), err, ix.name)
			}
		}
		if it.baseRow != nil {
			if err := bt.Delete(it.key); err != nil {
				return fmt.Errorf("update base copy of %s: %w", it.table.Name, err)
			}
		}
		it.uniqueHeld = true
		it.decision.meta.Dead = changeset.EncodeKey(it.decision.base)
		if err := e.State.Hold(it.table.Name, it.pk); err != nil {
			return err
		}
		if _, err := e.heldIn(it.table.Name); err != nil {
			return err
		}
		e.uniq.held[it.table.Name]++
		e.uniq.dirty = true
	}
	return nil
}

// unheld drops a row written to base (or deleted) from the held list.
func (e *Engine) unheld(it *item) error {
	if it.uniqueHeld {
		return nil
	}
	n, err := e.heldIn(it.table.Name)
	if err != nil || n == 0 {
		return err
	}
	return e.State.Unhold(it.table.Name, it.pk)
}

// uctx carries what the live fix-ups need: they run on the calling
// goroutine, inside the open base transaction, with live free.
type uctx struct {
	src              Source
	meta             *state.Meta
	baseAcc, liveAcc *access
	st               *Stats
}

// fixLive brings live in line for a settled batch's rows that base held or
// that live refused, in one live write transaction.
func (e *Engine) fixLive(ctx context.Context, items []*item, u *uctx) (err error) {
	var todo []*item
	for _, it := range items {
		if it.decision != nil && (it.uniqueHeld || it.liveRefused) {
			todo = append(todo, it)
		}
	}
	if len(todo) == 0 {
		return nil
	}
	// Held rows first: they free values the refused writes may need.
	sort.SliceStable(todo, func(i, j int) bool { return todo[i].uniqueHeld && !todo[j].uniqueHeld })
	return e.inLive(ctx, u.st, func() error {
		for _, it := range todo {
			lt := u.liveAcc.get(e.Live, "live", it.table)
			cur, err := lt.Get(it.key)
			if err != nil {
				return err
			}
			before := cur
			if it.liveWritten && sameRow(cur, it.liveWant) {
				before = it.liveBefore // what live held before this batch
			}
			target, _ := liveTarget(it.table, it.baseRow, before, it.merged())
			err = e.writeLive(it.table, it.key, cur, target, u, 0)
			if err == nil {
				continue
			}
			if !isRefusal(e.Live, err) {
				return err
			}
			if e.refusals == nil {
				return e.refusedWrite(it.table, it.key, cur, target, err)
			}
			// The app's rules refuse it (a parent not there, a child
			// still there): it waits with the file's other refused
			// changes, retried after the rest and settled as they are
			// (apprules.go: endRefusals, orphans).
			it.liveWritten, it.liveBefore, it.liveWant, it.refusal = false, cur, target, err
			e.refusals.items = append(e.refusals.items, it)
		}
		return nil
	})
}

// merged is the row the merge leaves in base: the decided row, or none if
// base holds it out of its table on a UNIQUE clash.
func (it *item) merged() []changeset.Value {
	if it.uniqueHeld {
		return nil
	}
	return it.decision.base
}

// inLive runs fn in a live write transaction and records its hold in st.
func (e *Engine) inLive(ctx context.Context, st *Stats, fn func() error) (err error) {
	defer db.Interruptible(ctx, e.Live)()
	if err := e.yieldLive(ctx); err != nil {
		return err
	}
	end, err := db.Begin(e.Live, "IMMEDIATE")
	if err != nil {
		return fmt.Errorf("start write transaction on the live database: %w", err)
	}
	// The hold starts once the lock is ours; waiting for the app is not holding.
	start := time.Now()
	defer func() {
		end(&err)
		st.held(e.releasedLive(start))
		if err == nil {
			st.LiveCommits++
		}
	}()
	return fn()
}

// writeLive turns live row cur (under key) into want. If a UNIQUE
// constraint refuses it because an unexported local row or edit holds the
// value, the local change loses (see the top of this file) and the write
// is made again.
func (e *Engine) writeLive(t *schema.Table, key, cur, want []changeset.Value, u *uctx, depth int) error {
	lt := u.liveAcc.get(e.Live, "live", t)
	bt := u.baseAcc.get(e.State.Conn(), "base", t)
	for attempt := 0; ; attempt++ {
		err := writeRow(lt, key, cur, want)
		if err == nil {
			return nil
		}
		if depth == 0 && isRefusal(e.Live, err) {
			return err // the app's rules: the caller names the row (RefusedError)
		}
		if !isUnique(err) || attempt >= 4 || depth >= 4 {
			return fmt.Errorf("apply %s to the live database (key %s): %w", t.Name, KeyText(key), err)
		}
		clashes, ferr := e.findClashes(e.Live, "live", t, want, key)
		if ferr != nil {
			return ferr
		}
		if len(clashes) == 0 {
			return fmt.Errorf("apply %s to the live database (key %s): %w; rowdrop cannot tell which row holds the value (a UNIQUE index on an expression, or a partial one, is not supported): change the clashing row in the app", t.Name, KeyText(key), err)
		}
		for _, c := range clashes {
			lrow, err := lt.Get(c.key)
			if err != nil {
				return err
			}
			brow, err := bt.Get(c.key)
			if err != nil {
				return err
			}
			if sameRow(lrow, brow) {
				// A merged row holds the value: it is this row's own
				// unexported edit that clashes, and it loses.
				mine, err := bt.Get(key)
				if err != nil {
					return err
				}
				if sameRow(mine, want) {
					return fmt.Errorf("apply %s to the live database (key %s): %w; the base copy and the live database disagree on UNIQUE index %v (does the base copy in the state directory lack an index the app has?)", t.Name, KeyText(key), err, c.cols)
				}
				if err := e.logLocalLoser(t, key, want, brow, c, u, "a row edited or created here (not yet exported) clashed on UNIQUE "+strings.Join(c.cols, ", ")+" with a merged row; the local version is undone"); err != nil {
					return err
				}
				want = mine
				continue
			}
			// An unexported local row or edit holds the value: undo it.
			undo := brow
			if brow != nil && lrow != nil {
				undo = append([]changeset.Value(nil), lrow...)
				for _, name := range c.cols {
					i := t.ColIndex(name)
					undo[i] = brow[i]
				}
			}
			if err := e.logLocalLoser(t, c.key, lrow, want, c, u, "a row created or edited here (not yet exported) held a UNIQUE value ("+strings.Join(c.cols, ", ")+") a merged row takes; the local change is undone"); err != nil {
				return err
			}
			if err := e.writeLive(t, c.key, lrow, undo, u, depth+1); err != nil {
				return err
			}
		}
	}
}

func (e *Engine) logLocalLoser(t *schema.Table, key, loser, winner []changeset.Value, c clash, u *uctx, note string) error {
	if loser == nil {
		return nil
	}
	e.log().Warn("UNIQUE clash with an unexported local change: the local change is undone and kept in the conflict log",
		"table", t.Name, "key", KeyText(key), "columns", strings.Join(c.cols, ","))
	return e.addConflict(&state.Conflict{Kind: KindUnique, Table: t.Name, Cols: jsonCols(allCols(t)),
		Loser: encodeOpt(loser), LoserDev: "local", Winner: encodeOpt(winner), Note: note}, key, u)
}

func (e *Engine) addConflict(c *state.Conflict, key []changeset.Value, u *uctx) error {
	c.AtMS = e.now().UnixMilli()
	c.PK = changeset.EncodeKey(key)
	c.PKText = KeyText(key)
	c.File = u.src.File
	if err := e.State.AddConflict(c); err != nil {
		return fmt.Errorf("write conflict log: %w", err)
	}
	u.st.Conflicts++
	return nil
}

// heldRow is a candidate of resolveHeld.
type heldRow struct {
	key, vals []changeset.Value
	pk        []byte
	m         *state.RowMeta
	logged    []byte
}

func earlier(am *state.RowMeta, apk []byte, bm *state.RowMeta, bpk []byte) bool {
	var ai, bi state.Clock
	if am != nil {
		ai = am.Ins
	}
	if bm != nil {
		bi = bm.Ins
	}
	if c := ai.Compare(bi); c != 0 {
		return c < 0
	}
	return bytes.Compare(apk, bpk) < 0
}

// baseFix is a change resolveHeld made to base, to be mirrored in live.
type baseFix struct {
	t             *schema.Table
	key           []changeset.Value
	before, after []changeset.Value
	ins           state.Clock // the row's insert clock
}

// ResolveHeld settles rows held on a UNIQUE clash against the current
// state (an export can free a value a held row waits for): it runs the
// pass that ends every Apply, in its own transactions.
func (e *Engine) ResolveHeld(ctx context.Context) (st Stats, err error) {
	some, err := e.anyHeld()
	if err != nil || !some {
		return st, err
	}
	if in, err := e.State.CurrentInflight(); err != nil {
		return st, err
	} else if in.Kind != state.InflightNone && in.Kind != state.InflightUnique {
		// A file's apply was cut short: it runs again first, and its
		// own pass settles the held rows.
		return st, nil
	}
	// Live commits before base: a crash in between must make the next
	// export import (and so come here) first, as for a file in flight,
	// or live's side of the pass would look like local edits.
	if err := e.State.BeginInflight(state.Inflight{Kind: state.InflightUnique}); err != nil {
		return st, err
	}
	meta, err := e.State.NewMeta()
	if err != nil {
		return st, err
	}
	defer meta.Close()
	baseAcc, liveAcc := newAccess(), newAccess()
	defer baseAcc.close()
	defer liveAcc.close()
	end, err := db.Begin(e.State.Conn(), "IMMEDIATE")
	if err != nil {
		return st, fmt.Errorf("start write transaction on the base copy: %w", err)
	}
	defer end(&err)
	if err = e.resolveHeld(ctx, &uctx{meta: meta, baseAcc: baseAcc, liveAcc: liveAcc, st: &st}); err != nil {
		return st, err
	}
	err = e.State.EndInflight()
	return st, err
}

// resolveHeld brings the held rows to the greedy choice (see the top of
// this file). It runs inside the open base transaction, with live free.
func (e *Engine) resolveHeld(ctx context.Context, u *uctx) error {
	some, err := e.anyHeld()
	if err != nil || (!some && !e.uniq.dirty) {
		return err
	}
	held, err := e.State.HeldRows()
	if err != nil {
		return err
	}
	byTable := map[string][]*heldRow{}
	var stale []state.HeldRow
	for _, h := range held {
		byTable[h.Table] = append(byTable[h.Table], &heldRow{pk: h.PK, logged: h.Logged})
	}
	names := make([]string, 0, len(byTable))
	for n := range byTable {
		names = append(names, n)
	}
	sort.Strings(names)
	// Stale entries go first: settling below may hold one of those rows
	// again (a row written to base by an export can be displaced by an
	// earlier insert), and that entry must stay.
	cands := map[string][]*heldRow{}
	for _, name := range names {
		t := e.Tables[name]
		if t == nil {
			continue // not synced here now: left as it is
		}
		bt := u.baseAcc.get(e.State.Conn(), "base", t)
		for _, r := range byTable[name] {
			var err error
			if r.key, err = changeset.DecodeKey(r.pk); err != nil {
				stale = append(stale, state.HeldRow{Table: name, PK: r.pk})
				continue
			}
			if r.m, err = u.meta.Get(name, r.pk); err != nil {
				return err
			}
			b, err := bt.Get(r.key)
			if err != nil {
				return err
			}
			r.vals = deadValues(r.m, len(t.Columns))
			if r.m == nil || !r.m.Alive() || b != nil || !complete(r.vals) {
				stale = append(stale, state.HeldRow{Table: name, PK: r.pk}) // deleted, written, or incomplete: not held
				continue
			}
			cands[name] = append(cands[name], r)
		}
	}
	for _, s := range stale {
		if err := e.State.Unhold(s.Table, s.PK); err != nil {
			return err
		}
	}
	var fixes []baseFix
	for _, name := range names {
		t, rs := e.Tables[name], cands[name]
		sort.Slice(rs, func(i, j int) bool { return earlier(rs[i].m, rs[i].pk, rs[j].m, rs[j].pk) })
		for _, r := range rs {
			if err := ctx.Err(); err != nil {
				return err
			}
			f, err := e.settleHeld(t, r, u)
			if err != nil {
				return err
			}
			fixes = append(fixes, f...)
		}
	}
	if len(fixes) == 0 {
		return nil
	}
	return e.inLive(ctx, u.st, func() error {
		for _, f := range fixes {
			lt := u.liveAcc.get(e.Live, "live", f.t)
			cur, err := lt.Get(f.key)
			if err != nil {
				return err
			}
			target, _ := liveTarget(f.t, f.before, cur, f.after)
			err = e.writeLive(f.t, f.key, cur, target, u, 0)
			if err == nil {
				continue
			}
			if !isRefusal(e.Live, err) {
				return err
			}
			if err := e.refusedBack(f, cur, target, err, u); err != nil {
				return err
			}
		}
		return nil
	})
}

// refusedBack settles a held row's way back to live (fix f, turning live
// row cur into target) that the app's rules refuse (err). When the row's
// parent was deleted meanwhile (another device's delete merged here, or
// the app's here), no order will ever let it in: like any change refused
// for that reason (orphans) it stays out of live, base keeps it, so the
// next export carries its removal to every device as this device's edit,
// and it goes to the conflict log. Otherwise its parent may still come
// (or come back): the row goes back among the held rows, and a later
// pass (after the next import or export) tries again. A refused delete
// (a row the held one displaces, still referenced) holds the file.
func (e *Engine) refusedBack(f baseFix, cur, target []changeset.Value, err error, u *uctx) error {
	re := e.refusedWrite(f.t, f.key, cur, target, err)
	if target == nil || f.after == nil {
		return re
	}
	where, perr := e.parentDeleted(u, re)
	if perr != nil {
		return perr
	}
	if where != "" {
		clock := u.src.Clock
		if clock.Dev == "" {
			clock = f.ins // no file: the row's own insert
		}
		return e.logOrphan(u, re, where, f.t, f.key, target, cur, clock)
	}
	bt := u.baseAcc.get(e.State.Conn(), "base", f.t)
	row, gerr := bt.Get(f.key)
	if gerr != nil {
		return gerr
	}
	if row == nil {
		return re // not written back to base after all: nothing to hold again
	}
	pk := changeset.EncodeKey(f.key)
	m, gerr := u.meta.Get(f.t.Name, pk)
	if gerr != nil {
		return gerr
	}
	if _, err := e.holdOut(f.t, f.key, pk, row, m, u); err != nil {
		return err
	}
	e.log().Warn("a row held on a UNIQUE clash cannot come back yet: the app's rules refuse it; it stays held and is tried again after the next import or export",
		"table", f.t.Name, "key", re.Key, "trigger", re.Trigger, "waits_for", re.Waits, "err", err)
	return nil
}

// settleHeld decides one held row r: it stays held if a row inserted
// earlier holds one of its UNIQUE values; otherwise it takes its place in
// the table and the rows it clashes with (all inserted later) are held.
func (e *Engine) settleHeld(t *schema.Table, r *heldRow, u *uctx) ([]baseFix, error) {
	bt := u.baseAcc.get(e.State.Conn(), "base", t)
	clashes, err := e.findClashes(e.State.Conn(), "base", t, r.vals, r.key)
	if err != nil {
		return nil, err
	}
	metas := make([]*state.RowMeta, len(clashes))
	for i, c := range clashes {
		if metas[i], err = u.meta.Get(t.Name, c.pk); err != nil {
			return nil, err
		}
		if earlier(metas[i], c.pk, r.m, r.pk) {
			// r stays held; log it once per version of its values.
			if bytes.Equal(r.logged, r.m.Dead) {
				return nil, nil
			}
			w, err := bt.Get(c.key)
			if err != nil {
				return nil, err
			}
			if err := e.logHeld(t, r.key, r.vals, r.m, c, w, metas[i], u); err != nil {
				return nil, err
			}
			return nil, e.State.SetHeldLogged(t.Name, r.pk, r.m.Dead)
		}
	}
	var fixes []baseFix
	for i, c := range clashes {
		row, err := bt.Get(c.key)
		if err != nil {
			return nil, err
		}
		if row == nil {
			continue
		}
		nm, err := e.holdOut(t, c.key, c.pk, row, metas[i], u)
		if err != nil {
			return nil, err
		}
		if err := e.logHeld(t, c.key, row, nm, clash{key: r.key, pk: r.pk, cols: c.cols}, r.vals, r.m, u); err != nil {
			return nil, err
		}
		fixes = append(fixes, baseFix{t: t, key: c.key, before: row})
	}
	r.vals = FreshLocalKey(t, r.vals)
	if err := bt.Insert(r.vals); err != nil {
		if isUnique(err) {
			// Only an index rowdrop cannot read (expression, partial)
			// can refuse it now: the row stays held.
			e.log().Warn("a row held on a UNIQUE clash cannot be written back: a UNIQUE index on an expression or a partial one refuses it",
				"table", t.Name, "key", KeyText(r.key))
			return fixes, nil
		}
		return nil, fmt.Errorf("update base copy of %s: %w", t.Name, err)
	}
	nm := copyMeta(r.m)
	nm.Dead = nil
	if err := u.meta.Put(t.Name, r.pk, nm); err != nil {
		return nil, err
	}
	if err := e.State.Unhold(t.Name, r.pk); err != nil {
		return nil, err
	}
	return append(fixes, baseFix{t: t, key: r.key, after: r.vals, ins: r.m.Ins}), nil
}

// holdOut takes row (under key, encoded pk; metadata m) out of base's
// table t and lists it as held, its values as logged (the caller logs
// them, or they were logged when it was held before). It returns the
// row's new metadata.
func (e *Engine) holdOut(t *schema.Table, key []changeset.Value, pk []byte, row []changeset.Value, m *state.RowMeta, u *uctx) (*state.RowMeta, error) {
	if err := u.baseAcc.get(e.State.Conn(), "base", t).Delete(key); err != nil {
		return nil, fmt.Errorf("update base copy of %s: %w", t.Name, err)
	}
	nm := copyMeta(m)
	nm.Dead = changeset.EncodeKey(row)
	if err := u.meta.Put(t.Name, pk, nm); err != nil {
		return nil, err
	}
	if err := e.State.HoldLogged(t.Name, pk, nm.Dead); err != nil {
		return nil, err
	}
	if _, err := e.heldIn(t.Name); err != nil {
		return nil, err
	}
	e.uniq.held[t.Name]++
	return nm, nil
}

// logHeld records that the row under key (values vals, metadata m) is held
// because row w (under c.key, metadata wm) was inserted earlier.
func (e *Engine) logHeld(t *schema.Table, key, vals []changeset.Value, m *state.RowMeta, c clash, w []changeset.Value, wm *state.RowMeta, u *uctx) error {
	var wi, li state.Clock
	if wm != nil {
		wi = wm.Ins
	}
	if m != nil {
		li = m.Ins
	}
	cols := strings.Join(c.cols, ", ")
	e.log().Warn("UNIQUE clash: the row inserted earlier keeps the value, the other is taken out and kept in the conflict log",
		"table", t.Name, "kept", KeyText(c.key), "removed", KeyText(key), "columns", cols)
	return e.addConflict(&state.Conflict{Kind: KindUnique, Table: t.Name, Cols: jsonCols(allCols(t)),
		Winner: encodeOpt(w), WinnerDev: wi.Dev, WinnerHLC: uint64(wi.HLC),
		Loser: encodeOpt(vals), LoserDev: li.Dev, LoserHLC: uint64(li.HLC),
		Note: fmt.Sprintf("two rows hold the same UNIQUE %s; the row inserted earlier (key %s) keeps it and this one is out of the table on every device; restore it after changing or removing the other row", cols, KeyText(c.key))}, key, u)
}

func copyMeta(m *state.RowMeta) *state.RowMeta {
	nm := &state.RowMeta{}
	if m == nil {
		return nm
	}
	*nm = *m
	nm.Cells = make(map[string]state.Clock, len(m.Cells))
	for k, v := range m.Cells {
		nm.Cells[k] = v
	}
	return nm
}

func complete(vals []changeset.Value) bool {
	for _, v := range vals {
		if v.Kind == changeset.KindUndefined {
			return false
		}
	}
	return true
}

func (e *Engine) log() *slog.Logger {
	if e.Log != nil {
		return e.Log
	}
	return slog.Default()
}
