package changeset

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"runtime"
	"strings"
	"testing"
	"testing/iotest"
)

// changeBoundaries decodes data and returns the changes and the offset just
// past each of them.
func changeBoundaries(t *testing.T, data []byte) ([]*Change, []int64) {
	t.Helper()
	r := NewReader(bytes.NewReader(data), Limits{})
	var changes []*Change
	var ends []int64
	for {
		c, err := r.Next()
		if err == io.EOF {
			return changes, ends
		}
		if err != nil {
			t.Fatal(err)
		}
		changes = append(changes, c)
		ends = append(ends, r.Offset())
	}
}

// checkTruncation decodes data[:i] and checks that it either fails with a
// truncation error or, when i falls on a change boundary (optionally
// followed by complete table headers), yields exactly the preceding changes.
func checkTruncation(t *testing.T, data []byte, full []*Change, ends []int64, i int) {
	t.Helper()
	got, err := decodeAll(data[:i], Limits{})
	k := 0 // changes wholly inside data[:i]
	for k < len(ends) && ends[k] <= int64(i) {
		k++
	}
	if err != nil {
		if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "truncated") {
			t.Fatalf("cut at %d: error %v is not a truncation ErrCorrupt", i, err)
		}
		var ce *CorruptError
		if !errors.As(err, &ce) || ce.Offset != int64(i) {
			t.Fatalf("cut at %d: error %v does not report offset %d", i, err, i)
		}
		return
	}
	// Success is only legitimate at a boundary: the tail after the last
	// whole change must be empty or nothing but table headers.
	start := int64(0)
	if k > 0 {
		start = ends[k-1]
	}
	tail, terr := decodeAll(data[start:i], Limits{})
	if terr != nil || len(tail) != 0 {
		t.Fatalf("cut at %d decoded without error but is not at a change boundary", i)
	}
	if len(got) != k {
		t.Fatalf("cut at %d: %d changes, want %d", i, len(got), k)
	}
	for j := range got {
		if d := diffChange(got[j], full[j], false); d != "" {
			t.Fatalf("cut at %d: change %d: %s", i, j, d)
		}
	}
}

func TestTruncatedAtEveryOffset(t *testing.T) {
	f := newFixture(t, false)
	full, ends := changeBoundaries(t, f.data)
	t.Logf("%d bytes, %d changes", len(f.data), len(full))
	for i := range len(f.data) {
		checkTruncation(t, f.data, full, ends, i)
	}
}

func TestTruncatedBigValues(t *testing.T) {
	f := newFixture(t, true)
	full, ends := changeBoundaries(t, f.data)
	// Every offset would be quadratic; sample enough offsets to land inside
	// each large value many times, plus every change boundary below.
	for i := 0; i < len(f.data); i += 9973 {
		checkTruncation(t, f.data, full, ends, i)
	}
	for _, e := range ends {
		for _, d := range []int64{-2, -1, 0, 1} {
			if i := e + d; i >= 0 && i < int64(len(f.data)) {
				checkTruncation(t, f.data, full, ends, int(i))
			}
		}
	}
}

// header builds a table header for an nCol-column table with PK bytes pk.
func header(name string, pk ...byte) []byte {
	b := AppendVarint([]byte{'T'}, uint64(len(pk)))
	b = append(b, pk...)
	return append(append(b, name...), 0)
}

func cat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

