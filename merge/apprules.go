package merge

// The app's own rules, read from its triggers (issue #14). Many apps keep
// their references by hand instead of declaring foreign keys: a cascade
// (AFTER DELETE ON books BEGIN DELETE FROM links WHERE book = OLD.id; END)
// or a check (BEFORE INSERT ON links ... RAISE(ABORT, ...) WHERE NOT
// EXISTS (SELECT 1 FROM books WHERE id = NEW.book)). Each compares a
// column of the trigger's table (through OLD or NEW) with a column of
// another table; when one side is its table's single-column key, the
// other side references it. Rowdrop reads these references to move a
// re-keyed row's children with it and to order a file's changes parents
// first. The reading is deliberately shallow (tokens, no SQL grammar):
// a comparison it does not recognise only means a reference it does not
// know, which is what rowdrop did before.

import (
	"bytes"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strings"

	"zombiezen.com/go/sqlite"
	"zombiezen.com/go/sqlite/sqlitex"

	"github.com/rowdrop/rowdrop/internal/changeset"
	"github.com/rowdrop/rowdrop/internal/db"
	"github.com/rowdrop/rowdrop/internal/rows"
	"github.com/rowdrop/rowdrop/internal/schema"
	"github.com/rowdrop/rowdrop/internal/state"
)

// appTrigger is what rowdrop reads from one of the app's triggers.
type appTrigger struct {
	name, table string
	sql         string
	timing      string // BEFORE, AFTER or INSTEAD
	event       string // INSERT, UPDATE or DELETE
	raises      bool   // the body (or WHEN) calls RAISE(ABORT|FAIL|ROLLBACK)
	reads       []string
	pairs       []colPair
}

// colPair is a comparison between a column of the trigger's table (named
// through OLD or NEW) and a column of another table.
type colPair struct {
	col         string // of the trigger's table
	other, oCol string
	new         bool // NEW.col (else OLD.col)
}

// tableRef is a reference from column col of child to parent's key,
// declared or read from trigger (its name).
type tableRef struct {
	child   *schema.Table
	col     int
	parent  *schema.Table
	trigger string // "" for a declared foreign key
}

var sqlToken = regexp.MustCompile("\"(?:[^\"]|\"\")*\"|`[^`]*`|\\[[^\\]]*\\]|'(?:[^']|'')*'|[A-Za-z_][A-Za-z0-9_$]*|[0-9]+|--[^\n]*|/\\*(?s:.*?)\\*/|\\S")

// ident unquotes an identifier token; "" if tok is not one.
func ident(tok string) string {
	switch {
	case tok == "":
		return ""
	case tok[0] == '"':
		return strings.ReplaceAll(tok[1:len(tok)-1], `""`, `"`)
	case tok[0] == '`' || tok[0] == '[':
		return tok[1 : len(tok)-1]
	case tok[0] == '_' || tok[0] >= 'A' && tok[0] <= 'Z' || tok[0] >= 'a' && tok[0] <= 'z':
		return tok
	}
	return ""
}

var sqlKeywords = map[string]bool{}

func init() {
	for _, k := range strings.Fields(`select from where and or not exists in is null as on join left right inner outer cross
		natural using group order by having limit offset union all except intersect values set insert update delete into
		begin end when then else case raise abort fail rollback ignore replace default with recursive each row for
		before after instead of distinct like glob match regexp between escape collate cast returning do nothing conflict`) {
		sqlKeywords[k] = true
	}
}

