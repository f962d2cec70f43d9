package changeset

import (
	"bytes"
	"cmp"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Kind is the type of a [Value]. The numeric values are the type bytes used
// in the changeset record format (and match SQLite's SQLITE_INTEGER etc.).
type Kind byte

// Value kinds.
const (
	// KindUndefined marks a column that is absent from an UPDATE record
	// (unchanged, or not needed to identify the row).
	KindUndefined Kind = 0
	KindInteger   Kind = 1
	KindFloat     Kind = 2
	KindText      Kind = 3
	KindBlob      Kind = 4
	KindNull      Kind = 5
)

// String returns the SQL name of the kind, e.g. "INTEGER".
func (k Kind) String() string {
	switch k {
	case KindUndefined:
		return "UNDEFINED"
	case KindInteger:
		return "INTEGER"
	case KindFloat:
		return "FLOAT"
	case KindText:
		return "TEXT"
	case KindBlob:
		return "BLOB"
	case KindNull:
		return "NULL"
	}
	return "Kind(" + strconv.Itoa(int(k)) + ")"
}

// valid reports whether k is one of the six kinds defined by the format.
func (k Kind) valid() bool { return k <= KindNull }

// Value is one column value of a changeset record. Int is set for
// KindInteger, Float for KindFloat, and Bytes for KindText and KindBlob
// (possibly nil when empty); the other fields are zero and ignored. The zero
// Value is KindUndefined.
type Value struct {
	Kind  Kind
	Int   int64
	Float float64
	Bytes []byte
	// Src, when set, holds a big BLOB's bytes in place of Bytes (nil): the
	// section of its input that a Reader with [Reader.RefBig] read past.
	// [Writer] copies from it, internal/rows writes from it through blob
	// I/O and db.Bind reads it; only the passes that asked for it see one.
	Src *io.SectionReader
}

// Len returns the length of a TEXT or BLOB value's bytes, where they are.
func (v Value) Len() int {
	if v.Src != nil {
		return int(v.Src.Size())
	}
	return len(v.Bytes)
}

// Data returns the value's bytes, read from Src if that is where they are.
func (v Value) Data() ([]byte, error) {
	if v.Src == nil {
		return v.Bytes, nil
	}
	b := make([]byte, v.Src.Size())
	if _, err := v.Src.ReadAt(b, 0); err != nil {
		return nil, fmt.Errorf("read a big value: %w", err)
	}
	return b, nil
}

// WriteData writes the value's bytes to w, from Src if they are there.
func (v Value) WriteData(w io.Writer) error {
	if v.Src == nil {
		_, err := w.Write(v.Bytes)
		return err
	}
	_, err := io.Copy(w, io.NewSectionReader(v.Src, 0, v.Src.Size()))
	return err
}

// Int returns an INTEGER value.
func Int(v int64) Value { return Value{Kind: KindInteger, Int: v} }

// Float returns a FLOAT value. The bits of f are preserved exactly,
// including the sign of zero and NaN payloads.
func Float(f float64) Value { return Value{Kind: KindFloat, Float: f} }

// Text returns a TEXT value holding a copy of s. SQLite treats text as UTF-8
// but the format does not require it, so s is not validated.
func Text(s string) Value { return Value{Kind: KindText, Bytes: []byte(s)} }

// Blob returns a BLOB value holding b (not copied).
func Blob(b []byte) Value { return Value{Kind: KindBlob, Bytes: b} }

// Null returns an SQL NULL value.
func Null() Value { return Value{Kind: KindNull} }

// Equal reports whether v and w are exactly the same: same kind and, for
// the kind, the same integer, the same float bits (so NaN equals a NaN with
// the same bits and 0.0 differs from -0.0), or the same bytes. Fields that
// do not belong to the kind are ignored.
func (v Value) Equal(w Value) bool {
	if v.Kind != w.Kind {
		return false
	}
	switch v.Kind {
	case KindInteger:
		return v.Int == w.Int
	case KindFloat:
		return math.Float64bits(v.Float) == math.Float64bits(w.Float)
	case KindText, KindBlob:
		if v.Src != nil || w.Src != nil {
			if v.Len() != w.Len() {
				return false
			}
			a, err1 := v.Data()
			b, err2 := w.Data()
			return err1 == nil && err2 == nil && bytes.Equal(a, b)
		}
		return bytes.Equal(v.Bytes, w.Bytes)
	}
	return true
}

// Limits on how much of a text or blob String renders before truncating.
const (
	maxStringText = 64
	maxStringBlob = 32
)

// String renders v like an SQL literal for logs and conflict reports:
//
//	42   1.5   'it''s'   X'00ff'   NULL
//
// Undefined renders as "undefined". Long text and blobs are truncated and
// annotated with their full length, and control characters and invalid
// UTF-8 in text are escaped Go-style, so the result is for humans and not
// guaranteed to be valid SQL.
func (v Value) String() string {
	if v.Src != nil {
		return fmt.Sprintf("%s of %d bytes", v.Kind, v.Len())
	}
	switch v.Kind {
	case KindUndefined:
		return "undefined"
	case KindNull:
		return "NULL"
	case KindInteger:
		return strconv.FormatInt(v.Int, 10)
	case KindFloat:
		return formatFloat(v.Float)
	case KindText:
		return formatText(v.Bytes)
	case KindBlob:
		return formatBlob(v.Bytes)
	}
	return fmt.Sprintf("<invalid kind %d>", byte(v.Kind))
}

func formatFloat(f float64) string {
	switch {
	case math.IsNaN(f):
		return "NaN"
	case math.IsInf(f, 1):
		return "Inf"
	case math.IsInf(f, -1):
		return "-Inf"
	}
	s := strconv.FormatFloat(f, 'g', -1, 64)
	// Keep floats visibly distinct from integers, as SQLite prints 1.0.
	if !strings.ContainsAny(s, ".e") {
		s += ".0"
	}
	return s
}

func formatText(b []byte) string {
	var sb strings.Builder
	sb.WriteByte('\'')
	truncated := false
	for i := 0; i < len(b); {
		if i >= maxStringText {
			truncated = true
			break
		}
		r, size := utf8.DecodeRune(b[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			fmt.Fprintf(&sb, `\x%02x`, b[i])
		case r == '\'':
			sb.WriteString("''")
		case r < 0x20 || r == 0x7f:
			q := strconv.QuoteRune(r) // e.g. '\n'
			sb.WriteString(q[1 : len(q)-1])
		default:
			sb.Write(b[i : i+size])
		}
		i += size
	}
	sb.WriteByte('\'')
	if truncated {
		fmt.Fprintf(&sb, "...(%d bytes)", len(b))
	}
	return sb.String()
}

func formatBlob(b []byte) string {
	const hexdigits = "0123456789abcdef"
	var sb strings.Builder
	sb.WriteString("X'")
	for i, c := range b {
		if i >= maxStringBlob {
			break
		}
		sb.WriteByte(hexdigits[c>>4])
		sb.WriteByte(hexdigits[c&0xf])
	}
	sb.WriteByte('\'')
	if len(b) > maxStringBlob {
		fmt.Fprintf(&sb, "...(%d bytes)", len(b))
	}
	return sb.String()
}

// Compare orders values totally and deterministically, returning -1, 0 or
// +1. Values are ordered first by Kind (undefined < INTEGER < FLOAT < TEXT <
// BLOB < NULL, the type-byte order; this is not SQL collation order), then
// within a kind: integers numerically; floats by IEEE 754 totalOrder
// (-NaN < -Inf < ... < -0 < +0 < ... < +Inf < +NaN, NaNs further ordered by
// payload), which is numeric order for ordinary numbers; text and blobs
// bytewise. Compare(a, b) == 0 exactly when a.Equal(b).
func Compare(a, b Value) int {
	if a.Kind != b.Kind {
		if a.Kind < b.Kind {
			return -1
		}
		return 1
	}
	switch a.Kind {
	case KindInteger:
		return cmp.Compare(a.Int, b.Int)
	case KindFloat:
		return cmp.Compare(floatOrderKey(a.Float), floatOrderKey(b.Float))
	case KindText, KindBlob:
		return bytes.Compare(a.Bytes, b.Bytes)
	}
	return 0
}

// floatOrderKey maps float bits to an unsigned integer whose natural order
// is IEEE 754 totalOrder: negative numbers have all bits flipped (so larger
// magnitudes sort lower) and positive numbers get the sign bit set.
func floatOrderKey(f float64) uint64 {
	u := math.Float64bits(f)
	if u&(1<<63) != 0 {
		return ^u
	}
	return u | 1<<63
}