func TestCorruptInputs(t *testing.T) {
	hdr := header("t", 1, 0) // 6 bytes
	i1 := AppendValue(nil, Int(1))
	long := bytes.Repeat([]byte{'a'}, 5000)
	cases := []struct {
		name   string
		data   []byte
		reason string
		offset int64
	}{
		{"unknown op", cat(hdr, []byte{7, 0}), "unknown op", 6},
		{"indirect 2", cat(hdr, []byte{18, 2}, i1, i1), "indirect flag", 7},
		{"unknown type", cat(hdr, []byte{18, 0, 6}), "unknown value type 0x06", 8},
		{"type 0xff", cat(hdr, []byte{9, 0}, i1, []byte{0xff}), "unknown value type 0xff", 17},
		{"insert undefined", cat(hdr, []byte{18, 0}, i1, []byte{0}), "INSERT has undefined value in column 1", 6},
		{"delete undefined", cat(hdr, []byte{9, 0, 0}, i1), "DELETE has undefined primary key column 0", 6},
		{"delete undefined value", cat(hdr, []byte{9, 0}, i1, []byte{0}), "DELETE has undefined value in column 1", 6},
		{"insert NULL key", cat(hdr, []byte{18, 0, 5}, i1), "INSERT has NULL in primary key column 0", 6},
		{"delete NULL key", cat(hdr, []byte{9, 0, 5}, i1), "DELETE has NULL in primary key column 0", 6},
		{"update NULL key", cat(hdr, []byte{23, 0, 5}, i1, []byte{0}, i1), "UPDATE has NULL in primary key column 0", 6},
		{"update no change", cat(hdr, []byte{23, 0}, i1, []byte{0, 0, 0}), "UPDATE changes no non-key column", 6},
		{"update sets only the key", cat(hdr, []byte{23, 0}, i1, []byte{0}, i1, []byte{0}), "UPDATE changes no non-key column", 6},
		{"update without old value", cat(hdr, []byte{23, 0}, i1, []byte{0, 0}, i1), "UPDATE changes column 1 without its old value", 6},
		{"update pk undefined", cat(hdr, []byte{23, 0, 0}, i1, []byte{0}, i1), "undefined primary key column 0", 6},
		{"zero columns", []byte{'T', 0, 't', 0}, "zero columns", 1},
		{"too many columns", cat([]byte{'T'}, AppendVarint(nil, 2001)), "Limits.MaxColumns", 1},
		{"huge columns", cat([]byte{'T'}, AppendVarint(nil, 1<<62)), "Limits.MaxColumns", 1},
		{"no pk", cat(header("t", 0, 0), []byte{18, 0}, i1, i1), "no primary key column", 1},
		{"long name", cat([]byte{'T', 1, 1}, long, []byte{0}), "not NUL-terminated within 4096", 3},
		{"unterminated name", cat([]byte{'T', 1, 1}, []byte("abc")), "truncated", 6},
		{"change before header", cat([]byte{18, 0}, i1), "before the first table header", 0},
		{"garbage first byte", []byte("hello"), "unknown op or header byte 0x68", 0},
		{"huge text", cat(hdr, []byte{18, 0}, i1, []byte{3}, AppendVarint(nil, 1<<40)), "Limits.MaxValueBytes", 18},
		{"max varint blob", cat(hdr, []byte{18, 0}, i1, []byte{4}, bytes.Repeat([]byte{0xff}, 9)), "Limits.MaxValueBytes", 18},
		{"truncated int", cat(hdr, []byte{18, 0, 1, 0, 0}), "truncated", 11},
		{"truncated varint", cat(hdr, []byte{18, 0, 3, 0x81}), "truncated", 10},
		{"truncated after op", cat(hdr, []byte{18}), "truncated", 7},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := decodeAll(tc.data, Limits{})
			var ce *CorruptError
			if !errors.Is(err, ErrCorrupt) || !errors.As(err, &ce) {
				t.Fatalf("err = %v, want ErrCorrupt", err)
			}
			if !strings.Contains(err.Error(), tc.reason) || ce.Offset != tc.offset {
				t.Fatalf("err = %q (offset %d), want %q at offset %d", err, ce.Offset, tc.reason, tc.offset)
			}
		})
	}
}

func TestValidEdgeCases(t *testing.T) {
	i1 := AppendValue(nil, Int(1))
	// A header with no changes (SQLite's reader accepts it), repeated
	// headers, an empty table name, a non-minimal varint length, and an
	// UPDATE of one of two non-key columns. (An UPDATE whose new record is all undefined SQLite
	// accepts too, but no session writes one: TestCorruptInputs.)
	data := cat(header("empty", 1), header("", 1, 0), []byte{18, 0}, i1, []byte{3, 0x80, 0x80, 0x02}, []byte("ab"),
		header("t", 1, 0, 0), []byte{23, 1}, i1, []byte{0}, i1, []byte{0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 2})
	got, err := decodeAll(data, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].Table.Name != "" || string(got[0].New[1].Bytes) != "ab" ||
		got[1].Op != OpUpdate || !got[1].Indirect || got[1].New[1].Kind != KindUndefined {
		t.Fatalf("decoded %+v", got)
	}
	sq, err := sqliteChanges(t, data)
	if err != nil {
		t.Fatal(err)
	}
	compareChanges(t, got, sq, true)
}

