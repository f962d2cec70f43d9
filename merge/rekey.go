package merge

// INTEGER primary-key collisions. Two offline devices that each insert a
// row into a table keyed by an INTEGER column often pick the same id for
// different rows. Both rows must survive on every device, and the rows
// that reference them through declared foreign keys must follow them.
//
// The rule, the same on every device whatever the arrival order:
//   - the row inserted first (the earlier insert clock) keeps the id; the
//     other row (the mover) lives under a new id, derived from the id and
//     the mover's insert clock: a negative number, so
//     the app's own next ids (max+1) are not disturbed;
//   - a change that names the old id means the mover's row when its
//     writer had seen the mover's insert and not the keeper's (the writer
//     was the mover's device, or learnt of it first); otherwise it means
//     the keeper's row. This holds for the key of a change to the table
//     and for foreign-key values in changes to referencing tables, and for
//     the references already merged here when the collision is found (a
//     value's writer is the file of its cell clock; rowdrop_filelog keeps
//     each file's causal context);
//   - when the remote insert meets a row created here and not exported
//     yet, the local row is the mover (it will be exported later, with a
//     later clock): it moves to its new id here before it is ever
//     exported, and local references follow it;
//   - two inserts collide when the later one's writer had not seen the
//     earlier: whether the earlier row is alive, deleted or held out on a
//     UNIQUE clash when the later arrives is arrival order and does not
//     matter (its metadata moves, or the kept values of a deleted row). An
//     insert whose writer had seen the row there reuses the id (it saw
//     the row deleted). Identical values are one row only as two devices'
//     pre-existing data (the initial clock); two later inserts of the same
//     values are two rows, else whether they merged would depend on
//     whether they met each other or a third row first;
//   - a file's re-keyed tables apply parents first (FileOrderTables), so
//     a parent's collisions in the file are known before references to
//     it are read; a collision found later re-points the merged rows
//     that reference the old id, those held out on a UNIQUE clash too.
//
//   - lineages collide, not rows: an id reused by a device that had seen
//     the row there deleted carries on that row's lineage (RowMeta.Lin,
//     the first insert clock under the id), and a collision compares the
//     lineages' first inserts, so the reusing device decides as one that
//     met the other insert while the first row lived. Two devices that
//     reuse one lineage's id concurrently collide by their rows' inserts.
//
// Known gap: a reference from a device that had seen the deleted row but
// not the reuse is still taken for the row that now holds the id.

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"sort"
	"strings"

	"zombiezen.com/go/sqlite"
	"zombiezen.com/go/sqlite/sqlitex"

	"github.com/rowdrop/rowdrop/internal/changeset"
	"github.com/rowdrop/rowdrop/internal/db"
	"github.com/rowdrop/rowdrop/internal/hlc"
	"github.com/rowdrop/rowdrop/internal/rows"
	"github.com/rowdrop/rowdrop/internal/schema"
	"github.com/rowdrop/rowdrop/internal/state"
)

// KindRekey marks a row that moved to a new id after an id collision.
const KindRekey = "rekey"

// rekeyer holds what re-keying needs during one Apply. refs is read-only
// after construction (the live goroutine reads it); the rest is used by
// the deciding goroutine only.
type rekeyer struct {
	st      *state.Dir
	src     Source
	parents map[string]*schema.Table  // tables keyed by one INTEGER column
	refs    map[string][]fkRef        // child table -> its references to parents
	byKey   map[string][]*state.Rekey // parent table \x00 encoded old key
	files   map[state.Clock]*state.FileInfo
}

// fkRef is a declared foreign key from column col of a child table to a
// parent's INTEGER key.
type fkRef struct {
	child  *schema.Table
	col    int
	parent *schema.Table
}

// integerKey reports a table keyed by one INTEGER column (a rowid alias:
// the keys apps allocate as max+1).
func integerKey(t *schema.Table) bool {
	if t.HasIdentity() {
		return false // matched by natural key: its id is device-local
	}
	pk := t.PKCols()
	return len(pk) == 1 && strings.EqualFold(strings.TrimSpace(t.Columns[pk[0]].Type), "INTEGER")
}

func (e *Engine) newRekeyer(src Source) (*rekeyer, error) {
	r, err := e.rekeyTables()
	if err != nil {
		return nil, err
	}
	if r.src = src; !r.active() {
		return r, nil
	}
	all, err := e.State.Rekeys()
	if err != nil {
		return nil, err
	}
	for _, rk := range all {
		r.add(rk)
	}
	return r, nil
}

// FileOrderTables lists the tables whose changes must be applied in file
// order: with re-keying on, the INTEGER-keyed tables and the tables
// referencing them (collision checks and reference redirects read their
// changes in file order). Other tables' changes may be reordered. Each
// maps to its rank: a file's changes to lower-ranked tables go first, so
// parents come before the tables referencing them and a parent's
// collisions in the file are known before a reference to it is read (a
// reference read earlier names an id whose meaning is not settled yet: it
// may merge a row with another device's identical-looking one, or clash on
// a UNIQUE index, and what collides later cannot undo that alike on every
// device). Within a table, file order.
func (e *Engine) FileOrderTables() (map[string]int, error) {
	r, err := e.rekeyTables()
	if err != nil {
		return nil, err
	}
	rules, err := e.appRules()
	if err != nil {
		return nil, err
	}
	out := map[string]int{}
	for _, t := range e.Tables {
		if r.parents[strings.ToLower(t.Name)] != nil || len(r.refs[t.Name]) > 0 {
			out[t.Name] = rules.rank[t]
		}
	}
	return out, nil
}

// rekeyTables returns a rekeyer for the re-keyed tables and the
// references to them, with no re-keying records loaded.
func (e *Engine) rekeyTables() (*rekeyer, error) {
	if e.fks == nil {
		f, err := e.readForeignKeys()
		if err != nil {
			return nil, err
		}
		e.fks = f
	}
	return &rekeyer{st: e.State, parents: e.fks.parents, refs: e.fks.refs,
		byKey: map[string][]*state.Rekey{}, files: map[state.Clock]*state.FileInfo{}}, nil
}

