package rowdrop_test

import (
	"context"
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
