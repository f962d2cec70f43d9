// Package ack is a device's acknowledgement file, <folder>/<device>/ack.json:
// how far it has applied every device's changeset files (its watermark),
// and which devices its user retired. Its device is its only writer and
// replaces it atomically; every other device reads it to decide which of
// its own files nobody needs any more (collection). docs/FORMAT.md §14 is
// the normative description. This package is the format (Parse, Marshal);
// internal/folder reads and writes the file (ReadAck, WriteAck).
//
// An ack.json is read from a shared folder, so it is untrusted: Parse is
// strict (exact member names, no duplicates, no unknown members, bounded
// size, well-formed device ids and sequence numbers) and a file it refuses
// is reported and counts as "this device has applied nothing", which only
// ever holds collection back.
package ack

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"

	"github.com/rowdrop/rowdrop/internal/rdfile"
)

// MaxSize bounds an ack.json a reader accepts (a hostile file cannot make
// it allocate more). A real one is well under a kilobyte per device.
const MaxSize = 1 << 20

// maxName bounds the device name carried in an ack.
const maxName = 1024

// Ack is the content of one ack.json.
type Ack struct {
	Device     string `json:"device"`
	Install    string `json:"install"`
	DeviceName string `json:"device_name"`
	// WrittenMS is the writer's wall clock when it wrote the file
	// (milliseconds since the Unix epoch). A device rewrites its ack at
	// least daily while it runs, so an old WrittenMS means a silent device.
	WrittenMS int64 `json:"written_ms"`
	// Applied maps a device id to the highest sequence number up to which
	// the writer has applied that device's changesets, contiguously; the
	// writer's own entry is its last published sequence number.
	Applied map[string]uint64 `json:"applied"`
	// Forgotten lists the devices the writer's user retired (`rowdrop
	// devices forget`): no device waits for their acknowledgement any more.
	Forgotten []string `json:"forgotten"`
	// Sums (optional: acks of rowdrop before the hash chain lack it) maps
	// a device of Applied to the file sum of its changeset Applied[dev]
	// as the writer applied (or, for itself, published) it: a device that
	// later finds other content under that name knows it was replaced
	// (docs/FORMAT.md §5.1, §15.1).
	Sums map[string]string `json:"sums,omitempty"`
}

// ErrInvalid marks an ack.json that is not acceptable.
var ErrInvalid = errors.New("invalid ack.json")

// members of the object, all required (an empty map or list is written,
// never left out, so a truncated writer in another language is caught).
var members = []string{"device", "install", "device_name", "written_ms", "applied", "forgotten"}

// optional members, which a writer may leave out.
var optional = []string{"sums"}

// Parse decodes and validates an ack.json.
func Parse(data []byte) (*Ack, error) {
	bad := func(f string, a ...any) error { return fmt.Errorf("%s: %w", fmt.Sprintf(f, a...), ErrInvalid) }
	if len(data) > MaxSize {
		return nil, bad("%d bytes, more than the %d an ack.json may have", len(data), MaxSize)
	}
	if err := checkStrict(data); err != nil {
		return nil, bad("%v", err)
	}
	var a Ack
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&a); err != nil {
		return nil, bad("%v", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, bad("data after the object")
	}
	if err := a.Validate(); err != nil {
		return nil, err
	}
	return &a, nil
}

// Validate checks the fields' shapes.
func (a *Ack) Validate() error {
	bad := func(f string, x ...any) error { return fmt.Errorf("%s: %w", fmt.Sprintf(f, x...), ErrInvalid) }
	switch {
	case !rdfile.ValidDeviceID(a.Device):
		return bad("device id %q is malformed", a.Device)
	case len(a.Install) > maxName:
		return bad("install token longer than %d bytes", maxName)
	case len(a.DeviceName) > maxName:
		return bad("device name longer than %d bytes", maxName)
	case a.WrittenMS < 0:
		return bad("written_ms %d is negative", a.WrittenMS)
	case a.Applied == nil:
		return bad("applied is null")
	case a.Forgotten == nil:
		return bad("forgotten is null")
	}
	for dev, n := range a.Applied {
		if !rdfile.ValidDeviceID(dev) || n > rdfile.MaxSeq {
			return bad("applied entry %q: %d is malformed", dev, n)
		}
	}
	for dev, sum := range a.Sums {
		if _, ok := a.Applied[dev]; !ok || !isSum(sum) {
			return bad("sums entry %q: not the file sum of a file its applied entry names", dev)
		}
	}
	seen := map[string]bool{}
	for _, dev := range a.Forgotten {
		if !rdfile.ValidDeviceID(dev) {
			return bad("forgotten entry %q is not a device id", dev)
		}
		if seen[dev] {
			return bad("forgotten entry %q listed twice", dev)
		}
		seen[dev] = true
	}
	return nil
}

// checkStrict walks the JSON tokens: the top level is one object with
// exactly the known members, and no object anywhere has a duplicate
// member. encoding/json alone would match names case-insensitively, let a
// duplicate override an earlier one and read an absent member as zero; a
// reader in another language would not, so neither does this one.
func checkStrict(data []byte) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var value func(depth int, top bool) error
	value = func(depth int, top bool) error {
		if depth > 8 {
			return errors.New("nested too deeply")
		}
		t, err := dec.Token()
		if err != nil {
			return err
		}
		d, ok := t.(json.Delim)
		if top && (!ok || d != '{') {
			return errors.New("not a JSON object")
		}
		if !ok {
			return nil
		}
		switch d {
		case '{':
			seen := map[string]bool{}
			for dec.More() {
				kt, err := dec.Token()
				if err != nil {
					return err
				}
				key := kt.(string)
				if seen[key] {
					return fmt.Errorf("member %q appears twice", key)
				}
				seen[key] = true
				if err := value(depth+1, false); err != nil {
					return err
				}
			}
			if top {
				for _, m := range members {
					if !seen[m] {
						return fmt.Errorf("member %q missing", m)
					}
				}
				for k := range seen {
					if !known(k) {
						return fmt.Errorf("unknown member %q", k)
					}
				}
			}
		case '[':
			for dec.More() {
				if err := value(depth+1, false); err != nil {
					return err
				}
			}
		default:
			return fmt.Errorf("unexpected %v", d)
		}
		_, err = dec.Token() // the closing delimiter
		return err
	}
	return value(0, true)
}

func known(k string) bool {
	for _, m := range append(members, optional...) {
		if m == k {
			return true
		}
	}
	return false
}

// isSum reports whether s is a file sum: 64 lowercase hex digits.
func isSum(s string) bool {
	if len(s) != 64 {
		return false
	}
	for _, c := range s {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// Marshal encodes an ack with sorted maps and lists (stable bytes: an
// unchanged ack is not rewritten, so it never wakes the sync tool).
func Marshal(a *Ack) ([]byte, error) {
	c := *a
	if c.Applied == nil {
		c.Applied = map[string]uint64{}
	}
	c.Forgotten = append([]string{}, a.Forgotten...)
	sort.Strings(c.Forgotten)
	if err := c.Validate(); err != nil {
		return nil, err
	}
	b, err := json.MarshalIndent(&c, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

// Same reports whether two acks say the same thing, apart from when they
// were written.
func Same(a, b *Ack) bool {
	if a == nil || b == nil {
		return a == b
	}
	x, y := *a, *b
	x.WrittenMS, y.WrittenMS = 0, 0
	bx, err1 := Marshal(&x)
	by, err2 := Marshal(&y)
	return err1 == nil && err2 == nil && bytes.Equal(bx, by)
}