func TestPatchsetRejected(t *testing.T) {
	for _, data := range [][]byte{
		{'P', 1, 1, 't', 0, 9, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1},
		cat(header("t", 1), []byte{18, 0}, AppendValue(nil, Int(1)), []byte{'P', 1, 1, 't', 0}),
	} {
		_, err := decodeAll(data, Limits{})
		if !errors.Is(err, ErrPatchset) {
			t.Errorf("err = %v, want ErrPatchset", err)
		}
	}
}

// allocDuring returns the bytes allocated while running fn.
func allocDuring(fn func()) uint64 {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	fn()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

func TestHugeDeclaredLengthsAreNotAllocated(t *testing.T) {
	hdr := header("t", 1, 0)
	i1 := AppendValue(nil, Int(1))
	// Lengths up to the limit pass the length check, so only incremental
	// allocation protects against them.
	for _, l := range []uint64{DefaultMaxValueBytes, DefaultMaxValueBytes - 1, 500 << 20} {
		data := cat(hdr, []byte{18, 0}, i1, []byte{4}, AppendVarint(nil, l), []byte("only a few bytes"))
		var err error
		n := allocDuring(func() { _, err = decodeAll(data, Limits{}) })
		if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "truncated") {
			t.Fatalf("length %d: err = %v", l, err)
		}
		if n > 1<<20 {
			t.Errorf("length %d: allocated %d bytes for a %d-byte input", l, n, len(data))
		}
	}
	// Column counts up to the limit are allocated only as bytes arrive.
	data := cat([]byte{'T'}, AppendVarint(nil, DefaultMaxColumns))
	if n := allocDuring(func() { decodeAll(data, Limits{}) }); n > 1<<20 {
		t.Errorf("allocated %d bytes for a column count", n)
	}
}

func TestLimits(t *testing.T) {
	hdr := header("t", 1, 0)
	i1 := AppendValue(nil, Int(1))
	text := func(n int) []byte {
		return cat(hdr, []byte{18, 0}, i1, AppendValue(nil, Text(strings.Repeat("x", n))))
	}
	if _, err := decodeAll(text(10), Limits{MaxValueBytes: 10}); err != nil {
		t.Errorf("value at limit: %v", err)
	}
	if _, err := decodeAll(text(11), Limits{MaxValueBytes: 10}); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "MaxValueBytes") {
		t.Errorf("value over limit: %v", err)
	}
	if _, err := decodeAll(header("t", 1, 0, 0), Limits{MaxColumns: 2}); !errors.Is(err, ErrCorrupt) {
		t.Errorf("columns over limit: %v", err)
	}
	d := text(100)
	if _, err := decodeAll(d, Limits{MaxTotalBytes: int64(len(d))}); err != nil {
		t.Errorf("input at total limit: %v", err)
	}
	for _, lim := range []int64{int64(len(d)) - 1, 50, 1} {
		_, err := decodeAll(d, Limits{MaxTotalBytes: lim})
		if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "MaxTotalBytes") {
			t.Errorf("total limit %d: %v", lim, err)
		}
	}
	// A complete changeset followed by extra bytes beyond the limit.
	_, err := decodeAll(append(d, 9), Limits{MaxTotalBytes: int64(len(d))})
	if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "MaxTotalBytes") {
		t.Errorf("trailing byte past total limit: %v", err)
	}
}

func TestGarbageAndMutations(t *testing.T) {
	seed := testSeed(t)
	rng := rand.New(rand.NewPCG(seed, 0))
	f := newFixture(t, false)
	for range 3000 {
		n := rng.IntN(200)
		data := make([]byte, n)
		for i := range data {
			data[i] = byte(rng.UintN(256))
		}
		if rng.IntN(2) == 0 && n > 0 {
			data[0] = 'T'
		}
		checkDecodeProperties(t, data, false)
	}
	for range 3000 {
		data := bytes.Clone(f.data)
		for range 1 + rng.IntN(4) {
			i := rng.IntN(len(data))
			switch rng.IntN(3) {
			case 0:
				data[i] ^= 1 << rng.UintN(8)
			case 1:
				data[i] = byte(rng.UintN(256))
			case 2:
				data = append(data[:i], data[i+1:]...)
			}
		}
		checkDecodeProperties(t, data, true)
	}
}

