package scenario_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/rowdrop/rowdrop"
	"github.com/rowdrop/rowdrop/scenario"
)

// Issue #14 seeds and the trigger-kept references they found broken.
//
// The app's trigger-kept references to a TEXT key (books keyed by a uuid
// string, links keyed by book and tag): the cascade of a remote delete is
// logged, and a restrict that refuses a delete while a concurrent link
// remains releases it, as for INTEGER keys. Before the fix both read the
// referencing rows by the key's integer value only, and so found none.

// A device deletes a TEXT-keyed book that another device has since linked:
// the app's cascade removes the link there, which is logged (cascaded) and
// exported.
func TestCascadeOfRemoteDeleteIsLoggedTextKey(t *testing.T) {
	const schema = `
CREATE TABLE books(id TEXT PRIMARY KEY, title TEXT);
CREATE TABLE links(book TEXT, tag TEXT, PRIMARY KEY(book, tag));
CREATE TRIGGER books_cascade AFTER DELETE ON books BEGIN DELETE FROM links WHERE book = OLD.id; END;
`
	w := scenario.NewWorld(t, schema)
	a := w.AddDevice(scenario.Options{Name: "a", Initialised: true})
	b := w.AddDevice(scenario.Options{Name: "b", Initialised: true})
	a.Exec(`INSERT INTO books VALUES('u-1', 'A-book')`)
	a.Export()
	w.DeliverAll(a, b)
	b.Import()
	w.Tick(1000)
	b.Exec(`INSERT INTO links VALUES('u-1', 'b1')`)
	b.Export()
	w.Tick(1000)
	a.Exec(`DELETE FROM books WHERE id = 'u-1'`) // a has not seen b's link
	a.Export()
	w.DeliverAll(a, b)
	b.Import()
	w.Tick(1000)
	w.Quiesce(8)
	w.AssertConverged()
	if n := a.Value(`SELECT count(*) FROM links`); n != "0" {
		t.Fatalf("links left: %s", n)
	}
	found := false
	for _, c := range b.Conflicts() {
		if c.Kind == "cascaded" && c.Table == "links" && strings.Contains(fmt.Sprint(c.Loser), "b1") {
			found = true
		}
	}
	if !found {
		t.Fatalf("the cascaded link is not in b's conflict log: %+v", b.Conflicts())
	}
}

// A device deletes a TEXT-keyed book while another links it, for an app
// that refuses the delete while links remain: where the delete comes
// after the link, the link is taken out and logged, the delete applies,
// and no file is held.
func TestRestrictedDeleteConcurrentLinkTextKey(t *testing.T) {
	const schema = `
CREATE TABLE books(id TEXT PRIMARY KEY, title TEXT);
CREATE TABLE links(book TEXT, tag TEXT, PRIMARY KEY(book, tag));
CREATE TRIGGER links_check BEFORE INSERT ON links BEGIN
  SELECT RAISE(ABORT, 'no such book') WHERE NOT EXISTS (SELECT 1 FROM books WHERE id = NEW.book);
END;
CREATE TRIGGER books_restrict BEFORE DELETE ON books BEGIN
  SELECT RAISE(ABORT, 'book still linked') WHERE EXISTS (SELECT 1 FROM links WHERE book = OLD.id);
END;
`
	w := scenario.NewWorld(t, schema)
	a := w.AddDevice(scenario.Options{Name: "a", Initialised: true})
	b := w.AddDevice(scenario.Options{Name: "b", Initialised: true})
	b.Exec(`INSERT INTO books VALUES('u-1', 'Dune'), ('u-2', 'Emma')`)
	b.Exec(`INSERT INTO links VALUES('u-2', 'kept')`)
	b.Export()
	w.DeliverAll(b, a)
	a.Import()
	w.Tick(1000)
	a.Exec(`DELETE FROM books WHERE id = 'u-1'`)
	a.Export()
	w.Tick(1000)
	b.Exec(`INSERT INTO links VALUES('u-1', 'new')`)
	b.Export()
	w.Tick(1000)
	w.DeliverAll(a, b)
	if r := b.Import(); r.Held != 0 || r.Waiting != 0 {
		t.Fatalf("b: the delete is not applied: %+v\n%+v", r, b.Status().Files)
	}
	w.Tick(1000)
	w.Quiesce(8)
	w.AssertConverged()
	for _, d := range w.Devs {
		if got := d.Value(`SELECT group_concat(title || ':' || coalesce(tag, '-')) FROM books LEFT JOIN links ON links.book = books.id`); got != "Emma:kept" {
			t.Errorf("%s: books and links %q, want Emma:kept only:\n%s", d.Name, got, d.Dump())
		}
	}
	found := false
	for _, cf := range b.Conflicts() {
		found = found || cf.Kind == "parent-deleted" && cf.Table == "links" && strings.Contains(fmt.Sprint(cf.Loser), "new")
	}
	if !found {
		t.Errorf("b took its link out without logging it: %+v", b.Conflicts())
	}
}

