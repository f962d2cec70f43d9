package merge

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"zombiezen.com/go/sqlite"
	"zombiezen.com/go/sqlite/sqlitex"

	"rowdrop/internal/changeset"
	"rowdrop/internal/db"
	"rowdrop/internal/rows"
	"rowdrop/internal/schema"
	"rowdrop/internal/state"
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

	defaults map[string][]changeset.Value // column defaults by table (shape.go)
}

// Source identifies the file a batch of changes comes from.
type Source struct {
	Device string
	Clock  state.Clock
	File   string // relative path, for the conflict log
}

// Stats summarises an Apply.
type Stats struct {
	Changes   int64
	Conflicts int64
	Batches   int
	MaxLock   time.Duration // longest live write transaction
	Corrected int64         // cells put back after the app's triggers changed them
}

type item struct {
	t   *schema.Table
	key []changeset.Value
	pk  []byte
	m   *state.RowMeta
	b   []changeset.Value
	o   *outcome
}

// ChangeReader yields changes; *changeset.Reader is one.
type ChangeReader interface {
	Next() (*changeset.Change, error)
}

// Apply merges every change read from rd. finish runs inside the base
// transaction of the last batch, so recording "this file is applied"
// commits with its last changes. Live is written before base: if the
// process dies between the two, re-applying the file is harmless (live
// already holds the merged values; base and metadata catch up).
func (e *Engine) Apply(ctx context.Context, src Source, rd ChangeReader, finish func() error) (Stats, error) {
	var st Stats
	// Batches adapt so that one live write transaction stays near
	// lockTarget: the app's writers wait at most about that long. A fixed
	// BatchSize (tests) disables the adaptation.
	size, adaptive := e.BatchSize, e.BatchSize <= 0
	if adaptive {
		size = 500
	}
	meta, err := e.State.NewMeta()
	if err != nil {
		return st, err
	}
	defer meta.Close()
	acc := newAccess()
	defer acc.close()
	batch := make([]*changeset.Change, 0, size)
	for {
		c, err := rd.Next()
		if err != nil && err != io.EOF {
			return st, fmt.Errorf("read changes: %w", err)
		}
		if c != nil {
			batch = append(batch, c)
		}
		last := err == io.EOF
		if len(batch) == size || last {
			var fin func() error
			if last {
				fin = finish
			}
			prev := st.MaxLock
			st.MaxLock = 0
			if err := e.applyBatch(ctx, src, meta, acc, batch, fin, &st); err != nil {
				return st, err
			}
			held := st.MaxLock
			st.MaxLock = max(prev, held)
			if adaptive {
				size = nextBatchSize(size, held)
			}
			batch = batch[:0]
		}
		if last {
			return st, nil
		}
		if err := ctx.Err(); err != nil {
			return st, err
		}
	}
}

// lockTarget is the longest rowdrop means to hold the live write lock.
const lockTarget = 50 * time.Millisecond

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

func (e *Engine) applyBatch(ctx context.Context, src Source, meta *state.Meta, acc *access, batch []*changeset.Change, finish func() error, st *Stats) error {
	items := make([]*item, 0, len(batch))
	for _, c := range batch {
		t := e.Tables[c.Table.Name]
		if t == nil {
			return fmt.Errorf("table %s is not synced here", c.Table.Name)
		}
		if err := CheckShape(t, c.Table); err != nil {
			return err
		}
		if c.Table.NumCols() < len(t.Columns) {
			if e.defaults == nil {
				e.defaults = map[string][]changeset.Value{}
			}
			d := e.defaults[t.Name]
			if d == nil {
				var err error
				if d, err = columnDefaults(e.State.Base, t); err != nil {
					return err
				}
				e.defaults[t.Name] = d
			}
			widen(t, c, d)
		}
		it := &item{t: t}
		if c.Op == changeset.OpInsert {
			it.key = rows.Key(t, c.New)
		} else {
			it.key = rows.Key(t, c.Old)
		}
		it.pk = changeset.EncodeKey(it.key)
		var err error
		if it.m, err = meta.Get(t.Name, it.pk); err != nil {
			return err
		}
		if it.b, err = acc.get(e.State.Base, "base", t).Get(it.key); err != nil {
			return err
		}
		if it.o, err = decide(t, c, src.Clock, it.m, it.b); err != nil {
			return err
		}
		items = append(items, it)
	}
	st.Changes += int64(len(batch))
	st.Batches++
	if err := e.applyLive(ctx, items, src, st); err != nil {
		return err
	}
	return e.applyBase(items, src, meta, acc, finish, st)
}

