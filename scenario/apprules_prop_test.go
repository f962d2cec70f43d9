package scenario_test

import (
	"fmt"
	"math/rand/v2"
	"os"
	"strings"
	"testing"

	"github.com/rowdrop/rowdrop"
	"github.com/rowdrop/rowdrop/scenario"
)

// An app-style schema (issue #14 §3): INTEGER ids that offline devices
// allocate as max+1 (so they collide), a link table whose parents are
// checked by a BEFORE INSERT trigger and whose rows a hand-written AFTER
// DELETE trigger cascades away, an updated_at trigger, an insert trigger
// that fills a column with an app function (uuid-style), a UNIQUE name.
const appPropSchema = `
CREATE TABLE books(id INTEGER PRIMARY KEY, name TEXT NOT NULL, title TEXT, uid TEXT, updated_at INTEGER NOT NULL DEFAULT 0);
CREATE TABLE tags(id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);
CREATE TABLE books_tags_link(id INTEGER PRIMARY KEY, book INTEGER NOT NULL, tag INTEGER NOT NULL, UNIQUE(book, tag));
CREATE TRIGGER books_tags_link_check BEFORE INSERT ON books_tags_link BEGIN
  SELECT RAISE(ABORT, 'no such book') WHERE NOT EXISTS (SELECT 1 FROM books WHERE id = NEW.book);
  SELECT RAISE(ABORT, 'no such tag') WHERE NOT EXISTS (SELECT 1 FROM tags WHERE id = NEW.tag);
END;
CREATE TRIGGER books_cascade AFTER DELETE ON books BEGIN DELETE FROM books_tags_link WHERE book = OLD.id; END;
CREATE TRIGGER tags_cascade AFTER DELETE ON tags BEGIN DELETE FROM books_tags_link WHERE tag = OLD.id; END;
CREATE TRIGGER books_touch AFTER UPDATE OF title ON books BEGIN UPDATE books SET updated_at = updated_at + 1 WHERE id = NEW.id; END;
CREATE TRIGGER books_uid AFTER INSERT ON books WHEN NEW.uid IS NULL BEGIN UPDATE books SET uid = uuid4() WHERE id = NEW.id; END;
`

// appPropRestrict is appPropSchema for an app that refuses to delete a
// book or tag still linked (BEFORE DELETE triggers that RAISE) instead of
// cascading: it unlinks first.
var appPropRestrict = strings.NewReplacer(
	`CREATE TRIGGER books_cascade AFTER DELETE ON books BEGIN DELETE FROM books_tags_link WHERE book = OLD.id; END;`,
	`CREATE TRIGGER books_restrict BEFORE DELETE ON books BEGIN SELECT RAISE(ABORT, 'book still linked') WHERE EXISTS (SELECT 1 FROM books_tags_link WHERE book = OLD.id); END;`,
	`CREATE TRIGGER tags_cascade AFTER DELETE ON tags BEGIN DELETE FROM books_tags_link WHERE tag = OLD.id; END;`,
	`CREATE TRIGGER tags_restrict BEFORE DELETE ON tags BEGIN SELECT RAISE(ABORT, 'tag still linked') WHERE EXISTS (SELECT 1 FROM books_tags_link WHERE tag = OLD.id); END;`,
).Replace(appPropSchema)

// appVariant is one variant of TestAppRulesProperty.
type appVariant struct {
	name     string // the subtests' prefix, and ROWDROP_APPPROP_DELETES's value
	deletes  bool   // books and tags are deleted too
	restrict bool   // appPropRestrict: the app unlinks before it deletes
}

var appVariants = []appVariant{{name: "0"}, {name: "deletes", deletes: true}, {name: "restrict", deletes: true, restrict: true}}

func (v appVariant) schema() string {
	if v.restrict {
		return appPropRestrict
	}
	return appPropSchema
}

// testName is the subtest's name for seed (device ids derive from it).
func (v appVariant) testName(seed uint64) string {
	if v.name == "0" {
		return fmt.Sprintf("TestAppRulesProperty/seed=%d", seed)
	}
	return fmt.Sprintf("TestAppRulesProperty/%s/seed=%d", v.name, seed)
}