// Three devices insert tags A, B, C under id 1 (exported in that order).
// A link made on b to its tag B, exported; b hears of c's tag
// C under id 1 too (C moves) and re-points the link to C, not exported
// yet; then b hears of a's tag A under id 1, inserted before either: B
// moves, and the links merged to id 1 by writers who meant B follow it.
// b's link was merged (exported by b) naming B, but live holds b's later
// re-point to C: the move must re-point base alone, so the re-point is
// exported. Before the fix the move overwrote it in live too, and the
// link ended on B everywhere, with nothing logged (seed 407331122).
func TestIntegerKeyCollisionKeepsUnexportedRepoint(t *testing.T) {
	for _, hints := range []bool{false, true} {
		t.Run(fmt.Sprintf("hints=%v", hints), func(t *testing.T) {
			w := scenario.NewWorld(t, `
CREATE TABLE tags(id INTEGER PRIMARY KEY, name TEXT NOT NULL);
CREATE TABLE links(id INTEGER PRIMARY KEY, tag INTEGER NOT NULL);
CREATE TRIGGER links_check BEFORE INSERT ON links BEGIN
  SELECT RAISE(ABORT, 'no such tag') WHERE NOT EXISTS (SELECT 1 FROM tags WHERE id = NEW.tag);
END;
CREATE TRIGGER tags_cascade AFTER DELETE ON tags BEGIN DELETE FROM links WHERE tag = OLD.id; END;
`)
			a := w.AddDevice(scenario.Options{Name: "a", Initialised: true})
			b := w.AddDevice(scenario.Options{Name: "b", Initialised: true, Hints: hints, Config: func(c *rowdrop.Config) { c.MergeBatch = 2 }})
			c := w.AddDevice(scenario.Options{Name: "c", Initialised: true})
			a.Exec(`INSERT INTO tags VALUES(1, 'A')`)
			a.Export() // the first insert: it keeps id 1 wherever it meets the others
			w.Tick(100)
			b.Exec(`INSERT INTO tags VALUES(1, 'B')`)
			w.Tick(100)
			c.Exec(`INSERT INTO tags VALUES(1, 'C')`)
			w.Tick(100)
			b.Exec(`INSERT INTO links VALUES(1, 1)`)
			b.Export()
			w.Tick(100)
			c.Export()
			w.DeliverAll(c, b)
			b.Import()
			w.Tick(1000)
			b.Exec(`DELETE FROM links WHERE id = 1`)
			b.Exec(`INSERT INTO links SELECT 1, id FROM tags WHERE name = 'C'`)
			w.Tick(1000)
			w.DeliverAll(a, b)
			b.Import()
			w.Tick(1000)
			w.Quiesce(8)
			w.AssertConverged()
			for _, d := range w.Devs {
				if got := d.Value(`SELECT group_concat(t.name) FROM links l JOIN tags t ON t.id = l.tag`); got != "C" {
					t.Errorf("%s: the link is on %q, want C (b's re-point):\n%s", d.Name, got, d.Dump())
				}
			}
		})
	}
}

