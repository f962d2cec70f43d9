package scenario_test

import (
	"strings"
	"testing"

	"github.com/rowdrop/rowdrop"
	"github.com/rowdrop/rowdrop/merge"
	"github.com/rowdrop/rowdrop/scenario"
)

// One test per merge rule, on real databases and real folders. Every device
// has its own folder; the test moves files between them (the scenario harness), so the
// arrival order is part of each test.

const rulesSchema = `
CREATE TABLE notes(id TEXT PRIMARY KEY, title TEXT, body TEXT, n INTEGER);
CREATE TABLE pairs(a TEXT, b INTEGER, v TEXT, PRIMARY KEY(a, b)) WITHOUT ROWID;
`

// world returns n initialised devices that all hold note 'k'
// ('t0','b0',0), merged everywhere.
func world(t *testing.T, n int) (*scenario.World, []*scenario.Device) {
	t.Helper()
	w := scenario.NewWorld(t, rulesSchema)
	var ds []*scenario.Device
	for i := 0; i < n; i++ {
		ds = append(ds, w.AddDevice(scenario.Options{Name: string(rune('A' + i)), Initialised: true, WAL: i%2 == 1, Hints: i%2 == 0}))
	}
	w.Tick(1000)
	ds[0].Exec("INSERT INTO notes VALUES('k','t0','b0',0)")
	w.Tick(1000)
	w.Quiesce(5)
	w.Tick(1000)
	return w, ds
}

func note(d *scenario.Device) string {
	d.W.T.Helper()
	r := d.Query("SELECT quote(title)||'|'||quote(body)||'|'||quote(n) FROM notes WHERE id='k'")
	if len(r) == 0 {
		return "absent"
	}
	return r[0][0]
}

// logged returns the conflict-log entries of d about table/key whose loser
// holds value (rendered) in column col.
func logged(d *scenario.Device, table, key, col, value string) []*rowdrop.Conflict {
	d.W.T.Helper()
	var out []*rowdrop.Conflict
	for _, c := range d.Conflicts() {
		if c.Table == table && c.Key == key && c.Loser != nil && c.Loser[col] == value {
			out = append(out, c)
		}
	}
	return out
}

func dumpConflicts(d *scenario.Device) string {
	var b strings.Builder
	for _, c := range d.Conflicts() {
		b.WriteString(c.Kind + " " + c.Table + "[" + c.Key + "] cols=" + strings.Join(c.Columns, ",") + " winner=")
		for _, col := range c.Columns {
			b.WriteString(col + ":" + c.Winner[col] + " ")
		}
		b.WriteString("loser=")
		for _, col := range c.Columns {
			b.WriteString(col + ":" + c.Loser[col] + " ")
		}
		b.WriteString("(" + c.Note + ")\n")
	}
	return b.String()
}

func wantNote(t *testing.T, want string, ds ...*scenario.Device) {
	t.Helper()
	for _, d := range ds {
		if got := note(d); got != want {
			t.Fatalf("%s: note k = %s, want %s", d.Name, got, want)
		}
	}
}

// Concurrent edits of one cell: the later export wins on every device,
// whatever the arrival order, and the losing value is in the conflict log.
func TestConcurrentSameCell(t *testing.T) {
	w, ds := world(t, 4)
	a, b, c, d := ds[0], ds[1], ds[2], ds[3]
	a.Exec("UPDATE notes SET title='from A' WHERE id='k'")
	b.Exec("UPDATE notes SET title='from B' WHERE id='k'")
	a.Export()
	w.Tick(1000)
	b.Export() // later clock: B wins
	w.Send(a, b)
	w.Send(b, a)
	w.Send(a, c) // C: A then B
	w.Send(b, c)
	w.Send(b, d) // D: B then A
	w.Send(a, d)
	wantNote(t, "'from B'|'b0'|0", a, b, c, d)
	for _, x := range ds {
		if len(logged(x, "notes", "'k'", "title", "'from A'")) == 0 {
			t.Errorf("%s: losing value 'from A' not in the conflict log:\n%s", x.Name, dumpConflicts(x))
		}
		if len(logged(x, "notes", "'k'", "title", "'from B'")) != 0 {
			t.Errorf("%s: the winning value is logged as a loser:\n%s", x.Name, dumpConflicts(x))
		}
	}
	w.Quiesce(3)
	w.AssertConverged()
}