// parseTrigger reads one CREATE TRIGGER statement of table tbl.
func parseTrigger(name, tbl, sql string) appTrigger {
	tr := appTrigger{name: name, table: tbl, sql: sql}
	var toks []string
	for _, t := range sqlToken.FindAllString(sql, -1) {
		if strings.HasPrefix(t, "--") || strings.HasPrefix(t, "/*") {
			continue
		}
		toks = append(toks, t)
	}
	low := func(i int) string {
		if i < 0 || i >= len(toks) {
			return ""
		}
		return strings.ToLower(toks[i])
	}
	// Header: timing and event, up to ON.
	i := 0
	for ; i < len(toks) && low(i) != "on"; i++ {
		switch low(i) {
		case "before", "after", "instead":
			tr.timing = strings.ToUpper(low(i))
		case "insert", "update", "delete":
			tr.event = strings.ToUpper(low(i))
		}
	}
	if tr.timing == "" {
		tr.timing = "BEFORE"
	}
	// Aliases and the table each comparison's bare columns belong to: the
	// table introduced last by FROM, JOIN, UPDATE or INTO.
	alias := map[string]string{}
	cur := ""
	seen := map[string]bool{}
	ref := func(j int) (tbl, col string, next int, ok bool) {
		// [alias.]col, or OLD.col / NEW.col (tbl "old"/"new").
		a := ident(toks[j])
		if a == "" {
			return "", "", j, false
		}
		if j+2 < len(toks) && toks[j+1] == "." {
			c := ident(toks[j+2])
			if c == "" {
				return "", "", j, false
			}
			la := strings.ToLower(a)
			if la == "old" || la == "new" {
				return la, c, j + 3, true
			}
			if t, ok := alias[la]; ok {
				return t, c, j + 3, true
			}
			return a, c, j + 3, true
		}
		if sqlKeywords[strings.ToLower(a)] || (j+1 < len(toks) && toks[j+1] == "(") {
			return "", "", j, false
		}
		return cur, a, j + 1, cur != ""
	}
	for j := i + 1; j < len(toks); j++ {
		l := low(j)
		switch l {
		case "raise":
			if k := low(j + 2); k == "abort" || k == "fail" || k == "rollback" {
				tr.raises = true
			}
		case "from", "join", "update", "into":
			t := ident(toks[min(j+1, len(toks)-1)])
			if t == "" || sqlKeywords[strings.ToLower(t)] {
				continue
			}
			if j+3 < len(toks) && toks[j+2] == "." { // schema.table
				t = ident(toks[j+3])
				j += 2
			}
			cur = t
			if !seen[strings.ToLower(t)] && !strings.EqualFold(t, tbl) {
				seen[strings.ToLower(t)] = true
				tr.reads = append(tr.reads, t)
			}
			alias[strings.ToLower(t)] = t
			k := j + 2
			if low(k) == "as" {
				k++
			}
			if a := ident(toks[min(k, len(toks)-1)]); k < len(toks) && a != "" && !sqlKeywords[strings.ToLower(a)] {
				alias[strings.ToLower(a)] = t
			}
		}
		// a = b, or a [NOT] IN (SELECT b FROM t ...)
		t1, c1, n1, ok := ref(j)
		if !ok {
			continue
		}
		if n1 < len(toks) && (toks[n1] == "=" || toks[n1] == "==" || low(n1) == "is" && low(n1+1) != "null" && low(n1+1) != "not") {
			if t2, c2, _, ok := ref(n1 + 1); ok {
				tr.addPair(t1, c1, t2, c2)
			}
			continue
		}
		k := n1
		if low(k) == "not" {
			k++
		}
		if low(k) == "in" && low(k+1) == "(" && low(k+2) == "select" {
			// The selected column belongs to the FROM that follows.
			for m := k + 3; m < len(toks)-1 && m < k+12; m++ {
				if low(m) == "from" {
					if ft := ident(toks[m+1]); ft != "" {
						if c2 := ident(toks[k+3]); c2 != "" {
							tr.addPair(t1, c1, ft, c2)
						}
					}
					break
				}
			}
		}
	}
	return tr
}

func (tr *appTrigger) addPair(t1, c1, t2, c2 string) {
	if t2 == "old" || t2 == "new" {
		t1, c1, t2, c2 = t2, c2, t1, c1
	}
	if (t1 != "old" && t1 != "new") || t2 == "old" || t2 == "new" || t2 == "" || strings.EqualFold(t2, tr.table) {
		return
	}
	tr.pairs = append(tr.pairs, colPair{col: c1, other: t2, oCol: c2, new: t1 == "new"})
}

// appTriggers reads the app's triggers from the live database (rowdrop's
// own hint triggers are not the app's).
func appTriggers(live *sqlite.Conn) ([]appTrigger, error) {
	var out []appTrigger
	err := sqlitex.ExecuteTransient(live, `SELECT name, tbl_name, sql FROM main.sqlite_master WHERE type='trigger' AND sql IS NOT NULL AND name NOT LIKE 'rowdrop\_%' ESCAPE '\' ORDER BY name`,
		&sqlitex.ExecOptions{ResultFunc: func(s *sqlite.Stmt) error {
			out = append(out, parseTrigger(s.ColumnText(0), s.ColumnText(1), s.ColumnText(2)))
			return nil
		}})
	if err != nil {
		return nil, fmt.Errorf("read the app's triggers from the live database: %w", err)
	}
	return out, nil
}

// singleKey returns t's one key column, or -1.
func singleKey(t *schema.Table) int {
	if pk := t.PKCols(); len(pk) == 1 {
		return pk[0]
	}
	return -1
}

