package scenario_test

import (
	"fmt"
	"strings"
	"testing"

	"rowdrop/scenario"
)

const kbIntSchema = `
CREATE TABLE notebooks(id INTEGER PRIMARY KEY, name TEXT NOT NULL);
CREATE TABLE notes(id INTEGER PRIMARY KEY AUTOINCREMENT, notebook_id INTEGER REFERENCES notebooks(id), title TEXT);
CREATE TABLE note_links(src INTEGER REFERENCES notes(id), dst INTEGER REFERENCES notes(id), PRIMARY KEY(src, dst));
`

// joined renders each note with its notebook's name and its links by
// title: what the user sees, independent of the ids rowdrop chose.
func joined(d *scenario.Device) string {
	var b strings.Builder
	for _, r := range d.Query(`SELECT n.title, coalesce(b.name, '<dangling>') FROM notes n LEFT JOIN notebooks b ON b.id = n.notebook_id ORDER BY n.title`) {
		fmt.Fprintf(&b, "%s in %s\n", r[0], r[1])
	}
	for _, r := range d.Query(`SELECT coalesce(s.title, '<dangling>'), coalesce(t.title, '<dangling>') FROM note_links l LEFT JOIN notes s ON s.id = l.src LEFT JOIN notes t ON t.id = l.dst ORDER BY 1, 2`) {
		fmt.Fprintf(&b, "%s -> %s\n", r[0], r[1])
	}
	return b.String()
}

// wantEverywhere checks what every device of w renders.
func wantEverywhere(t *testing.T, w *scenario.World, render func(*scenario.Device) string, want string) {
	t.Helper()
	for _, d := range w.Devs {
		if got := render(d); got != want {
			t.Errorf("device %s:\n%s\nwant:\n%s", d.Name, got, want)
		}
	}
}

// Two offline devices create different notebooks and notes under the same
// INTEGER ids; a third device receives them in either order. Every device
// ends with both notebooks and both notes, each note in its own notebook,
// each link between the right notes, whatever the arrival order.
func TestIntegerKeyCollisionWithChildren(t *testing.T) {
	for _, order := range []string{"ab", "ba"} {
		t.Run(order, func(t *testing.T) {
			w := scenario.NewWorld(t, kbIntSchema)
			a := w.AddDevice(scenario.Options{Name: "a", Initialised: true})
			b := w.AddDevice(scenario.Options{Name: "b", Initialised: true, Hints: true})
			c := w.AddDevice(scenario.Options{Name: "c", Initialised: true})
			a.Exec(`INSERT INTO notebooks VALUES(1, 'A-book')`)
			a.Exec(`INSERT INTO notes(notebook_id, title) VALUES(1, 'a-note'), (1, 'a-note2')`)
			a.Exec(`INSERT INTO note_links VALUES(1, 2)`)
			w.Tick(1000)
			b.Exec(`INSERT INTO notebooks VALUES(1, 'B-book')`)
			b.Exec(`INSERT INTO notes(notebook_id, title) VALUES(1, 'b-note'), (1, 'b-note2')`)
			b.Exec(`INSERT INTO note_links VALUES(2, 1)`)
			a.Export()
			b.Export()
			// b goes on editing before it hears of a: a later file, still
			// naming its own ids.
			w.Tick(1000)
			b.Exec(`INSERT INTO notes(notebook_id, title) VALUES(1, 'b-note3')`)
			b.Exec(`UPDATE notebooks SET name = 'B-book renamed' WHERE id = 1`)
			b.Exec(`UPDATE notes SET title = 'b-note edited' WHERE id = 1`)
			b.Export()
			first, second := a, b
			if order == "ba" {
				first, second = b, a
			}
			w.DeliverAll(first, c)
			c.Import()
			w.DeliverAll(second, c)
			c.Import()
			w.Tick(1000)
			w.Quiesce(8)
			w.AssertConverged()
			want := "a-note in A-book\na-note2 in A-book\nb-note edited in B-book renamed\nb-note2 in B-book renamed\nb-note3 in B-book renamed\n" +
				"a-note -> a-note2\nb-note2 -> b-note edited\n"
			wantEverywhere(t, w, joined, want)
			// Both devices keep working with the merged ids.
			a.Exec(`UPDATE notes SET title = 'a-note final' WHERE title = 'a-note'`)
			b.Exec(`INSERT INTO notes(notebook_id, title) SELECT id, 'b-note4' FROM notebooks WHERE name = 'B-book renamed'`)
			w.Tick(1000)
			w.Quiesce(8)
			w.AssertConverged()
			if got := joined(c); !strings.Contains(got, "a-note final in A-book") || !strings.Contains(got, "b-note4 in B-book renamed") {
				t.Errorf("after further edits:\n%s", got)
			}
		})
	}
}

// The remote insert meets a row created here and not exported yet: the
// local row (and what references it) moves to a new id before it is ever
// exported, and both rows reach every device.
func TestIntegerKeyCollisionWithUnexportedLocalRow(t *testing.T) {
	w := scenario.NewWorld(t, kbIntSchema)
	a := w.AddDevice(scenario.Options{Name: "a", Initialised: true})
	b := w.AddDevice(scenario.Options{Name: "b", Initialised: true})
	a.Exec(`INSERT INTO notebooks VALUES(1, 'A-book')`)
	a.Exec(`INSERT INTO notes(notebook_id, title) VALUES(1, 'a-note')`)
	a.Export()
	w.Tick(1000)
	b.Exec(`INSERT INTO notebooks VALUES(1, 'B-book')`)
	b.Exec(`INSERT INTO notes(notebook_id, title) VALUES(1, 'b-note')`)
	w.DeliverAll(a, b)
	b.Import() // before b exports its own rows
	w.Tick(1000)
	w.Quiesce(8)
	w.AssertConverged()
	want := "a-note in A-book\nb-note in B-book\n"
	wantEverywhere(t, w, joined, want)
}

// A device joining from a snapshot taken after an id collision still
// resolves a reference written, before the collision was known, by the
// device whose row moved, and arriving after the snapshot.
func TestIntegerKeyCollisionJoinerFromSnapshot(t *testing.T) {
	w := scenario.NewWorld(t, kbIntSchema)
	a := w.AddDevice(scenario.Options{Name: "a", Initialised: true})
	b := w.AddDevice(scenario.Options{Name: "b", Initialised: true})
	a.Exec(`INSERT INTO notebooks VALUES(1, 'A-book')`)
	a.Export()
	w.Tick(1000)
	b.Exec(`INSERT INTO notebooks VALUES(1, 'B-book')`)
	b.Export()
	w.Tick(1000)
	b.Exec(`INSERT INTO notes(notebook_id, title) VALUES(1, 'b-note written before b saw a')`)
	b.Export() // b's second file: not delivered to a before the snapshot
	w.Deliver(b, 1, a)
	a.Import()
	snap := a.Snapshot()
	if snap.Seen[b.ID] != 1 {
		t.Fatalf("snapshot should include b's first file only: %v", snap.Seen)
	}
	c := w.AddDevice(scenario.Options{Name: "c"})
	w.DeliverSnapshots(a, c)
	w.DeliverAll(a, c)
	w.DeliverAll(b, c)
	c.Sync()
	w.Tick(1000)
	w.Quiesce(8)
	w.AssertConverged()
	want := "b-note written before b saw a in B-book\n"
	wantEverywhere(t, w, joined, want)
}
