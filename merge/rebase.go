package merge

import (
	"context"
	"encoding/json"
	"fmt"

	"zombiezen.com/go/sqlite"

	"github.com/rowdrop/rowdrop/internal/changeset"
	"github.com/rowdrop/rowdrop/internal/db"
	"github.com/rowdrop/rowdrop/internal/hlc"
	"github.com/rowdrop/rowdrop/internal/schema"
	"github.com/rowdrop/rowdrop/internal/state"
)

// A rebase merges another device's whole merged state (a snapshot: base
// tables plus row and cell clocks) into this device's, instead of
// replaying the changesets that produced it. It is how a new device joins
// and how a device whose next file has been collected catches up.
//
// The merge is a join of the two states, row by row:
//   - the row clocks are the later of both: Ins, WMax, Del (a row is
//     alive iff WMax > Del, as everywhere);
//   - per column, the value whose clock (RowMeta.CellClock) is later
//     wins, with its clock;
//   - values come from the base row of a live row, or the Dead blob of a
//     deleted or incomplete one.
//
// Every device that merged the same files holds the same clocks, so the
// join gives what replaying the missing files would have given, and it is
// idempotent: a rebase interrupted and run again changes nothing twice.
// The outcome goes through the same live and base steps as a changeset
// (applyLive, applyBase), so unexported local edits stay in live
// (liveTarget) and are exported later with a newer clock.
//
// Which losing values are conflicts: a value that loses to one the winning
// side had not seen. Each side's knowledge is, per device, the clock of the
// last file of that device it had merged (rowdrop_devices.last_hlc; a
// device knows all of its own edits): files of a device carry increasing
// clocks, so a value with clock (h, d) was seen iff h is at or below it.

// RebaseInput is the state to merge in.
type RebaseInput struct {
	Conn   *sqlite.Conn             // the snapshot database, read-only
	Tables map[string]*schema.Table // tables to merge; the snapshot's shape equals the local one
	Self   string                   // this device
	// LocalKnows and RemoteKnows give, per device, the clock of the last
	// file of it that this device, resp. the snapshot, includes.
	LocalKnows, RemoteKnows map[string]hlc.Timestamp
	// Path is the snapshot's file, attached for a set-wise join
	// (rebase_setwise.go); "" merges every row one by one.
	Path string
}

// rebaseBatch bounds the rows per live write transaction of a rebase.
const rebaseBatch = 500

// Rebase merges in.Conn's state into the live database and the base copy
// (see above). finish runs inside the base transaction of the last batch.
// progress, if set, is called after each batch with rows done and total.
func (e *Engine) Rebase(ctx context.Context, src Source, in RebaseInput, finish func() error, progress func(done, total int)) (Stats, error) {
	var st Stats
	// The snapshot's file log and re-keying records first: the rekeyer
	// below reads them.
	if err := e.State.MergeHistory(in.Conn); err != nil {
		return st, err
	}
	// The rekeyer holds the merged records: rebaseMoves uses them, and a
	// row created here that meets a snapshot row under the same INTEGER
	// id moves, as with a changeset (rekey.go, FixLocalMoves).
	rk, err := e.newRekeyer(Source{}) // no source file: the snapshot is not a changeset
	if err != nil {
		return st, err
	}
	if err := e.rebaseMoves(ctx, rk); err != nil {
		return st, err
	}
	if rk.active() {
		e.rk = rk
		defer func() { e.rk = nil }()
	}
	meta, err := e.State.NewMeta()
	if err != nil {
		return st, err
	}
	defer meta.Close()
	snapMeta, err := state.NewMetaOn(in.Conn)
	if err != nil {
		return st, fmt.Errorf("read snapshot metadata: %w", err)
	}
	defer snapMeta.Close()
	acc := newAccess()
	defer acc.close()
	snapAcc := newAccess()
	defer snapAcc.close()
	liveAcc := newAccess()
	defer liveAcc.close()

	total, err := state.CountRowMeta(in.Conn)
	if err != nil {
		return st, fmt.Errorf("count snapshot rows: %w", err)
	}
	// The rows new here, set-wise first; what that leaves goes on row by
	// row below.
	taken, rest, done, err := e.rebaseSetwise(ctx, in, &st, progress, int(total))
	if err != nil {
		return st, err
	}
	var batch []*item
	flush := func(last bool) error {
		var fin func() error
		if last {
			fin = finish
		}
		if len(batch) > 0 {
			if err := e.applyLive(ctx, batch, src, liveAcc, &st); err != nil {
				return err
			}
		}
		if len(batch) > 0 || last {
			end, err := db.Begin(e.State.Conn(), "IMMEDIATE")
			if err != nil {
				return fmt.Errorf("start write transaction on the base copy: %w", err)
			}
			u := &uctx{src: src, meta: meta, baseAcc: acc, liveAcc: liveAcc, st: &st}
			err = e.applyBase(batch, meta, acc)
			if err == nil {
				err = e.afterLive(batch, src, &st)
			}
			if err == nil {
				err = e.fixLive(ctx, batch, u)
			}
			if err == nil && last {
				err = e.resolveHeld(ctx, u)
			}
			if err == nil && fin != nil {
				err = fin()
			}
			if end(&err); err != nil {
				return err
			}
		}
		st.Changes += int64(len(batch))
		st.Batches++
		batch = batch[:0]
		if progress != nil {
			progress(done, int(total))
		}
		return nil
	}
	one := func(row state.RowKey) error {
		done++
		t := in.Tables[row.Table]
		if t == nil {
			return nil // a table not synced here (partial sync)
		}
		it, err := e.rebaseRow(t, row.PK, in, meta, snapMeta, acc, snapAcc)
		if err != nil {
			return err
		}
		if it != nil {
			batch = append(batch, it)
		}
		if len(batch) >= rebaseBatch {
			if err := flush(false); err != nil {
				return err
			}
			return ctx.Err()
		}
		return nil
	}
	for _, row := range rest {
		if err := one(row); err != nil {
			return st, err
		}
	}
	for row, err := range state.RowKeysInOrderExcept(in.Conn, taken) {
		if err == nil {
			err = one(row)
		}
		if err != nil {
			return st, err
		}
	}
	return st, flush(true)
}