// findTable looks a synced table up by name, case-insensitively.
func findTable(tables map[string]*schema.Table, name string) *schema.Table {
	if t := tables[name]; t != nil {
		return t
	}
	for n, t := range tables {
		if strings.EqualFold(n, name) {
			return t
		}
	}
	return nil
}

// triggerRefs lists the references the app's triggers keep between synced
// tables: a comparison of a column with another table's single-column key.
func triggerRefs(trs []appTrigger, tables map[string]*schema.Table) []tableRef {
	var out []tableRef
	has := map[string]int{}
	add := func(child *schema.Table, col string, parent *schema.Table, pcol string, tr appTrigger) {
		ci, pi := child.ColIndex(col), parent.ColIndex(pcol)
		if child == parent || ci < 0 || pi < 0 || pi != singleKey(parent) || ci == singleKey(child) {
			return
		}
		k := child.Name + "\x00" + fmt.Sprint(ci) + "\x00" + parent.Name
		i, ok := has[k]
		if !ok {
			has[k] = len(out)
			out = append(out, tableRef{child: child, col: ci, parent: parent, trigger: tr.name})
			return
		}
		// One reference kept by several triggers (a child's insert check
		// and the parent's cascade): it names the parent's delete trigger
		// if there is one, which is what cascadeWatch looks for.
		if tr.event == "DELETE" && strings.EqualFold(tr.table, parent.Name) {
			out[i].trigger = tr.name
		}
	}
	for _, tr := range trs {
		t := findTable(tables, tr.table)
		if t == nil {
			continue
		}
		for _, p := range tr.pairs {
			o := findTable(tables, p.other)
			if o == nil {
				continue
			}
			add(t, p.col, o, p.oCol, tr) // the trigger's table references o
			add(o, p.oCol, t, p.col, tr) // o references the trigger's table
		}
	}
	return out
}

// appRules are the app's rules between synced tables, read once per
// Engine (its tables are fixed for its life).
type appRules struct {
	triggers []appTrigger
	refs     []tableRef                 // trigger-kept references to a single-column key
	derived  map[string]map[string]bool // per table (lower case), the columns its triggers set (derived.go)
	// rank orders tables parents first: a table's rank is above every
	// table it references (declared foreign keys and references its
	// triggers keep). Cycles are broken arbitrarily but deterministically.
	rank map[*schema.Table]int
}

func (e *Engine) appRules() (*appRules, error) {
	if e.rules != nil {
		return e.rules, nil
	}
	r := &appRules{rank: map[*schema.Table]int{}}
	if e.Live != nil {
		var err error
		if r.triggers, err = appTriggers(e.Live); err != nil {
			return nil, err
		}
	}
	r.refs = triggerRefs(r.triggers, e.Tables)
	r.derived = derivedCols(r.triggers)
	parents := map[*schema.Table]map[*schema.Table]bool{}
	edge := func(child, parent *schema.Table) {
		if child == nil || parent == nil || child == parent {
			return
		}
		if parents[child] == nil {
			parents[child] = map[*schema.Table]bool{}
		}
		parents[child][parent] = true
	}
	for _, ref := range r.refs {
		edge(ref.child, ref.parent)
	}
	for _, t := range e.Tables {
		err := sqlitex.Execute(e.State.Conn(), `SELECT "table" FROM pragma_foreign_key_list(?)`, &sqlitex.ExecOptions{
			Args: []any{t.Name},
			ResultFunc: func(s *sqlite.Stmt) error {
				edge(t, findTable(e.Tables, s.ColumnText(0)))
				return nil
			}})
		if err != nil {
			return nil, fmt.Errorf("read foreign keys of %s: %w", t.Name, err)
		}
	}
	// Depth by repeated relaxation, bounded by the number of tables (a
	// cycle stops growing there).
	for range len(e.Tables) {
		changed := false
		for c, ps := range parents {
			for p := range ps {
				if r.rank[c] < r.rank[p]+1 && r.rank[p]+1 <= len(e.Tables) {
					r.rank[c] = r.rank[p] + 1
					changed = true
				}
			}
		}
		if !changed {
			break
		}
	}
	e.rules = r
	return r, nil
}

// RefusedError is a change the app's own rules (a trigger's RAISE, a
// constraint) refused in live in every order rowdrop tried: the file is
// held until what it waits for arrives.
type RefusedError struct {
	Table   string // the change's table
	Key     string // its key, as text
	Op      string // insert, update or delete
	Trigger string // the app's trigger that refused it, if known
	Waits   string // the row it waits for, if known
	Err     error  // SQLite's error

	// The missing parent row it waits for (nil: none known).
	parent    *schema.Table
	parentKey changeset.Value
}

