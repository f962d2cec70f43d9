package changeset

import (
	"bytes"
	"encoding/binary"
	"io"
	"math"
)

// EncodeKey returns a compact byte encoding of a primary key tuple, for use
// as a map or database key: a varint value count followed by each value in
// the changeset record encoding (type byte, then 8 big-endian bytes for
// INTEGER/FLOAT or a varint length and the bytes for TEXT/BLOB).
//
// The encoding is deterministic and injective: two tuples get the same key
// exactly when they have the same length and pairwise Equal values (so
// 1 and 1.0, 0.0 and -0.0, or 'a' and X'61' are different keys). The bytes
// are self-delimiting: a key's extent can be found without knowing its
// length. Byte order of keys is not Compare order. Values must have a valid
// Kind (an invalid one is written as a bare type byte that DecodeKey
// rejects).
func EncodeKey(vals []Value) []byte {
	n := MaxVarintLen
	for _, v := range vals {
		n += 1 + MaxVarintLen + v.Len()
	}
	return AppendKey(make([]byte, 0, n), vals)
}

// AppendKey appends EncodeKey(vals) to dst.
func AppendKey(dst []byte, vals []Value) []byte {
	dst = AppendVarint(dst, uint64(len(vals)))
	for _, v := range vals {
		if !v.Kind.valid() {
			dst = append(dst, byte(v.Kind))
			continue
		}
		dst = AppendValue(dst, v)
	}
	return dst
}

// KeyLen returns len(EncodeKey(vals)) without encoding.
func KeyLen(vals []Value) int {
	n := len(AppendVarint(nil, uint64(len(vals))))
	var head []byte
	for _, v := range vals {
		if !v.Kind.valid() {
			n++
			continue
		}
		head = appendValueHead(head[:0], v)
		n += len(head)
		if v.Kind == KindText || v.Kind == KindBlob {
			n += v.Len()
		}
	}
	return n
}

// WriteKey writes EncodeKey(vals) to w, the values' bytes from where they
// are (no copy of them is made).
func WriteKey(w io.Writer, vals []Value) error {
	head := AppendVarint(nil, uint64(len(vals)))
	for _, v := range vals {
		if !v.Kind.valid() {
			head = append(head, byte(v.Kind))
			continue
		}
		head = appendValueHead(head, v)
		if v.Kind != KindText && v.Kind != KindBlob {
			continue
		}
		if _, err := w.Write(head); err != nil {
			return err
		}
		head = head[:0]
		if err := v.WriteData(w); err != nil {
			return err
		}
	}
	if len(head) > 0 {
		_, err := w.Write(head)
		return err
	}
	return nil
}

// DecodeKey decodes a key produced by EncodeKey. The whole of b must be one
// key. Errors wrap ErrCorrupt. The returned values do not alias b.
func DecodeKey(b []byte) ([]Value, error) {
	vals, n, err := decodeKeyPrefix(b)
	if err != nil {
		return nil, err
	}
	if n != len(b) {
		return nil, &CorruptError{Offset: int64(n), Reason: "trailing bytes after key"}
	}
	return vals, nil
}

// decodeKeyPrefix decodes the key at the start of b and returns its length.
func decodeKeyPrefix(b []byte) ([]Value, int, error) {
	corrupt := func(off int, reason string) ([]Value, int, error) {
		return nil, 0, &CorruptError{Offset: int64(off), Reason: "key: " + reason}
	}
	count, p := Varint(b)
	if p == 0 {
		return corrupt(0, "truncated value count")
	}
	// Every value takes at least one byte, which bounds the allocation.
	if count > uint64(len(b)-p) {
		return corrupt(0, "value count exceeds key length")
	}
	vals := make([]Value, count)
	var owned []byte // one copy of all TEXT/BLOB bytes, made lazily
	for i := range vals {
		if p >= len(b) {
			return corrupt(p, "truncated value")
		}
		k := Kind(b[p])
		p++
		v := &vals[i]
		v.Kind = k
		switch k {
		case KindUndefined, KindNull:
		case KindInteger, KindFloat:
			if len(b)-p < 8 {
				return corrupt(p, "truncated 8-byte value")
			}
			u := binary.BigEndian.Uint64(b[p:])
			p += 8
			if k == KindInteger {
				v.Int = int64(u)
			} else {
				v.Float = math.Float64frombits(u)
			}
		case KindText, KindBlob:
			l, m := Varint(b[p:])
			if m == 0 {
				return corrupt(p, "truncated length")
			}
			if l > uint64(len(b)-p-m) {
				return corrupt(p, "length exceeds key")
			}
			p += m
			if owned == nil {
				owned = bytes.Clone(b)
			}
			v.Bytes = owned[p : p+int(l) : p+int(l)]
			p += int(l)
		default:
			return corrupt(p-1, "unknown value type")
		}
	}
	return vals, p, nil
}