// rebaseRow merges one row; nil means nothing changes here.
func (e *Engine) rebaseRow(t *schema.Table, pk []byte, in RebaseInput, meta, snapMeta *state.Meta, acc, snapAcc *access) (*item, error) {
	key, err := changeset.DecodeKey(pk)
	if err != nil || len(key) != len(t.PKCols()) {
		return nil, fmt.Errorf("snapshot row of %s: malformed key", t.Name)
	}
	r, err := snapMeta.Get(t.Name, pk)
	if err != nil || r == nil {
		return nil, fmt.Errorf("snapshot row of %s: %v", t.Name, err)
	}
	rv, err := snapAcc.get(in.Conn, "snap", t).Get(key)
	if err != nil {
		return nil, err
	}
	if rv == nil {
		rv = deadValues(r, len(t.Columns))
	}
	l, err := meta.Get(t.Name, pk)
	if err != nil {
		return nil, err
	}
	lb, err := acc.get(e.State.Conn(), "base", t).Get(key)
	if err != nil {
		return nil, err
	}
	lv := lb
	if lv == nil && l != nil {
		lv = deadValues(l, len(t.Columns))
	}
	o := joinRow(t, key, l, lv, r, rv, in)
	if l != nil && metaEqual(o.meta, l) && sameRow(o.base, lb) && len(o.conflicts) == 0 {
		return nil, nil
	}
	return &item{table: t, key: key, pk: pk, baseMeta: l, baseRow: lb, decision: o}, nil
}

// deadValues decodes the kept values of a deleted or incomplete row (all
// undefined if there are none).
func deadValues(m *state.RowMeta, n int) []changeset.Value {
	if m != nil && m.Dead != nil {
		if vals, err := changeset.DecodeKey(m.Dead); err == nil && len(vals) == n {
			return vals
		}
	}
	return make([]changeset.Value, n)
}

func knows(h map[string]hlc.Timestamp, self string, c state.Clock) bool {
	if c.IsZero() || c.Dev == self {
		return true
	}
	return c.HLC <= h[c.Dev]
}