func (e *RefusedError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "the app's rules refused the %s of table %s, key (%s)", e.Op, e.Table, e.Key)
	if e.Trigger != "" {
		fmt.Fprintf(&b, " in trigger %s", e.Trigger)
	}
	fmt.Fprintf(&b, " (%v), whichever order the file's changes were applied in", e.Err)
	if e.Waits != "" {
		fmt.Fprintf(&b, "; it waits for %s", e.Waits)
	}
	b.WriteString("; the file applies by itself once that is so here (through another device's file, or made in the app here); " +
		"otherwise exclude table " + e.Table + " from sync on this device")
	return b.String()
}

func (e *RefusedError) Unwrap() error { return e.Err }

// isRefusal reports an error of the app's rules that a later attempt, once
// other changes are in, may pass: a constraint (RAISE in a trigger fails
// with one) other than UNIQUE, which unique.go settles, that left live's
// transaction open (RAISE(ROLLBACK) ends it: nothing can be retried then).
func isRefusal(live *sqlite.Conn, err error) bool {
	c := sqlite.ErrCode(err)
	return c.ToPrimary() == sqlite.ResultConstraint && c != sqlite.ResultConstraintUnique && c != sqlite.ResultConstraintPrimaryKey &&
		!live.AutocommitEnabled()
}

// refused describes why the app refused change it in live.
func (e *Engine) refused(it *item, err error) *RefusedError {
	row := it.liveWant
	if it.change.Op == changeset.OpDelete {
		row = nil
	}
	return e.refusedWrite(it.table, it.key, it.liveBefore, row, err)
}

// refusedWrite describes why the app refused turning live row cur (under
// key of t) into row (nil: a delete).
func (e *Engine) refusedWrite(t *schema.Table, key, cur, row []changeset.Value, err error) *RefusedError {
	re := &RefusedError{Table: t.Name, Key: KeyText(key), Err: err}
	switch {
	case row == nil:
		re.Op = "delete"
	case cur == nil:
		re.Op = "insert"
	default:
		re.Op = "update"
	}
	rules, rerr := e.appRules()
	if rerr != nil {
		return re
	}
	// The trigger: one on the table whose text holds SQLite's message
	// (the RAISE's), else the only raising one for this event.
	msg := err.Error()
	if _, m, ok := strings.Cut(msg, "constraint failed: "); ok {
		msg = m
	}
	var cands []string
	for _, tr := range rules.triggers {
		if !strings.EqualFold(tr.table, t.Name) || !tr.raises {
			continue
		}
		if msg != "" && strings.Contains(tr.sql, msg) {
			re.Trigger = tr.name
			break
		}
		if strings.EqualFold(tr.event, re.Op) {
			cands = append(cands, tr.name)
		}
	}
	if re.Trigger == "" && len(cands) == 1 {
		re.Trigger = cands[0]
	}
	// The row it waits for: a missing parent of the row written, or the
	// children still referencing the row deleted.
	for _, ref := range rules.refs {
		switch {
		case re.Op != "delete" && ref.child == t && row[ref.col].Kind != changeset.KindNull:
			v := row[ref.col]
			n, err := e.countLive(ref.parent, ref.parent.PKCols()[0], v)
			if err == nil && n == 0 {
				re.Waits = fmt.Sprintf("row %s of table %s (the %s of the row written), not in this database yet",
					v.String(), ref.parent.Name, ref.child.Columns[ref.col].Name)
				re.parent, re.parentKey = ref.parent, v
				return re
			}
		case re.Op == "delete" && ref.parent == t && len(key) == 1:
			n, err := e.countLive(ref.child, ref.col, key[0])
			if err == nil && n > 0 {
				re.Waits = fmt.Sprintf("the delete of the %d row(s) of table %s whose %s still references it", n, ref.child.Name, ref.child.Columns[ref.col].Name)
				return re
			}
		}
	}
	return re
}

// countLive counts live rows of t whose column col holds v.
func (e *Engine) countLive(t *schema.Table, col int, v changeset.Value) (int64, error) {
	s, err := e.Live.Prepare(fmt.Sprintf("SELECT count(*) FROM main.%s WHERE %s = ?", db.Quote(t.Name), db.Quote(t.Columns[col].Name)))
	if err != nil {
		return 0, err
	}
	defer s.Reset()
	db.Bind(s, 1, v)
	if _, err := s.Step(); err != nil {
		return 0, err
	}
	return s.ColumnInt64(0), nil
}

