package scenario_test

import (
	"strings"
	"testing"

	"rowdrop/scenario"
)

// r applied a's row under id 1 but not b's (earlier) row under id 1; b's
// file is collected; r re-bases on a snapshot by s, which holds b's row at
// 1 and a's at its mover id.
func TestRejoinAfterIDCollision(t *testing.T) {
	w := scenario.NewWorld(t, kbIntSchema)
	a := w.AddDevice(scenario.Options{Name: "a", Initialised: true})
	b := w.AddDevice(scenario.Options{Name: "b", Initialised: true})
	s := w.AddDevice(scenario.Options{Name: "s", Initialised: true})
	r := w.AddDevice(scenario.Options{Name: "r", Initialised: true})
	b.Exec(`INSERT INTO notebooks VALUES(1, 'B-book')`)
	bFirst := b.Export().Seq
	w.Tick(1000)
	a.Exec(`INSERT INTO notebooks VALUES(1, 'A-book')`)
	a.Export()
	w.Tick(1000)
	b.Exec(`INSERT INTO notebooks VALUES(2, 'B-book2')`)
	b.Export()
	w.DeliverAll(a, s)
	w.DeliverAll(b, s)
	s.Import()
	w.DeliverAll(a, r)
	r.Import()
	w.DeliverAll(b, a)
	a.Import()
	t.Logf("r before: %v", r.Query("SELECT * FROM notebooks ORDER BY id"))
	t.Logf("s: %v", s.Query("SELECT * FROM notebooks ORDER BY id"))
	s.Snapshot()
	w.Collect(b, bFirst)
	w.DeliverAll(b, r)
	w.DeliverSnapshots(s, r)
	w.DeliverAll(s, r)
	r.Sync()
	t.Logf("r after rebase: %v", r.Query("SELECT * FROM notebooks ORDER BY id"))
	w.Tick(1000)
	// Only deliver what is in the folders (b's first file is gone).
	w.Quiesce(8)
	for _, d := range w.Devs {
		t.Logf("%s: %v", d.Name, d.Query("SELECT * FROM notebooks ORDER BY id"))
	}
	w.AssertConverged()
	for _, d := range w.Devs {
		got := d.Query("SELECT name FROM notebooks ORDER BY name")
		var names []string
		for _, x := range got {
			names = append(names, x[0])
		}
		if strings.Join(names, ",") != "A-book,B-book,B-book2" {
			t.Errorf("%s: %v", d.Name, names)
		}
	}
}
