package main

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rowdrop/rowdrop/internal/rdfile"
)

// Hand-made files per docs/FORMAT.md: the payload is encoded byte by byte
// from §7.2's grammar (so it can hold what rowdrop's own writer refuses to
// write), the file is laid out by rdfile.Build (§4, §5).

// rawValue encodes one value of §7.2: nil is NULL, undef is undefined,
// int64, float64, string (TEXT) and []byte (BLOB).
type undefValue struct{}

var undef = undefValue{}

func rawValue(v any) []byte {
	switch x := v.(type) {
	case undefValue:
		return []byte{0}
	case nil:
		return []byte{5}
	case int64:
		return binary.BigEndian.AppendUint64([]byte{1}, uint64(x))
	case int:
		return binary.BigEndian.AppendUint64([]byte{1}, uint64(int64(x)))
	case float64:
		return binary.BigEndian.AppendUint64([]byte{2}, math.Float64bits(x))
	case string:
		return append(rawVarint([]byte{3}, uint64(len(x))), x...)
	case []byte:
		return append(rawVarint([]byte{4}, uint64(len(x))), x...)
	}
	panic("rawValue: unsupported type")
}

// rawVarint appends SQLite's record varint (for values below 2^56).
func rawVarint(b []byte, v uint64) []byte {
	var tmp [9]byte
	n := 0
	for {
		tmp[n] = byte(v & 0x7f)
		n++
		v >>= 7
		if v == 0 {
			break
		}
	}
	for i := n - 1; i >= 0; i-- {
		c := tmp[i]
		if i > 0 {
			c |= 0x80
		}
		b = append(b, c)
	}
	return b
}

// rawChange is one change of a hand-made payload.
type rawChange struct {
	op       byte // 0x12 INSERT, 0x09 DELETE, 0x17 UPDATE
	old, new []any
}

// rawChangeset encodes one table group of table t (pk bytes from its
// header columns) holding changes.
func rawChangeset(t rdfile.Table, changes ...rawChange) []byte {
	b := rawVarint([]byte{'T'}, uint64(len(t.Columns)))
	for _, c := range t.Columns {
		b = append(b, byte(c.PK))
	}
	b = append(append(b, t.Name...), 0)
	for _, c := range changes {
		b = append(b, c.op, 0)
		for _, v := range c.old {
			b = append(b, rawValue(v)...)
		}
		for _, v := range c.new {
			b = append(b, rawValue(v)...)
		}
	}
	return b
}

// headerOf reads the header of a file a device published: the tables
// entries of hand-made files are copied from it, so they match the
// devices' schema.
func headerOf(t *testing.T, path string) rdfile.Header {
	t.Helper()
	f, err := rdfile.Open(path, rdfile.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	return f.Header
}

// handMade writes <folder>/<dev>/<seq>.rdc with header h (device, seq,
// kind and payload members filled in) around the raw changeset payload.
func handMade(t *testing.T, folder, dev string, seq uint64, h rdfile.Header, changes int64, payload []byte) string {
	t.Helper()
	h.Device, h.Seq, h.Changes = dev, seq, changes
	if h.HLC == 0 {
		h.HLC = 1 << 16
	}
	if h.Install == "" {
		h.Install = "qqqqqqqqqqqqqqqq"
	}
	p := filepath.Join(folder, dev, rdfile.FileName(seq))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := rdfile.Build(p, h, bytes.NewReader(payload)); err != nil {
		t.Fatal(err)
	}
	return p
}

// fileStatus returns status and reason of the file whose path contains
// part in d's status, or "" if status does not list it.
func fileStatus(t *testing.T, d *device, part string) (string, string) {
	t.Helper()
	r := runRD(t, append([]string{"status", "--json"}, d.flags()...)...)
	if r.code != 0 && r.code != 3 { // 3: some files not applied
		t.Fatalf("rowdrop status: exit %d\n%s", r.code, r.stderr)
	}
	var st map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &st); err != nil {
		t.Fatalf("status --json: %v\n%s", err, r.stdout)
	}
	files, _ := st["files"].([]any)
	for _, f := range files {
		m, _ := f.(map[string]any)
		if p, _ := m["path"].(string); strings.Contains(p, part) {
			s, _ := m["status"].(string)
			r, _ := m["reason"].(string)
			return s, r
		}
	}
	return "", ""
}

// A file holding a change with NULL in a primary-key column (which no
// SQLite session records) is refused whole: its valid changes do not
// apply either, and status says BROKEN with the reason (issue 21, 4).
func TestCLINullPrimaryKeyRefusesWholeFile(t *testing.T) {
	folder := t.TempDir()
	a, b := newDevice(t, folder, "alpha"), newDevice(t, folder, "beta")
	a.exec(t, "INSERT INTO notes(id,title) VALUES('n1','from alpha')")
	a.sync(t)
	tables := headerOf(t, filepath.Join(folder, onlyDevice(t, folder), rdfile.FileName(1))).Tables
	var notes rdfile.Table
	for _, tb := range tables {
		if tb.Name == "notes" {
			notes = tb
		}
	}
	const dev = "mmmmmmmmmmmmmmmm"
	handMade(t, folder, dev, 1, rdfile.Header{Tables: []rdfile.Table{notes}}, 2, rawChangeset(notes,
		rawChange{op: 0x12, new: []any{"g1", "valid row", "", 0}},
		rawChange{op: 0x12, new: []any{nil, "null key", "", 0}}))
	exits(t, 3, append([]string{"sync"}, b.flags()...)...) // 3: not every file applied
	got := b.dump(t)
	if !strings.Contains(got, "'from alpha'") {
		t.Fatalf("beta lacks alpha's row:\n%s", got)
	}
	if strings.Contains(got, "valid row") || strings.Contains(got, "null key") {
		t.Fatalf("a part of the file with a NULL key was applied:\n%s", got)
	}
	st, reason := fileStatus(t, b, dev)
	if st != "broken" || !strings.Contains(reason, "NULL in primary key") || !strings.Contains(reason, dev) {
		t.Fatalf("status of the NULL-key file: %q %q, want broken naming the file and the NULL key", st, reason)
	}
}

// onlyDevice is the one device directory in folder.
func onlyDevice(t *testing.T, folder string) string {
	t.Helper()
	ents, err := os.ReadDir(folder)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		if e.IsDir() && rdfile.ValidDeviceID(e.Name()) {
			out = append(out, e.Name())
		}
	}
	if len(out) != 1 {
		t.Fatalf("want one device directory in %s, have %v", folder, out)
	}
	return out[0]
}