// sortForApply orders a batch (distinct keys) as live applies it: deletes
// first, children before parents, then inserts and updates, parents
// before children (appRules.rank), each table's changes in key order (a
// forward walk of its B-trees). An order the app's rules accept needs no
// retry (writeBatch retries what they refuse).
func (e *Engine) sortForApply(items []*item) {
	rank := map[*schema.Table]int{}
	if rules, err := e.appRules(); err == nil {
		rank = rules.rank
	}
	class := func(it *item) int {
		if it.change.Op == changeset.OpDelete {
			return -1 - rank[it.table] // deepest child first
		}
		return 1 + rank[it.table]
	}
	sort.Slice(items, func(i, j int) bool {
		a, b := items[i], items[j]
		if ca, cb := class(a), class(b); ca != cb {
			return ca < cb
		}
		if a.table.Name != b.table.Name {
			return a.table.Name < b.table.Name
		}
		return bytes.Compare(a.pk, b.pk) < 0
	})
}

// waiting holds the changes of the file being applied that the app's
// rules refused in live (a BEFORE trigger's RAISE: a parent not there yet,
// a child still there). Each batch's live transaction retries them after
// its own changes, pass after pass while a pass makes progress, the way
// sqlite3changeset_apply retries constraint failures; whatever is still
// refused once the whole file is in holds the file (applier.endRefusals).
// Their merged rows are in base already, so base does not commit while
// any waits (applier.flush). Only live's goroutine uses it while batches
// are in flight (each waits for the one before, see startLive); the
// deciding goroutine reads it after a full settle.
type waiting struct {
	items []*item
	// logs are the rows the app's cascades removed when a retried delete
	// went in (cascadeRows), written to the conflict log once live has
	// committed them (applier.logRetried).
	logs []*state.Conflict
}

// supersede drops and returns the waiting change to it's key, if any: a
// later change to the same key replaces it (it was decided on base holding
// the waiting change's row).
func (w *waiting) supersede(it *item) *item {
	if w == nil {
		return nil
	}
	for i, o := range w.items {
		if o.table == it.table && bytes.Equal(o.pk, it.pk) {
			w.items = append(w.items[:i], w.items[i+1:]...)
			return o
		}
	}
	return nil
}

// retry writes the waiting changes and the batch's refused ones to live,
// pass after pass until one makes no progress, and returns those written.
// Earlier batches' changes go first (file order).
func (w *waiting) retry(e *Engine, acc *access, refused []*item, src Source) ([]*item, error) {
	todo := append(w.items, refused...)
	var written []*item
	for len(todo) > 0 {
		var left []*item
		for _, it := range todo {
			lt := acc.get(e.Live, "live", it.table)
			cur, err := lt.Get(it.key)
			if err != nil {
				return nil, err
			}
			want := it.liveWant
			if !sameRow(cur, it.liveBefore) {
				// A trigger of another change wrote this row meanwhile.
				want, _ = liveTarget(it.table, it.baseRow, cur, it.merged())
			}
			cascade, err := e.cascadeWatch(acc, it, cur, want)
			if err != nil {
				return nil, err
			}
			switch err := writeRow(lt, it.key, cur, want); {
			case err == nil:
				it.liveWritten, it.liveBefore, it.liveWant, it.refusal = true, cur, want, nil
				written = append(written, it)
				cs, err := cascade.removed(e, acc, it, src)
				if err != nil {
					return nil, err
				}
				w.logs = append(w.logs, cs...)
			case isRefusal(e.Live, err):
				it.refusal = err
				left = append(left, it)
			default:
				return nil, fmt.Errorf("apply %s to the live database (key %s): %w", it.table.Name, KeyText(it.key), err)
			}
		}
		if len(left) == len(todo) {
			break
		}
		todo = left
	}
	w.items = todo
	return written, nil
}

// endRefusals runs once every batch is settled: changes still refused get
// one more try (the UNIQUE fix-ups may have changed live), then hold the
// file, naming the first (RefusedError). Nothing of the file is recorded
// as applied; base does not commit.
func (a *applier) endRefusals() error {
	e := a.e
	if len(e.refusals.items) == 0 {
		return nil
	}
	err := e.inLive(a.ctx, &a.st, func() error {
		_, err := e.refusals.retry(e, a.liveAcc, nil, a.src)
		return err
	})
	if err != nil {
		return err
	}
	if err := a.logRetried(); err != nil {
		return err
	}
	if len(e.refusals.items) == 0 {
		return nil
	}
	if err := a.orphans(); err != nil {
		return err
	}
	if len(e.refusals.items) == 0 {
		return nil
	}
	if err := a.releaseDeletes(); err != nil {
		return err
	}
	if len(e.refusals.items) == 0 {
		return nil
	}
	it := e.refusals.items[0]
	re := e.refused(it, it.refusal)
	e.log().Warn("the app's rules refused changes of a file in every order tried: the file is held",
		"file", a.src.File, "refused", len(e.refusals.items), "table", re.Table, "key", re.Key, "trigger", re.Trigger, "waits_for", re.Waits)
	return re
}

