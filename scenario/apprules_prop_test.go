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
	deletes bool             // books and tags are deleted too
	trace   bool
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

// exec runs q on d, logged when tracing.
func (p *appProp) exec(d *scenario.Device, q string, args ...any) {
	if p.trace {
		p.t.Logf("%s: %s %v", d.Name, q, args)
	}
	p.record(appOp{dev: p.devIndex(d), q: q, args: args})
	d.Exec(q, args...)
}

// TestAppRulesProperty runs seeds 1..100 by default (20 with -short;
// ROWDROP_SEED=n one seed, ROWDROP_SEEDS=N N seeds from a random base,
// ROWDROP_SEED_BASE=b from b), each twice: links only, and with deletes of
// books and tags concurrent with new links (deletes/seed=n): about 0.2-0.8
// s a run, 40-90 s in all on a loaded 2-core machine.
// ROWDROP_APPPROP_DELETES=1 runs only the deletes variant (=0 only the
// other); ROWDROP_APPPROP_TRACE=1 logs every step. TestAppRulesReduce
// shrinks a failing seed.
func TestAppRulesProperty(t *testing.T) {
	seeds := propSeeds(t)
	if os.Getenv("ROWDROP_SEEDS") == "" && os.Getenv("ROWDROP_SEED") == "" {
		seeds = seeds[:min(len(seeds), 100)]
	}
	variants := []bool{false, true}
	switch os.Getenv("ROWDROP_APPPROP_DELETES") {
	case "":
	case "0":
		variants = []bool{false}
	default:
		variants = []bool{true}
	}
	for _, deletes := range variants {
		prefix, known := "", map[uint64]string(nil)
		if deletes {
			prefix, known = "deletes/", appPropKnownDeletes
		}
		for _, seed := range seeds {
			t.Run(fmt.Sprintf("%sseed=%d", prefix, seed), func(t *testing.T) {
				t.Logf("seed %d (rerun with ROWDROP_SEED=%d ROWDROP_APPPROP_DELETES=%d)", seed, seed, map[bool]int{false: 0, true: 1}[deletes])
				if why := known[seed]; why != "" && os.Getenv("ROWDROP_SEED") == "" {
					t.Skipf("known divergence (ROWDROP_SEED=%d runs it): %s", seed, why)
				}
				runAppProp(t, seed, deletes)
			})
		}
	}
}

// appPropKnownDeletes are the seeds of the deletes variant that still
// fail, with what is known of the cause. (Seeds 8 and 37 were a deleted
// row's kept reference to a re-keyed id, revived by a later edit:
// rekeyer.repointDead. Seed 100 of the links-only
// variant was an INTEGER id reused after a seen delete, concurrent with a
// third device's insert under it: fixed by lineages, state.RowMeta.Lin;
// TestIntegerKeyReuseKeepsLineage is it as a deterministic test.)
var appPropKnownDeletes = map[uint64]string{
	23: undiagnosedDeletes,
	42: undiagnosedDeletes,
	68: undiagnosedDeletes,
}

// undiagnosedDeletes: these fail on main before lineages too. A link made
// concurrently with a delete of its book or tag ends up gone with no
// conflict logged; in seed 23 the link's book is deleted on another device
// while the link's tag id collides three ways, and the deleting device
// also reused a deleted book's id in the same export (which a changeset
// carries as an edit of the old row, not a new row). Not diagnosed yet.
const undiagnosedDeletes = "a link concurrent with a delete of its parent is lost without a conflict-log entry (issue #14; cause not found yet)"

func runAppProp(t testing.TB, seed uint64, deletes bool) { runAppPropRec(t, seed, deletes, nil) }

// appRecord is a run as recorded: each device's merge batch (0: adaptive)
// and the operations.
type appRecord struct {
	batches []int
	ops     []appOp
}

