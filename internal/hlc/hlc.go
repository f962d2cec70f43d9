// Package hlc is rowdrop's hybrid logical clock: wall-clock milliseconds in
// the high bits and a counter in the low 16 bits, so timestamps stay close to
// real time yet every event a device emits after seeing another event is
// strictly later than it.
package hlc

import (
	"fmt"
	"time"
)

// Timestamp is an HLC value: (physical ms << 16) | counter.
type Timestamp uint64

// MaxDrift bounds how far ahead of local wall time a remote timestamp may
// be before it is refused (held) instead of advancing the local clock. It is
// the bound Actual Budget uses; larger skews are clock faults, not latency.
const MaxDrift = 5 * time.Minute

// Make builds a timestamp from a wall time in milliseconds and a counter.
func Make(ms int64, counter uint16) Timestamp {
	return Timestamp(uint64(ms)<<16 | uint64(counter))
}

// Millis returns the physical part in Unix milliseconds.
func (t Timestamp) Millis() int64 { return int64(t >> 16) }

// Counter returns the logical part.
func (t Timestamp) Counter() uint16 { return uint16(t) }

// Time returns the physical part as a time.Time.
func (t Timestamp) Time() time.Time { return time.UnixMilli(t.Millis()).UTC() }

// String renders the timestamp readably and sortably.
func (t Timestamp) String() string {
	return fmt.Sprintf("%s+%d", t.Time().Format("2006-01-02T15:04:05.000Z"), t.Counter())
}

// Clock is a hybrid logical clock. It is not safe for concurrent use; the
// engine serialises its work per state directory.
type Clock struct {
	now  func() time.Time
	last Timestamp
}

// New returns a clock that reads wall time from now (time.Now if nil) and
// never goes below last (the value persisted by the previous run).
func New(now func() time.Time, last Timestamp) *Clock {
	if now == nil {
		now = time.Now
	}
	return &Clock{now: now, last: last}
}

// Last returns the latest timestamp issued or observed.
func (c *Clock) Last() Timestamp { return c.last }

// Now issues a timestamp strictly greater than every one issued or observed.
func (c *Clock) Now() Timestamp {
	wall := c.now().UnixMilli()
	if wall > c.last.Millis() {
		c.last = Make(wall, 0)
		return c.last
	}
	if c.last.Counter() == 0xffff {
		// Counter exhausted within one millisecond: borrow the next one.
		c.last = Make(c.last.Millis()+1, 0)
		return c.last
	}
	c.last++
	return c.last
}

// TooFarAhead reports whether remote is further ahead of local wall time
// than MaxDrift, and by how much.
func (c *Clock) TooFarAhead(remote Timestamp) (bool, time.Duration) {
	ahead := time.Duration(remote.Millis()-c.now().UnixMilli()) * time.Millisecond
	return ahead > MaxDrift, ahead
}

// Observe advances the clock past a remote timestamp, so that later local
// events are ordered after it. Callers check TooFarAhead first.
func (c *Clock) Observe(remote Timestamp) {
	if remote > c.last {
		c.last = remote
	}
}

// Restamp gives the clocks a device's files are read with after its clock
// ran ahead and was set right (docs/MERGE.md, "A clock set back"): stamps
// are the clocks of consecutive files, next the clock of the file after
// them. Each file takes the lower of its own clock and one less than the
// next file's (as read), so files stamped ahead of a later file go just
// below it, in their order, and any other file keeps its clock.
func Restamp(stamps []Timestamp, next Timestamp) []Timestamp {
	out := make([]Timestamp, len(stamps))
	for i := len(stamps) - 1; i >= 0; i-- {
		out[i] = min(stamps[i], next-1)
		next = out[i]
	}
	return out
}

// Reset sets the clock back to floor, which callers take from the wall
// clock and every clock this device has seen from others: after a clock
// that ran ahead is set right, the device stops stamping its edits with
// the old error. (Its files stamped ahead are re-stamped below its next
// one: Restamp.)
func (c *Clock) Reset(floor Timestamp) { c.last = floor }
