package main

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

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
// So is one with an UPDATE that changes nothing, or a table group whose
// column count differs from its header's.
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
	// Other changes no session writes: an UPDATE changing no column, and
	// a table group with fewer columns than the header declares.
	const devNoop, devCols = "oooooooooooooooo", "cccccccccccccccc"
	handMade(t, folder, devNoop, 1, rdfile.Header{Tables: []rdfile.Table{notes}}, 2, rawChangeset(notes,
		rawChange{op: 0x12, new: []any{"o1", "valid row", "", 0}},
		rawChange{op: 0x17, old: []any{"n1", undef, undef, undef}, new: []any{undef, undef, undef, undef}}))
	narrow := notes
	narrow.Columns = notes.Columns[:3]
	handMade(t, folder, devCols, 1, rdfile.Header{Tables: []rdfile.Table{notes}}, 1, rawChangeset(narrow,
		rawChange{op: 0x12, new: []any{"c1", "valid row", ""}}))
	exits(t, 3, append([]string{"sync"}, b.flags()...)...) // 3: not every file applied
	got := b.dump(t)
	if !strings.Contains(got, "'from alpha'") {
		t.Fatalf("beta lacks alpha's row:\n%s", got)
	}
	if strings.Contains(got, "valid row") || strings.Contains(got, "null key") {
		t.Fatalf("a part of the file with a NULL key was applied:\n%s", got)
	}
	for d, want := range map[string]string{dev: "NULL in primary key", devNoop: "UPDATE changes no non-key column", devCols: "a change has 3 columns, the header declares 4"} {
		st, reason := fileStatus(t, b, d)
		if st != "broken" || !strings.Contains(reason, want) || !strings.Contains(reason, d) || !strings.Contains(reason, "refused whole") {
			t.Errorf("status of the file of %s: %q %q, want broken, refused whole, naming the file and %q", d, st, reason, want)
		}
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

// Every limit on what is read from the folder refuses a hand-made file
// beyond it, naming the limit; a forged header with a 16 MiB device name
// is refused before it is read, so status stays short and quick; the
// files of other devices still apply (issue 21, 9).
func TestCLIFolderLimitsRefuseNamingTheLimit(t *testing.T) {
	folder := t.TempDir()
	a, b := newDevice(t, folder, "alpha"), newDevice(t, folder, "beta")
	a.exec(t, "INSERT INTO notes(id,title) VALUES('n1','from alpha')")
	a.sync(t)
	var notes rdfile.Table
	for _, tb := range headerOf(t, filepath.Join(folder, onlyDevice(t, folder), rdfile.FileName(1))).Tables {
		if tb.Name == "notes" {
			notes = tb
		}
	}
	row := func(id string, body string) rawChange {
		return rawChange{op: 0x12, new: []any{id, "t", body, 0}}
	}
	const (
		devName   = "nnnnnnnnnnnnnnnn"
		devHeader = "hhhhhhhhhhhhhhhh"
		devValue  = "vvvvvvvvvvvvvvvv"
		devRaw    = "rrrrrrrrrrrrrrrr"
	)
	hdr := func(name string) rdfile.Header {
		return rdfile.Header{DeviceName: name, Tables: []rdfile.Table{notes}}
	}
	handMade(t, folder, devName, 1, hdr(strings.Repeat("n", 300)), 1, rawChangeset(notes, row("x1", "long name")))
	handMade(t, folder, devHeader, 1, hdr(strings.Repeat("N", 16<<20-4096)), 1, rawChangeset(notes, row("x2", "huge header")))
	handMade(t, folder, devValue, 1, hdr("v"), 1, rawChangeset(notes, row("x3", strings.Repeat("v", 3<<20))))
	handMade(t, folder, devRaw, 1, hdr("r"), 3, rawChangeset(notes,
		row("x4", strings.Repeat("a", 3<<19)), row("x5", strings.Repeat("b", 3<<19)), row("x6", strings.Repeat("c", 3<<19))))

	limits := []string{"--max-value", strconv.Itoa(2 << 20), "--max-changeset", strconv.Itoa(4 << 20)}
	exits(t, 3, append(append([]string{"sync"}, b.flags()...), limits...)...)
	got := b.dump(t)
	if !strings.Contains(got, "'from alpha'") {
		t.Fatalf("beta lacks alpha's row:\n%s", got)
	}
	for _, id := range []string{"x1", "x2", "x3", "x4", "x5", "x6"} {
		if strings.Contains(got, "'"+id+"'") {
			t.Fatalf("row %s of a file beyond a limit was applied:\n%s", id, got)
		}
	}
	start := time.Now()
	r := runRD(t, append(append([]string{"status", "--json"}, b.flags()...), limits...)...)
	took := time.Since(start)
	if r.code != 3 {
		t.Fatalf("status: exit %d, want 3\n%s", r.code, r.stderr)
	}
	// Short: no header member is echoed whole (the forged one printed
	// 486 MB). Quick: the 16 MiB header is refused by its length, not
	// parsed (30 s before); the bound is generous, against a regression
	// to parsing, not a speed target.
	if n := len(r.stdout) + len(r.stderr); n > 256<<10 {
		t.Fatalf("status printed %d bytes", n)
	}
	if took > 20*time.Second {
		t.Fatalf("status took %s with a forged 16 MiB header in the folder", took)
	}
	var st map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &st); err != nil {
		t.Fatal(err)
	}
	reasons := map[string]string{}
	files, _ := st["files"].([]any)
	for _, f := range files {
		m, _ := f.(map[string]any)
		p, _ := m["path"].(string)
		s, _ := m["status"].(string)
		reason, _ := m["reason"].(string)
		reasons[strings.SplitN(p, "/", 2)[0]] = s + ": " + reason
	}
	for dev, want := range map[string]string{
		devName:   "device_name of 300 bytes exceeds the limit of 256",
		devHeader: "exceeds this reader's limit of 1048576 (setting max_header",
		devValue:  "exceeds the limit of 2097152 bytes per value",
		devRaw:    "exceeds this reader's limit of 4194304 (setting max_changeset)",
	} {
		r := reasons[dev]
		if !strings.HasPrefix(r, "broken: ") || !strings.Contains(r, want) || !strings.Contains(r, dev) {
			t.Errorf("file of %s: %q, want broken, naming the file and %q", dev, r, want)
		}
	}
}