func runAppPropRec(t testing.TB, seed uint64, deletes bool, rec *appRecord) {
	w := scenario.NewWorld(t, appPropSchema)
	trace := os.Getenv("ROWDROP_APPPROP_TRACE") != ""
	w.Quiet = !trace
	p := &appProp{trace: trace, t: t, rng: rand.New(rand.NewPCG(seed, 14)), w: w, created: map[appLink]bool{}, deleted: map[appLink]bool{}, deletes: deletes}
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
		p.exec(d, `INSERT INTO books(id, name, title) SELECT coalesce(max(id), 0) + 1, ?, ? FROM books`, fmt.Sprintf("b-%s-%d", d.Name, p.n), "t")
	case r < 30:
		p.exec(d, `INSERT INTO tags(id, name) SELECT coalesce(max(id), 0) + 1, ? FROM tags`, fmt.Sprintf("t-%s-%d", d.Name, p.n))
	case r < 55: // link a book and a tag this device has
		b, t := p.pick(d, `SELECT id, name FROM books`), p.pick(d, `SELECT id, name FROM tags`)
		if b != nil && t != nil {
			p.exec(d, `INSERT OR IGNORE INTO books_tags_link(id, book, tag) SELECT coalesce(max(id), 0) + 1, ?, ? FROM books_tags_link`, b[0], t[0])
			p.created[appLink{b[1], t[1]}] = true
		}
	case r < 63: // unlink
		if l := p.pick(d, `SELECT l.book, l.tag, b.name, t.name FROM books_tags_link l JOIN books b ON b.id = l.book JOIN tags t ON t.id = l.tag`); l != nil {
			p.exec(d, `DELETE FROM books_tags_link WHERE book = ? AND tag = ?`, l[0], l[1])
			p.deleted[appLink{l[2], l[3]}] = true
		}
	case r < 70: // relink: one link to another tag
		l := p.pick(d, `SELECT l.book, l.tag, b.name, t.name FROM books_tags_link l JOIN books b ON b.id = l.book JOIN tags t ON t.id = l.tag`)
		t := p.pick(d, `SELECT id, name FROM tags`)
		if l != nil && t != nil && t[0] != l[1] {
			p.exec(d, `DELETE FROM books_tags_link WHERE book = ? AND tag = ?`, l[0], l[1])
			p.exec(d, `INSERT OR IGNORE INTO books_tags_link(id, book, tag) SELECT coalesce(max(id), 0) + 1, ?, ? FROM books_tags_link`, l[0], t[0])
			p.deleted[appLink{l[2], l[3]}] = true
			p.created[appLink{l[2], t[1]}] = true
		}
	case r < 76:
		if b := p.pick(d, `SELECT id FROM books`); b != nil {
			p.exec(d, `UPDATE books SET title = title || '+' WHERE id = ?`, b[0])
		}
	case r < 80 && p.deletes: // delete a book or a tag: the app cascades its links
		tbl, col := "books", "book"
		if p.rng.IntN(2) == 0 {
			tbl, col = "tags", "tag"
		}
		if row := p.pick(d, `SELECT id FROM `+tbl); row != nil {
			for _, l := range p.linksOf(d, "l."+col+" = "+row[0]) {
				p.deleted[l] = true
			}
			p.exec(d, `DELETE FROM `+tbl+` WHERE id = ?`, row[0])
		}
	default: // sync: export, deliver everything of one device to another, import
		from, to := d, p.dev()
		p.record(appOp{dev: p.devIndex(from), to: p.devIndex(to)})
		from.Export()
		if from != to {
			p.w.DeliverAll(from, to)
			to.Import()
		}
	}
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
	logged := ""
	for _, x := range p.devs {
		for _, c := range x.Conflicts() {
			logged += fmt.Sprintf("%s %s %v %v\n", c.Table, c.Key, c.Loser, c.Winner)
		}
	}
	for l := range p.created {
		if present[l] || p.deleted[l] {
			continue
		}
		if !strings.Contains(logged, "books_tags_link") && !strings.Contains(logged, l.book) && !strings.Contains(logged, l.tag) {
			t.Errorf("link %s-%s was made, is gone, was deleted by no device that had it, and is in no conflict log\n%s", l.book, l.tag, d.Dump())
		}
	}
}
