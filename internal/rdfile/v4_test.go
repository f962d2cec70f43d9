package rdfile

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const dev2 = "zzzzzzzzzzzzzzz2"

// v4Header has every member version 4 encodes in a non-default form.
func v4Header() Header {
	cols := []Column{
		{Name: "a", Type: "INTEGER", PK: 2, NotNull: true},
		{Name: "b", Type: "varchar(20)", PK: 1},
		{Name: "path", Type: "", Local: true},
		{Name: "n", Type: "NUMERIC"},
	}
	h := testHeader()
	h.Install = "1796407066707-ltwaaqo5lhqqzev3"
	h.Prev = strings.Repeat("ab", 32)
	h.Seen = map[string]uint64{dev: 7, dev2: 3, "aaaaaaaaaaaaaaaa": 0}
	h.CreatedMS = int64(h.HLC>>16) - 5 // a wall clock behind the HLC
	h.Tables = append(h.Tables, Table{Name: "tags", Columns: cols, Fingerprint: Fingerprint("tags", cols)})
	return h
}

// A version-4 file reads back exactly as written, with its file sum what
// SumOf predicted, and its bytes are the only encoding of that header.
func TestV4RoundTrip(t *testing.T) {
	for name, h := range map[string]Header{"every member": v4Header(), "minimal": {Device: dev, Seq: 1, HLC: 1}} {
		t.Run(name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), FileName(h.Seq))
			built, err := Build(p, h, bytes.NewReader(testChangeset(t)))
			if err != nil {
				t.Fatal(err)
			}
			f, err := Open(p, Limits{})
			if err != nil {
				t.Fatal(err)
			}
			if err := f.Verify(); err != nil {
				t.Fatal(err)
			}
			if fmt.Sprint(f.Header) != fmt.Sprint(built) {
				t.Fatalf("read back %+v\nwritten   %+v", f.Header, built)
			}
			if sum, _ := SumOf(built); sum != f.Sum() {
				t.Fatalf("SumOf %s, file sum %s", sum, f.Sum())
			}
			data, _ := os.ReadFile(p)
			again, err := encodePrefix(f.Header)
			if err != nil || !bytes.HasPrefix(data, again) || len(again) != len(data)-int(f.Header.PayloadLen) {
				t.Fatalf("re-encoding the header read gives other bytes: %v", err)
			}
		})
	}
}

// The P3 case: a one-row edit's header with the table's columns listed
// stays small (docs/BENCH.md P3 counts the bytes).
func TestV4HeaderSize(t *testing.T) {
	cols := []Column{{Name: "id", Type: "TEXT", PK: 1}, {Name: "title", Type: "TEXT", NotNull: true}, {Name: "body", Type: "TEXT", NotNull: true},
		{Name: "created_at", Type: "INTEGER", NotNull: true}, {Name: "updated_at", Type: "INTEGER", NotNull: true}}
	h := Header{Device: dev, DeviceName: "p1-TEXT-5k", Install: "1796407066707-ltwaaqo5lhqqzev3", Seq: 7, HLC: 117729333571026944,
		CreatedMS: 1796407067429, Changes: 1, PayloadLen: 587, RawLen: 1047, PayloadSHA256: strings.Repeat("2c", 32),
		Seen: map[string]uint64{dev: 7}, Prev: strings.Repeat("c3", 32),
		Tables: []Table{{Name: "notes", Columns: cols, Fingerprint: Fingerprint("notes", cols)}}}
	pre, err := encodePrefix(h)
	if err != nil {
		t.Fatal(err)
	}
	js, _ := encodeJSON(h, 3)
	t.Logf("version 4: %d bytes before the payload; version 3: %d", len(pre), len(js))
	if len(pre) > 160 {
		t.Fatalf("version-4 header of a one-row edit is %d bytes", len(pre))
	}
}

// reseal recomputes a version-4 prefix's checksum after body was edited:
// what a buggy or hostile writer produces.
func reseal(body []byte) []byte {
	b := append([]byte(Magic), 0, 4)
	b = binary.AppendUvarint(b, uint64(len(body)))
	b = append(b, body...)
	s := sha256.Sum256(b)
	return append(b, s[:v4Check]...)
}