// syncAny runs rowdrop sync for d, accepting exit 0 and 3 (not every
// file applied).
func syncAny(t *testing.T, d *device) {
	t.Helper()
	if r := runRD(t, append([]string{"sync"}, d.flags()...)...); r.code != 0 && r.code != 3 {
		t.Fatalf("rowdrop sync (%s): exit %d\n%s", d.name, r.code, r.stderr)
	}
}

// A file replaced under its own name (issue 21, 3): the device that
// applied the original reports it and keeps what it applied; a device
// joining later refuses it (the ack of the first one names the
// original); the owner notices at its next sync and reports it.
func TestCLIReplacedFileIsReportedAndRefused(t *testing.T) {
	folder := t.TempDir()
	a, b := newDevice(t, folder, "alpha"), newDevice(t, folder, "beta")
	a.exec(t, "INSERT INTO notes(id,title) VALUES('n1','original')")
	a.sync(t)
	b.sync(t)
	if !strings.Contains(b.dump(t), "'original'") {
		t.Fatalf("beta lacks alpha's row:\n%s", b.dump(t))
	}
	var aID string // beta published no file, only its ack
	for _, e := range mustReadDir(t, folder) {
		if _, err := os.Stat(filepath.Join(folder, e, rdfile.FileName(1))); err == nil {
			aID = e
		}
	}
	orig := filepath.Join(folder, aID, rdfile.FileName(1))
	h := headerOf(t, orig)
	var notes rdfile.Table
	for _, tb := range h.Tables {
		if tb.Name == "notes" {
			notes = tb
		}
	}
	// The same name, another content: a valid file in every other way.
	if err := os.Remove(orig); err != nil {
		t.Fatal(err)
	}
	handMade(t, folder, aID, 1, rdfile.Header{DeviceName: h.DeviceName, Install: h.Install, HLC: h.HLC, Seen: h.Seen, Tables: []rdfile.Table{notes}}, 1,
		rawChangeset(notes, rawChange{op: 0x12, new: []any{"n1", "forged", "", 0}}))

	syncAny(t, b)
	if got := b.dump(t); !strings.Contains(got, "'original'") || strings.Contains(got, "forged") {
		t.Fatalf("beta's copy changed:\n%s", got)
	}
	if st, reason := fileStatus(t, b, aID+"/"+rdfile.FileName(1)); st != "broken" || !strings.Contains(reason, "replaced under its own name") {
		t.Fatalf("beta, which applied the original: status %q %q, want broken: replaced", st, reason)
	}

	c := newDevice(t, folder, "gamma")
	syncAny(t, c)
	if got := c.dump(t); strings.Contains(got, "forged") {
		t.Fatalf("the joiner applied the replaced file:\n%s", got)
	}
	if st, reason := fileStatus(t, c, aID+"/"+rdfile.FileName(1)); st != "broken" || !strings.Contains(reason, "replaced under its own name") || !strings.Contains(reason, "acknowledged") {
		t.Fatalf("joiner: status %q %q, want broken: replaced, by the ack of beta", st, reason)
	}

	syncAny(t, a)
	if st, reason := fileStatus(t, a, aID+"/"+rdfile.FileName(1)); st != "broken" || !strings.Contains(reason, "replaced in the shared folder after this device published it") {
		t.Fatalf("owner: status %q %q, want broken: replaced after publishing", st, reason)
	}

	// The owner's next file names the original as its predecessor; and
	// `rowdrop check` finds the replaced file by the chain and the ack.
	a.exec(t, "INSERT INTO notes(id,title) VALUES('n2','second')")
	syncAny(t, a)
	if prev := headerOf(t, filepath.Join(folder, aID, rdfile.FileName(2))).Prev; prev == "" {
		t.Fatal("the owner's file 2 names no predecessor")
	}
	r := exits(t, 3, "check", "--folder", folder, "--json")
	var rep struct {
		Problems []struct{ File, Kind, What string }
	}
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
		t.Fatalf("check --json: %v\n%s", err, r.stdout)
	}
	byChain, byAck := false, false
	for _, p := range rep.Problems {
		if p.File == aID+"/"+rdfile.FileName(1) && p.Kind == "replaced" {
			byChain = byChain || strings.Contains(p.What, "predecessor")
			byAck = byAck || strings.Contains(p.What, "acknowledges it")
		}
	}
	if !byChain || !byAck {
		t.Fatalf("rowdrop check: replaced file found by chain %v, by ack %v:\n%s", byChain, byAck, r.stdout)
	}
}

func mustReadDir(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		out = append(out, e.Name())
	}
	return out
}