// The cascade of a remote delete is logged when the reference it follows
// is also kept by another trigger read first (by name): the link table's
// insert check names the book too. Before the fix the reference named the check
// only, which is no delete trigger of books, so the cascaded link went
// unlogged (seed 795632871 of TestAppRulesProperty's deletes variant).
func TestCascadeOfRemoteDeleteIsLoggedWithInsertCheck(t *testing.T) {
	w := scenario.NewWorld(t, `
CREATE TABLE books(id INTEGER PRIMARY KEY, title TEXT);
CREATE TABLE links(id INTEGER PRIMARY KEY, book INTEGER NOT NULL, tag TEXT);
CREATE TRIGGER a_links_check BEFORE INSERT ON links BEGIN
  SELECT RAISE(ABORT, 'no such book') WHERE NOT EXISTS (SELECT 1 FROM books WHERE id = NEW.book);
END;
CREATE TRIGGER books_cascade AFTER DELETE ON books BEGIN DELETE FROM links WHERE book = OLD.id; END;
`)
	a := w.AddDevice(scenario.Options{Name: "a", Initialised: true})
	b := w.AddDevice(scenario.Options{Name: "b", Initialised: true})
	a.Exec(`INSERT INTO books VALUES(1, 'A-book')`)
	a.Export()
	w.DeliverAll(a, b)
	b.Import()
	w.Tick(1000)
	b.Exec(`INSERT INTO links VALUES(1, 1, 'b1')`)
	b.Export()
	w.Tick(1000)
	a.Exec(`DELETE FROM books WHERE id = 1`) // a has not seen b's link
	a.Export()
	w.DeliverAll(a, b)
	b.Import()
	w.Tick(1000)
	w.Quiesce(8)
	w.AssertConverged()
	if n := a.Value(`SELECT count(*) FROM links`); n != "0" {
		t.Fatalf("links left: %s", n)
	}
	found := false
	for _, c := range b.Conflicts() {
		if c.Kind == "cascaded" && c.Table == "links" && strings.Contains(fmt.Sprint(c.Loser), "b1") {
			found = true
		}
	}
	if !found {
		t.Fatalf("the cascaded link is not in b's conflict log: %+v", b.Conflicts())
	}
}

// b deletes its own exported book under id 1 and, before exporting the
// delete, hears of a's book inserted under id 1 earlier: b's book moves,
// in base alone (live no longer has it), and the delete must go out for
// its new id. With hints (the fast capture) only id 1 was marked, which
// now holds a's book as merged, so the delete was never exported and b's
// book came back nowhere but stayed on every other device (seed
// 795632977).
func TestIntegerKeyCollisionExportsLocalDeleteOfMovedRow(t *testing.T) {
	for _, hints := range []bool{false, true} {
		t.Run(fmt.Sprintf("hints=%v", hints), func(t *testing.T) {
			w := scenario.NewWorld(t, `CREATE TABLE books(id INTEGER PRIMARY KEY, title TEXT);`)
			a := w.AddDevice(scenario.Options{Name: "a", Initialised: true})
			b := w.AddDevice(scenario.Options{Name: "b", Initialised: true, Hints: hints})
			c := w.AddDevice(scenario.Options{Name: "c", Initialised: true})
			b.Exec(`INSERT INTO books VALUES(1, 'B')`)
			w.Tick(1000)
			a.Exec(`INSERT INTO books VALUES(1, 'A')`)
			a.Export() // first: A keeps id 1
			w.Tick(1000)
			b.Export()
			w.DeliverAll(b, c)
			c.Import()
			w.Tick(1000)
			b.Exec(`DELETE FROM books WHERE id = 1`)
			w.Tick(1000)
			w.DeliverAll(a, b)
			b.Import()
			w.Tick(1000)
			w.Quiesce(8)
			w.AssertConverged()
			for _, d := range w.Devs {
				if got := d.Value(`SELECT group_concat(title) FROM books`); got != "A" {
					t.Errorf("%s: books %q, want A (b deleted B):\n%s", d.Name, got, d.Dump())
				}
			}
		})
	}
}