// checkDecodeProperties decodes data and checks the fuzzing invariants: the
// error, if any, is ErrCorrupt or ErrPatchset with a sane offset; a
// successful decode re-encodes canonically; and, if withSQLite, SQLite's own
// iterator reads the same changes.
func checkDecodeProperties(t *testing.T, data []byte, withSQLite bool) {
	t.Helper()
	changes, err := decodeAll(data, Limits{MaxValueBytes: 1 << 20, MaxColumns: 100})
	if err != nil {
		var ce *CorruptError
		switch {
		case errors.As(err, &ce):
			if ce.Offset < 0 || ce.Offset > int64(len(data)) {
				t.Fatalf("corrupt offset %d outside input of %d bytes", ce.Offset, len(data))
			}
		case errors.Is(err, ErrPatchset):
		default:
			t.Fatalf("unexpected error type %T: %v", err, err)
		}
		return
	}
	var buf bytes.Buffer
	w := NewWriter(&buf)
	for _, c := range changes {
		if err := w.Write(c); err != nil {
			t.Fatalf("decoded change does not re-encode: %v", err)
		}
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	again, err := decodeAll(buf.Bytes(), Limits{MaxValueBytes: 1 << 20, MaxColumns: 100})
	if err != nil {
		t.Fatalf("re-encoded changeset does not decode: %v", err)
	}
	if len(again) != len(changes) {
		t.Fatalf("re-decoded %d changes, want %d", len(again), len(changes))
	}
	for i := range again {
		if d := diffChange(again[i], changes[i], false); d != "" {
			t.Fatalf("change %d after re-encoding: %s", i, d)
		}
	}
	if third := encodeAll(t, again); !bytes.Equal(third, buf.Bytes()) {
		t.Fatalf("encoding is not canonical: differs at byte %d", firstDiff(third, buf.Bytes()))
	}
	if withSQLite {
		sq, err := sqliteChanges(t, data)
		if err != nil {
			t.Fatalf("we decoded %d changes but SQLite fails: %v", len(changes), err)
		}
		compareChanges(t, sqliteView(changes), sq, true)
	}
}

// sqliteView returns changes as SQLite's iterator presents them: it hides
// old values of UPDATE columns that are neither key nor modified, and it
// turns NaN floats into NULL.
func sqliteView(changes []*Change) []*Change {
	out := make([]*Change, len(changes))
	for i, c := range changes {
		cc := *c
		cc.Old, cc.New = nanToNull(c.Old), nanToNull(c.New)
		if c.Op == OpUpdate {
			for j := range cc.Old {
				if c.Table.PK[j] == 0 && cc.New[j].Kind == KindUndefined {
					cc.Old[j] = Value{}
				}
			}
		}
		out[i] = &cc
	}
	return out
}

func nanToNull(rec []Value) []Value {
	if rec == nil {
		return nil
	}
	out := make([]Value, len(rec))
	for i, v := range rec {
		if v.Kind == KindFloat && v.Float != v.Float {
			v = Null()
		}
		out[i] = v
	}
	return out
}

func TestStreamingReaders(t *testing.T) {
	f := newFixture(t, true)
	want, err := decodeAll(f.data, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	for name, r := range map[string]io.Reader{
		"one byte":  iotest.OneByteReader(bytes.NewReader(f.data)),
		"half":      iotest.HalfReader(bytes.NewReader(f.data)),
		"data+EOF":  iotest.DataErrReader(bytes.NewReader(f.data)),
		"multi":     io.MultiReader(bytes.NewReader(f.data[:1000]), bytes.NewReader(f.data[1000:])),
		"truncated": bytes.NewReader(f.data[:len(f.data)-1]),
	} {
		rd := NewReader(r, Limits{})
		var got []*Change
		for {
			c, err := rd.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				if name == "truncated" && errors.Is(err, ErrCorrupt) {
					break
				}
				t.Fatalf("%s: %v", name, err)
			}
			got = append(got, c)
		}
		if name == "truncated" {
			if len(got) != len(want)-1 {
				t.Errorf("truncated: %d changes before the error, want %d", len(got), len(want)-1)
			}
			continue
		}
		compareChanges(t, got, want, false)
	}
}

func TestReaderErrorsAreSticky(t *testing.T) {
	boom := errors.New("boom")
	data := cat(header("t", 1), []byte{18, 0}, AppendValue(nil, Int(1)))
	r := NewReader(io.MultiReader(bytes.NewReader(data), iotest.ErrReader(boom)), Limits{})
	if _, err := r.Next(); err != nil {
		t.Fatal(err)
	}
	_, err := r.Next()
	if !errors.Is(err, boom) || errors.Is(err, ErrCorrupt) {
		t.Fatalf("err = %v, want the reader's error, not ErrCorrupt", err)
	}
	if _, err2 := r.Next(); err2 != err {
		t.Fatalf("second Next = %v, want sticky %v", err2, err)
	}
	r = NewReader(bytes.NewReader(nil), Limits{})
	for range 2 {
		if c, err := r.Next(); c != nil || err != io.EOF {
			t.Fatalf("empty input: %v, %v", c, err)
		}
	}
}

type failWriter struct{ n int }

func (w *failWriter) Write(p []byte) (int, error) {
	if w.n < len(p) {
		n := w.n
		w.n = 0
		return n, errors.New("disk full")
	}
	w.n -= len(p)
	return len(p), nil
}

func TestWriterIOErrorIsSticky(t *testing.T) {
	w := NewWriter(&failWriter{n: 10})
	c := &Change{Table: &Table{Name: "t", PK: []byte{1}}, Op: OpInsert, New: []Value{Text(strings.Repeat("x", 100000))}}
	err := w.Write(c)
	if err == nil {
		err = w.Flush()
	}
	if err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Fatalf("err = %v", err)
	}
	if err2 := w.Write(c); err2 == nil {
		t.Fatal("write after failure succeeded")
	}
	if err2 := w.Flush(); err2 == nil {
		t.Fatal("flush after failure succeeded")
	}
}