// applyLive writes the merged rows into the live database in one short
// write transaction, keeping unexported local edits, then puts back any
// synced cell the app's triggers changed (with triggers off for that
// correction only), so applying a change never creates a new local change.
func (e *Engine) applyLive(ctx context.Context, items []*item, src Source, st *Stats) (err error) {
	defer db.Interruptible(ctx, e.Live)()
	end, err := db.Begin(e.Live, "IMMEDIATE")
	if err != nil {
		return fmt.Errorf("start write transaction on the live database: %w", err)
	}
	// The hold starts once the lock is ours; waiting for the app is not holding.
	start := time.Now()
	defer func() {
		end(&err)
		if d := time.Since(start); d > st.MaxLock {
			st.MaxLock = d
		}
	}()
	acc := newAccess()
	defer acc.close()
	type want struct {
		it  *item
		row []changeset.Value // nil = absent
	}
	var wants []want
	for _, it := range items {
		if it.o == nil {
			continue
		}
		lt := acc.get(e.Live, "live", it.t)
		l, err := lt.Get(it.key)
		if err != nil {
			return err
		}
		row, conflicts := liveTarget(it.t, it.b, l, it.o.base)
		for _, c := range conflicts {
			c.WinnerDev = "local"
			c.LoserDev = src.Clock.Dev
			c.LoserHLC = uint64(src.Clock.HLC)
			it.o.conflicts = append(it.o.conflicts, c)
		}
		if err := writeRow(lt, it.key, l, row); err != nil {
			return fmt.Errorf("apply %s to the live database: %w", it.t.Name, err)
		}
		wants = append(wants, want{it, row})
	}
	// Verify and correct what triggers did to the rows we wrote. Only
	// tables with triggers can differ from what was written.
	triggered, err := tablesWithTriggers(e.Live)
	if err != nil {
		return err
	}
	var fixes []want
	for _, w := range wants {
		if !triggered[strings.ToLower(w.it.t.Name)] {
			continue
		}
		lt := acc.get(e.Live, "live", w.it.t)
		got, err := lt.Get(w.it.key)
		if err != nil {
			return err
		}
		if !sameRow(got, w.row) {
			fixes = append(fixes, want{w.it, w.row})
		}
	}
	if len(fixes) > 0 {
		if err := db.SetTriggers(e.Live, false); err != nil {
			return err
		}
		defer db.SetTriggers(e.Live, true)
		for _, f := range fixes {
			lt := acc.get(e.Live, "live", f.it.t)
			got, err := lt.Get(f.it.key)
			if err != nil {
				return err
			}
			if err := writeRow(lt, f.it.key, got, f.row); err != nil {
				return fmt.Errorf("undo trigger side effects on %s: %w", f.it.t.Name, err)
			}
			st.Corrected++
		}
	}
	return nil
}

// liveTarget computes the row live should hold: the merged row, except
// that unexported local edits (live differs from base) stay.
func liveTarget(t *schema.Table, b, l, merged []changeset.Value) ([]changeset.Value, []*state.Conflict) {
	var out []*state.Conflict
	lost := func(cols []string, loser, winner []changeset.Value, note string) {
		out = append(out, &state.Conflict{Kind: KindLocalKept, Table: t.Name, Cols: jsonCols(cols), Winner: encodeOpt(winner), Loser: encodeOpt(loser), Note: note})
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
			out = append(out, &state.Conflict{Kind: KindDeleteLost, Table: t.Name, Cols: jsonCols(allCols(t)), Winner: encodeOpt(l), Loser: encodeOpt(b),
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

// writeRow turns live row cur into want with the fewest writes.
func writeRow(rt *rows.Table, key, cur, want []changeset.Value) error {
	switch {
	case cur == nil && want == nil:
		return nil
	case want == nil:
		return rt.Delete(key)
	case cur == nil:
		return rt.Insert(want)
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

func (e *Engine) applyBase(items []*item, src Source, meta *state.Meta, acc *access, finish func() error, st *Stats) (err error) {
	end, err := db.Begin(e.State.Base, "IMMEDIATE")
	if err != nil {
		return fmt.Errorf("start write transaction on the base copy: %w", err)
	}
	defer end(&err)
	now := e.now().UnixMilli()
	for _, it := range items {
		if it.o == nil {
			continue
		}
		bt := acc.get(e.State.Base, "base", it.t)
		if err = writeRow(bt, it.key, it.b, it.o.base); err != nil {
			return fmt.Errorf("update base copy of %s: %w", it.t.Name, err)
		}
		if err = meta.Put(it.t.Name, it.pk, it.o.meta, it.m); err != nil {
			return err
		}
		for _, c := range it.o.conflicts {
			c.AtMS = now
			c.PK = it.pk
			c.PKText = KeyText(it.key)
			c.File = src.File
			if err = e.State.AddConflict(c); err != nil {
				return fmt.Errorf("write conflict log: %w", err)
			}
			st.Conflicts++
		}
	}
	if finish != nil {
		return finish()
	}
	return nil
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