// appLink names a link by its book's and tag's names (ids move).
type appLink struct{ book, tag string }

// appProp is one seed's run: what every device did, to judge the end.
type appProp struct {
	t       testing.TB
	rng     *rand.Rand
	w       *scenario.World
	devs    []*scenario.Device
	n       int
	created map[appLink]bool
	deleted map[appLink]bool // by an edit on a device that saw the link
	// reused: a book's or tag's id deleted and reused for a new one on a
	// device before it exported (pending, per device, table and id: the
	// deleted one's name). A changeset cannot tell that from an edit of
	// the old row (docs/INTERNALS.md, known gaps), so another device's
	// concurrent links to the old one follow the new one: renamed maps the
	// old name to the new.
	pending map[*scenario.Device]map[string]string
	renamed map[string]string
	// ids are the ids each book's and tag's name has had on any device
	// (observe): a conflict-log entry names a link by them.
	ids   map[string]map[string]bool
	v     appVariant
	trace bool
	// ops, when not nil, records every operation (apprules_reduce_test.go
	// replays and shrinks them); tick is the clock advance not yet
	// recorded with one.
	ops  *[]appOp
	tick int64
}

// appOp is one recorded operation of a run: after advancing the clock by
// tick, run q on device dev, or (q empty) export dev and deliver all of it
// to device to, which imports.
type appOp struct {
	tick    int64
	dev, to int
	q       string
	args    []any
}

func (p *appProp) devIndex(d *scenario.Device) int {
	for i, x := range p.devs {
		if x == d {
			return i
		}
	}
	return -1
}

func (p *appProp) record(op appOp) {
	if p.ops != nil {
		op.tick, p.tick = p.tick, 0
		*p.ops = append(*p.ops, op)
	}
}

// exec runs q on d, logged when tracing, and notes the links it makes or
// deletes.
func (p *appProp) exec(d *scenario.Device, q string, args ...any) {
	if p.trace {
		p.t.Logf("%s: %s %v", d.Name, q, args)
	}
	p.record(appOp{dev: p.devIndex(d), q: q, args: args})
	p.note(d, q, args)
	d.Exec(q, args...)
}

// The statements step runs that make or delete links (note reads them, so
// a replay of recorded operations judges the end the same way).
const (
	appLinkInsert = `INSERT OR IGNORE INTO books_tags_link(id, book, tag) SELECT coalesce(max(id), 0) + 1, ?, ? FROM books_tags_link`
	appLinkDelete = `DELETE FROM books_tags_link WHERE book = ? AND tag = ?`
	appBookInsert = `INSERT INTO books(id, name, title) SELECT coalesce(max(id), 0) + 1, ?, ? FROM books`
	appTagInsert  = `INSERT INTO tags(id, name) SELECT coalesce(max(id), 0) + 1, ? FROM tags`
)

// note records, before q runs on d, the links it makes (created) and the
// links it deletes, by this device that has them (deleted): an unlink, or
// the app's cascade of a book's or tag's delete.
func (p *appProp) note(d *scenario.Device, q string, args []any) {
	name := func(tbl string, id any) string { return d.Value(`SELECT name FROM `+tbl+` WHERE id = ?`, id) }
	switch {
	case q == appLinkInsert:
		p.created[appLink{name("books", args[0]), name("tags", args[1])}] = true
	case q == appLinkDelete:
		for _, l := range p.linksOf(d, fmt.Sprintf("l.book = %v AND l.tag = %v", args[0], args[1])) {
			p.deleted[l] = true
		}
	case q == `DELETE FROM books_tags_link WHERE book = ?`, q == `DELETE FROM books_tags_link WHERE tag = ?`:
		for _, l := range p.linksOf(d, fmt.Sprintf("l.%s = %v", strings.Fields(q)[4], args[0])) {
			p.deleted[l] = true
		}
	case q == `DELETE FROM books WHERE id = ?`, q == `DELETE FROM tags WHERE id = ?`:
		tbl, col := "books", "book"
		if strings.Contains(q, "tags") {
			tbl, col = "tags", "tag"
		}
		for _, l := range p.linksOf(d, fmt.Sprintf("l.%s = %v", col, args[0])) {
			p.deleted[l] = true
		}
		if p.pending[d] == nil {
			p.pending[d] = map[string]string{}
		}
		p.pending[d][tbl+fmt.Sprint(args[0])] = name(tbl, args[0])
	case q == appBookInsert, q == appTagInsert:
		tbl := "books"
		if q == appTagInsert {
			tbl = "tags"
		}
		id := d.Value(`SELECT coalesce(max(id), 0) + 1 FROM ` + tbl)
		if old, ok := p.pending[d][tbl+id]; ok {
			p.renamed[old] = args[0].(string)
		}
		p.sawID(args[0].(string), id)
	}
}

