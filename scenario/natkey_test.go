package scenario_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/rowdrop/rowdrop"
	"github.com/rowdrop/rowdrop/scenario"
)

// bookmarks as buku keeps them: an INTEGER id the app renumbers, and the
// real identity, a UNIQUE NOT NULL url.
const natkeySchema = `CREATE TABLE bm(id INTEGER PRIMARY KEY, url TEXT NOT NULL UNIQUE, title TEXT);`

func withIdentity(c *rowdrop.Config) { c.Identity = map[string][]string{"bm": {"url"}} }

// byURL renders a device's bookmarks without their device-local ids.
func byURL(d *scenario.Device) string {
	return fmt.Sprint(d.Query(`SELECT url, title FROM bm ORDER BY url`))
}

// renumberWorld: a and b hold u1..u3 under ids 1..3; then a deletes u2 the
// way buku does (the last row moves into the freed id: u3 becomes id 2)
// while b retitles u3 (id 3 on b). identity: nil runs it keyed by id.
func renumberWorld(t *testing.T, identity, hints bool) (a, b *scenario.Device) {
	w := scenario.NewWorld(t, natkeySchema)
	opt := func(name string) scenario.Options {
		o := scenario.Options{Name: name, Initialised: true, Hints: hints}
		if identity {
			o.Config = withIdentity
		}
		return o
	}
	a, b = w.AddDevice(opt("a")), w.AddDevice(opt("b"))
	w.Tick(1000)
	a.Exec(`INSERT INTO bm VALUES(1,'u1','t1'),(2,'u2','t2'),(3,'u3','t3')`)
	w.Quiesce(5)
	w.Tick(1000)
	a.Exec(`DELETE FROM bm WHERE id=2`)
	a.Exec(`UPDATE bm SET id=2 WHERE id=3`)
	w.Tick(1000)
	b.Exec(`UPDATE bm SET title='retitled' WHERE id=3`)
	w.Quiesce(5)
	return a, b
}

// A renumbering delete on one device and a concurrent edit of the moved
// row on another: with an identity, the edit lands on the right url on
// both devices, and each keeps its own ids.
func TestIdentityRenumberingDelete(t *testing.T) {
	for _, hints := range []bool{false, true} {
		t.Run(fmt.Sprintf("hints=%v", hints), func(t *testing.T) { testIdentityRenumbering(t, hints) })
	}
}

func testIdentityRenumbering(t *testing.T, hints bool) {
	a, b := renumberWorld(t, true, hints)
	want := "[[u1 t1] [u3 retitled]]"
	for _, d := range []*scenario.Device{a, b} {
		if got := byURL(d); got != want {
			t.Errorf("%s: %s, want %s", d.Name, got, want)
		}
	}
	if got := a.Value(`SELECT id FROM bm WHERE url='u3'`); got != "2" {
		t.Errorf("a: u3 has id %s, want 2 (a's own renumbering)", got)
	}
	if got := b.Value(`SELECT id FROM bm WHERE url='u3'`); got != "3" {
		t.Errorf("b: u3 has id %s, want 3 (ids are device-local)", got)
	}
	for _, d := range []*scenario.Device{a, b} {
		if base, live := d.DumpBase(), d.Dump(); base != live {
			t.Errorf("%s: base copy differs from live:\nlive:\n%s\nbase:\n%s", d.Name, live, base)
		}
	}
}

// The same world keyed by id (no identity) goes wrong: this is what the
// identity is for.
func TestIdentityRenumberingDeleteWithoutIdentityGoesWrong(t *testing.T) {
	a, b := renumberWorld(t, false, false)
	want := "[[u1 t1] [u3 retitled]]"
	if byURL(a) == want && byURL(b) == want {
		t.Fatalf("keyed by id, the renumbering merged right (%s); the identity test proves nothing", want)
	}
	t.Logf("keyed by id: a %s, b %s", byURL(a), byURL(b))
}