// a inserts book L0 under id 1 and deletes it (both exported, c hears of
// them), then reuses id 1 for book A and links it; c reuses id 1 for book
// C; b, which never saw L0, inserts B under id 1. A and C carry on L0's
// lineage and collide by their own inserts (C first: C keeps id 1, A
// moves); B's lineage is later and moves. a's link meant A. Where B's
// collision with L0's lineage was known, resolving the link's id stopped
// at L0, the first row a had seen under id 1, and so gave id 1, C's: the
// link moved to C and A lost it, with nothing logged (seed 314764527).
func TestIntegerKeyReusedLineageLinkFollowsItsRow(t *testing.T) {
	w := scenario.NewWorld(t, `
CREATE TABLE books(id INTEGER PRIMARY KEY, title TEXT);
CREATE TABLE links(id INTEGER PRIMARY KEY, book INTEGER NOT NULL, tag TEXT);
CREATE TRIGGER links_check BEFORE INSERT ON links BEGIN
  SELECT RAISE(ABORT, 'no such book') WHERE NOT EXISTS (SELECT 1 FROM books WHERE id = NEW.book);
END;
CREATE TRIGGER books_cascade AFTER DELETE ON books BEGIN DELETE FROM links WHERE book = OLD.id; END;
`)
	a := w.AddDevice(scenario.Options{Name: "a", Initialised: true})
	b := w.AddDevice(scenario.Options{Name: "b", Initialised: true})
	c := w.AddDevice(scenario.Options{Name: "c", Initialised: true})
	a.Exec(`INSERT INTO books VALUES(1, 'L0')`)
	a.Export()
	w.Tick(1000)
	a.Exec(`DELETE FROM books WHERE id = 1`)
	a.Export()
	w.DeliverAll(a, c)
	c.Import()
	w.Tick(1000)
	a.Exec(`INSERT INTO books VALUES(1, 'A')`)
	w.Tick(1000)
	b.Exec(`INSERT INTO books VALUES(1, 'B')`)
	w.Tick(1000)
	c.Exec(`INSERT INTO books VALUES(1, 'C')`)
	w.Tick(1000)
	a.Exec(`INSERT INTO links VALUES(1, 1, 'of A')`)
	w.Tick(1000)
	c.Export() // C's insert is earlier than A's: C keeps id 1
	w.Tick(1000)
	b.Export()
	w.Tick(1000)
	a.Export()
	w.Tick(1000)
	w.Quiesce(8)
	w.AssertConverged()
	for _, d := range w.Devs {
		if got := d.Value(`SELECT group_concat(b.title || ':' || l.tag) FROM links l JOIN books b ON b.id = l.book`); got != "A:of A" {
			t.Errorf("%s: links %q, want A:of A:\n%s", d.Name, got, d.Dump())
		}
		if got := d.Value(`SELECT title FROM books WHERE id = 1`); got != "C" {
			t.Errorf("%s: id 1 holds %q, want C:\n%s", d.Name, got, d.Dump())
		}
	}
}

// a and b insert tags A and B under id 1 (B exported first: it keeps id
// 1, A moves). a, not having heard of B, links A twice (links 1 and 2);
// b, which has A under its new id, links it too (link 1), with the same
// UNIQUE value as a's link 2. When b's file comes to a, a's link 1 is a
// local row under a merged row's id: it moves, and the merged link goes
// in under id 1, where a's link 2 holds its UNIQUE value. Before the fix
// that write failed and the import stayed interrupted for ever (no
// export on a); now a's unexported link loses, logged, as at any merged
// write (seed 561705199).
func TestIntegerKeyLocalMoveUniqueClashLocalLoses(t *testing.T) {
	w := scenario.NewWorld(t, `
CREATE TABLE tags(id INTEGER PRIMARY KEY, name TEXT NOT NULL);
CREATE TABLE links(id INTEGER PRIMARY KEY, tag INTEGER NOT NULL, label TEXT NOT NULL, UNIQUE(tag, label));
CREATE TRIGGER links_check BEFORE INSERT ON links BEGIN
  SELECT RAISE(ABORT, 'no such tag') WHERE NOT EXISTS (SELECT 1 FROM tags WHERE id = NEW.tag);
END;
`)
	a := w.AddDevice(scenario.Options{Name: "a", Initialised: true})
	b := w.AddDevice(scenario.Options{Name: "b", Initialised: true})
	a.Exec(`INSERT INTO tags VALUES(1, 'A')`)
	w.Tick(100)
	b.Exec(`INSERT INTO tags VALUES(1, 'B')`)
	b.Export() // first: B keeps id 1
	w.Tick(100)
	a.Export()
	w.DeliverAll(a, b)
	b.Import()
	w.Tick(1000)
	a.Exec(`INSERT INTO links VALUES(1, 1, 'other'), (2, 1, 'same')`)
	w.Tick(1000)
	b.Exec(`INSERT INTO links SELECT 1, id, 'same' FROM tags WHERE name = 'A'`)
	w.Tick(1000)
	b.Export()
	w.DeliverAll(b, a)
	if r := a.Import(); r.Held != 0 || r.Broken != 0 {
		t.Fatalf("a: b's file is not applied: %+v\n%+v", r, a.Status().Files)
	}
	w.Tick(1000)
	w.Quiesce(8)
	w.AssertConverged()
	for _, d := range w.Devs {
		if got := d.Value(`SELECT group_concat(t.name || ':' || l.label) FROM (SELECT * FROM links ORDER BY label) l JOIN tags t ON t.id = l.tag`); got != "A:other,A:same" {
			t.Errorf("%s: links %q, want A:other,A:same:\n%s", d.Name, got, d.Dump())
		}
	}
	found := false
	for _, c := range a.Conflicts() {
		found = found || c.Kind == "unique" && c.Table == "links" && strings.Contains(fmt.Sprint(c.Loser), "same")
	}
	if !found {
		t.Errorf("a undid its link without logging it: %+v", a.Conflicts())
	}
}

