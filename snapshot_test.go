package rowdrop_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"rowdrop/internal/simtest"
)

const snapSchema = `
CREATE TABLE notes(id TEXT PRIMARY KEY, title TEXT, body TEXT, n INTEGER, score REAL, data BLOB);
CREATE TABLE tags(note TEXT, tag TEXT, PRIMARY KEY(tag, note)) WITHOUT ROWID;
`

// quiesceAmong floods and syncs the given devices until nothing moves.
func quiesceAmong(t *testing.T, w *simtest.World, devs ...*simtest.Device) {
	t.Helper()
	saved := w.Devs
	w.Devs = devs
	defer func() { w.Devs = saved }()
	w.Quiesce(10)
}

// TestJoinLateFromSnapshot: two devices work for a while, one snapshots,
// their early files are collected; a third device joins from the snapshot
// plus the later files, and all three converge.
func TestJoinLateFromSnapshot(t *testing.T) {
	w := simtest.NewWorld(t, snapSchema)
	a := w.AddDevice(simtest.Options{Name: "a", Initialised: true})
	b := w.AddDevice(simtest.Options{Name: "b", Initialised: true, Hints: true, WAL: true})
	for i := 0; i < 20; i++ {
		d := a
		if i%2 == 1 {
			d = b
		}
		w.Tick(1000)
		d.Exec("INSERT INTO notes VALUES(?,?,?,?,?,x'01ff')", "n"+string(rune('a'+i)), "title", "body", i, float64(i)/2)
		d.Exec("INSERT INTO tags VALUES(?,?)", "n"+string(rune('a'+i)), "t"+string(rune('a'+i%3)))
		d.Sync()
	}
	quiesceAmong(t, w, a, b)
	w.Tick(1000)
	a.Exec("UPDATE notes SET title='edited by a' WHERE id='nb'")
	b.Exec("DELETE FROM notes WHERE id='nc'")
	quiesceAmong(t, w, a, b)
	snap := a.Snapshot()
	if snap.Seen[b.ID] == 0 || snap.Seen[a.ID] == 0 {
		t.Fatalf("snapshot seen vector %v lacks a device", snap.Seen)
	}
	// Later work, after the snapshot.
	w.Tick(1000)
	a.Exec("UPDATE notes SET body='after snapshot' WHERE id='nd'")
	b.Exec("INSERT INTO notes VALUES('late','late row',NULL,NULL,NULL,NULL)")
	quiesceAmong(t, w, a, b)
	// Both collect what the snapshot covers.
	w.Collect(a, snap.Seen[a.ID])
	w.Collect(b, snap.Seen[b.ID])

	c := w.AddDevice(simtest.Options{Name: "c"})
	for _, from := range []*simtest.Device{a, b} {
		w.DeliverAll(from, c)
		w.DeliverSnapshots(from, c)
	}
	r, err := c.S.Sync(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("c: %+v", r)
	if st := c.Status(); len(st.Files) > 0 {
		t.Fatalf("c: files not applied after joining: %+v", st.Files)
	}
	w.Quiesce(10)
	w.AssertConverged()
	if got := c.Dump(); !strings.Contains(got, "'after snapshot'") || !strings.Contains(got, "'late row'") || strings.Contains(got, "'nc'|'title'") {
		t.Fatalf("c lacks later files or kept a deleted row:\n%s", got)
	}
}

// twoWithData returns devices a and b holding the same rows, plus a
// snapshot of a's state.
func twoWithData(t *testing.T, w *simtest.World, n int) (a, b *simtest.Device) {
	t.Helper()
	a = w.AddDevice(simtest.Options{Name: "a", Initialised: true})
	b = w.AddDevice(simtest.Options{Name: "b", Initialised: true, Hints: true})
	for i := 0; i < n; i++ {
		d := a
		if i%2 == 1 {
			d = b
		}
		w.Tick(1000)
		id := fmt.Sprintf("n%02d", i)
		d.Exec("INSERT INTO notes VALUES(?,?,?,?,?,NULL)", id, "title "+id, "body "+id, i, float64(i)/4)
		d.Exec("INSERT INTO tags VALUES(?,?)", id, fmt.Sprintf("t%d", i%3))
		d.Sync()
	}
	quiesceAmong(t, w, a, b)
	return a, b
}

// TestJoinNonEmptyDevice: a new device whose database already holds rows
// joins from a snapshot. Its own rows survive and reach the others, every
// snapshot row reaches it, and where both hold a row with other values its
// values stay and the snapshot's are in its conflict log.
func TestJoinNonEmptyDevice(t *testing.T) {
	w := simtest.NewWorld(t, snapSchema)
	a, b := twoWithData(t, w, 10)
	w.Tick(1000)
	snap := a.Snapshot()
	w.Collect(a, snap.Seen[a.ID])
	w.Collect(b, snap.Seen[b.ID])

	c := w.AddDevice(simtest.Options{Name: "c"})
	c.Exec("INSERT INTO notes VALUES('c1','only on c','c body',7,NULL,x'c1')")
	c.Exec("INSERT INTO notes VALUES('n03','c title','body n03',3,0.75,NULL)") // differs from the snapshot's title
	c.Exec("INSERT INTO tags VALUES('c1','t9')")
	w.DeliverSnapshots(a, c)
	w.Tick(1000)
	if _, err := c.S.Sync(context.Background()); err != nil {
		t.Fatal(err)
	}
	if st := c.Status(); len(st.Files) > 0 {
		t.Fatalf("c: files not applied after joining: %+v", st.Files)
	}
	got := c.Dump()
	for _, want := range []string{"'c1'|'only on c'", "'n03'|'c title'", "'n09'|'title n09'", "'n00'|'t0'", "'c1'|'t9'"} {
		if !strings.Contains(got, want) {
			t.Fatalf("c lacks %s after joining:\n%s", want, got)
		}
	}
	found := false
	for _, cf := range c.Conflicts() {
		if cf.Kind == "local-kept" && cf.Loser["title"] == "'title n03'" {
			found = true
		}
	}
	if !found {
		t.Fatalf("the snapshot's title of n03 is not in c's conflict log: %+v", c.Conflicts())
	}
	w.Quiesce(10)
	w.AssertConverged()
	if got := a.Dump(); !strings.Contains(got, "'c1'|'only on c'") || !strings.Contains(got, "'n03'|'c title'") {
		t.Fatalf("c's rows did not reach a:\n%s", got)
	}
}

// TestRejoinAfterCollection: a device is away while the others work,
// snapshot and collect the files it needs. It comes back with offline
// edits: they are exported first, it re-bases on the snapshot, applies the
// later files, and everything converges with its edits intact.
func TestRejoinAfterCollection(t *testing.T) {
	w := simtest.NewWorld(t, snapSchema)
	a, b := twoWithData(t, w, 8)
	c := w.AddDevice(simtest.Options{Name: "c", Initialised: true})
	w.Quiesce(10)
	// c leaves; everyone edits.
	w.Tick(1000)
	c.Exec("UPDATE notes SET body='offline body' WHERE id='n01'")
	c.Exec("UPDATE notes SET title='offline title' WHERE id='n02'")
	c.Exec("INSERT INTO notes VALUES('c-new','made offline',NULL,1,NULL,NULL)")
	c.Exec("DELETE FROM notes WHERE id='n04'")
	for i := 0; i < 6; i++ {
		w.Tick(1000)
		a.Exec("UPDATE notes SET n=n+100 WHERE id=?", fmt.Sprintf("n%02d", i))
		b.Exec("INSERT INTO notes VALUES(?,?,NULL,NULL,NULL,NULL)", fmt.Sprintf("b%02d", i), "while c was away")
		quiesceAmong(t, w, a, b)
	}
	w.Tick(1000)
	a.Exec("UPDATE notes SET title='a title' WHERE id='n02'") // concurrent with c's offline edit
	b.Exec("DELETE FROM notes WHERE id='n05'")
	quiesceAmong(t, w, a, b)
	snap := b.Snapshot()
	w.Collect(a, snap.Seen[a.ID])
	w.Collect(b, snap.Seen[b.ID])
	// More after the snapshot.
	w.Tick(1000)
	a.Exec("UPDATE notes SET score=42 WHERE id='n06'")
	quiesceAmong(t, w, a, b)

	// c comes back (later than every edit above, so its export wins).
	w.Tick(1000)
	for _, from := range []*simtest.Device{a, b} {
		w.DeliverAll(from, c)
		w.DeliverSnapshots(from, c)
	}
	if _, err := c.S.Sync(context.Background()); err != nil {
		t.Fatal(err)
	}
	if st := c.Status(); len(st.Files) > 0 {
		t.Fatalf("c: files not applied after rejoining: %+v", st.Files)
	}
	w.Quiesce(10)
	w.AssertConverged()
	got := a.Dump()
	for _, want := range []string{"'n01'|'title n01'|'offline body'|101", "'n02'|'offline title'", "'c-new'|'made offline'", "'b05'|'while c was away'", "'n06'|'title n06'|'body n06'|6|42.0"} {
		if !strings.Contains(got, want) {
			t.Fatalf("after c rejoined, a lacks %s:\n%s", want, got)
		}
	}
	for _, gone := range []string{"'n04'|'title", "'n05'|'title"} {
		if strings.Contains(got, gone) {
			t.Fatalf("after c rejoined, a deleted row is back (%s):\n%s", gone, got)
		}
	}
	// The concurrent title lost on every device that held it, and is logged
	// on c, where both met.
	found := false
	for _, cf := range c.Conflicts() {
		if cf.Loser["title"] == "'a title'" {
			found = true
		}
	}
	if !found {
		t.Fatalf("a's concurrent title is not in c's conflict log: %+v", c.Conflicts())
	}
}