// The same url added on two devices: one bookmark remains, the same on
// both, and the other version is in a conflict log.
func TestIdentitySameKeyAddedTwice(t *testing.T) {
	w := scenario.NewWorld(t, natkeySchema)
	a := w.AddDevice(scenario.Options{Name: "a", Initialised: true, Config: withIdentity})
	b := w.AddDevice(scenario.Options{Name: "b", Initialised: true, Config: withIdentity})
	w.Tick(1000)
	a.Exec(`INSERT INTO bm VALUES(1,'u0','only a')`)
	a.Exec(`INSERT INTO bm VALUES(2,'same','from a')`)
	w.Tick(1000)
	b.Exec(`INSERT INTO bm VALUES(1,'same','from b')`)
	w.Quiesce(5)
	if ga, gb := byURL(a), byURL(b); ga != gb || !strings.Contains(ga, "[same from b]") || !strings.Contains(ga, "[u0 only a]") {
		t.Fatalf("a %s, b %s: want both with u0 and the later 'same' (from b)", ga, gb)
	}
	logged := false
	for _, d := range []*scenario.Device{a, b} {
		for _, c := range d.Conflicts() {
			if c.Table == "bm" && c.Loser["title"] == "'from a'" {
				logged = true
			}
		}
	}
	if !logged {
		t.Fatalf("the losing bookmark is in no conflict log: a %v, b %v", a.Conflicts(), b.Conflicts())
	}
	// Restoring it writes its values back onto the url's row here, and
	// keeps this device's id of that row. On b the loser came from a's
	// file, whose id is a placeholder (NULL).
	for _, d := range []*scenario.Device{b, a} {
		for _, c := range d.Conflicts() {
			if c.Table != "bm" || c.Loser["title"] != "'from a'" {
				continue
			}
			id := d.Value(`SELECT id FROM bm WHERE url='same'`)
			if err := d.S.RestoreConflict(context.Background(), c.ID); err != nil {
				t.Fatalf("%s: restore %s: %v", d.Name, c.ID, err)
			}
			if got := d.Value(`SELECT id FROM bm WHERE url='same'`); got != id {
				t.Fatalf("%s: restore moved the row from id %s to %s", d.Name, id, got)
			}
			w.Tick(1000)
			w.Quiesce(5)
			for _, x := range []*scenario.Device{a, b} {
				if got := x.Value(`SELECT title FROM bm WHERE url='same'`); got != "from a" {
					t.Fatalf("%s after the restore on %s: %q", x.Name, d.Name, got)
				}
			}
			return
		}
	}
}

// A device joining from a snapshot gets the rows by natural key, with ids
// of its own, and later edits by either side land on the same url.
func TestIdentityJoinFromSnapshot(t *testing.T) {
	w := scenario.NewWorld(t, natkeySchema)
	a := w.AddDevice(scenario.Options{Name: "a", Initialised: true, Config: withIdentity})
	w.Tick(1000)
	a.Exec(`INSERT INTO bm VALUES(1,'u1','t1'),(2,'u2','t2'),(3,'u3','t3')`)
	a.Exec(`DELETE FROM bm WHERE id=1`)
	a.Exec(`UPDATE bm SET id=1 WHERE id=3`)
	a.Export()
	snap := a.Snapshot()
	w.Tick(1000)
	a.Exec(`UPDATE bm SET title='t2 after' WHERE url='u2'`)
	a.Export()
	w.Collect(a, snap.Seen[a.ID]) // c can only join from the snapshot
	w.Tick(1000)
	c := w.AddDevice(scenario.Options{Name: "c", Config: withIdentity})
	c.Exec(`INSERT INTO bm VALUES(1,'c-own','mine')`)
	w.DeliverSnapshots(a, c)
	c.Sync()
	w.Quiesce(5)

	want := "[[c-own mine] [u2 t2 after] [u3 t3]]"
	for _, d := range []*scenario.Device{a, c} {
		if got := byURL(d); got != want {
			t.Fatalf("%s: %s, want %s", d.Name, got, want)
		}
	}
	w.Tick(1000)
	c.Exec(`UPDATE bm SET title='from c' WHERE url='u3'`)
	w.Quiesce(5)
	if got := a.Value(`SELECT title FROM bm WHERE url='u3'`); got != "from c" {
		t.Fatalf("a: u3 is %q after c's edit", got)
	}
	for _, d := range []*scenario.Device{a, c} {
		if base, live := d.DumpBase(), d.Dump(); base != live {
			t.Errorf("%s: base copy differs from live:\nlive:\n%s\nbase:\n%s", d.Name, live, base)
		}
	}
}