// c inserts tag L under id 1, a tag K (exported first: K keeps id 1, L's
// lineage moves whole). b deletes L; then b and c both reuse id 1 (R1, R2:
// L's lineage, neither seen by the other), b links R1. A device that met
// the reuses before K collided them under id 1 (R1, exported first, keeps
// the lineage's id; R2 moves); a, which had K under id 1, sent both to
// L's new id, where the second replaced the first as one row edited twice
// (a "key" conflict): the devices diverged (seed 724084297). Now they
// collide there as under id 1, and the link follows R1, whichever keeps.
func TestIntegerKeyConcurrentReusesOfMovedLineage(t *testing.T) {
	for _, r1First := range []bool{true, false} {
		t.Run(fmt.Sprintf("r1-first=%v", r1First), func(t *testing.T) { concurrentReusesOfMovedLineage(t, r1First) })
	}
}

func concurrentReusesOfMovedLineage(t *testing.T, r1First bool) {
	w := scenario.NewWorld(t, `
CREATE TABLE tags(id INTEGER PRIMARY KEY, name TEXT NOT NULL);
CREATE TABLE links(id INTEGER PRIMARY KEY, tag INTEGER NOT NULL, label TEXT);
CREATE TRIGGER links_check BEFORE INSERT ON links BEGIN
  SELECT RAISE(ABORT, 'no such tag') WHERE NOT EXISTS (SELECT 1 FROM tags WHERE id = NEW.tag);
END;
`)
	a := w.AddDevice(scenario.Options{Name: "a", Initialised: true})
	b := w.AddDevice(scenario.Options{Name: "b", Initialised: true})
	c := w.AddDevice(scenario.Options{Name: "c", Initialised: true})
	c.Exec(`INSERT INTO tags VALUES(1, 'L')`)
	w.Tick(1000)
	a.Exec(`INSERT INTO tags VALUES(1, 'K')`)
	a.Export() // first: K keeps id 1
	w.Tick(1000)
	c.Export()
	w.DeliverAll(c, b)
	b.Import()
	w.Tick(1000)
	b.Exec(`DELETE FROM tags WHERE id = 1`)
	b.Export()
	w.DeliverAll(b, c)
	c.Import()
	w.Tick(1000)
	c.Exec(`INSERT INTO tags VALUES(1, 'R2')`)
	w.Tick(1000)
	b.Exec(`INSERT INTO tags VALUES(1, 'R1')`)
	b.Exec(`INSERT INTO links VALUES(1, 1, 'of R1')`)
	w.Tick(1000)
	first, second := b, c // the first exported keeps the lineage's id
	if !r1First {
		first, second = c, b
	}
	first.Export()
	w.Tick(1000)
	second.Export()
	w.Tick(1000)
	w.Quiesce(8)
	w.AssertConverged()
	for _, d := range w.Devs {
		if got := d.Value(`SELECT group_concat(name) FROM (SELECT name FROM tags ORDER BY name)`); got != "K,R1,R2" {
			t.Errorf("%s: tags %q, want K,R1,R2:\n%s", d.Name, got, d.Dump())
		}
		if got := d.Value(`SELECT group_concat(t.name || ':' || l.label) FROM links l JOIN tags t ON t.id = l.tag`); got != "R1:of R1" {
			t.Errorf("%s: links %q, want R1:of R1:\n%s", d.Name, got, d.Dump())
		}
		if got := d.Value(`SELECT name FROM tags WHERE id = 1`); got != "K" {
			t.Errorf("%s: id 1 holds %q, want K:\n%s", d.Name, got, d.Dump())
		}
	}
}
