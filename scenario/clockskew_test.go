package scenario_test

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rowdrop/rowdrop/scenario"
)

// Clock skew through the clock interface: A's clock runs a day ahead, B's
// an hour behind, C's is right. Files whose clock is more than the bound
// (hlc.MaxDrift, 5 minutes) ahead of a device's wall time are held there and
// reported with the skew, never applied early and never dropped: nobody's
// clock is dragged into the future. Once the receiver's time catches up
// they apply, and all devices converge.
func TestClockSkew(t *testing.T) {
	ctx := context.Background()
	folder := t.TempDir()
	var world atomic.Int64
	world.Store(time.Date(2027, 3, 1, 12, 0, 0, 0, time.UTC).UnixMilli())
	clock := func(skew time.Duration) func() time.Time {
		return func() time.Time { return time.UnixMilli(world.Load()).Add(skew) }
	}
	mk := func(name string, skew time.Duration) *scenario.SharedDevice {
		d := scenario.NewSharedDevice(t, folder, name, scenario.SharedOptions{Journal: "wal"}) // creates the database and state
		d.S.Close()
		cfg := d.Config()
		cfg.Now = clock(skew)
		d.S = d.Open(cfg)
		return d
	}
	a, b, c := mk("a", 24*time.Hour), mk("b", -time.Hour), mk("c", 0)
	sync := func(ds ...*scenario.SharedDevice) {
		t.Helper()
		for _, d := range ds {
			if _, err := d.S.Sync(ctx); err != nil {
				t.Fatal(err)
			}
		}
	}
	scenario.ExecFile(t, c.DB, "INSERT INTO notes(id,title) VALUES('n1','from c')")
	sync(c, b, a)
	scenario.ExecFile(t, a.DB, "UPDATE notes SET title='from a (clock +24h)' WHERE id='n1'")
	scenario.ExecFile(t, b.DB, "INSERT INTO notes(id,title) VALUES('n2','from b (clock -1h)')")
	sync(a, b, c, a, b, c)
	// A's file is held on B and C, with the skew in the reason.
	for _, d := range []*scenario.SharedDevice{b, c} {
		st, _ := d.S.Status(ctx)
		held := ""
		for _, f := range st.Files {
			if f.Status == "held" {
				held += f.Reason
			}
		}
		if !strings.Contains(held, "ahead") {
			t.Fatalf("A's far-future file should be held and reported, got %+v", st.Files)
		}
		if got := scenario.ValueFile(t, d.DB, "SELECT title FROM notes WHERE id='n1'"); got != "from c" {
			t.Fatalf("held file applied: %q", got)
		}
	}
	// The bound held: C's clock was not dragged a day ahead by A's file.
	// B runs an hour behind, so C's (correct) clock is more than the bound
	// ahead of B's: B holds C's files too, until its time catches up.
	scenario.ExecFile(t, c.DB, "UPDATE notes SET title='c again' WHERE id='n2'")
	sync(c, b)
	if got := scenario.ValueFile(t, b.DB, "SELECT title FROM notes WHERE id='n2'"); got != "from b (clock -1h)" {
		t.Fatalf("C's file should be held on B (B's clock is an hour behind): %q", got)
	}
	world.Add((time.Hour + time.Minute).Milliseconds())
	sync(b)
	if got := scenario.ValueFile(t, b.DB, "SELECT title FROM notes WHERE id='n2'"); got != "c again" {
		t.Fatalf("an hour later C's edit (made after seeing B's row) should win on B: %q", got)
	}
	if got := scenario.ValueFile(t, b.DB, "SELECT title FROM notes WHERE id='n1'"); got != "from c" {
		t.Fatalf("A's file (a day ahead) must still be held: %q", got)
	}
	// A day later the held file applies everywhere and all converge.
	world.Add((24*time.Hour + time.Minute).Milliseconds())
	sync(a, b, c, a, b, c)
	da := scenario.DumpNotes(t, a.DB)
	if db, dc := scenario.DumpNotes(t, b.DB), scenario.DumpNotes(t, c.DB); da != db || da != dc {
		t.Fatalf("not converged:\nA %s\nB %s\nC %s", da, db, dc)
	}
	if !strings.Contains(da, "from a (clock +24h)") || !strings.Contains(da, "c again") {
		t.Fatalf("unexpected final state:\n%s", da)
	}
}
