package changeset_test

import (
	"bytes"
	"errors"
	"io"
	"runtime"
	"testing"

	"github.com/rowdrop/rowdrop/internal/changeset"
)

// bigChangeset is one UPDATE of a table (id INTEGER PK, b BLOB, t TEXT)
// whose old and new values are 3 MiB each.
func bigChangeset(t *testing.T) ([]byte, *changeset.Change) {
	t.Helper()
	old := bytes.Repeat([]byte{1}, 3<<20)
	nw := bytes.Repeat([]byte{2}, 3<<20)
	c := &changeset.Change{Table: &changeset.Table{Name: "t", PK: []byte{1, 0, 0}}, Op: changeset.OpUpdate,
		Old: []changeset.Value{changeset.Int(7), changeset.Blob(old), changeset.Text("a")},
		New: []changeset.Value{{}, changeset.Blob(nw), changeset.Text("b")}}
	var buf bytes.Buffer
	w := changeset.NewWriter(&buf)
	if err := w.Write(c); err != nil {
		t.Fatal(err)
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes(), c
}

// onlyReader hides what a reader is, so the Reader cannot tell its size.
type onlyReader struct{ io.Reader }

// Big values decode whole and exactly, from inputs of known and of
// unknown size, and a value of known size takes one allocation of its
// own (no arena grown and copied around it).
func TestBigValues(t *testing.T) {
	data, want := bigChangeset(t)
	for name, mk := range map[string]func() *changeset.Reader{
		"bytes": func() *changeset.Reader { return changeset.NewReader(bytes.NewReader(data), changeset.Limits{}) },
		"section": func() *changeset.Reader {
			return changeset.NewReader(io.NewSectionReader(bytes.NewReader(data), 0, int64(len(data))), changeset.Limits{})
		},
		"set-size": func() *changeset.Reader {
			r := changeset.NewReader(onlyReader{bytes.NewReader(data)}, changeset.Limits{})
			r.SetSize(int64(len(data)))
			return r
		},
		"stream": func() *changeset.Reader {
			return changeset.NewReader(onlyReader{bytes.NewReader(data)}, changeset.Limits{})
		},
	} {
		t.Run(name, func(t *testing.T) {
			r := mk()
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			c, err := r.Next()
			runtime.ReadMemStats(&after)
			if err != nil {
				t.Fatal(err)
			}
			alloc := after.TotalAlloc - before.TotalAlloc
			t.Logf("%s: %d bytes allocated for a %d-byte change", name, alloc, len(data))
			for i := range want.Old {
				if !c.Old[i].Equal(want.Old[i]) || !c.New[i].Equal(want.New[i]) {
					t.Fatalf("column %d: old %v new %v, want %v %v", i, c.Old[i], c.New[i], want.Old[i], want.New[i])
				}
			}
			if name != "stream" && float64(alloc) > 1.1*float64(len(data)) {
				t.Errorf("%d bytes allocated to decode %d: values grown, not allocated whole", alloc, len(data))
			}
		})
	}
}

// A declared length beyond the input is refused as truncation, not
// allocated, even when the input's size is known.
func TestBigValueTruncated(t *testing.T) {
	data, _ := bigChangeset(t)
	cut := data[:len(data)-(1<<20)]
	for _, r := range []*changeset.Reader{
		changeset.NewReader(bytes.NewReader(cut), changeset.Limits{}),
		changeset.NewReader(onlyReader{bytes.NewReader(cut)}, changeset.Limits{}),
	} {
		if _, err := r.Next(); !errors.Is(err, changeset.ErrCorrupt) {
			t.Fatalf("truncated big value: %v, want ErrCorrupt", err)
		}
	}
}

// KeysOnly keeps keys and small values and drops big non-key values'
// bytes, and the next change still decodes.
func TestKeysOnly(t *testing.T) {
	data, _ := bigChangeset(t)
	two := append(append([]byte{}, data...), data...)
	r := changeset.NewReader(onlyReader{bytes.NewReader(two)}, changeset.Limits{})
	r.KeysOnly(true)
	for i := 0; i < 2; i++ {
		c, err := r.Next()
		if err != nil {
			t.Fatal(err)
		}
		if k := c.Key(); len(k) != 1 || k[0].Int != 7 {
			t.Fatalf("key %v, want [7]", k)
		}
		if c.Old[1].Kind != changeset.KindBlob || c.Old[1].Bytes != nil || c.New[1].Bytes != nil {
			t.Fatalf("big values kept: %d and %d bytes", len(c.Old[1].Bytes), len(c.New[1].Bytes))
		}
		if string(c.New[2].Bytes) != "b" {
			t.Fatalf("small value %q, want b", c.New[2].Bytes)
		}
	}
	if _, err := r.Next(); err != io.EOF {
		t.Fatalf("after two changes: %v, want EOF", err)
	}
}

// With a Pool, the big values of a change are read into the buffers of
// the change before it, in one Reader and across Readers read one after
// the other: the bytes are right, and after the first change nothing of a
// value's size is allocated again.
func TestPoolReusesBigBuffers(t *testing.T) {
	data, want := bigChangeset(t)
	three := append(append(append([]byte{}, data...), data...), data...)
	pool := &changeset.Pool{}
	var first []byte
	for pass := 0; pass < 2; pass++ {
		r := changeset.NewReader(bytes.NewReader(three), changeset.Limits{})
		r.UsePool(pool)
		for i := 0; ; i++ {
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			c, err := r.Next()
			runtime.ReadMemStats(&after)
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			for j := range want.Old {
				if !c.Old[j].Equal(want.Old[j]) || !c.New[j].Equal(want.New[j]) {
					t.Fatalf("pass %d change %d column %d: old %v new %v", pass, i, j, c.Old[j], c.New[j])
				}
			}
			if pass == 0 && i == 0 {
				first = c.Old[1].Bytes
				continue
			}
			if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 1<<20 {
				t.Errorf("pass %d change %d: %d bytes allocated, want the pool's buffers reused", pass, i, alloc)
			}
			if &c.Old[1].Bytes[0] != &first[0] && &c.New[1].Bytes[0] != &first[0] {
				t.Errorf("pass %d change %d: the first change's buffer is not reused", pass, i)
			}
		}
	}
}

// KeyLen and WriteKey agree with EncodeKey, big values and all.
func TestWriteKey(t *testing.T) {
	for _, vals := range [][]changeset.Value{
		nil,
		{},
		{changeset.Int(-3), changeset.Float(1.5), changeset.Null(), {}},
		{changeset.Text(""), changeset.Blob(nil), changeset.Text("héllo")},
		{changeset.Blob(bytes.Repeat([]byte{9}, 3<<20)), changeset.Int(1), changeset.Text("tail")},
		{{Kind: changeset.Kind(9)}},
	} {
		want := changeset.EncodeKey(vals)
		var got bytes.Buffer
		if err := changeset.WriteKey(&got, vals); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got.Bytes(), want) {
			t.Errorf("WriteKey(%v) differs from EncodeKey", vals)
		}
		if n := changeset.KeyLen(vals); n != len(want) {
			t.Errorf("KeyLen(%v) = %d, want %d", vals, n, len(want))
		}
	}
}