// foreignKeys are the re-keyed tables (by lower-case name) and the
// references to them (by child table); read once per Engine, whose tables
// are fixed for its life (each import builds one), instead of twice per
// imported file.
type foreignKeys struct {
	parents map[string]*schema.Table
	refs    map[string][]fkRef
}

func (e *Engine) readForeignKeys() (*foreignKeys, error) {
	r := &foreignKeys{parents: map[string]*schema.Table{}, refs: map[string][]fkRef{}}
	for name, t := range e.Tables {
		if e.Rekey && integerKey(t) {
			r.parents[strings.ToLower(name)] = t
		}
	}
	if len(r.parents) == 0 {
		return r, nil
	}
	// References the app keeps by hand, in triggers (apprules.go).
	rules, err := e.appRules()
	if err != nil {
		return nil, err
	}
	for _, tr := range rules.refs {
		if p := r.parents[strings.ToLower(tr.parent.Name)]; p != nil && !hasRef(r.refs[tr.child.Name], tr.col, p) {
			r.refs[tr.child.Name] = append(r.refs[tr.child.Name], fkRef{child: tr.child, col: tr.col, parent: p})
		}
	}
	for _, t := range e.Tables {
		err := sqlitex.Execute(e.State.Conn(), `SELECT "table", "from", "to" FROM pragma_foreign_key_list(?)`, &sqlitex.ExecOptions{
			Args: []any{t.Name},
			ResultFunc: func(s *sqlite.Stmt) error {
				p := r.parents[strings.ToLower(s.ColumnText(0))]
				if p == nil {
					return nil
				}
				to := s.ColumnText(2)
				if to != "" && !strings.EqualFold(to, p.Columns[p.PKCols()[0]].Name) {
					return nil // references another column than the key
				}
				if col := t.ColIndex(s.ColumnText(1)); col >= 0 && !hasRef(r.refs[t.Name], col, p) {
					r.refs[t.Name] = append(r.refs[t.Name], fkRef{child: t, col: col, parent: p})
				}
				return nil
			}})
		if err != nil {
			return nil, fmt.Errorf("read foreign keys of %s: %w", t.Name, err)
		}
	}
	return r, nil
}

// hasRef reports whether refs holds column col's reference to parent p.
func hasRef(refs []fkRef, col int, p *schema.Table) bool {
	for _, f := range refs {
		if f.col == col && f.parent == p {
			return true
		}
	}
	return false
}

func (r *rekeyer) active() bool { return len(r.parents) > 0 }

func (r *rekeyer) add(rk *state.Rekey) {
	k := strings.ToLower(rk.Table) + "\x00" + string(rk.OldPK)
	r.byKey[k] = append(r.byKey[k], rk)
}

func (r *rekeyer) lookup(t *schema.Table, v changeset.Value) []*state.Rekey {
	if len(r.byKey) == 0 || v.Kind != changeset.KindInteger {
		return nil
	}
	return r.byKey[strings.ToLower(t.Name)+"\x00"+string(changeset.EncodeKey([]changeset.Value{v}))]
}

// writer is what a value's writer had applied when it wrote it.
type writer struct {
	dev  string
	clk  state.Clock
	seen map[string]uint64
}

func (r *rekeyer) current() writer {
	return writer{dev: r.src.Device, clk: r.src.Clock, seen: r.src.Seen}
}

func (r *rekeyer) file(c state.Clock) (*state.FileInfo, error) {
	if c == r.src.Clock {
		return &state.FileInfo{Dev: r.src.Device, Seq: r.src.Seq, HLC: c.HLC, Seen: r.src.Seen}, nil
	}
	if f, ok := r.files[c]; ok {
		return f, nil
	}
	f, err := r.st.FileByClock(c.Dev, c.HLC)
	if err != nil {
		return nil, err
	}
	r.files[c] = f
	return f, nil
}

// writerOf returns the writer of a value with clock c, or nil if unknown.
func (r *rekeyer) writerOf(c state.Clock) (*writer, error) {
	f, err := r.file(c)
	if err != nil || f == nil {
		return nil, err
	}
	return &writer{dev: c.Dev, clk: c, seen: f.Seen}, nil
}

// hadSeen reports whether w had applied the insert with clock ins.
func (r *rekeyer) hadSeen(w writer, ins state.Clock) (bool, error) {
	if w.dev == ins.Dev {
		return w.clk.HLC >= ins.HLC, nil // a device's clock only grows
	}
	f, err := r.file(ins)
	if err != nil || f == nil {
		return false, err
	}
	return w.seen[ins.Dev] >= f.Seq, nil
}

