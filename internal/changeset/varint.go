package changeset

// MaxVarintLen is the maximum length of an SQLite varint.
const MaxVarintLen = 9

// AppendVarint appends v to dst as an SQLite record varint, the encoding
// SQLite's session module uses for lengths and column counts: big-endian
// groups of 7 bits with the high bit set on every byte but the last, except
// that a 9-byte varint carries 8 bits in its final byte. The encoding is the
// shortest possible, as sqlite3PutVarint writes it.
func AppendVarint(dst []byte, v uint64) []byte {
	if v&(0xff000000<<32) != 0 {
		// Needs more than 56 bits: eight 7-bit groups then a full byte.
		var b [9]byte
		b[8] = byte(v)
		v >>= 8
		for i := 7; i >= 0; i-- {
			b[i] = byte(v&0x7f) | 0x80
			v >>= 7
		}
		return append(dst, b[:]...)
	}
	var b [8]byte
	i := len(b) - 1
	b[i] = byte(v & 0x7f)
	for v >>= 7; v != 0; v >>= 7 {
		i--
		b[i] = byte(v&0x7f) | 0x80
	}
	return append(dst, b[i:]...)
}

// Varint decodes an SQLite varint from the start of b. It returns the value
// and the number of bytes consumed, or n == 0 if b ends before the varint
// does. Non-minimal encodings are accepted, as SQLite accepts them.
func Varint(b []byte) (v uint64, n int) {
	for i := 0; i < MaxVarintLen-1; i++ {
		if i >= len(b) {
			return 0, 0
		}
		c := b[i]
		v = v<<7 | uint64(c&0x7f)
		if c&0x80 == 0 {
			return v, i + 1
		}
	}
	if len(b) < MaxVarintLen {
		return 0, 0
	}
	return v<<8 | uint64(b[MaxVarintLen-1]), MaxVarintLen
}
