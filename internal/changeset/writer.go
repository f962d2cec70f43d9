package changeset

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"math"
)

// Writer encodes changes as a changeset. Output is buffered; call Flush
// when done.
//
// The encoding is canonical (minimal varints, one header per run of changes
// to the same table), which is what SQLite writes, so decoding a changeset
// produced by SQLite and writing its changes back reproduces SQLite's bytes.
type Writer struct {
	bw      *bufio.Writer
	last    Table // header of the current group (own copy of the PK bytes)
	hasLast bool
	err     error // sticky I/O error
	scratch []byte
}

// NewWriter returns a Writer that writes a changeset to w.
func NewWriter(w io.Writer) *Writer {
	return &Writer{bw: bufio.NewWriterSize(w, bufSize)}
}

// Write appends c to the changeset, preceded by a table header if c's table
// (compared by name and PK bytes) differs from the previous change's.
//
// c must be well formed: a table with at least one column, a primary key
// column and a name without NUL bytes; a valid Op; Old set exactly for
// DELETE and UPDATE and New exactly for INSERT and UPDATE, each with one
// value per column; no undefined values in INSERT or DELETE records and no
// undefined primary key value in an UPDATE's Old. An invalid change is
// reported without writing anything. I/O errors are sticky.
func (w *Writer) Write(c *Change) error {
	if w.err != nil {
		return w.err
	}
	if c == nil {
		return fmt.Errorf("changeset: invalid change: nil")
	}
	if err := c.validate(); err != nil {
		return fmt.Errorf("changeset: invalid change: %w", err)
	}
	if !w.hasLast || !c.Table.sameAs(&w.last) {
		b := AppendHeader(w.scratch[:0], c.Table)
		w.write(b)
		w.scratch = b[:0]
		// Copy, so later mutation of the caller's Table is noticed.
		w.last = Table{Name: c.Table.Name, PK: append(w.last.PK[:0], c.Table.PK...)}
		w.hasLast = true
	}
	var ind byte
	if c.Indirect {
		ind = 1
	}
	w.scratch = append(w.scratch[:0], byte(c.Op), ind)
	w.write(w.scratch)
	if c.Op != OpInsert {
		w.writeRecord(c.Old)
	}
	if c.Op != OpDelete {
		w.writeRecord(c.New)
	}
	return w.err
}

func (w *Writer) writeRecord(rec []Value) {
	for _, v := range rec {
		w.scratch = appendValueHead(w.scratch[:0], v)
		w.write(w.scratch)
		if v.Src != nil && w.err == nil {
			if err := v.WriteData(w.bw); err != nil {
				w.err = fmt.Errorf("changeset: write: %w", err)
			}
		} else if v.Kind == KindText || v.Kind == KindBlob {
			w.write(v.Bytes)
		}
	}
}

func (w *Writer) write(p []byte) {
	if w.err != nil {
		return
	}
	if _, err := w.bw.Write(p); err != nil {
		w.err = fmt.Errorf("changeset: write: %w", err)
	}
}

// Flush writes any buffered data to the underlying writer.
func (w *Writer) Flush() error {
	if w.err != nil {
		return w.err
	}
	if err := w.bw.Flush(); err != nil {
		w.err = fmt.Errorf("changeset: flush: %w", err)
	}
	return w.err
}

// appendValueHead appends the encoding of v except the TEXT/BLOB payload:
// the type byte, then the 8-byte integer or float, or the payload length.
func appendValueHead(dst []byte, v Value) []byte {
	dst = append(dst, byte(v.Kind))
	switch v.Kind {
	case KindInteger:
		dst = binary.BigEndian.AppendUint64(dst, uint64(v.Int))
	case KindFloat:
		dst = binary.BigEndian.AppendUint64(dst, math.Float64bits(v.Float))
	case KindText, KindBlob:
		dst = AppendVarint(dst, uint64(v.Len()))
	}
	return dst
}

// AppendValue appends the changeset record encoding of v to dst. A Value
// with an invalid Kind is appended as its bare type byte, which readers
// reject.
func AppendValue(dst []byte, v Value) []byte {
	if v.Src != nil {
		// In memory after all: read it (a read error leaves the bare
		// type byte, which readers reject, never a wrong value).
		b, err := v.Data()
		if err != nil {
			return append(dst, 0xff)
		}
		v.Bytes, v.Src = b, nil
	}
	dst = appendValueHead(dst, v)
	if v.Kind == KindText || v.Kind == KindBlob {
		dst = append(dst, v.Bytes...)
	}
	return dst
}

// AppendHeader appends the table header record of t ('T', column count,
// primary-key flags, name) to dst, as Write emits it.
func AppendHeader(dst []byte, t *Table) []byte {
	dst = append(dst, 'T')
	dst = AppendVarint(dst, uint64(len(t.PK)))
	dst = append(dst, t.PK...)
	dst = append(dst, t.Name...)
	return append(dst, 0)
}