// Concurrent edits of different columns of one row both survive, and no
// conflict is logged.
func TestDifferentCells(t *testing.T) {
	w, ds := world(t, 3)
	a, b, c := ds[0], ds[1], ds[2]
	a.Exec("UPDATE notes SET title='A title', n=NULL WHERE id='k'")
	b.Exec("UPDATE notes SET body='B body' WHERE id='k'")
	a.Export()
	w.Tick(1000)
	b.Export()
	w.Send(b, c)
	w.Send(a, c, b)
	w.Send(b, a)
	wantNote(t, "'A title'|'B body'|NULL", a, b, c)
	for _, x := range ds {
		if cs := x.Conflicts(); len(cs) != 0 {
			t.Errorf("%s: unexpected conflicts:\n%s", x.Name, dumpConflicts(x))
		}
	}
	w.Quiesce(3)
	w.AssertConverged()
}

// Delete versus edit, the edit being later: the row comes back everywhere
// with its last values (the edit applied), and the losing delete is logged.
func TestEditLaterThanDelete(t *testing.T) {
	w, ds := world(t, 4)
	a, b, c, d := ds[0], ds[1], ds[2], ds[3]
	b.Exec("UPDATE notes SET body='b1' WHERE id='k'") // B's earlier edit, seen by nobody yet
	b.Export()
	w.Tick(1000)
	a.Exec("DELETE FROM notes WHERE id='k'")
	a.Export()
	w.Tick(1000)
	b.Exec("UPDATE notes SET title='edited' WHERE id='k'") // B has not seen the delete
	b.Export()
	w.Send(a, c) // C: delete first, then the edits
	w.Send(b, c)
	w.Send(b, d) // D: edits first, then the delete
	w.Send(a, d)
	w.Send(b, a)
	w.Send(a, b)
	wantNote(t, "'edited'|'b1'|0", a, b, c, d)
	lost := 0
	for _, x := range ds {
		for _, cf := range x.Conflicts() {
			if cf.Kind == merge.KindDeleteLost && cf.Key == "'k'" {
				lost++
			}
		}
	}
	if lost == 0 {
		t.Errorf("the losing delete is in no conflict log")
	}
	w.Quiesce(3)
	w.AssertConverged()
}

// Delete versus edit, the delete being later: the row is gone everywhere
// and the edit it removed is in the conflict log.
func TestDeleteLaterThanEdit(t *testing.T) {
	w, ds := world(t, 4)
	a, b, c, d := ds[0], ds[1], ds[2], ds[3]
	b.Exec("UPDATE notes SET title='edited' WHERE id='k'")
	b.Export()
	w.Tick(1000)
	a.Exec("DELETE FROM notes WHERE id='k'") // A has not seen the edit
	a.Export()
	w.Send(a, c)
	w.Send(b, c)
	w.Send(b, d)
	w.Send(a, d)
	w.Send(b, a)
	w.Send(a, b)
	wantNote(t, "absent", a, b, c, d)
	for _, x := range ds {
		if len(logged(x, "notes", "'k'", "title", "'edited'")) == 0 {
			t.Errorf("%s: the deleted edit is not in the conflict log:\n%s", x.Name, dumpConflicts(x))
		}
	}
	w.Quiesce(3)
	w.AssertConverged()
}