// candidates lists the insert clocks of every row known to have been
// inserted under id v of t, earliest first. The earliest lives under v;
// every other one under its mover key.
func (r *rekeyer) candidates(t *schema.Table, v changeset.Value) []state.Clock {
	var out []state.Clock
	has := map[state.Clock]bool{}
	for _, rk := range r.lookup(t, v) {
		for _, c := range []state.Clock{rk.Keeper, rk.Mover} {
			if !has[c] {
				has[c] = true
				out = append(out, c)
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Compare(out[j]) < 0 })
	return out
}

// idFor is the id under which the row inserted with clock c lives.
func idFor(t *schema.Table, v changeset.Value, cands []state.Clock, c state.Clock) changeset.Value {
	if len(cands) == 0 || c == cands[0] {
		return v
	}
	return moverKey(t, []changeset.Value{v}, c)
}

// resolve returns the id that w meant when it named id v of t: the row
// it saw first there, which is the earliest-inserted of the rows it had
// seen (a device that sees a second row under an id it uses keeps the
// earlier one there). v itself when nothing is known.
func (r *rekeyer) resolve(w writer, t *schema.Table, v changeset.Value) (changeset.Value, error) {
	cands := r.candidates(t, v)
	for _, c := range cands {
		seen, err := r.hadSeen(w, c)
		if err != nil {
			return v, err
		}
		if seen {
			return r.reuseMeant(w, t, v, c, idFor(t, v, cands, c))
		}
	}
	return v, nil
}

// reuseMeant is the id w meant by v when the first row it had seen there
// is lineage ins's first, living under id: id, unless w had seen a row
// that reused the lineage and lost, to a concurrent reuse w had not seen,
// the lineage's id (rows reusing one lineage concurrently collide by their
// own inserts, see detect and detectReuse): that row is the one w saw
// last under v, and it lives under its mover key.
func (r *rekeyer) reuseMeant(w writer, t *schema.Table, v changeset.Value, ins state.Clock, id changeset.Value) (changeset.Value, error) {
	for _, rk := range r.lookup(t, v) {
		if rk.Keeper.Compare(ins) <= 0 || rk.Mover.Compare(ins) <= 0 {
			continue
		}
		if seen, err := r.hadSeen(w, rk.Mover); err != nil || !seen {
			if err != nil {
				return id, err
			}
			continue
		}
		if seen, err := r.hadSeen(w, rk.Keeper); err != nil || seen {
			if err != nil {
				return id, err
			}
			continue
		}
		// Both rows carry on ins's lineage: each one's writer had seen it.
		same := true
		for _, c := range []state.Clock{rk.Keeper, rk.Mover} {
			iw, err := r.writerOf(c)
			if err != nil {
				return id, err
			}
			if iw == nil {
				same = false
				break
			}
			if seen, err := r.hadSeen(*iw, ins); err != nil || !seen {
				if err != nil {
					return id, err
				}
				same = false
				break
			}
		}
		if same {
			return moverKey(t, []changeset.Value{v}, rk.Mover), nil
		}
	}
	return id, nil
}

// ValidRekey reports whether a re-keying record of table t is one rowdrop
// writes: an INTEGER-keyed table, an integer old id, and the new id that
// the mover's insert clock gives (a snapshot reader checks this).
func ValidRekey(t *schema.Table, oldPK, newPK []byte, mover state.Clock) bool {
	if !integerKey(t) {
		return false
	}
	old, err := changeset.DecodeKey(oldPK)
	if err != nil || len(old) != 1 || old[0].Kind != changeset.KindInteger {
		return false
	}
	return string(changeset.EncodeKey([]changeset.Value{moverKey(t, old, mover)})) == string(newPK)
}

// moverKey is the new id of a mover, named by its own insert clock: the
// same on every device, whichever keeper it met first (with three rows
// under one id, the middle one may meet either).
func moverKey(t *schema.Table, key []changeset.Value, mover state.Clock) changeset.Value {
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00%x\x00%d\x00%s", strings.ToLower(t.Name), changeset.EncodeKey(key), mover.HLC, mover.Dev)
	v := int64(binary.BigEndian.Uint64(h.Sum(nil)[:8]) >> 2)
	return changeset.Int(-(v + 1))
}

// redirect rewrites, in change c of table t, the keys and references that
// its writer meant for rows that have since moved.
func (r *rekeyer) redirect(t *schema.Table, c *changeset.Change) error {
	if len(r.byKey) == 0 {
		return nil
	}
	if p := r.parents[strings.ToLower(t.Name)]; p != nil {
		pkc := t.PKCols()[0]
		v := c.Old
		if c.Op == changeset.OpInsert {
			v = c.New
		}
		cands := r.candidates(t, v[pkc])
		if c.Op == changeset.OpInsert {
			for _, cl := range cands {
				if cl == r.src.Clock {
					v[pkc] = idFor(t, v[pkc], cands, cl) // a known row's insert, again
				}
			}
		} else if len(cands) > 0 {
			nv, err := r.resolve(r.current(), t, v[pkc])
			if err != nil {
				return err
			}
			v[pkc] = nv
		}
	}
	for _, ref := range r.refs[t.Name] {
		for _, vals := range [][]changeset.Value{c.Old, c.New} {
			if vals == nil || vals[ref.col].Kind != changeset.KindInteger {
				continue
			}
			nv, err := r.resolve(r.current(), ref.parent, vals[ref.col])
			if err != nil {
				return err
			}
			vals[ref.col] = nv
		}
	}
	return nil
}

// move is a row re-keyed or re-pointed by a collision: column col of the
// row under from takes val, and the row then lives under to.
type move struct {
	t        *schema.Table
	from, to []changeset.Value
	col      int
	val      changeset.Value
	liveOnly bool // a reference made here and not exported yet
	// old, for a merged reference re-pointed (mergedRefs), is the id it
	// named: a live row whose column holds another value was re-pointed
	// here since, not exported yet, and keeps that (base alone moves, so
	// the re-point is exported).
	old      *changeset.Value
	metaOnly bool // a deleted or held row: only its metadata (and kept values) move
	held     bool // a row held on a UNIQUE clash (unique.go)
}

// detect checks an insert into an INTEGER-keyed table against the row
// already under its key. On a collision it decides keeper and mover,
// records the decision, and either sends the incoming row to its new id or
// plans the move of the existing row (and of the references written for
// it). It runs with every earlier batch settled, so base is current.
func (e *Engine) detect(r *rekeyer, meta *state.Meta, acc *access, it *item) (bool, error) {
	c, t := it.change, it.table
	if c.Op != changeset.OpInsert || r.parents[strings.ToLower(t.Name)] == nil {
		return false, nil
	}
	cl := r.src.Clock
	m, err := meta.Get(t.Name, it.pk)
	if err != nil || m == nil || m.Ins.IsZero() || m.Ins == cl {
		return false, err
	}
	// The row inserted there: in base if alive, else its kept values. A
	// deleted row collides too: whether its delete arrived before this
	// insert or after is arrival order, which must not decide (a device
	// that met the insert while the row lived moved one of them).
	b, err := acc.get(e.State.Conn(), "base", t).Get(it.key)
	if err != nil {
		return false, err
	}
	// Not in base: deleted, or held out on a UNIQUE clash (alive by its
	// clocks, unique.go), or incomplete (an edit whose insert has not
	// arrived: no row to collide with).
	dead, held := b == nil && !m.Alive(), b == nil && m.Alive()
	if b == nil {
		if m.Dead == nil {
			return false, nil
		}
		if b, err = changeset.DecodeKey(m.Dead); err != nil || len(b) != len(t.Columns) || !complete(b) {
			return false, nil
		}
	}
	// Identical rows are one row only as two devices' pre-existing data
	// (both stamped with the initial clock: always the earliest, so they
	// always meet under the id). Two later inserts of the same values are
	// two rows: merged where they meet first they would be one row, while
	// a device that meets either with a third row under the id first
	// moves each to its own new id.
	if rowEqual(t, b, c.New) && m.Ins.HLC <= initialClock && cl.HLC <= initialClock {
		return false, nil
	}
	// An insert whose writer had seen the row there reuses the id on
	// purpose (it saw the row deleted): no collision, and the new row
	// carries on the id's lineage.
	w := r.current()
	occ := m.Lineage()
	if seen, err := r.hadSeen(w, m.Ins); err != nil || seen {
		it.lin = occ
		return false, err
	}
	// Lineages collide, not rows: the id belongs to the lineage whose
	// first insert is earlier, whichever of its rows holds the id now (a
	// device that met the other insert while the first row lived moved
	// that one). The incoming insert's lineage is the earliest insert
	// under the id that its writer had seen, else its own.
	inc, err := r.lineageOf(w, t, it.key[0], occ, cl)
	if err != nil {
		return false, err
	}
	// A lineage that loses moves whole, under the new id its first
	// insert names: its rows, whichever holds the id on a device, meet
	// there on every device.
	keeper, mover, incMoves := occ, inc, true
	switch inc.Compare(occ) {
	case -1:
		keeper, mover, incMoves = inc, occ, false
	case 0:
		// Two rows reusing one lineage's id, neither writer had seen
		// the other's: the row inserted first keeps it.
		keeper, mover = m.Ins, cl
		if cl.Compare(m.Ins) < 0 {
			keeper, mover, incMoves = cl, m.Ins, false
		}
	}
	if inc != cl && (!incMoves || inc == mover) {
		it.lin = inc
	}
	pkc := t.PKCols()[0]
	nk := moverKey(t, it.key, mover)
	rk := &state.Rekey{Table: t.Name, OldPK: it.pk, NewPK: changeset.EncodeKey([]changeset.Value{nk}), Keeper: keeper, Mover: mover}
	r.add(rk)
	it.rekeyRecord = rk
	old := it.key
	if incMoves {
		c.New[pkc] = nk
		it.key = []changeset.Value{nk}
		it.pk = rk.NewPK
		if inc != cl {
			if err := e.detectReuse(r, meta, acc, it, old, inc, w); err != nil {
				return false, err
			}
		}
	} else {
		// A deleted or held mover has no row to move, only its metadata
		// (live may hold a row created here under the id: FixLocalMoves
		// moves it).
		it.moves = append(it.moves, move{t: t, from: old, to: []changeset.Value{nk}, col: pkc, val: nk, metaOnly: dead || held, held: held})
		it.keyVacated = true
	}
	// References already merged here that name the old id: each goes to
	// the row its writer meant (files arrive in causal order, see
	// importer.Causal, so every row a writer had seen is known by now).
	// References naming a moved row's new id are explicit and stay.
	refs, err := r.mergedRefs(e.State.Conn(), meta, t, old[0])
	if err != nil {
		return false, err
	}
	for _, rt := range refs {
		if !rt.want.Equal(old[0]) {
			it.moves = append(it.moves, rt.move())
		}
	}
	moved := false
	if !incMoves {
		// A re-apply after a crash between the live and the base commit
		// finds the move already made in live: references made since
		// then were made to the row that now holds the id.
		// (Not through an access: rows.Table statements are the
		// connection's cached ones, finalized by their one owner.)
		q := fmt.Sprintf("SELECT count(*) FROM main.%s WHERE %s = ?", db.Quote(t.Name), db.Quote(t.Columns[pkc].Name))
		err := sqlitex.Execute(e.Live, q, &sqlitex.ExecOptions{Args: []any{nk.Int}, ResultFunc: func(s *sqlite.Stmt) error {
			moved = s.ColumnInt64(0) > 0
			return nil
		}})
		if err != nil {
			return false, fmt.Errorf("read %s in the live database: %w", t.Name, err)
		}
	}
	if !incMoves && !moved && !dead && !held {
		// References made here and not exported yet were made when the
		// moving row held the id: they follow it. (Every batch is settled,
		// so this goroutine may read live.)
		for _, ref := range r.refsTo(t) {
			keys, err := referencing(e.Live, ref, old[0])
			if err != nil {
				return false, err
			}
			for _, ck := range keys {
				b, err := acc.get(e.State.Conn(), "base", ref.child).Get(ck)
				if err != nil {
					return false, err
				}
				if b != nil && b[ref.col].Equal(old[0]) {
					continue // merged before: decided above
				}
				mv := refMove(ref, ck, nk)
				mv.liveOnly = true
				it.moves = append(it.moves, mv)
			}
		}
	}
	e.log().Info("two devices inserted different rows under one id: both kept, the later one under a new id",
		"table", t.Name, "id", old[0].String(), "new_id", nk.String(), "keeper", keeper.Dev, "mover", mover.Dev, "moved_references", len(it.moves))
	return true, nil
}

// detectReuse checks an insert that carries on lineage inc, which lost id
// old and moved whole to it.key, against the row there: another row
// reusing the same lineage, which this insert's writer w had not seen,
// collides with it as under old (detect: the row inserted first keeps the
// lineage's id, the other moves to the new id its insert names under
// old). So a device that met the two reuses before the lineage lost old
// and one that met them after keep the same rows under the same ids.
func (e *Engine) detectReuse(r *rekeyer, meta *state.Meta, acc *access, it *item, old []changeset.Value, inc state.Clock, w writer) error {
	t, c, cl := it.table, it.change, r.src.Clock
	m, err := meta.Get(t.Name, it.pk)
	if err != nil || m == nil || m.Ins.IsZero() || m.Ins == cl || m.Lineage() != inc {
		return err
	}
	if seen, err := r.hadSeen(w, m.Ins); err != nil || seen {
		return err // reused after seeing it deleted: the lineage goes on
	}
	b, err := acc.get(e.State.Conn(), "base", t).Get(it.key)
	if err != nil {
		return err
	}
	dead, held := b == nil && !m.Alive(), b == nil && m.Alive()
	if b == nil && m.Dead == nil {
		return nil // incomplete: no row to collide with
	}
	keeper, mover, incMoves := m.Ins, cl, true
	if cl.Compare(m.Ins) < 0 {
		keeper, mover, incMoves = cl, m.Ins, false
	}
	pkc := t.PKCols()[0]
	nk := moverKey(t, old, mover)
	rk := &state.Rekey{Table: t.Name, OldPK: changeset.EncodeKey(old), NewPK: changeset.EncodeKey([]changeset.Value{nk}), Keeper: keeper, Mover: mover}
	r.add(rk)
	it.rekeyReuse = rk
	if incMoves {
		c.New[pkc] = nk
		it.key = []changeset.Value{nk}
		it.pk = rk.NewPK
		return nil
	}
	it.moves = append(it.moves, move{t: t, from: it.key, to: []changeset.Value{nk}, col: pkc, val: nk, metaOnly: dead || held, held: held})
	it.keyVacated = true
	// References merged here to the row that moves follow it.
	refs, err := r.mergedRefsAt(e.State.Conn(), meta, t, it.key[0], old[0])
	if err != nil {
		return err
	}
	for _, rt := range refs {
		if !rt.want.Equal(it.key[0]) {
			it.moves = append(it.moves, rt.move())
		}
	}
	e.log().Info("two devices reused one moved lineage's id concurrently: both kept, the later one under a new id",
		"table", t.Name, "id", old[0].String(), "new_id", nk.String(), "keeper", keeper.Dev, "mover", mover.Dev)
	return nil
}

// lineageOf is the first insert clock of the lineage that writer w's
// insert (clock cl) under id v of t carries on: occ, the lineage of the
// row there, if w had seen its first insert; else the earliest row known
// to have been inserted under v that w had seen (it held v for w); else
// cl itself.
func (r *rekeyer) lineageOf(w writer, t *schema.Table, v changeset.Value, occ, cl state.Clock) (state.Clock, error) {
	if seen, err := r.hadSeen(w, occ); err != nil || seen {
		return occ, err
	}
	for _, c := range r.candidates(t, v) {
		if c.Compare(cl) >= 0 {
			break
		}
		seen, err := r.hadSeen(w, c)
		if err != nil {
			return cl, err
		}
		if seen {
			return c, nil
		}
	}
	return cl, nil
}

// initialClock is the clock of a device's first export
// (export.InitialClock), which stamps the data it held before it synced.
const initialClock = 1

// refsTo lists the declared references to parent table t.
func (r *rekeyer) refsTo(t *schema.Table) []fkRef {
	var out []fkRef
	for _, refs := range r.refs {
		for _, ref := range refs {
			if ref.parent == t {
				out = append(out, ref)
			}
		}
	}
	return out
}

// refMove is the move that makes child row ck of ref point at v (its key
// changes too when the reference is part of it).
func refMove(ref fkRef, ck []changeset.Value, v changeset.Value) move {
	to := append([]changeset.Value(nil), ck...)
	for i, pc := range ref.child.PKCols() {
		if pc == ref.col {
			to[i] = v
		}
	}
	return move{t: ref.child, from: ck, to: to, col: ref.col, val: v}
}

// repointDead points the references in the kept values of a deleted row
// of t (m.Dead) at the rows their writers meant: a collision found while
// the row was deleted re-pointed the live rows only (mergedRefs), and an
// edit that brings the row back would revive the old id, which now means
// another row. References that are part of the key stay.
func (r *rekeyer) repointDead(t *schema.Table, m *state.RowMeta) error {
	refs := r.refs[t.Name]
	if m.Dead == nil || len(refs) == 0 || len(r.byKey) == 0 {
		return nil
	}
	vals, err := changeset.DecodeKey(m.Dead)
	if err != nil || len(vals) != len(t.Columns) {
		return nil
	}
	changed := false
	for _, ref := range refs {
		v := vals[ref.col]
		if t.Columns[ref.col].PK > 0 || len(r.lookup(ref.parent, v)) == 0 {
			continue
		}
		w, err := r.writerOf(m.CellClock(t.Columns[ref.col].Name))
		if err != nil || w == nil {
			return err
		}
		nv, err := r.resolve(*w, ref.parent, v)
		if err != nil {
			return err
		}
		if !nv.Equal(v) {
			vals[ref.col], changed = nv, true
		}
	}
	if changed {
		m.Dead = changeset.EncodeKey(vals)
	}
	return nil
}

// refTarget is a merged reference to an old id and the id its writer
// meant; held: the row is held out of its table on a UNIQUE clash
// (unique.go), its values only in its metadata.
type refTarget struct {
	ref  fkRef
	key  []changeset.Value
	want changeset.Value
	held bool
	old  changeset.Value // the id the reference names
}

// move is the move that makes the referencing row point at the id its
// writer meant.
func (rt refTarget) move() move {
	mv := refMove(rt.ref, rt.key, rt.want)
	mv.metaOnly, mv.held = rt.held, rt.held
	mv.old = &rt.old
	return mv
}

// mergedRefs lists the rows in base referencing old id v of t whose
// writer is known, each with the id that writer meant, and the rows held
// out of their table on a UNIQUE clash that do (a held row may clash only
// because its reference still names the old id: once it names the row
// its writer meant, resolveHeld brings it back, as on a device that met
// the collision before the clash).
func (r *rekeyer) mergedRefs(base *sqlite.Conn, meta *state.Meta, t *schema.Table, v changeset.Value) ([]refTarget, error) {
	return r.mergedRefsAt(base, meta, t, v, v)
}

// mergedRefsAt is mergedRefs for the rows referencing id named of t, each
// with the id its writer meant by v (detectReuse: named is where v's
// lineage moved).
func (r *rekeyer) mergedRefsAt(base *sqlite.Conn, meta *state.Meta, t *schema.Table, named, v changeset.Value) ([]refTarget, error) {
	var out []refTarget
	add := func(ref fkRef, ck []changeset.Value, cm *state.RowMeta, held bool) error {
		w, err := r.writerOf(cm.CellClock(ref.child.Columns[ref.col].Name))
		if err != nil || w == nil {
			return err
		}
		want, err := r.resolve(*w, t, v)
		if err != nil {
			return err
		}
		out = append(out, refTarget{ref, ck, want, held, named})
		return nil
	}
	var heldRows []state.HeldRow
	for i, ref := range r.refsTo(t) {
		keys, err := referencing(base, ref, named)
		if err != nil {
			return nil, err
		}
		for _, ck := range keys {
			cm, err := meta.Get(ref.child.Name, changeset.EncodeKey(ck))
			if err != nil {
				return nil, err
			}
			if cm == nil {
				continue
			}
			if err := add(ref, ck, cm, false); err != nil {
				return nil, err
			}
		}
		if i == 0 {
			if heldRows, err = r.st.HeldRows(); err != nil {
				return nil, err
			}
		}
		for _, h := range heldRows {
			if h.Table != ref.child.Name {
				continue
			}
			cm, err := meta.Get(h.Table, h.PK)
			if err != nil {
				return nil, err
			}
			if cm == nil || cm.Dead == nil {
				continue
			}
			vals, err := changeset.DecodeKey(cm.Dead)
			if err != nil || len(vals) != len(ref.child.Columns) || !vals[ref.col].Equal(named) {
				continue
			}
			ck, err := changeset.DecodeKey(h.PK)
			if err != nil {
				continue
			}
			if err := add(ref, ck, cm, true); err != nil {
				return nil, err
			}
		}
	}
	return out, nil
}

// referencing lists the keys of child rows in base whose column references v
// (an INTEGER id, or a TEXT or BLOB key of a trigger-kept reference).
func referencing(conn *sqlite.Conn, ref fkRef, v changeset.Value) ([][]changeset.Value, error) {
	var cols []string
	for _, i := range ref.child.PKCols() {
		cols = append(cols, db.Quote(ref.child.Columns[i].Name))
	}
	q := fmt.Sprintf("SELECT %s FROM main.%s WHERE %s = ?", strings.Join(cols, ","), db.Quote(ref.child.Name), db.Quote(ref.child.Columns[ref.col].Name))
	var out [][]changeset.Value
	err := sqlitex.Execute(conn, q, &sqlitex.ExecOptions{Args: []any{db.ArgOf(v)}, ResultFunc: func(s *sqlite.Stmt) error {
		k := make([]changeset.Value, len(cols))
		for i := range k {
			k[i] = db.Column(s, i)
		}
		out = append(out, k)
		return nil
	}})
	if err != nil {
		return nil, fmt.Errorf("find rows of %s referencing %s: %w", ref.child.Name, ref.parent.Name, err)
	}
	return out, nil
}

// applyMoves performs planned moves on one database (live or base). In
// live they run with the app's triggers off (see quietly).
func applyMoves(conn *sqlite.Conn, which string, acc *access, moves []move) error {
	if len(moves) == 0 {
		return nil
	}
	if which == "live" {
		return quietly(conn, func() error { return applyMovesOn(conn, which, acc, moves) })
	}
	return applyMovesOn(conn, which, acc, moves)
}

func applyMovesOn(conn *sqlite.Conn, which string, acc *access, moves []move) error {
	for _, mv := range moves {
		if mv.metaOnly || (mv.liveOnly && which != "live") {
			continue
		}
		rt := acc.get(conn, which, mv.t)
		row, err := rt.Get(mv.from)
		if err != nil {
			return err
		}
		if row == nil || which == "live" && mv.old != nil && !row[mv.col].Equal(*mv.old) {
			// Live keeps what was done here since (deleted, or
			// re-pointed), not exported yet; base moves to mv.to, which
			// the hints must name so that capture compares it too.
			if which == "live" {
				if err := hintMoved(conn, mv.t, mv.to); err != nil {
					return err
				}
			}
			continue
		}
		if !sameRow(mv.from, mv.to) {
			// Already moved (a re-apply after a crash between the live and
			// the base commit): the row under the old id is another one.
			if there, err := rt.Get(mv.to); err != nil {
				return err
			} else if there != nil {
				continue
			}
		}
		if err := moveRow(rt, mv.from, mv.to, row, mv.col, mv.val); err != nil {
			return fmt.Errorf("re-key a row of %s in the %s database: %w", mv.t.Name, which, err)
		}
		if which == "live" {
			if err := hintMoved(conn, mv.t, mv.from, mv.to); err != nil {
				return err
			}
		}
	}
	return nil
}

// quietly runs fn, which moves rows of live, with the app's triggers off.
// A move is rowdrop's bookkeeping, not an edit: the app's delete and
// insert triggers would act on it as on a real delete and insert (a
// hand-written cascade deletes the moved row's links, an insert trigger
// rewrites a column with an app function's stand-in), and what they did
// would then be exported as this device's edits. Declared ON DELETE
// CASCADE actions do not run either: foreign-key enforcement is off on
// rowdrop's connection (foreignKeysOff).
func quietly(conn *sqlite.Conn, fn func() error) error {
	return db.WithoutTriggers(conn, fn)
}

// hintMoved records a moved row's old and new keys in live's hint table,
// if hints are installed: the hint triggers were off during the move, and
// a row that moved only in live (made here, not exported yet) must still
// be exported under its new key.
func hintMoved(conn *sqlite.Conn, t *schema.Table, keys ...[]changeset.Value) error {
	n := 0
	err := sqlitex.ExecuteTransient(conn, "SELECT count(*) FROM main.sqlite_master WHERE type='table' AND name='rowdrop_dirty'",
		&sqlitex.ExecOptions{ResultFunc: func(s *sqlite.Stmt) error { n = s.ColumnInt(0); return nil }})
	if err != nil || n == 0 {
		return err
	}
	for _, k := range keys {
		if len(k) > hintKeyCols {
			continue // hints cannot hold this key: the table is always diffed
		}
		ph := strings.Repeat(",?", len(k))
		cols := ""
		for i := range k {
			cols += fmt.Sprintf(",k%d", i+1)
		}
		s, err := conn.Prepare("INSERT INTO main.rowdrop_dirty(tbl" + cols + ") VALUES(?" + ph + ")")
		if err != nil {
			return fmt.Errorf("record a moved row of %s for export: %w", t.Name, err)
		}
		s.BindText(1, t.Name)
		for i, v := range k {
			db.Bind(s, i+2, v)
		}
		if _, err := s.Step(); err != nil {
			s.Reset()
			return fmt.Errorf("record a moved row of %s for export: %w", t.Name, err)
		}
		s.Reset()
	}
	return nil
}

// hintKeyCols is the number of key columns rowdrop_dirty holds
// (export.MaxHintKeyCols).
const hintKeyCols = 8

// foreignKeysOff turns foreign-key enforcement off on rowdrop's live
// connection (SQLite's default; a build may differ) until restore: a
// declared ON DELETE CASCADE would otherwise delete the children of a row
// rowdrop moves, and changes of one file apply in an order that may pass
// through states the keys forbid. The app's own connections are not
// affected. Outside a transaction only (SQLite ignores it inside).
func foreignKeysOff(conn *sqlite.Conn) (restore func(), err error) {
	on := false
	err = sqlitex.ExecuteTransient(conn, "PRAGMA foreign_keys", &sqlitex.ExecOptions{ResultFunc: func(s *sqlite.Stmt) error {
		on = s.ColumnInt(0) != 0
		return nil
	}})
	if err == nil && on {
		err = sqlitex.ExecuteTransient(conn, "PRAGMA foreign_keys=OFF", nil)
	}
	if err != nil {
		return nil, fmt.Errorf("turn off foreign-key enforcement on rowdrop's connection to the live database: %w", err)
	}
	return func() {
		if on {
			sqlitex.ExecuteTransient(conn, "PRAGMA foreign_keys=ON", nil)
		}
	}, nil
}

// moveMeta moves the metadata of a moved row to its new key. The kept
// values of a deleted or held row take the move too (they are the row's
// only copy), so an edit that brings the row back writes it there.
func (e *Engine) moveMeta(meta *state.Meta, mv move) error {
	from, to := changeset.EncodeKey(mv.from), changeset.EncodeKey(mv.to)
	if !sameRow(mv.from, mv.to) {
		if err := e.State.MoveRowMeta(mv.t.Name, from, to); err != nil {
			return err
		}
		if mv.held {
			if err := e.State.Unhold(mv.t.Name, from); err != nil {
				return err
			}
			if err := e.State.Hold(mv.t.Name, to); err != nil {
				return err
			}
		}
	}
	m, err := meta.Get(mv.t.Name, to)
	if err != nil || m == nil || m.Dead == nil {
		return err
	}
	vals, err := changeset.DecodeKey(m.Dead)
	if err != nil || len(vals) != len(mv.t.Columns) || vals[mv.col].Equal(mv.val) {
		return nil
	}
	vals[mv.col] = mv.val
	m.Dead = changeset.EncodeKey(vals)
	return meta.Put(mv.t.Name, to, m)
}

func moveRow(rt *rows.Table, from, to, row []changeset.Value, col int, val changeset.Value) error {
	row = append([]changeset.Value(nil), row...)
	row[col] = val
	if sameRow(from, to) {
		return rt.Update(from, []int{col}, []changeset.Value{val})
	}
	if err := rt.Delete(from); err != nil {
		return err
	}
	return rt.Insert(row)
}

// FixLocalMoves moves the rows created here and not exported yet that met
// a remote insert under the same INTEGER id (recorded by a merge): each
// goes to a new id, the rows referencing it that were made here follow
// (a reference merged from elsewhere, as base holds it, stays with the
// id), and live gets the merged row under the old id. Idempotent: a row
// already moved is only unrecorded. Rowdrop runs it after every merge and
// before every export, so a local row never leaves under the shared id.
func (e *Engine) FixLocalMoves(ctx context.Context) error {
	restore, err := foreignKeysOff(e.Live)
	if err != nil {
		return err
	}
	defer restore()
	baseAcc, liveAcc := newAccess(), newAccess()
	defer baseAcc.close()
	defer liveAcc.close()
	return e.fixLocalMoves(ctx, &uctx{baseAcc: baseAcc, liveAcc: liveAcc, st: &Stats{}})
}

type localMove struct {
	t   *schema.Table
	pk  []byte
	hlc int64
}

func (e *Engine) fixLocalMoves(ctx context.Context, u *uctx) error {
	recorded, err := e.State.LocalMoves()
	if err != nil || len(recorded) == 0 {
		return err
	}
	todo := make([]localMove, 0, len(recorded))
	for _, m := range recorded {
		todo = append(todo, localMove{t: e.Tables[m.Table], pk: m.PK, hlc: int64(m.HLC)})
	}
	// Parents first: a local row identical to the merged one is told
	// apart only once the local parents it references have moved.
	rules, err := e.appRules()
	if err != nil {
		return err
	}
	sort.SliceStable(todo, func(i, j int) bool { return rules.rank[todo[i].t] < rules.rank[todo[j].t] })
	r, err := e.newRekeyer(Source{})
	if err != nil {
		return err
	}
	pending := map[string]bool{}
	for _, lm := range todo {
		pending[tableName(lm.t)+"\x00"+string(lm.pk)] = true
	}
	for _, lm := range todo {
		delete(pending, tableName(lm.t)+"\x00"+string(lm.pk))
		if lm.t != nil && integerKey(lm.t) {
			if err := e.fixLocalMove(ctx, u, r, pending, lm); err != nil {
				return err
			}
		}
		if err := e.State.DropLocalMove(tableName(lm.t), lm.pk); err != nil {
			return err
		}
	}
	return nil
}

func tableName(t *schema.Table) string {
	if t == nil {
		return ""
	}
	return t.Name
}

func (e *Engine) fixLocalMove(ctx context.Context, u *uctx, r *rekeyer, pending map[string]bool, lm localMove) (err error) {
	t := lm.t
	baseAcc, liveAcc := u.baseAcc, u.liveAcc
	key, err := changeset.DecodeKey(lm.pk)
	if err != nil || len(key) != 1 {
		return nil // not a key of this table: nothing to move
	}
	lt, bt := liveAcc.get(e.Live, "live", t), baseAcc.get(e.State.Conn(), "base", t)
	b, err := bt.Get(key)
	if err != nil {
		return err
	}
	defer db.Interruptible(ctx, e.Live)()
	end, err := db.Begin(e.Live, "IMMEDIATE")
	if err != nil {
		return fmt.Errorf("start write transaction on the live database: %w", err)
	}
	defer end(&err)
	l, err := lt.Get(key)
	if err != nil || l == nil || (b != nil && rowEqual(t, l, b)) {
		return err // gone, or already the merged row
	}
	nk := moverKey(t, key, state.Clock{HLC: hlc.Timestamp(lm.hlc), Dev: e.Self})
	if there, err := lt.Get([]changeset.Value{nk}); err != nil || there != nil {
		return err
	}
	n := 0
	if err := quietly(e.Live, func() error {
		var err error
		n, err = e.moveLocal(baseAcc, liveAcc, r, pending, t, key, nk, l)
		return err
	}); err != nil {
		return err
	}
	if b != nil {
		// The merged row, as an ordinary apply writes it: the app's
		// insert triggers run, and what they changed in it is put back.
		// A row or edit made here and not exported that holds one of its
		// UNIQUE values loses, logged, as at any merged write (a link
		// made on both devices, one of them moving here).
		if err := e.writeLive(t, key, nil, b, u, 0); err != nil {
			return fmt.Errorf("write the merged row of %s: %w", t.Name, err)
		}
		got, err := lt.Get(key)
		if err != nil {
			return err
		}
		if !sameRow(got, b) {
			if err := quietly(e.Live, func() error { return writeRow(lt, key, got, b) }); err != nil {
				return fmt.Errorf("undo trigger side effects on %s: %w", t.Name, err)
			}
		}
	}
	e.log().Info("a row created here (not exported yet) had the id of a row inserted on another device: it moves to a new id",
		"table", t.Name, "id", key[0].String(), "new_id", nk.String(), "references_moved", n)
	return nil
}

// moveLocal moves local row l of t from key to nk, with the rows made here
// that reference it, in live (triggers off); it returns how many
// references moved.
func (e *Engine) moveLocal(baseAcc, liveAcc *access, r *rekeyer, pending map[string]bool, t *schema.Table, key []changeset.Value, nk changeset.Value, l []changeset.Value) (int, error) {
	lt := liveAcc.get(e.Live, "live", t)
	if err := moveRow(lt, key, []changeset.Value{nk}, l, t.PKCols()[0], nk); err != nil {
		return 0, fmt.Errorf("move a local row of %s to a new id: %w", t.Name, err)
	}
	if err := hintMoved(e.Live, t, key, []changeset.Value{nk}); err != nil {
		return 0, err
	}
	n := 0
	for _, ref := range r.refsTo(t) {
		keys, err := referencing(e.Live, ref, key[0])
		if err != nil {
			return 0, err
		}
		ct, cb := liveAcc.get(e.Live, "live", ref.child), baseAcc.get(e.State.Conn(), "base", ref.child)
		for _, ck := range keys {
			bc, err := cb.Get(ck)
			if err != nil {
				return 0, err
			}
			// Merged from elsewhere (base holds it with this reference):
			// it means the row that keeps the id. Unless base's row
			// under that key is another one: a local row waiting to
			// move itself.
			if bc != nil && bc[ref.col].Equal(key[0]) && !pending[ref.child.Name+"\x00"+string(changeset.EncodeKey(ck))] {
				continue
			}
			row, err := ct.Get(ck)
			if err != nil || row == nil {
				return 0, err
			}
			to := refMove(ref, ck, nk).to
			if err := moveRow(ct, ck, to, row, ref.col, nk); err != nil {
				return 0, fmt.Errorf("re-point a row of %s to the moved row of %s: %w", ref.child.Name, t.Name, err)
			}
			if err := hintMoved(e.Live, ref.child, ck, to); err != nil {
				return 0, err
			}
			n++
		}
	}
	return n, nil
}

// rebaseMoves prepares a rebase on a snapshot whose re-keying records
// (merged in by state.Dir.MergeHistory) say that a row this device holds
// under an INTEGER id is a mover: the snapshot holds another row there. The local
// row moves to its new id first (live, base, metadata), with the
// references its writers meant for it, so the row-by-row join meets each
// row under the same id on both sides.
func (e *Engine) rebaseMoves(ctx context.Context, r *rekeyer) (err error) {
	if !r.active() {
		return nil
	}
	meta, err := e.State.NewMeta()
	if err != nil {
		return err
	}
	defer meta.Close()
	baseAcc, liveAcc := newAccess(), newAccess()
	defer baseAcc.close()
	defer liveAcc.close()
	var moves []move
	for _, list := range r.byKey {
		for _, rk := range list {
			t := r.parents[strings.ToLower(rk.Table)]
			if t == nil {
				continue
			}
			m, err := meta.Get(t.Name, rk.OldPK)
			if err != nil {
				return err
			}
			// The mover is a row, or a lineage (its first insert) that
			// moves whole.
			if m == nil || (m.Ins != rk.Mover && m.Lineage() != rk.Mover) {
				continue
			}
			old, err := changeset.DecodeKey(rk.OldPK)
			if err != nil || len(old) != 1 {
				continue
			}
			nk := moverKey(t, old, rk.Mover)
			moves = append(moves, move{t: t, from: old, to: []changeset.Value{nk}, col: t.PKCols()[0], val: nk})
			refs, err := r.mergedRefs(e.State.Conn(), meta, t, old[0])
			if err != nil {
				return err
			}
			for _, rt := range refs {
				if rt.want.Equal(nk) {
					moves = append(moves, rt.move())
				}
			}
			e.log().Info("re-basing: a row held here under an id that another row keeps moves to its new id",
				"table", t.Name, "id", old[0].String(), "new_id", nk.String())
		}
	}
	if len(moves) == 0 {
		return nil
	}
	restore, err := foreignKeysOff(e.Live)
	if err != nil {
		return err
	}
	defer restore()
	defer db.Interruptible(ctx, e.Live)()
	endLive, err := db.Begin(e.Live, "IMMEDIATE")
	if err != nil {
		return fmt.Errorf("start write transaction on the live database: %w", err)
	}
	if err = applyMoves(e.Live, "live", liveAcc, moves); err != nil {
		endLive(&err)
		return err
	}
	if endLive(&err); err != nil {
		return err
	}
	endBase, err := db.Begin(e.State.Conn(), "IMMEDIATE")
	if err != nil {
		return fmt.Errorf("start write transaction on the base copy: %w", err)
	}
	defer endBase(&err)
	if err = applyMoves(e.State.Conn(), "base", baseAcc, moves); err != nil {
		return err
	}
	for _, mv := range moves {
		if mv.metaOnly || !sameRow(mv.from, mv.to) {
			if err = e.moveMeta(meta, mv); err != nil {
				return err
			}
		}
	}
	return nil
}