// With RefBig, big non-key BLOBs of INSERT and UPDATE records come back
// as sections of the input (no bytes read into memory), a DELETE's whole,
// and a Writer given those changes writes the input's bytes exactly.
func TestRefBig(t *testing.T) {
	data, _ := bigChangeset(t)
	tab := &changeset.Table{Name: "t", PK: []byte{1, 0, 0}}
	del := &changeset.Change{Table: tab, Op: changeset.OpDelete,
		Old: []changeset.Value{changeset.Int(8), changeset.Blob(bytes.Repeat([]byte{3}, 2<<20)), changeset.Text("c")}}
	var more bytes.Buffer
	w := changeset.NewWriter(&more)
	if err := w.Write(del); err != nil {
		t.Fatal(err)
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	input := append(append([]byte("prefix"), data...), more.Bytes()[len(changeset.AppendHeader(nil, tab)):]...)
	src := bytes.NewReader(input)
	r := changeset.NewReader(onlyReader{io.NewSectionReader(src, 6, int64(len(input)-6))}, changeset.Limits{})
	r.RefBig(src, 6)
	var out bytes.Buffer
	cw := changeset.NewWriter(&out)
	for i := 0; ; i++ {
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		c, err := r.Next()
		runtime.ReadMemStats(&after)
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		switch i {
		case 0:
			if c.Old[1].Src == nil || c.New[1].Src == nil || c.Old[1].Bytes != nil || c.Old[1].Len() != 3<<20 {
				t.Fatalf("update: big values not left in the input: %+v", c.Old[1])
			}
			if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 1<<20 {
				t.Errorf("update: %d bytes allocated", alloc)
			}
			if b, err := c.New[1].Data(); err != nil || !bytes.Equal(b, bytes.Repeat([]byte{2}, 3<<20)) {
				t.Fatalf("update: the section holds other bytes (%v)", err)
			}
		case 1:
			if c.Old[1].Src != nil || !c.Old[1].Equal(del.Old[1]) {
				t.Fatal("delete: a big value not read whole")
			}
		}
		if err := cw.Write(c); err != nil {
			t.Fatal(err)
		}
	}
	if err := cw.Flush(); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(out.Bytes(), input[6:]) {
		t.Fatalf("written again: %d bytes differ from the %d read", out.Len(), len(input)-6)
	}
}

// A value left in its input (Src) encodes as its bytes would: EncodeKey,
// KeyLen and WriteKey read it from where it is.
func TestKeyOfSection(t *testing.T) {
	b := bytes.Repeat([]byte{5}, 2<<20)
	src := changeset.Value{Kind: changeset.KindBlob, Src: io.NewSectionReader(bytes.NewReader(b), 0, int64(len(b)))}
	vals := []changeset.Value{changeset.Int(1), src}
	want := changeset.EncodeKey([]changeset.Value{changeset.Int(1), changeset.Blob(b)})
	if !bytes.Equal(changeset.EncodeKey(vals), want) || changeset.KeyLen(vals) != len(want) {
		t.Fatal("EncodeKey or KeyLen of a section differs from its bytes'")
	}
	var w bytes.Buffer
	if err := changeset.WriteKey(&w, vals); err != nil || !bytes.Equal(w.Bytes(), want) {
		t.Fatalf("WriteKey of a section differs from its bytes' (%v)", err)
	}
	if !src.Equal(changeset.Blob(b)) || src.Equal(changeset.Blob(b[1:])) {
		t.Fatal("Equal of a section and bytes")
	}
}