// logRetried writes the conflict-log entries of what the app's cascades
// removed when retried deletes went in, once live has committed them.
func (a *applier) logRetried() error {
	w := a.e.refusals
	if w == nil {
		return nil
	}
	now := a.e.now().UnixMilli()
	for _, c := range w.logs {
		c.AtMS, c.File = now, a.src.File
		if err := a.e.State.AddConflict(c); err != nil {
			return fmt.Errorf("write conflict log: %w", err)
		}
		if c.Seq != 0 {
			a.st.Conflicts++
		}
	}
	w.logs = nil
	return nil
}

// KindParentDeleted marks a row whose parent was deleted concurrently:
// the app's rules refuse it here, so it is taken out (orphans).
const KindParentDeleted = "parent-deleted"

// orphans settles the refused writes whose missing parent was deleted
// (parentDeleted): a row referencing a row that another device deleted
// concurrently, or that the app deleted here. No order will ever let the
// app accept it; on a device that had the row when the delete came, the
// app's cascade removed it. Here it stays out of live, as the cascade
// would have left it: base keeps the merged row, so the next export
// carries the removal to every device as this device's edit (what the
// app's rules decided is exported), and the row goes to the conflict log,
// restorable. Every other refusal still holds the file.
func (a *applier) orphans() error {
	e := a.e
	var left []*item
	u := a.fixups()
	for _, it := range e.refusals.items {
		re := e.refused(it, it.refusal)
		if it.change.Op == changeset.OpDelete {
			left = append(left, it)
			continue
		}
		where, err := e.parentDeleted(u, re)
		if err != nil {
			return err
		}
		if where == "" {
			left = append(left, it)
			continue
		}
		if err := e.logOrphan(u, re, where, it.table, it.key, it.liveWant, it.liveBefore, a.src.Clock); err != nil {
			return err
		}
	}
	e.refusals.items = left
	return nil
}

// releaseDeletes settles the refused deletes of rows that other rows
// still reference through a reference the app's triggers keep (a BEFORE
// DELETE trigger that RAISEs while children remain): a child made on
// another device, or here, concurrently with the delete. On a device where
// the child came after the delete, the app refuses the child and it is
// taken out (orphans); here, the other way round, the same outcome: the
// children are taken out of live (the app's own triggers run, as when the
// app deletes them) and logged (parent-deleted), and the delete applies.
// Base keeps the children, so the next export carries their removal to
// every device as this device's edit. Each delete is tried in a savepoint:
// if the app refuses a child's removal, or the delete still, nothing of it
// is kept and it stays held, as before.
func (a *applier) releaseDeletes() error {
	e := a.e
	rules, err := e.appRules()
	if err != nil {
		return err
	}
	var logs []*state.Conflict
	err = e.inLive(a.ctx, &a.st, func() error {
		logs = logs[:0]
		var left []*item
		for _, it := range e.refusals.items {
			if it.liveWant != nil || len(it.key) != 1 {
				left = append(left, it)
				continue
			}
			if err := db.Exec(e.Live, "SAVEPOINT rowdrop_release"); err != nil {
				return fmt.Errorf("start a savepoint on the live database: %w", err)
			}
			taken, ok, err := a.release(rules, it)
			var uerr error
			if err != nil || !ok {
				uerr = db.Exec(e.Live, "ROLLBACK TO rowdrop_release")
			}
			if uerr = errors.Join(uerr, db.Exec(e.Live, "RELEASE rowdrop_release")); uerr != nil || err != nil {
				return errors.Join(err, uerr)
			}
			if !ok {
				left = append(left, it)
				continue
			}
			logs = append(logs, taken...)
		}
		if len(left) == len(e.refusals.items) {
			return nil
		}
		e.refusals.items = left
		_, err := e.refusals.retry(e, a.liveAcc, nil, a.src)
		return err
	})
	if err != nil {
		return err
	}
	if err := a.logRetried(); err != nil {
		return err
	}
	for _, c := range logs {
		if err := e.State.AddConflict(c); err != nil {
			return fmt.Errorf("write conflict log: %w", err)
		}
		a.st.Conflicts++
		e.log().Info("a row refers to a row another device deleted meanwhile, whose delete the app's rules refuse while it does: taken out and logged",
			"file", a.src.File, "table", c.Table, "key", c.PKText)
	}
	return nil
}

