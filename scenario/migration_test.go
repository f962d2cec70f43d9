package scenario_test

import (
	"strings"
	"testing"

	"github.com/rowdrop/rowdrop"
	"github.com/rowdrop/rowdrop/scenario"
)

const migSchema = `
CREATE TABLE notes(id TEXT PRIMARY KEY, title TEXT, body TEXT);
CREATE TABLE log(at INTEGER, msg TEXT);
`

// upgrade is the app's migration: a column added to notes, a new table.
const upgrade = `
ALTER TABLE notes ADD COLUMN pinned INTEGER NOT NULL DEFAULT 0;
CREATE TABLE tags(id TEXT PRIMARY KEY, name TEXT);
`

func heldReasons(d *scenario.Device) string {
	var out []string
	st := d.Status()
	for _, f := range st.Files {
		out = append(out, f.Status+": "+f.Reason)
	}
	for _, h := range st.TablesHeld {
		out = append(out, "held: "+h.Reason)
	}
	return strings.Join(out, "\n")
}

// One device's app upgrades first (ALTER TABLE ADD COLUMN and a new
// table). Its files' parts for those tables wait, held with the table and
// columns named, on the device that has not upgraded, while that device's own edits (fewer
// columns) keep flowing to the upgraded one, where the new column keeps
// its value or takes its default. Once the second device upgrades, the
// held files apply by themselves and edits flow both ways.
func TestMigrationAddColumnOneDeviceFirst(t *testing.T) {
	w := scenario.NewWorld(t, migSchema)
	a := w.AddDevice(scenario.Options{Name: "a", Initialised: true, WAL: true})
	b := w.AddDevice(scenario.Options{Name: "b", Initialised: true, Hints: true})
	a.Exec(`INSERT INTO notes VALUES('n1', 'one', 'body')`)
	w.Tick(1000)
	w.Quiesce(5)

	// a upgrades and uses the new column and table.
	a.Script(upgrade)
	a.Exec(`UPDATE notes SET pinned=1 WHERE id='n1'`)
	a.Exec(`INSERT INTO notes VALUES('n2', 'two', 'b2', 1)`)
	a.Exec(`INSERT INTO tags VALUES('t1', 'work')`)
	// b, not upgraded, edits too.
	w.Tick(1000)
	b.Exec(`UPDATE notes SET title='one (b)' WHERE id='n1'`)
	b.Exec(`INSERT INTO notes VALUES('n3', 'three', 'b3')`)
	w.Tick(1000)
	a.Export()
	b.Export()
	w.Flood()
	if r := a.Import(); r.Held != 0 || r.Applied != 1 {
		t.Fatalf("a (upgraded) must apply b's narrower file: %+v\n%s", r, heldReasons(a))
	}
	if r := b.Import(); r.TablesHeld != 2 || r.Applied != 1 {
		t.Fatalf("b (not upgraded) must apply a's file with its parts for notes and tags held: %+v\n%s", r, heldReasons(b))
	}
	reasons := heldReasons(b)
	if !strings.Contains(reasons, "held") || !(strings.Contains(reasons, "pinned") || strings.Contains(reasons, "tags")) {
		t.Fatalf("b's status must say what is held and why (table and columns): %s", reasons)
	}
	if got := a.Query(`SELECT id, title, pinned FROM notes ORDER BY id`); len(got) != 3 || got[0][1] != "one (b)" || got[0][2] != "1" || got[2][2] != "0" {
		t.Fatalf("a after b's edits: %v", got)
	}

	// b keeps editing while a's files wait.
	w.Tick(1000)
	b.Exec(`UPDATE notes SET body='body (b)' WHERE id='n1'`)
	b.Sync()
	w.Flood()
	a.Sync()
	if got := a.Value(`SELECT body FROM notes WHERE id='n1'`); got != "body (b)" {
		t.Fatalf("a: n1.body = %s", got)
	}

	// b upgrades: the held files apply by themselves.
	w.Tick(1000)
	b.Script(upgrade)
	if r := b.Import(); r.Held != 0 || r.Released != 2 {
		t.Fatalf("b after its upgrade: %+v\n%s", r, heldReasons(b))
	}
	w.Tick(1000)
	w.Quiesce(5)
	w.AssertConverged()
	if got := b.Query(`SELECT id, title, body, pinned FROM notes ORDER BY id`); len(got) != 3 || got[0][1] != "one (b)" || got[0][2] != "body (b)" || got[0][3] != "1" || got[1][3] != "1" {
		t.Fatalf("b after convergence: %v", got)
	}
	if got := b.Value(`SELECT name FROM tags WHERE id='t1'`); got != "work" {
		t.Fatalf("b: tags row: %q", got)
	}

	// Both upgraded: edits of old and new columns flow both ways.
	w.Tick(1000)
	b.Exec(`UPDATE notes SET pinned=0 WHERE id='n2'`)
	a.Exec(`UPDATE notes SET pinned=1, title='three (a)' WHERE id='n3'`)
	b.Exec(`INSERT INTO tags VALUES('t2', 'home')`)
	w.Tick(1000)
	w.Quiesce(5)
	w.AssertConverged()
	if got := a.Query(`SELECT id, pinned FROM notes ORDER BY id`); got[1][1] != "0" || got[2][1] != "1" {
		t.Fatalf("after edits both ways: %v", got)
	}
	if len(a.Conflicts()) != 0 || len(b.Conflicts()) != 0 {
		t.Fatalf("no conflicts expected: a %d, b %d", len(a.Conflicts()), len(b.Conflicts()))
	}
}