// An identity given to a table that already syncs keyed by id, and two
// devices that disagree on it: neither is merged wrongly. The changed
// device reports the table as not synced, saying why; the other holds the
// file whose key it does not share.
func TestIdentityChangedLaterRefused(t *testing.T) {
	w := scenario.NewWorld(t, natkeySchema)
	a := w.AddDevice(scenario.Options{Name: "a", Initialised: true})
	b := w.AddDevice(scenario.Options{Name: "b", Initialised: true})
	w.Tick(1000)
	a.Exec(`INSERT INTO bm VALUES(1,'u1','t1')`)
	w.Quiesce(5)
	a.ReopenWith(withIdentity)
	a.Exec(`UPDATE bm SET title='t1 edited' WHERE id=1`)
	r := a.Export()
	if r.Seq != 0 || len(r.SchemaProblems) != 1 || !strings.Contains(r.SchemaProblems[0].Reason, "identity changed from none (the primary key) to (url)") {
		t.Fatalf("a: export with a changed identity: %+v", r)
	}
	w.Quiesce(5)
	if got := b.Value(`SELECT title FROM bm WHERE id=1`); got != "t1" {
		t.Fatalf("b: the edit made under the changed identity left a: %q", got)
	}
	// A device set up with the identity from the start, against b
	// without it: b holds the file, it does not merge it by id.
	w2 := scenario.NewWorld(t, natkeySchema)
	c := w2.AddDevice(scenario.Options{Name: "c", Initialised: true, Config: withIdentity})
	d := w2.AddDevice(scenario.Options{Name: "d", Initialised: true})
	w2.Tick(1000)
	c.Exec(`INSERT INTO bm VALUES(1,'u1','t1')`)
	c.Export()
	w2.DeliverAll(c, d)
	// Per-table holds: the file may count as applied for its other tables,
	// but bm's part is held, never merged by id.
	if got := d.Import(); got.Held+got.Waiting+got.Broken+got.TablesHeld == 0 || (got.Applied != 0 && got.TablesHeld == 0) {
		t.Fatalf("d (no identity) applied c's file keyed by url: %+v", got)
	}
	if got := d.Value(`SELECT count(*) FROM bm`); got != "0" {
		t.Fatalf("d: %s rows", got)
	}
	for _, f := range d.Status().Files {
		t.Logf("d: %s %s: %s", f.Path, f.Status, f.Reason)
	}
}

// An edit of the natural key is a delete of the old key plus an insert of
// the new one: a later concurrent edit of the old key brings that row back
// (delete vs. later edit), it does not follow the rename.
func TestIdentityKeyEditIsDeletePlusInsert(t *testing.T) {
	w := scenario.NewWorld(t, natkeySchema)
	a := w.AddDevice(scenario.Options{Name: "a", Initialised: true, Config: withIdentity})
	b := w.AddDevice(scenario.Options{Name: "b", Initialised: true, Config: withIdentity})
	w.Tick(1000)
	a.Exec(`INSERT INTO bm VALUES(1,'u1','t1')`)
	w.Quiesce(5)
	w.Tick(1000)
	a.Exec(`UPDATE bm SET url='u1-renamed' WHERE id=1`)
	w.Tick(1000)
	b.Exec(`UPDATE bm SET title='edited on b' WHERE url='u1'`)
	w.Quiesce(5)
	want := "[[u1 edited on b] [u1-renamed t1]]"
	for _, d := range []*scenario.Device{a, b} {
		if got := byURL(d); got != want {
			t.Errorf("%s: %s, want %s", d.Name, got, want)
		}
		if base, live := d.DumpBase(), d.Dump(); base != live {
			t.Errorf("%s: base copy differs from live:\nlive:\n%s\nbase:\n%s", d.Name, live, base)
		}
	}
	t.Logf("a: %v", a.Query(`SELECT id, url FROM bm ORDER BY id`))
}