// An edit made after merging another device's edit wins over it and is
// not a conflict: on the devices involved, nor on a third device that gets
// the files in causal order.
func TestIntentNotAConflict(t *testing.T) {
	w, ds := world(t, 4)
	a, b, c, d := ds[0], ds[1], ds[2], ds[3]
	ds = ds[:3]
	a.Exec("UPDATE notes SET title='A1' WHERE id='k'")
	a.Export()
	w.Tick(1000)
	w.Send(a, b)
	b.Exec("UPDATE notes SET title='B1' WHERE id='k'") // B saw A1
	b.Export()
	w.Tick(1000)
	w.Send(b, a)
	w.Send(a, c)
	w.Send(b, c)
	wantNote(t, "'B1'|'b0'|0", a, b, c)
	for _, x := range ds {
		if cs := x.Conflicts(); len(cs) != 0 {
			t.Errorf("%s: an informed overwrite was logged as a conflict:\n%s", x.Name, dumpConflicts(x))
		}
	}
	// D gets B's file before A's: the data is the same; the log is not
	// (files carry no causal history; see the package doc).
	w.Send(b, d)
	w.Send(a, d)
	wantNote(t, "'B1'|'b0'|0", d)
	t.Logf("D, out of causal order, logged:\n%s", dumpConflicts(d))
	// Same with the overwrite being a delete, then a re-insert.
	a.Exec("DELETE FROM notes WHERE id='k'")
	a.Export()
	w.Tick(1000)
	w.Send(a, b, c, d)
	b.Exec("INSERT INTO notes VALUES('k','again','b2',2)")
	b.Export()
	w.Tick(1000)
	w.Send(b, a, c, d)
	wantNote(t, "'again'|'b2'|2", a, b, c, d)
	for _, x := range ds {
		if cs := x.Conflicts(); len(cs) != 0 {
			t.Errorf("%s: informed delete/re-insert logged as a conflict:\n%s", x.Name, dumpConflicts(x))
		}
	}
	w.Quiesce(3)
	w.AssertConverged()
}

// A local edit not exported yet is never overwritten by an import; it is
// exported afterwards with a later clock and wins everywhere. The remote
// value it displaced is logged.
func TestUnexportedLocalEditKept(t *testing.T) {
	w, ds := world(t, 3)
	a, b, c := ds[0], ds[1], ds[2]
	a.Exec("UPDATE notes SET title='remote', body='remote body' WHERE id='k'")
	w.Tick(1000)
	b.Exec("UPDATE notes SET title='local' WHERE id='k'") // edited before A exports; not exported
	w.Tick(1000)
	a.Export() // A's clock is LATER than B's edit time
	w.Send(a, b, c)
	wantNote(t, "'local'|'remote body'|0", b)
	wantNote(t, "'remote'|'remote body'|0", a, c)
	if len(logged(b, "notes", "'k'", "title", "'remote'")) == 0 {
		t.Errorf("B: the displaced remote value is not logged:\n%s", dumpConflicts(b))
	}
	w.Tick(1000)
	b.Export()
	w.Send(b, a, c)
	wantNote(t, "'local'|'remote body'|0", a, b, c)
	w.Quiesce(3)
	w.AssertConverged()
}

// The same with a local delete, and a local insert, not exported yet.
func TestUnexportedLocalDeleteAndInsertKept(t *testing.T) {
	w, ds := world(t, 3)
	a, b, c := ds[0], ds[1], ds[2]
	a.Exec("UPDATE notes SET title='remote' WHERE id='k'")
	a.Exec("INSERT INTO notes VALUES('new','remote new','x',1)")
	b.Exec("DELETE FROM notes WHERE id='k'")
	b.Exec("INSERT INTO notes VALUES('new','local new','y',2)")
	w.Tick(1000)
	a.Export()
	w.Send(a, b, c)
	wantNote(t, "absent", b)
	if got := b.Value("SELECT title FROM notes WHERE id='new'"); got != "local new" {
		t.Fatalf("B: local insert overwritten: %q", got)
	}
	if len(logged(b, "notes", "'k'", "title", "'remote'")) == 0 {
		t.Errorf("B: remote edit of a locally deleted row is not logged:\n%s", dumpConflicts(b))
	}
	if len(logged(b, "notes", "'new'", "title", "'remote new'")) == 0 {
		t.Errorf("B: remote row displaced by a local insert is not logged:\n%s", dumpConflicts(b))
	}
	w.Tick(1000)
	b.Export()
	w.Send(b, a, c)
	wantNote(t, "absent", a, b, c)
	for _, x := range ds {
		if got := x.Value("SELECT title||body||n FROM notes WHERE id='new'"); got != "local newy2" {
			t.Fatalf("%s: row 'new' = %q", x.Name, got)
		}
	}
	w.Quiesce(3)
	w.AssertConverged()
}