// release takes the live rows that reference it's row through the app's
// trigger-kept references out, then applies its delete; ok is false if
// the app refuses either (the caller rolls back). taken are the conflict
// entries of the rows taken out.
func (a *applier) release(rules *appRules, it *item) (taken []*state.Conflict, ok bool, err error) {
	e := a.e
	now := e.now().UnixMilli()
	trigger := e.refused(it, it.refusal).Trigger
	for _, ref := range rules.refs {
		if ref.parent != it.table || ref.trigger == "" {
			continue
		}
		keys, err := referencing(e.Live, fkRef{child: ref.child, col: ref.col, parent: ref.parent}, it.key[0])
		if err != nil {
			return nil, false, fmt.Errorf("read the rows of %s that reference row %s of %s: %w", ref.child.Name, KeyText(it.key), it.table.Name, err)
		}
		ct := a.liveAcc.get(e.Live, "live", ref.child)
		for _, k := range keys {
			row, err := ct.Get(k)
			if err != nil {
				return nil, false, err
			}
			switch err := writeRow(ct, k, row, nil); {
			case err == nil:
			case isRefusal(e.Live, err):
				return nil, false, nil
			default:
				return nil, false, fmt.Errorf("take row %s of %s out of the live database: %w", KeyText(k), ref.child.Name, err)
			}
			taken = append(taken, &state.Conflict{Kind: KindParentDeleted, Table: ref.child.Name, Cols: jsonCols(allCols(ref.child)),
				Loser: encodeOpt(row), PK: changeset.EncodeKey(k), PKText: KeyText(k), AtMS: now, File: a.src.File,
				WinnerDev: a.src.Clock.Dev, WinnerHLC: uint64(a.src.Clock.HLC), LoserDev: "local",
				Note: fmt.Sprintf("the row refers to row %s of %s, which another device deleted meanwhile; the app's rules (%s) refuse that delete while the row refers to it, so the row is taken out here and everywhere, as if the delete had come first",
					KeyText(it.key), it.table.Name, trigger)})
		}
	}
	if len(taken) == 0 {
		return nil, false, nil // nothing of this kind holds it back
	}
	lt := a.liveAcc.get(e.Live, "live", it.table)
	cur, err := lt.Get(it.key)
	if err != nil {
		return nil, false, err
	}
	switch err := writeRow(lt, it.key, cur, nil); {
	case err == nil:
		it.liveWritten, it.liveBefore, it.liveWant, it.refusal = true, cur, nil, nil
		return taken, true, nil
	case isRefusal(e.Live, err):
		return nil, false, nil
	default:
		return nil, false, fmt.Errorf("apply %s to the live database (key %s): %w", it.table.Name, KeyText(it.key), err)
	}
}

// parentDeleted reports where the missing parent of refused write re was
// deleted: "on another device" (a change merged here deleted it: its
// metadata is a tombstone) or "here (not exported yet)" (alive in base,
// absent from live: the app deleted it here, which is the latest delete,
// as it goes out with a later clock, the same as a concurrent remote
// one). "": no deleted parent is known (none missing, not known here yet
// and so may still come, or held out of base on a UNIQUE clash, which is
// not deleted and may come back).
func (e *Engine) parentDeleted(u *uctx, re *RefusedError) (string, error) {
	if re.parent == nil || re.Op == "delete" {
		return "", nil
	}
	m, err := u.meta.Get(re.parent.Name, changeset.EncodeKey([]changeset.Value{re.parentKey}))
	if err != nil || m == nil {
		return "", err
	}
	if !m.Alive() {
		return "on another device", nil
	}
	b, err := u.baseAcc.get(e.State.Conn(), "base", re.parent).Get([]changeset.Value{re.parentKey})
	if err != nil || b == nil {
		return "", err
	}
	return "here (not exported yet)", nil
}

