package scenario_test

import (
	"testing"

	"rowdrop/scenario"
)

// Two offline devices insert different rows under one INTEGER id, and one
// of them deletes its row before it hears of the other. Whether that
// delete reaches a device before or after the other insert is arrival
// order, so it must not decide where the other row lives: on every device
// the earlier-inserted row keeps the id (here deleted) and the other row
// lives under its new id, or, when the deleted row was inserted later, it
// is the one that moves and the live row keeps the id. Before the fix, a
// device that met the insert while the row was deleted saw no collision:
// the other row took the old id there (and, when it was the earlier
// insert, was lost under the deleted row's later clock).
func TestIntegerKeyCollisionWithDeletedRow(t *testing.T) {
	for _, deletedFirst := range []bool{true, false} {
		name := "deleted-row-inserted-first"
		if !deletedFirst {
			name = "deleted-row-inserted-later"
		}
		t.Run(name, func(t *testing.T) {
			w := scenario.NewWorld(t, `CREATE TABLE items(id INTEGER PRIMARY KEY, name TEXT NOT NULL);`)
			a := w.AddDevice(scenario.Options{Name: "a", Initialised: true})
			b := w.AddDevice(scenario.Options{Name: "b", Initialised: true})
			c := w.AddDevice(scenario.Options{Name: "c", Initialised: true})
			insertB := func() {
				b.Exec(`INSERT INTO items VALUES(1, 'b-row')`)
				b.Export()
				w.Tick(1000)
			}
			if !deletedFirst {
				insertB()
			}
			a.Exec(`INSERT INTO items VALUES(1, 'a-row')`)
			a.Export()
			w.Tick(1000)
			a.Exec(`DELETE FROM items WHERE id = 1`)
			a.Export()
			w.Tick(1000)
			if deletedFirst {
				insertB()
			}
			// a meets b's insert with its own row deleted; b meets a's
			// insert while its row lives; c gets b's file between a's.
			w.DeliverAll(b, a)
			a.Import()
			w.Deliver(a, 2, c) // a's first file (seq 1 is its empty initial export)
			c.Import()
			w.DeliverAll(b, c)
			c.Import()
			w.DeliverAll(a, b)
			b.Import()
			w.Tick(1000)
			w.Quiesce(8)
			w.AssertConverged()
			for _, d := range w.Devs {
				if got := d.Value(`SELECT group_concat(name) FROM items`); got != "b-row" {
					t.Errorf("%s: items %q, want only b-row:\n%s", d.Name, got, d.Dump())
				}
				id := d.Value(`SELECT id FROM items`)
				if deletedFirst && id == "1" || !deletedFirst && id != "1" {
					t.Errorf("%s: b-row under id %s (inserted first: %v)", d.Name, id, !deletedFirst)
				}
			}
		})
	}
}

// Two devices each insert a tag and a link to it under the same ids; the
// link table (its name sorts before its parent's, so a file's links are
// merged before its tags) has a UNIQUE reference. Where the other
// device's link arrives before its tag's collision is known, the link,
// naming the old id, clashes with the local link and is held; once the
// tag's collision is found, the held link must follow the tag it meant
// and come back, as it does on a device that found the collisions in the
// other order. Before the fix only the rows in the table followed, and
// the held link stayed out on one device only.
func TestIntegerKeyCollisionRepointsHeldChild(t *testing.T) {
	w := scenario.NewWorld(t, `
CREATE TABLE tags(id INTEGER PRIMARY KEY, name TEXT NOT NULL);
CREATE TABLE links(id INTEGER PRIMARY KEY, tag INTEGER REFERENCES tags(id), UNIQUE(tag));`)
	a := w.AddDevice(scenario.Options{Name: "a", Initialised: true})
	b := w.AddDevice(scenario.Options{Name: "b", Initialised: true})
	for _, d := range []*scenario.Device{a, b} {
		d.Exec(`INSERT INTO tags VALUES(1, ?)`, d.Name+"-tag")
		d.Exec(`INSERT INTO links VALUES(1, 1)`)
		d.Export()
		w.Tick(1000)
	}
	w.DeliverAll(b, a)
	a.Import()
	w.DeliverAll(a, b)
	b.Import()
	w.Tick(1000)
	w.Quiesce(8)
	w.AssertConverged()
	for _, d := range w.Devs {
		if got := d.Value(`SELECT group_concat(t.name, ',') FROM (SELECT t.name FROM links l JOIN tags t ON t.id = l.tag ORDER BY 1) t`); got != "a-tag,b-tag" {
			t.Errorf("%s: links to %q, want a-tag,b-tag:\n%s", d.Name, got, d.Dump())
		}
	}
}

// Two devices insert the same values under one INTEGER id, and a third an
// earlier, different row there. The two identical rows are two inserts:
// each lives under its own new id on every device. Before the fix a device
// that met the two identical rows first merged them into one (and moved
// that one), while a device that met the earlier row first moved each to
// its own id: one row there, two here.
func TestIntegerKeyCollisionIdenticalLaterInserts(t *testing.T) {
	w := scenario.NewWorld(t, `CREATE TABLE items(id INTEGER PRIMARY KEY, name TEXT NOT NULL);`)
	a := w.AddDevice(scenario.Options{Name: "a", Initialised: true})
	b := w.AddDevice(scenario.Options{Name: "b", Initialised: true})
	c := w.AddDevice(scenario.Options{Name: "c", Initialised: true})
	a.Exec(`INSERT INTO items VALUES(1, 'a-row')`)
	a.Export()
	w.Tick(1000)
	for _, d := range []*scenario.Device{b, c} {
		d.Exec(`INSERT INTO items VALUES(1, 'same')`)
		d.Export()
		w.Tick(1000)
	}
	w.DeliverAll(c, b) // b meets the identical row first
	b.Import()
	w.DeliverAll(b, a) // a meets each identical row with its own
	a.Import()
	w.DeliverAll(c, a)
	a.Import()
	w.Tick(1000)
	w.Quiesce(8)
	w.AssertConverged()
	for _, d := range w.Devs {
		if got := d.Value(`SELECT group_concat(name, ',') FROM (SELECT name FROM items ORDER BY id DESC)`); got != "a-row,same,same" {
			t.Errorf("%s: items %q, want a-row under 1 and both identical rows:\n%s", d.Name, got, d.Dump())
		}
		if got := d.Value(`SELECT name FROM items WHERE id = 1`); got != "a-row" {
			t.Errorf("%s: id 1 holds %q, want a-row", d.Name, got)
		}
	}
}
