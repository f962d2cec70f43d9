package hlc

import (
	"testing"
	"time"
)

func TestNowIsMonotonicAndObserveOrders(t *testing.T) {
	wall := time.UnixMilli(1_000_000)
	c := New(func() time.Time { return wall }, 0)
	a := c.Now()
	b := c.Now()
	if b <= a || b.Millis() != a.Millis() || b.Counter() != a.Counter()+1 {
		t.Fatalf("same-millisecond timestamps not ordered by counter: %v %v", a, b)
	}
	// A remote event ahead of us (within the bound) orders later local events after it.
	remote := Make(wall.UnixMilli()+60_000, 7)
	if far, _ := c.TooFarAhead(remote); far {
		t.Fatal("one minute ahead should be accepted")
	}
	c.Observe(remote)
	if n := c.Now(); n <= remote {
		t.Fatalf("event after observing %v got %v", remote, n)
	}
	if far, d := c.TooFarAhead(Make(wall.UnixMilli()+int64(MaxDrift/time.Millisecond)+1000, 0)); !far || d <= MaxDrift {
		t.Fatalf("beyond MaxDrift not refused (%v)", d)
	}
	// A clock restored from state never goes backwards, even if wall time does.
	c2 := New(func() time.Time { return wall.Add(-time.Hour) }, remote)
	if n := c2.Now(); n <= remote {
		t.Fatalf("restored clock went backwards: %v <= %v", n, remote)
	}
}

func TestCounterOverflowBorrowsNextMillisecond(t *testing.T) {
	wall := time.UnixMilli(5000)
	c := New(func() time.Time { return wall }, Make(5000, 0xffff))
	n := c.Now()
	if n.Millis() != 5001 || n.Counter() != 0 {
		t.Fatalf("got %v", n)
	}
}

func TestRestamp(t *testing.T) {
	// Two files stamped a day ahead, then a file after the clock was set
	// back: they go just below it, in order; an earlier file keeps its clock.
	day := int64(24 * 3600 * 1000)
	early, next := Make(1000, 0), Make(5000, 0)
	got := Restamp([]Timestamp{early, Make(4000+day, 0), Make(4001+day, 3)}, next)
	want := []Timestamp{early, next - 2, next - 1}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("Restamp[%d] = %v, want %v (all %v)", i, got[i], want[i], got)
		}
	}
	// Clocks in order are left alone.
	in := []Timestamp{Make(1, 0), Make(2, 0)}
	if got := Restamp(in, Make(3, 0)); got[0] != in[0] || got[1] != in[1] {
		t.Fatalf("monotonic clocks changed: %v", got)
	}
}