// joinRow is the pure merge of one row's local state (meta l, nil if
// never seen, and values lv) with the snapshot's (r, rv).
func joinRow(t *schema.Table, key []changeset.Value, l *state.RowMeta, lv []changeset.Value, r *state.RowMeta, rv []changeset.Value, in RebaseInput) *outcome {
	n := len(t.Columns)
	if l == nil {
		l = &state.RowMeta{}
	}
	if lv == nil {
		lv = make([]changeset.Value, n)
	}
	localKnows := func(c state.Clock) bool { return knows(in.LocalKnows, in.Self, c) }
	remoteKnows := func(c state.Clock) bool { return knows(in.RemoteKnows, "", c) }
	m := &state.RowMeta{Ins: state.Max(l.Ins, r.Ins), WMax: state.Max(l.WMax, r.WMax), Del: state.Max(l.Del, r.Del)}
	o := &outcome{meta: m}
	addConflict := func(kind string, cols []string, winner, loser []changeset.Value, wcl, lcl state.Clock, note string) {
		js, _ := json.Marshal(cols)
		o.conflicts = append(o.conflicts, &state.Conflict{Kind: kind, Table: t.Name, Cols: string(js),
			Winner: encodeOpt(winner), WinnerDev: wcl.Dev, WinnerHLC: uint64(wcl.HLC),
			Loser: encodeOpt(loser), LoserDev: lcl.Dev, LoserHLC: uint64(lcl.HLC), Note: note})
	}
	vals := make([]changeset.Value, n)
	for i, col := range t.Columns {
		lx, rx := lv[i], rv[i]
		switch {
		case col.PK > 0:
			// The key as this device stores it, if it has the row.
			vals[i] = lx
			if lx.Kind == changeset.KindUndefined {
				vals[i] = rx
			}
			if vals[i].Kind == changeset.KindUndefined {
				vals[i] = key[pkIndex(t, i)]
			}
			continue
		case t.Local[col.Name]:
			// Device-local: this device's value stays; a row new here
			// takes the snapshot's placeholder.
			vals[i] = lx
			if lx.Kind == changeset.KindUndefined {
				vals[i] = rx
				if i == t.StorageKey() {
					// Matched by natural key: the snapshot's id is the
					// other device's; a row new here gets a fresh one.
					vals[i] = changeset.Null()
				}
			}
			continue
		}
		lc, rc := l.CellClock(col.Name), r.CellClock(col.Name)
		win, wc, lose, loseC, loserLocal := lx, lc, rx, rc, false
		if rc.Compare(lc) > 0 {
			win, wc, lose, loseC, loserLocal = rx, rc, lx, lc, true
		}
		if win.Kind == changeset.KindUndefined {
			// The winning side never had the value (an incomplete row):
			// the other side's is the best known.
			win, wc = lose, loseC
			lose = changeset.Value{}
		}
		vals[i] = win
		if wc.Compare(m.Ins) > 0 {
			if m.Cells == nil {
				m.Cells = map[string]state.Clock{}
			}
			m.Cells[col.Name] = wc
		}
		if lose.Kind != changeset.KindUndefined && !lose.Equal(win) {
			seen := remoteKnows(loseC)
			if !loserLocal {
				seen = localKnows(loseC)
			}
			if !seen {
				addConflict(KindCell, []string{col.Name}, []changeset.Value{win}, []changeset.Value{lose}, wc, loseC, "concurrent values met when merging a snapshot")
			}
		}
	}
	lAlive, rAlive, mAlive := l.Alive(), r.Alive(), m.Alive()
	switch {
	case lAlive && !mAlive && !remoteKnows(l.WMax):
		addConflict(KindDeleted, allCols(t), nil, lv, m.Del, l.WMax, "the row was deleted on a device that had not seen all its edits; this is the row as it was here")
	case rAlive && !mAlive && !localKnows(r.WMax):
		addConflict(KindEditDeleted, allCols(t), nil, rv, m.Del, r.WMax, "an edit lost to a later delete of the row")
	case !lAlive && !l.Del.IsZero() && mAlive && !remoteKnows(l.Del):
		addConflict(KindDeleteLost, allCols(t), vals, lv, m.WMax, l.Del, "a delete lost to a later edit; the row stays")
	case !rAlive && !r.Del.IsZero() && mAlive && !localKnows(r.Del):
		addConflict(KindDeleteLost, allCols(t), vals, rv, m.WMax, r.Del, "a delete lost to a later edit; the row stays")
	}
	complete := true
	for _, v := range vals {
		if v.Kind == changeset.KindUndefined {
			complete = false
		}
	}
	if mAlive && complete {
		o.base = vals
	} else {
		m.Dead = changeset.EncodeKey(vals)
	}
	return o
}

// pkIndex returns the position in the key of primary-key column i.
func pkIndex(t *schema.Table, i int) int {
	for k, c := range t.PKCols() {
		if c == i {
			return k
		}
	}
	return 0
}

// metaEqual compares two rows' metadata as Put would store them.
func metaEqual(a, b *state.RowMeta) bool {
	if a.Ins != b.Ins || a.WMax != b.WMax || a.Del != b.Del || string(a.Dead) != string(b.Dead) || (a.Dead == nil) != (b.Dead == nil) {
		return false
	}
	count := func(m *state.RowMeta) map[string]state.Clock {
		out := map[string]state.Clock{}
		for k, v := range m.Cells {
			if v.Compare(m.Ins) > 0 {
				out[k] = v
			}
		}
		return out
	}
	ca, cb := count(a), count(b)
	if len(ca) != len(cb) {
		return false
	}
	for k, v := range ca {
		if cb[k] != v {
			return false
		}
	}
	return true
}