func (p *appProp) sawID(name, id string) {
	if p.ids[name] == nil {
		p.ids[name] = map[string]bool{}
	}
	p.ids[name][id] = true
}

// observe records the ids every device's books and tags have now.
func (p *appProp) observe() {
	for _, d := range p.devs {
		for _, r := range d.Query(`SELECT name, id FROM books UNION ALL SELECT name, id FROM tags`) {
			p.sawID(r[0], r[1])
		}
	}
}

// exported: d's deletes so far are published (its later reuse of their
// ids is an insert).
func (p *appProp) exported(d *scenario.Device) { delete(p.pending, d) }

// names lists n and the names a reuse of its id gave it since (renamed).
func (p *appProp) names(n string) []string {
	out := []string{n}
	for len(out) <= len(p.renamed) {
		next, ok := p.renamed[out[len(out)-1]]
		if !ok {
			break
		}
		out = append(out, next)
	}
	return out
}

// TestAppRulesProperty runs seeds 1..100 by default (20 with -short;
// ROWDROP_SEED=n one seed, ROWDROP_SEEDS=N N seeds from a random base,
// ROWDROP_SEED_BASE=b from b) in three variants: links only (seed=n), with
// deletes of books and tags concurrent with new links, cascaded by the
// app (deletes/seed=n), and the same for an app that refuses to delete
// what is still linked (restrict/seed=n, the first 30 seeds by default):
// about 0.2-0.8 s a run, 60-120 s in all on a loaded 2-core machine.
// ROWDROP_APPPROP_DELETES=0, =1 (or =deletes) or =restrict runs only that
// variant, on all the seeds; ROWDROP_APPPROP_TRACE=1 logs every step.
// TestAppRulesReduce shrinks a failing seed.
func TestAppRulesProperty(t *testing.T) {
	seeds := propSeeds(t)
	if os.Getenv("ROWDROP_SEEDS") == "" && os.Getenv("ROWDROP_SEED") == "" {
		seeds = seeds[:min(len(seeds), 100)]
	}
	only := os.Getenv("ROWDROP_APPPROP_DELETES")
	for _, v := range appVariants {
		if only != "" && appVariantFor(only) != v {
			continue
		}
		n := len(seeds)
		if v.restrict && only == "" {
			n = min(n, 30) // the same operations as deletes/, bar the unlinks
		}
		for _, seed := range seeds[:n] {
			t.Run(strings.TrimPrefix(v.testName(seed), "TestAppRulesProperty/"), func(t *testing.T) {
				t.Logf("seed %d (rerun with ROWDROP_SEED=%d ROWDROP_APPPROP_DELETES=%s)", seed, seed, v.name)
				if why := appPropKnown[v.name][seed]; why != "" && os.Getenv("ROWDROP_SEED") == "" {
					t.Skipf("known divergence (ROWDROP_SEED=%d runs it): %s", seed, why)
				}
				runAppProp(t, seed, v)
			})
		}
	}
}

// appVariantFor is the variant ROWDROP_APPPROP_DELETES names.
func appVariantFor(s string) appVariant {
	switch s {
	case "0":
		return appVariants[0]
	case "restrict":
		return appVariants[2]
	}
	return appVariants[1]
}