// Every malformed or non-canonical version-4 header is invalid, never
// misread: the file is whole (its checksum matches) but wrong.
func TestV4Invalid(t *testing.T) {
	h := v4Header()
	h.PayloadSHA256, h.PayloadLen = strings.Repeat("0", 64), 66
	body, err := encodeV4Body(h)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := decodeV4Body(body); err != nil {
		t.Fatal(err)
	}
	cases := map[string]func([]byte) []byte{
		"trailing byte":      func(b []byte) []byte { return append(b, 0) },
		"truncated":          func(b []byte) []byte { return b[:len(b)-1] },
		"unknown flag":       func(b []byte) []byte { b[0] |= 0x80; return b },
		"prev flag off":      func(b []byte) []byte { b[0] &^= v4HasPrev; return b },
		"install flag off":   func(b []byte) []byte { b[0] &^= v4InstallStd; return b },
		"seq 0":              func(b []byte) []byte { b[11] = 0; return b },
		"non-minimal varint": func(b []byte) []byte { return append(append(append([]byte{}, b[:11]...), 0x87, 0x00), b[12:]...) },
		"empty":              func([]byte) []byte { return nil },
		"everything is 0xff": func(b []byte) []byte { return bytes.Repeat([]byte{0xff}, len(b)) },
		"a column type spelled out": func(b []byte) []byte {
			i := bytes.Index(b, []byte("\x02id\x02"))
			return append(append(append([]byte{}, b[:i+3]...), 0, 4, 'T', 'E', 'X', 'T'), b[i+4:]...)
		},
	}
	for name, edit := range cases {
		data := append(reseal(edit(append([]byte{}, body...))), make([]byte, 66)...)
		_, _, err := ReadHeader(bytes.NewReader(data), int64(len(data)), Limits{})
		if !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: %v, want ErrInvalid", name, err)
		}
	}
}

// Files of versions 1 to 3 still read: the checked-in version-1 example
// and a version-3 changeset with the hash chain.
func TestOldVersionsStillRead(t *testing.T) {
	f, err := Open(filepath.Join("testdata", "example.rdc"), Limits{})
	if err != nil || f.Verify() != nil {
		t.Fatalf("version-1 example: %v", err)
	}
	prev := strings.Repeat("ab", 32)
	for _, ver := range []uint16{1, 3} {
		m, payload := validParts(t, testChangeset(t))
		if ver == 3 {
			m["prev"] = prev
		}
		g, err := open(t, craft(ver, mustJSON(m), payload))
		if err != nil || g.Verify() != nil {
			t.Fatalf("version %d: %v", ver, err)
		}
		if got, _ := readAll(t, g); !bytes.Equal(got, testChangeset(t)) {
			t.Fatalf("version %d: payload", ver)
		}
	}
}

// The checked-in version-4 example reads (FORMAT.md §10.1 walks through
// it); ROWDROP_UPDATE_EXAMPLE=1 go test -run TestV4Example rewrites it.
func TestV4Example(t *testing.T) {
	p := filepath.Join("testdata", "example-v4.rdc")
	if os.Getenv("ROWDROP_UPDATE_EXAMPLE") != "" {
		os.Remove(p)
		h := testHeader()
		h.Install, h.Seen, h.Prev = "1795000000000-qqqqqqqqqqqqqqqq", map[string]uint64{dev: 7}, strings.Repeat("ab", 32)
		if _, err := Build(p, h, bytes.NewReader(testChangeset(t))); err != nil {
			t.Fatal(err)
		}
	}
	f, err := Open(p, Limits{})
	if err != nil || f.Verify() != nil {
		t.Fatalf("version-4 example: %v", err)
	}
	if got, _ := readAll(t, f); !bytes.Equal(got, testChangeset(t)) || f.Header.Seq != 7 || len(f.Header.Tables) != 1 || f.Header.Tables[0].Fingerprint != "f9b08c69c3de92fb" {
		t.Fatalf("version-4 example reads as %+v", f.Header)
	}
}

// A version-4 prev or payload checksum matches the full sum it starts,
// and nothing shorter or different.
func TestSumsMatch(t *testing.T) {
	full := strings.Repeat("ab", 32)
	for _, c := range []struct {
		a, b string
		want bool
	}{
		{full, full, true},
		{full[:32], full, true},
		{full, full[:32], true},
		{full[:31], full, false},
		{"", "", false},
		{strings.Repeat("ab", 15) + "ac", full, false},
		{strings.Repeat("cd", 32), full, false},
	} {
		if got := SumsMatch(c.a, c.b); got != c.want {
			t.Errorf("SumsMatch(%q, %q) = %v", c.a, c.b, got)
		}
	}
}
