package changeset

import (
	"bytes"
	"io"
	"testing"
)

// benchChangeset builds a changeset of n mixed changes.
func benchChangeset(b *testing.B, n int) []byte {
	b.Helper()
	tb := &Table{Name: "items", PK: []byte{1, 0, 0, 0, 0}}
	var buf bytes.Buffer
	w := NewWriter(&buf)
	u := Value{}
	for i := range n {
		var c *Change
		row := []Value{Int(int64(i)), Text("some text value for the row"), Float(float64(i) / 3), Blob(make([]byte, 32)), Null()}
		switch i % 3 {
		case 0:
			c = &Change{Table: tb, Op: OpInsert, New: row}
		case 1:
			c = &Change{Table: tb, Op: OpDelete, Old: row}
		default:
			c = &Change{Table: tb, Op: OpUpdate,
				Old: []Value{Int(int64(i)), Text("old"), u, u, u},
				New: []Value{u, Text("new value"), u, u, u}}
		}
		if err := w.Write(c); err != nil {
			b.Fatal(err)
		}
	}
	if err := w.Flush(); err != nil {
		b.Fatal(err)
	}
	return buf.Bytes()
}

func BenchmarkReader(b *testing.B) {
	data := benchChangeset(b, 10000)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		r := NewReader(bytes.NewReader(data), Limits{})
		for {
			if _, err := r.Next(); err == io.EOF {
				break
			} else if err != nil {
				b.Fatal(err)
			}
		}
	}
}

func BenchmarkWriter(b *testing.B) {
	data := benchChangeset(b, 10000)
	changes, err := decodeAll(data, Limits{})
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		w := NewWriter(io.Discard)
		for _, c := range changes {
			if err := w.Write(c); err != nil {
				b.Fatal(err)
			}
		}
		if err := w.Flush(); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkEncodeKey(b *testing.B) {
	key := []Value{Int(12345), Text("tenant-42")}
	b.ReportAllocs()
	for b.Loop() {
		EncodeKey(key)
	}
}