// appPropKnown are, per variant, the seeds that still fail, with what is known of the cause. (Seeds 8 and 37 were a deleted
// row's kept reference to a re-keyed id, revived by a later edit:
// rekeyer.repointDead. Seed 100 of the links-only
// variant was an INTEGER id reused after a seen delete, concurrent with a
// third device's insert under it: fixed by lineages, state.RowMeta.Lin;
// TestIntegerKeyReuseKeepsLineage is it as a deterministic test. Seeds 23,
// 42 and 68 were a book or tag deleted and its id reused before the
// deleting device exported, concurrent with a link to it elsewhere: the
// file carries an edit of the old row and the link follows the new one,
// the documented capture gap appProp.renamed models;
// TestReusedIDConcurrentLinkOneExport is it as a deterministic test.)
var appPropKnown = map[string]map[uint64]string{}

func runAppProp(t testing.TB, seed uint64, v appVariant) { runAppPropRec(t, seed, v, nil) }

// appRecord is a run as recorded: each device's merge batch (0: adaptive)
// and the operations.
type appRecord struct {
	batches []int
	ops     []appOp
}

func runAppPropRec(t testing.TB, seed uint64, v appVariant, rec *appRecord) {
	w := scenario.NewWorld(t, v.schema())
	trace := os.Getenv("ROWDROP_APPPROP_TRACE") != ""
	w.Quiet = !trace
	p := &appProp{trace: trace, t: t, rng: rand.New(rand.NewPCG(seed, 14)), w: w, created: map[appLink]bool{}, deleted: map[appLink]bool{}, v: v,
		pending: map[*scenario.Device]map[string]string{}, renamed: map[string]string{}, ids: map[string]map[string]bool{}}
	stand := func(c *rowdrop.Config) {
		c.StandIns = map[string]string{"uuid4": "uuid"}
		if p.rng.IntN(2) == 0 {
			c.MergeBatch = 1 + p.rng.IntN(3)
		}
		if rec != nil {
			rec.batches = append(rec.batches, c.MergeBatch)
		}
	}
	if rec != nil {
		p.ops = &rec.ops
	}
	for i := range 4 {
		d := w.AddDevice(scenario.Options{Name: fmt.Sprintf("d%d", i), Initialised: true, Hints: i%2 == 1, Config: stand})
		if err := d.App.CreateFunction("uuid4", appUUID(d.Name)); err != nil {
			t.Fatal(err)
		}
		p.devs = append(p.devs, d)
	}
	for range 30 + p.rng.IntN(20) {
		p.step()
		p.observe()
	}
	w.Tick(1000)
	w.Quiesce(12) // fails on any file still waiting, held or broken
	w.AssertConverged()
	p.check()
}

func (p *appProp) dev() *scenario.Device { return p.devs[p.rng.IntN(len(p.devs))] }

// pick returns a random row of q on d, or nil.
func (p *appProp) pick(d *scenario.Device, q string) []string {
	rows := d.Query(q)
	if len(rows) == 0 {
		return nil
	}
	return rows[p.rng.IntN(len(rows))]
}

func (p *appProp) linksOf(d *scenario.Device, where string) []appLink {
	var out []appLink
	for _, r := range d.Query(`SELECT b.name, t.name FROM books_tags_link l JOIN books b ON b.id = l.book JOIN tags t ON t.id = l.tag WHERE ` + where) {
		out = append(out, appLink{r[0], r[1]})
	}
	return out
}