// logOrphan records that row want of t (under key; live held cur) was left out
// of live because its parent was deleted (where: parentDeleted); clock is
// the change's (its device and time).
func (e *Engine) logOrphan(u *uctx, re *RefusedError, where string, t *schema.Table, key, want, cur []changeset.Value, clock state.Clock) error {
	c := &state.Conflict{Kind: KindParentDeleted, Table: t.Name, Cols: jsonCols(allCols(t)),
		Loser: encodeOpt(want), Winner: encodeOpt(cur),
		Note: fmt.Sprintf("the row refers to row %s of %s, which was deleted %s meanwhile; the app's rules (%s) refuse it, so it is taken out here and everywhere, as the app's cascade does",
			re.parentKey.String(), re.parent.Name, where, re.Trigger),
		WinnerDev: "local", LoserDev: clock.Dev, LoserHLC: uint64(clock.HLC)}
	if err := e.addConflict(c, key, u); err != nil {
		return err
	}
	e.log().Info("a change refers to a row deleted meanwhile; the app's rules refuse it: taken out and logged",
		"file", u.src.File, "table", re.Table, "key", re.Key, "parent", re.parent.Name, "parent_key", re.parentKey.String(), "deleted", where)
	return nil
}

// KindCascaded marks a row the app's cascade trigger deleted when a
// remote delete of the row it references was applied here.
const KindCascaded = "cascaded"

// cascadeRows are the live rows that reference a row about to be deleted
// through a reference the app's delete triggers keep (a hand-written
// cascade): after the delete, those gone were deleted by the app, not by
// the merge. They are exported as this device's deletes, like any live
// change, and logged here (the device whose delete it was may never have
// seen them).
type cascadeRows struct {
	refs []tableRef
	rows [][][]changeset.Value // per ref: the referencing rows
}

// cascadeWatch collects, before it's delete is written, the rows the
// app's delete triggers on its table may cascade to (nil: none).
func (e *Engine) cascadeWatch(acc *access, it *item, cur, want []changeset.Value) (*cascadeRows, error) {
	if cur == nil || want != nil || e.rules == nil || len(it.key) != 1 {
		return nil, nil
	}
	var cr *cascadeRows
	for _, ref := range e.rules.refs {
		if ref.parent != it.table || !e.rules.deleteTrigger(ref.trigger, it.table) {
			continue
		}
		keys, err := referencing(e.Live, fkRef{child: ref.child, col: ref.col, parent: ref.parent}, it.key[0])
		if err != nil || len(keys) == 0 {
			if err != nil {
				return nil, err
			}
			continue
		}
		if cr == nil {
			cr = &cascadeRows{}
		}
		ct := acc.get(e.Live, "live", ref.child)
		var found [][]changeset.Value
		for _, k := range keys {
			r, err := ct.Get(k)
			if err != nil {
				return nil, err
			}
			if r != nil {
				found = append(found, r)
			}
		}
		cr.refs = append(cr.refs, ref)
		cr.rows = append(cr.rows, found)
	}
	return cr, nil
}

// deleteTrigger reports whether trigger name is a delete trigger of t.
func (r *appRules) deleteTrigger(name string, t *schema.Table) bool {
	for _, tr := range r.triggers {
		if tr.name == name {
			return tr.event == "DELETE" && strings.EqualFold(tr.table, t.Name)
		}
	}
	return false
}

// log records, as conflicts of it, the watched rows the delete removed.
func (cr *cascadeRows) log(e *Engine, acc *access, it *item, src Source) error {
	cs, err := cr.removed(e, acc, it, src)
	it.decision.conflicts = append(it.decision.conflicts, cs...)
	return err
}

// removed returns the conflict-log entries of the watched rows the delete
// of it removed.
func (cr *cascadeRows) removed(e *Engine, acc *access, it *item, src Source) ([]*state.Conflict, error) {
	if cr == nil {
		return nil, nil
	}
	var out []*state.Conflict
	for i, ref := range cr.refs {
		ct := acc.get(e.Live, "live", ref.child)
		for _, row := range cr.rows[i] {
			key := rows.Key(ref.child, row)
			now, err := ct.Get(key)
			if err != nil {
				return nil, err
			}
			if now != nil {
				continue
			}
			out = append(out, &state.Conflict{Kind: KindCascaded, Table: ref.child.Name,
				Cols: jsonCols(allCols(ref.child)), Loser: encodeOpt(row), PK: changeset.EncodeKey(key), PKText: KeyText(key),
				WinnerDev: src.Clock.Dev, WinnerHLC: uint64(src.Clock.HLC), LoserDev: "local",
				Note: fmt.Sprintf("deleted by the app's trigger %s when the delete of row %s of %s from another device was applied here; the removal is exported as this device's", ref.trigger, KeyText(it.key), it.table.Name)})
		}
	}
	return out, nil
}