// An edit not exported yet beats a remote delete that arrives before it is
// exported: the row stays here, is exported with a later clock and comes
// back everywhere with the edit; the losing delete is logged here, the
// only place where it is seen losing (elsewhere it looks like a newer
// insert).
func TestUnexportedEditBeatsRemoteDelete(t *testing.T) {
	w, ds := world(t, 3)
	a, b, c := ds[0], ds[1], ds[2]
	b.Exec("UPDATE notes SET body='kept' WHERE id='k'")
	w.Tick(1000)
	a.Exec("DELETE FROM notes WHERE id='k'")
	a.Export()
	w.Send(a, b, c)
	wantNote(t, "absent", a, c)
	wantNote(t, "'t0'|'kept'|0", b)
	found := false
	for _, cf := range b.Conflicts() {
		if cf.Kind == merge.KindDeleteLost && cf.Key == "'k'" && cf.Winner["body"] == "'kept'" && cf.Loser["body"] == "'b0'" {
			found = true
		}
	}
	if !found {
		t.Fatalf("B: the losing delete is not logged:\n%s", dumpConflicts(b))
	}
	w.Tick(1000)
	b.Export()
	w.Send(b, a, c)
	wantNote(t, "'t0'|'kept'|0", a, b, c)
	w.Quiesce(3)
	w.AssertConverged()
}

// Two devices insert different rows under the same key: every device ends
// with the later row, and the earlier row is kept whole in the conflict log.
func TestPrimaryKeyCollision(t *testing.T) {
	w, ds := world(t, 4)
	a, b, c, d := ds[0], ds[1], ds[2], ds[3]
	a.Exec("INSERT INTO notes VALUES('dup','A row','A body',1)")
	a.Exec("INSERT INTO pairs VALUES('x',1,'A pair')")
	b.Exec("INSERT INTO notes VALUES('dup','B row','B body',NULL)")
	b.Exec("INSERT INTO pairs VALUES('x',1,'B pair')")
	a.Export()
	w.Tick(1000)
	b.Export()
	w.Send(a, c)
	w.Send(b, c)
	w.Send(b, d)
	w.Send(a, d)
	w.Send(b, a)
	w.Send(a, b)
	for _, x := range ds {
		if got := x.Value("SELECT quote(title)||quote(body)||quote(n) FROM notes WHERE id='dup'"); got != "'B row''B body'NULL" {
			t.Errorf("%s: dup = %s", x.Name, got)
		}
		if got := x.Value("SELECT v FROM pairs WHERE a='x' AND b=1"); got != "B pair" {
			t.Errorf("%s: pair = %s", x.Name, got)
		}
	}
	// Every device logs the losing row whole: A and C replaced it when B's
	// row arrived, B and D refused it when it arrived after B's.
	for _, x := range ds {
		whole := false
		for _, cf := range x.Conflicts() {
			if cf.Kind == merge.KindKey && cf.Key == "'dup'" && cf.Loser["id"] == "'dup'" && cf.Loser["title"] == "'A row'" &&
				cf.Loser["body"] == "'A body'" && cf.Loser["n"] == "1" {
				whole = true
			}
			if cf.Kind == merge.KindKey && cf.Table == "pairs" && cf.Key == "'x', 1" && cf.Loser["v"] != "'A pair'" {
				t.Errorf("%s: pairs key conflict with the wrong loser: %+v", x.Name, cf)
			}
		}
		if !whole {
			t.Errorf("%s: the losing row is not kept whole in the conflict log:\n%s", x.Name, dumpConflicts(x))
		}
	}
	w.Quiesce(3)
	w.AssertConverged()
}
