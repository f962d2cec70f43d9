package rdfile

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"

	"github.com/rowdrop/rowdrop/internal/changeset"
)

var testCols = []Column{
	{Name: "id", Type: "TEXT", PK: 1},
	{Name: "title", Type: "text"},
	{Name: "n", Type: "INTEGER", NotNull: true},
}

func testHeader() Header {
	return Header{
		Device: dev, DeviceName: "laptop", Install: "qqqqqqqqqqqqqqqq",
		Seq: 7, HLC: 0x0192_3456_789a_0001, CreatedMS: 1_795_000_000_000, Changes: 2,
		Tables: []Table{{Name: "notes", Columns: testCols, Fingerprint: Fingerprint("notes", testCols)}},
	}
}

// testChangeset is a two-change changeset in SQLite's format.
func testChangeset(t testing.TB) []byte {
	t.Helper()
	tab := &changeset.Table{Name: "notes", PK: []byte{1, 0, 0}}
	var b bytes.Buffer
	w := changeset.NewWriter(&b)
	for _, c := range []*changeset.Change{
		{Table: tab, Op: changeset.OpInsert, New: []changeset.Value{changeset.Text("k1"), changeset.Text("hello ☃"), changeset.Int(1)}},
		{Table: tab, Op: changeset.OpDelete, Old: []changeset.Value{changeset.Text("k0"), changeset.Null(), changeset.Int(0)}},
	} {
		if err := w.Write(c); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func buildFile(t testing.TB, dir string) (string, Header, []byte) {
	t.Helper()
	cs := testChangeset(t)
	p := filepath.Join(dir, FileName(7))
	h, err := Build(p, testHeader(), bytes.NewReader(cs))
	if err != nil {
		t.Fatal(err)
	}
	return p, h, cs
}

func readAll(t *testing.T, f *File) ([]byte, error) {
	t.Helper()
	rc, err := f.Changeset()
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	return io.ReadAll(rc)
}

func TestBuildOpenRoundTrip(t *testing.T) {
	dir := t.TempDir()
	p, h, cs := buildFile(t, dir)
	if h.Kind != "changeset" || h.Compression != "zstd" || h.RawLen != int64(len(cs)) || h.PayloadLen <= 0 || len(h.PayloadSHA256) != 32 {
		t.Fatalf("built header: %+v", h)
	}
	f, err := Open(p, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Verify(); err != nil {
		t.Fatal(err)
	}
	got, err := readAll(t, f)
	if err != nil || !bytes.Equal(got, cs) {
		t.Fatalf("payload: %v, %x != %x", err, got, cs)
	}
	if fmt.Sprint(f.Header) != fmt.Sprint(h) {
		t.Fatalf("header read back %+v, written %+v", f.Header, h)
	}
	// Only the file itself: no staging or temp files left behind.
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 {
		t.Fatalf("directory holds %d entries", len(ents))
	}
	// The documented layout (version 4, docs/FORMAT.md §4.1), decoded
	// by hand.
	raw, _ := os.ReadFile(p)
	if string(raw[:4]) != "RDCS" || binary.BigEndian.Uint16(raw[4:6]) != 4 {
		t.Fatalf("prefix %x", raw[:10])
	}
	hl, n := binary.Uvarint(raw[6:])
	end := 6 + n + int(hl)
	sum := sha256.Sum256(raw[:end])
	if !bytes.Equal(sum[:8], raw[end:end+8]) || f.Sum() != hex.EncodeToString(sum[:]) {
		t.Fatal("header checksum is not the first 8 bytes of the SHA-256 of prefix and header, or the file sum not all of it")
	}
	if raw[6+n] != 0 || idString(raw[7+n:17+n]) != dev {
		t.Fatalf("flags %#x or device %x", raw[6+n], raw[7+n:17+n])
	}
	payload := raw[end+8:]
	psum := sha256.Sum256(payload)
	if int64(len(payload)) != h.PayloadLen || hex.EncodeToString(psum[:16]) != h.PayloadSHA256 {
		t.Fatal("payload length or checksum")
	}
	dec, _ := zstd.NewReader(nil)
	plain, err := dec.DecodeAll(payload, nil)
	if err != nil || !bytes.Equal(plain, cs) {
		t.Fatalf("payload is not a zstd frame of the changeset: %v", err)
	}
}

func TestBuildNeverReplaces(t *testing.T) {
	dir := t.TempDir()
	p, _, _ := buildFile(t, dir)
	before, _ := os.ReadFile(p)
	h := testHeader()
	h.Seq = 8
	if _, err := Build(p, h, strings.NewReader("other")); !errors.Is(err, os.ErrExist) {
		t.Fatalf("Build over an existing file: %v", err)
	}
	after, _ := os.ReadFile(p)
	if !bytes.Equal(before, after) {
		t.Fatal("existing file modified")
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Fatalf("leftovers: %d entries", len(ents))
	}
}

func open(t *testing.T, data []byte) (*File, error) {
	t.Helper()
	p := filepath.Join(t.TempDir(), "f.rdc")
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return Open(p, Limits{})
}

// Every proper prefix of a file is "still arriving" (ErrIncomplete) — or,
// once the header is whole, opens and fails the payload check.
func TestTruncatedIsIncomplete(t *testing.T) {
	p, h, _ := buildFile(t, t.TempDir())
	data, _ := os.ReadFile(p)
	for n := 0; n < len(data); n++ {
		_, err := open(t, data[:n])
		if !errors.Is(err, ErrIncomplete) {
			t.Fatalf("first %d of %d bytes: %v, want ErrIncomplete", n, len(data), err)
		}
	}
	// A sync tool that preallocates writes the full length of zeros or
	// garbage first: the payload checksum says incomplete.
	hdrLen := len(data) - int(h.PayloadLen)
	z := append(append([]byte{}, data[:hdrLen]...), make([]byte, h.PayloadLen)...)
	f, err := open(t, z)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Verify(); !errors.Is(err, ErrIncomplete) {
		t.Fatalf("zeroed payload: %v", err)
	}
}

func TestBitFlips(t *testing.T) {
	p, h, _ := buildFile(t, t.TempDir())
	data, _ := os.ReadFile(p)
	hdrLen := len(data) - int(h.PayloadLen)
	for i := range data {
		d := append([]byte{}, data...)
		d[i] ^= 0x10
		f, err := open(t, d)
		switch {
		case i < 4:
			if !errors.Is(err, ErrForeign) {
				t.Fatalf("flip in magic byte %d: %v", i, err)
			}
		case i < 6:
			// The version is read before the checksum (a newer format
			// may checksum differently): a flip there reads as newer.
			if !errors.Is(err, ErrTooNew) && !errors.Is(err, ErrInvalid) {
				t.Fatalf("flip in version byte %d: %v", i, err)
			}
		case i < hdrLen:
			if err == nil || errors.Is(err, ErrForeign) || errors.Is(err, ErrTooNew) {
				t.Fatalf("flip in header byte %d: %v", i, err)
			}
		default:
			if err != nil {
				t.Fatalf("flip in payload byte %d: open: %v", i, err)
			}
			if err := f.Verify(); !errors.Is(err, ErrIncomplete) {
				t.Fatalf("flip in payload byte %d: verify: %v", i, err)
			}
		}
	}
}

func TestForeign(t *testing.T) {
	for _, data := range [][]byte{
		[]byte("SQLite format 3\x00 and more bytes"),
		[]byte("PK\x03\x04"),
		[]byte("a"),
		[]byte("RDX"),
		[]byte("{\"kind\":\"changeset\"}"),
		bytes.Repeat([]byte{0}, 100),
	} {
		if _, err := open(t, data); !errors.Is(err, ErrForeign) {
			t.Errorf("%q: %v, want ErrForeign", data, err)
		}
	}
	for _, data := range [][]byte{nil, []byte("R"), []byte("RDC"), []byte("RDCS\x00")} {
		if _, err := open(t, data); !errors.Is(err, ErrIncomplete) {
			t.Errorf("%q: %v, want ErrIncomplete", data, err)
		}
	}
}

// craft assembles a file from parts with a correct header checksum, as a
// hostile or buggy writer could.
func craft(version uint16, js []byte, payload []byte) []byte {
	var b bytes.Buffer
	b.WriteString(Magic)
	binary.Write(&b, binary.BigEndian, version)
	binary.Write(&b, binary.BigEndian, uint32(len(js)))
	b.Write(js)
	s := sha256.Sum256(b.Bytes())
	b.Write(s[:])
	b.Write(payload)
	return b.Bytes()
}

func zstdOf(t testing.TB, raw []byte) []byte {
	t.Helper()
	enc, _ := zstd.NewWriter(nil)
	return enc.EncodeAll(raw, nil)
}

// validParts returns a consistent header (as JSON-ready map) and payload.
func validParts(t testing.TB, raw []byte) (map[string]any, []byte) {
	t.Helper()
	payload := zstdOf(t, raw)
	s := sha256.Sum256(payload)
	h := testHeader()
	h.Kind, h.Compression = "changeset", "zstd"
	h.PayloadLen, h.RawLen, h.PayloadSHA256 = int64(len(payload)), int64(len(raw)), hex.EncodeToString(s[:])
	js, _ := json.Marshal(h)
	var m map[string]any
	json.Unmarshal(js, &m)
	return m, payload
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

func TestTooNew(t *testing.T) {
	m, payload := validParts(t, testChangeset(t))
	for _, v := range []uint16{Version + 1, 0xffff} {
		// A newer version may lay out everything after the prefix
		// differently: it is recognised from the prefix alone.
		if _, err := open(t, craft(v, mustJSON(m), payload)); !errors.Is(err, ErrTooNew) {
			t.Errorf("version %d: %v", v, err)
		}
		if _, err := open(t, append([]byte("RDCS"), byte(v>>8), byte(v))); !errors.Is(err, ErrTooNew) && v > 1 {
			// A prefix shorter than 10 bytes is still arriving.
			if !errors.Is(err, ErrIncomplete) {
				t.Errorf("short version-%d prefix: %v", v, err)
			}
		}
	}
}

func TestInvalidHeaders(t *testing.T) {
	raw := testChangeset(t)
	for _, c := range []struct {
		name string
		edit func(m map[string]any)
	}{
		{"unknown field", func(m map[string]any) { m["extra"] = 1 }},
		{"member name case", func(m map[string]any) { m["Device"] = m["device"]; delete(m, "device") }},
		{"missing member", func(m map[string]any) { delete(m, "install") }},
		{"missing hlc", func(m map[string]any) { delete(m, "hlc") }},
		{"hlc as number", func(m map[string]any) { m["hlc"] = 5 }},
		{"unknown column member", func(m map[string]any) {
			m["tables"].([]any)[0].(map[string]any)["columns"].([]any)[0].(map[string]any)["collate"] = "NOCASE"
		}},
		{"column missing type", func(m map[string]any) {
			delete(m["tables"].([]any)[0].(map[string]any)["columns"].([]any)[0].(map[string]any), "type")
		}},
		{"kind", func(m map[string]any) { m["kind"] = "archive" }},
		{"seen device", func(m map[string]any) { m["seen"] = map[string]any{"NOT-A-DEVICE": 1} }},
		{"device uppercase", func(m map[string]any) { m["device"] = strings.ToUpper(dev) }},
		{"device traversal", func(m map[string]any) { m["device"] = "../../etc/passwd" }},
		{"seq zero", func(m map[string]any) { m["seq"] = 0 }},
		{"seq too large", func(m map[string]any) { m["seq"] = MaxSeq + 1 }},
		{"compression", func(m map[string]any) { m["compression"] = "gzip" }},
		{"negative raw", func(m map[string]any) { m["raw_len"] = -1 }},
		{"negative changes", func(m map[string]any) { m["changes"] = -1 }},
		{"checksum uppercase", func(m map[string]any) { m["payload_sha256"] = strings.ToUpper(m["payload_sha256"].(string)) }},
		{"checksum short", func(m map[string]any) { m["payload_sha256"] = "abcd" }},
		{"seq as string", func(m map[string]any) { m["seq"] = "7" }},
		{"table without columns", func(m map[string]any) {
			m["tables"] = []any{map[string]any{"name": "t", "columns": []any{}, "fingerprint": "x"}}
		}},
		{"table twice", func(m map[string]any) { ts := m["tables"].([]any); m["tables"] = append(ts, ts[0]) }},
		{"fingerprint mismatch", func(m map[string]any) {
			m["tables"].([]any)[0].(map[string]any)["fingerprint"] = "0123456789abcdef"
		}},
		{"no primary key", func(m map[string]any) {
			cols := []Column{{Name: "a", Type: "TEXT"}}
			m["tables"] = []any{Table{Name: "t", Columns: cols, Fingerprint: Fingerprint("t", cols)}}
		}},
		{"primary key gap", func(m map[string]any) {
			cols := []Column{{Name: "a", PK: 1}, {Name: "b", PK: 3}, {Name: "c"}}
			m["tables"] = []any{Table{Name: "t", Columns: cols, Fingerprint: Fingerprint("t", cols)}}
		}},
		{"unnamed column", func(m map[string]any) {
			cols := []Column{{Name: "", PK: 1}}
			m["tables"] = []any{Table{Name: "t", Columns: cols, Fingerprint: Fingerprint("t", cols)}}
		}},
	} {
		m, payload := validParts(t, raw)
		c.edit(m)
		if _, err := open(t, craft(1, mustJSON(m), payload)); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: %v, want ErrInvalid", c.name, err)
		}
	}
	m, payload := validParts(t, raw)
	js := string(mustJSON(m))
	dup := strings.Replace(js, `"kind":"changeset",`, `"kind":"changeset","kind":"changeset",`, 1)
	for name, data := range map[string][]byte{
		"duplicate member": craft(1, []byte(dup), payload),
		"two objects":      craft(1, []byte(js+js), payload),
		"version 0":        craft(0, mustJSON(m), payload),
		"not JSON":         craft(1, []byte("{not json"), payload),
		"JSON array":       craft(1, []byte("[1,2]"), payload),
		"trailing bytes":   append(craft(1, mustJSON(m), payload), 0),
		"huge header":      append([]byte("RDCS\x00\x01\xff\xff\xff\xff"), make([]byte, 64)...),
	} {
		if _, err := open(t, data); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: %v, want ErrInvalid", name, err)
		}
	}
	// Sanity: the untouched parts make a valid file.
	if _, err := open(t, craft(1, mustJSON(m), payload)); err != nil {
		t.Fatalf("valid crafted file refused: %v", err)
	}
}

// A header that lies about the payload, with a correct checksum: reading
// stops with ErrInvalid instead of trusting it.
func TestPayloadLies(t *testing.T) {
	raw := testChangeset(t)
	read := func(m map[string]any, payload []byte, lim Limits) error {
		p := filepath.Join(t.TempDir(), "f.rdc")
		os.WriteFile(p, craft(1, mustJSON(m), payload), 0o644)
		f, err := Open(p, lim)
		if err != nil {
			return err
		}
		if err := f.Verify(); err != nil {
			return err
		}
		rc, err := f.Changeset()
		if err != nil {
			return err
		}
		defer rc.Close()
		_, err = io.Copy(io.Discard, rc)
		return err
	}
	fix := func(m map[string]any, payload []byte) {
		s := sha256.Sum256(payload)
		m["payload_len"], m["payload_sha256"] = len(payload), hex.EncodeToString(s[:])
	}
	m, payload := validParts(t, raw)
	m["raw_len"] = len(raw) - 1
	if err := read(m, payload, Limits{}); !errors.Is(err, ErrInvalid) {
		t.Errorf("raw_len too small: %v", err)
	}
	m, payload = validParts(t, raw)
	m["raw_len"] = len(raw) + 1
	if err := read(m, payload, Limits{}); !errors.Is(err, ErrInvalid) {
		t.Errorf("raw_len too large: %v", err)
	}
	m, payload = validParts(t, raw)
	if err := read(m, payload, Limits{MaxRaw: int64(len(raw) - 1)}); !errors.Is(err, ErrInvalid) {
		t.Errorf("over the reader's limit: %v", err)
	}
	m, _ = validParts(t, raw)
	garbage := []byte("definitely not zstd")
	fix(m, garbage)
	if err := read(m, garbage, Limits{}); !errors.Is(err, ErrInvalid) {
		t.Errorf("not zstd: %v", err)
	}
	// A decompression bomb: 64 MiB of zeros announced as 10 bytes stops
	// after reading 11.
	m, _ = validParts(t, raw)
	bomb := zstdOf(t, make([]byte, 64<<20))
	fix(m, bomb)
	m["raw_len"] = 10
	if err := read(m, bomb, Limits{}); !errors.Is(err, ErrInvalid) {
		t.Errorf("bomb: %v", err)
	}
}

// The fingerprint is part of the format: these vectors are in
// docs/FORMAT.md, for implementers in other languages (checked there with
// an independent Python one-liner).
func TestFingerprintVectors(t *testing.T) {
	for _, c := range []struct {
		name string
		cols []Column
		want string
	}{
		{"notes", testCols, "f9b08c69c3de92fb"},
		{"tags", []Column{{Name: "note", Type: "TEXT", PK: 2, NotNull: true}, {Name: "tag", Type: "TEXT", PK: 1, NotNull: true}}, "a99be30c6070f356"},
		{"t", []Column{{Name: "k", PK: 1}, {Name: "v", Type: "varchar(20)"}}, "d4098c096b5a6124"},
	} {
		if got := Fingerprint(c.name, c.cols); got != c.want {
			t.Errorf("Fingerprint(%s) = %s, want %s", c.name, got, c.want)
		}
		// The Local flag and the case of ASCII type letters don't count.
		cols := append([]Column{}, c.cols...)
		for i := range cols {
			cols[i].Local = true
			cols[i].Type = strings.ToLower(cols[i].Type)
		}
		if got := Fingerprint(c.name, cols); got != c.want {
			t.Errorf("Fingerprint(%s) with local/lowercase = %s", c.name, got)
		}
	}
	// Non-ASCII letters are not case-folded (SQLite doesn't either).
	if Fingerprint("t", []Column{{Name: "k", Type: "É", PK: 1}}) == Fingerprint("t", []Column{{Name: "k", Type: "é", PK: 1}}) {
		t.Error("non-ASCII type letters were case-folded")
	}
}

// testdata/example.rdc is a file written by this implementation, checked
// in so that readers in other languages (and future versions of this one)
// have a fixed sample; docs/FORMAT.md walks through it.
func TestExampleFile(t *testing.T) {
	p := filepath.Join("testdata", "example.rdc")
	if os.Getenv("ROWDROP_WRITE_EXAMPLE") != "" {
		os.Remove(p)
		if _, err := Build(p, testHeader(), bytes.NewReader(testChangeset(t))); err != nil {
			t.Fatal(err)
		}
	}
	f, err := Open(p, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Verify(); err != nil {
		t.Fatal(err)
	}
	got, err := readAll(t, f)
	if err != nil || !bytes.Equal(got, testChangeset(t)) {
		t.Fatalf("example payload: %v", err)
	}
	want := testHeader()
	want.Kind, want.Compression, want.RawLen = "changeset", "zstd", int64(len(got))
	want.PayloadLen, want.PayloadSHA256 = f.Header.PayloadLen, f.Header.PayloadSHA256
	if fmt.Sprint(f.Header) != fmt.Sprint(want) {
		t.Fatalf("example header %+v", f.Header)
	}
}

// FuzzReadHeader feeds arbitrary bytes to the header reader, twice: as a
// whole file, and as the JSON header of a file with a correct checksum (so
// the JSON checks are reached, which random bytes rarely get past the
// checksum to do). It never panics or over-allocates, classifies every
// failure as exactly one of the four documented errors, and whatever it
// accepts is self-consistent.
func FuzzReadHeader(f *testing.F) {
	m, payload := validParts(f, testChangeset(f))
	valid := craft(1, mustJSON(m), payload)
	f.Add(valid)
	f.Add(valid[:20])
	f.Add(mustJSON(m))
	f.Add(craft(2, []byte("{}"), nil))
	f.Add([]byte("SQLite format 3\x00"))
	f.Add([]byte{})
	if v4, err := os.ReadFile(filepath.Join("testdata", "example-v4.rdc")); err == nil {
		f.Add(v4)
		f.Add(v4[:40])
	}
	check := func(t *testing.T, data []byte) {
		h, off, err := ReadHeader(bytes.NewReader(data), int64(len(data)), Limits{MaxHeader: MaxHeader})
		if err != nil {
			n := 0
			for _, e := range []error{ErrIncomplete, ErrForeign, ErrTooNew, ErrInvalid} {
				if errors.Is(err, e) {
					n++
				}
			}
			if n != 1 {
				t.Fatalf("error %v is not exactly one of the documented kinds", err)
			}
			return
		}
		if off+h.PayloadLen != int64(len(data)) || off < prefixLen+sha256.Size || h.validate(binary.BigEndian.Uint16(data[4:6])) != nil {
			t.Fatalf("accepted an inconsistent header: %+v at %d of %d", h, off, len(data))
		}
		// A version-4 header has one encoding: the header read encodes
		// back to the very bytes.
		if binary.BigEndian.Uint16(data[4:6]) == v4 {
			if pre, err := encodePrefix(h); err != nil || !bytes.Equal(pre, data[:off]) {
				t.Fatalf("version-4 header re-encodes differently (%v): %x vs %x", err, pre, data[:off])
			}
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		check(t, data)
		if len(data) < 1<<16 {
			check(t, craft(1, data, nil))
		}
	})
}

// Changesets are version 4 (the binary header); snapshots (whose payload
// may carry the writer's schema) stay JSON, version 2, so older readers
// keep joining from them.
func TestVersionWrittenPerKind(t *testing.T) {
	for kind, want := range map[string]uint16{KindChangeset: 4, KindSnapshot: 2} {
		h := testHeader()
		h.Kind, h.PayloadSHA256 = kind, strings.Repeat("0", 64)
		pre, err := encodePrefix(h)
		if err != nil {
			t.Fatal(err)
		}
		if got := uint16(pre[4])<<8 | uint16(pre[5]); got != want {
			t.Errorf("%s written as version %d, want %d", kind, got, want)
		}
	}
}

// The hash chain (version 3): a changeset naming its predecessor is
// written as version 3 and read back with that member; the file sum is
// what SumOf predicted; prev in a version-1 file is an unknown member;
// heads belong to snapshots and name files their seen vector includes.
func TestChainMembers(t *testing.T) {
	dir := t.TempDir()
	h := testHeader()
	h.Prev = strings.Repeat("ab", 32)
	p := filepath.Join(dir, FileName(7))
	built, err := Build(p, h, bytes.NewReader(testChangeset(t)))
	if err != nil {
		t.Fatal(err)
	}
	f, err := Open(p, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(p)
	if v := uint16(data[4])<<8 | uint16(data[5]); v != 4 || f.Header.Prev != h.Prev[:32] || !SumsMatch(f.Header.Prev, h.Prev) {
		t.Fatalf("version %d, prev %q", v, f.Header.Prev)
	}
	// Version 3: the same chain member in JSON, read whole.
	m3, payload3 := validParts(t, testChangeset(t))
	m3["prev"] = h.Prev
	d3 := craft(3, mustJSON(m3), payload3)
	if f3, err := open(t, d3); err != nil || f3.Header.Prev != h.Prev {
		t.Fatalf("version-3 file with prev: %v", err)
	}
	if want, _ := SumOf(built); f.Sum() != want {
		t.Fatalf("Sum %s, SumOf %s", f.Sum(), want)
	}
	m, payload := validParts(t, testChangeset(t))
	m["prev"] = h.Prev
	if _, _, err := ReadHeader(bytes.NewReader(craft(1, mustJSON(m), payload)), int64(len(craft(1, mustJSON(m), payload))), Limits{}); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), `unknown member "prev"`) {
		t.Errorf("prev in a version-1 file: %v", err)
	}
	for name, mod := range map[string]func(*Header){
		"prev in file 1":       func(h *Header) { h.Seq = 1 },
		"prev not a sum":       func(h *Header) { h.Prev = "x" },
		"heads in a changeset": func(h *Header) { h.Heads = map[string]string{dev: h.Prev} },
		"heads beyond its seen": func(h *Header) {
			h.Kind, h.Prev, h.Heads = KindSnapshot, "", map[string]string{dev: strings.Repeat("cd", 32)}
		},
	} {
		x := testHeader()
		x.Kind, x.Compression, x.PayloadSHA256, x.Prev = KindChangeset, "zstd", strings.Repeat("0", 64), h.Prev
		mod(&x)
		if err := x.validate(3); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: accepted", name)
		}
	}
}