func (p *appProp) step() {
	d := p.dev()
	ms := int64(1 + p.rng.IntN(50))
	p.w.Tick(ms)
	p.tick += ms
	p.n++
	switch r := p.rng.IntN(100); {
	case r < 18: // a book, under the next id this device sees
		p.exec(d, appBookInsert, fmt.Sprintf("b-%s-%d", d.Name, p.n), "t")
	case r < 30:
		p.exec(d, appTagInsert, fmt.Sprintf("t-%s-%d", d.Name, p.n))
	case r < 55: // link a book and a tag this device has
		b, t := p.pick(d, `SELECT id, name FROM books`), p.pick(d, `SELECT id, name FROM tags`)
		if b != nil && t != nil {
			p.exec(d, appLinkInsert, b[0], t[0])
		}
	case r < 63: // unlink
		if l := p.pick(d, `SELECT l.book, l.tag FROM books_tags_link l JOIN books b ON b.id = l.book JOIN tags t ON t.id = l.tag`); l != nil {
			p.exec(d, appLinkDelete, l[0], l[1])
		}
	case r < 70: // relink: one link to another tag
		l := p.pick(d, `SELECT l.book, l.tag FROM books_tags_link l JOIN books b ON b.id = l.book JOIN tags t ON t.id = l.tag`)
		t := p.pick(d, `SELECT id, name FROM tags`)
		if l != nil && t != nil && t[0] != l[1] {
			p.exec(d, appLinkDelete, l[0], l[1])
			p.exec(d, appLinkInsert, l[0], t[0])
		}
	case r < 76:
		if b := p.pick(d, `SELECT id FROM books`); b != nil {
			p.exec(d, `UPDATE books SET title = title || '+' WHERE id = ?`, b[0])
		}
	case r < 80 && p.v.deletes: // delete a book or a tag: the app cascades its links, or unlinks first
		tbl, col := "books", "book"
		if p.rng.IntN(2) == 0 {
			tbl, col = "tags", "tag"
		}
		if row := p.pick(d, `SELECT id FROM `+tbl); row != nil {
			if p.v.restrict {
				p.exec(d, `DELETE FROM books_tags_link WHERE `+col+` = ?`, row[0])
			}
			p.exec(d, `DELETE FROM `+tbl+` WHERE id = ?`, row[0])
		}
	default: // sync: export, deliver everything of one device to another, import
		from, to := d, p.dev()
		p.record(appOp{dev: p.devIndex(from), to: p.devIndex(to)})
		from.Export()
		p.exported(from)
		if from != to {
			p.w.DeliverAll(from, to)
			to.Import()
		}
	}
}

// kept: link l is present or was deleted by a device that had it, under
// its book's and tag's names or the names a reuse of their ids gave them.
func (p *appProp) kept(l appLink, present map[appLink]bool) bool {
	for _, b := range p.names(l.book) {
		for _, t := range p.names(l.tag) {
			if k := (appLink{b, t}); present[k] || p.deleted[k] {
				return true
			}
		}
	}
	return false
}

// check judges the converged end: no link without its book and tag, and
// every link some device made is there, or was deleted by an edit on a
// device that had it, or is in a conflict log.
func (p *appProp) check() {
	t := p.t
	d := p.devs[0]
	if n := d.Value(`SELECT count(*) FROM books_tags_link WHERE book NOT IN (SELECT id FROM books) OR tag NOT IN (SELECT id FROM tags)`); n != "0" {
		t.Errorf("%s orphan link row(s):\n%s", n, d.Dump())
	}
	if n := d.Value(`SELECT count(*) FROM books WHERE uid IS NULL OR length(uid) < 8`); n != "0" {
		t.Errorf("%s book(s) without their uid:\n%s", n, d.Dump())
	}
	present := map[appLink]bool{}
	for _, l := range p.linksOf(d, "1") {
		present[l] = true
	}
	p.observe()
	var logs []*rowdrop.Conflict
	for _, x := range p.devs {
		logs = append(logs, x.Conflicts()...)
	}
	for l := range p.created {
		if p.kept(l, present) || p.logged(l, logs) {
			continue
		}
		t.Errorf("link %s-%s was made, is gone, was deleted by no device that had it, and is in no conflict log\n%s", l.book, l.tag, d.Dump())
	}
}

// logged: a conflict-log entry holds link l (by any id its book and tag
// had), or its book or tag.
func (p *appProp) logged(l appLink, logs []*rowdrop.Conflict) bool {
	has := func(names []string, v string) bool {
		for _, n := range names {
			if p.ids[n][v] || v == "'"+n+"'" {
				return true
			}
		}
		return false
	}
	books, tags := p.names(l.book), p.names(l.tag)
	for _, c := range logs {
		for _, side := range []map[string]string{c.Loser, c.Winner} {
			switch c.Table {
			case "books_tags_link":
				if has(books, side["book"]) && has(tags, side["tag"]) {
					return true
				}
			case "books":
				if has(books, side["name"]) {
					return true
				}
			case "tags":
				if has(tags, side["name"]) {
					return true
				}
			}
		}
	}
	return false
}