// A table without a declared primary key is listed as unsyncable with the
// reason, and a migration rowdrop cannot follow is listed with guidance,
// while the other tables keep syncing.
func TestStatusUnsyncableAndSchemaProblems(t *testing.T) {
	w := scenario.NewWorld(t, migSchema+`CREATE TABLE other(id INTEGER PRIMARY KEY, v TEXT);`)
	a := w.AddDevice(scenario.Options{Name: "a", Initialised: true})
	b := w.AddDevice(scenario.Options{Name: "b", Initialised: true})
	a.Script(`INSERT INTO notes VALUES('n1', 'one', 'body'); INSERT INTO log VALUES(1, 'x')`)
	w.Quiesce(5)
	// An app rebuild that changes the key of notes on a.
	a.Script(`CREATE TABLE n2(id TEXT, title TEXT, body TEXT, PRIMARY KEY(id, title)); INSERT INTO n2 SELECT * FROM notes;
		DROP TABLE notes; ALTER TABLE n2 RENAME TO notes; UPDATE notes SET body='changed'; INSERT INTO other VALUES(1, 'still syncs')`)
	w.Tick(1000)
	w.Quiesce(5)
	if got := b.Value(`SELECT v FROM other WHERE id=1`); got != "still syncs" {
		t.Fatalf("other tables must keep syncing: %q", got)
	}
	if got := b.Value(`SELECT body FROM notes WHERE id='n1'`); got != "body" {
		t.Fatalf("notes must not sync while its key differs: %q", got)
	}
	st := a.Status()
	kinds := map[string]string{}
	for _, s := range st.Skipped {
		kinds[s.Name] = s.Kind + ": " + s.Reason
	}
	if k := kinds["log"]; !strings.HasPrefix(k, "unsyncable: no declared PRIMARY KEY") {
		t.Errorf("log: %q", k)
	}
	if k := kinds["notes"]; !strings.HasPrefix(k, rowdrop.SkippedSchemaChanged+": table notes: primary key changed from (id) to (id, title)") {
		t.Errorf("notes: %q", k)
	}
	for _, s := range st.Synced {
		if s == "notes" {
			t.Errorf("notes listed as synced: %v", st.Synced)
		}
	}
}
