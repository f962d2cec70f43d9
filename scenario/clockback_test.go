package scenario_test

import (
	"testing"
	"time"

	"github.com/rowdrop/rowdrop"
	"github.com/rowdrop/rowdrop/scenario"
)

// A device's clock runs a day ahead, its file is held everywhere; then its
// clock is set right. Its next file must not be held for the old error:
// it and the file stamped ahead apply at once on the other devices, its
// later edit wins over its earlier one, an edit made elsewhere after
// seeing them wins over both, and all devices converge.
func TestClockSetBackNotHeld(t *testing.T) {
	w := scenario.NewWorld(t, scenario.NotesSchema)
	a := w.AddDevice(scenario.Options{Name: "a", Skew: 24 * time.Hour, Initialised: true})
	b := w.AddDevice(scenario.Options{Name: "b", Initialised: true})
	c := w.AddDevice(scenario.Options{Name: "c", Initialised: true})
	w.Quiesce(5)
	a.Exec("INSERT INTO notes(id,title) VALUES('n1','a, clock a day ahead')")
	a.Export()
	w.DeliverAll(a, b)
	w.DeliverAll(a, c)
	for _, d := range []*scenario.Device{b, c} {
		if r := d.Import(); r.Held != 1 {
			t.Fatalf("%s: the file stamped a day ahead should be held: %+v", d.Name, r)
		}
	}
	// The clock is set right (a restart of the sync process with it).
	w.Tick(60_000)
	a.ReopenWith(func(cfg *rowdrop.Config) { cfg.Now = func() time.Time { return time.UnixMilli(w.NowMS) } })
	a.Exec("UPDATE notes SET title='a, clock set right' WHERE id='n1'")
	a.Exec("INSERT INTO notes(id,title) VALUES('n2','a, later')")
	a.Export()
	w.DeliverAll(a, b)
	w.DeliverAll(a, c)
	for _, d := range []*scenario.Device{b, c} {
		r := d.Import()
		if r.Held != 0 || r.Waiting != 0 || r.Applied != 2 {
			t.Fatalf("%s: after A's clock was set right its files should apply at once: %+v\n%+v", d.Name, r, d.Status().Files)
		}
		if got := d.Value("SELECT title FROM notes WHERE id='n1'"); got != "a, clock set right" {
			t.Fatalf("%s: A's later edit should win over its edit stamped ahead: %q", d.Name, got)
		}
	}
	// B edits after seeing A's files: B's edit wins everywhere, A included.
	w.Tick(1000)
	b.Exec("UPDATE notes SET title='b, after seeing a' WHERE id='n1'")
	w.Quiesce(5)
	w.AssertConverged()
	for _, d := range w.Devs {
		if got := d.Value("SELECT title FROM notes WHERE id='n1'"); got != "b, after seeing a" {
			t.Fatalf("%s: B's edit made after A's should win: %q", d.Name, got)
		}
	}
}