// repeatReader produces a changeset header followed by n copies of one
// INSERT change, without holding the whole input in memory.
type repeatReader struct {
	head, rec []byte
	n         int
	pos       int
}

func (r *repeatReader) Read(p []byte) (int, error) {
	total := 0
	for len(p) > 0 {
		var src []byte
		switch {
		case r.head != nil:
			src = r.head
		case r.n > 0:
			src = r.rec[r.pos:]
		default:
			if total == 0 {
				return 0, io.EOF
			}
			return total, nil
		}
		k := copy(p, src)
		p, total = p[k:], total+k
		if r.head != nil {
			r.head = r.head[k:]
			if len(r.head) == 0 {
				r.head = nil
			}
			continue
		}
		r.pos += k
		if r.pos == len(r.rec) {
			r.pos, r.n = 0, r.n-1
		}
	}
	return total, nil
}

func TestLargeStreamConstantMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("reads 256 MiB")
	}
	rec := cat([]byte{18, 0}, AppendValue(nil, Int(7)), AppendValue(nil, Blob(bytes.Repeat([]byte{0xab}, 64<<10))))
	n := (256 << 20) / len(rec)
	r := NewReader(&repeatReader{head: header("t", 1, 0), rec: rec, n: n}, Limits{})
	var peak uint64
	var ms runtime.MemStats
	count := 0
	for {
		_, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		count++
		if count%500 == 0 {
			runtime.ReadMemStats(&ms)
			peak = max(peak, ms.HeapInuse)
		}
	}
	if count != n {
		t.Fatalf("read %d changes, want %d", count, n)
	}
	t.Logf("read %d MiB in %d changes, peak heap in use %d KiB", r.Offset()>>20, count, peak>>10)
	if peak > 64<<20 {
		t.Errorf("peak heap in use %d bytes; reading should need constant memory", peak)
	}
}
