package rdfile

import (
	"crypto/sha256"
	"encoding/base32"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Version 4 (docs/FORMAT.md §4.1, §5.2) is a compact binary header for
// changesets: the JSON header cost a one-row edit more bytes than its
// payload. The header is still self-sufficient (every table's columns are
// listed), so any reader can read any file alone; what shrank is the
// encoding, what can be derived (the fingerprint, the writer's own entry
// in seen, the install token's form) and the length of the hashes that
// only detect damage or bind content for the hash chain.
const v4 = 4

// Lengths of v4's hashes.
const (
	v4Check   = 8  // stored header checksum: the file sum's first bytes
	v4Payload = 16 // payload SHA-256, truncated
	v4Prev    = 16 // prev, the predecessor's file sum, truncated
)

// v4 flag bits.
const (
	v4HasPrev    = 1 << 0 // prev follows the payload hash
	v4SeenSelf   = 1 << 1 // seen[device] = seq, not listed
	v4InstallStd = 1 << 2 // install is <13 digits ms>-<16 base32>, stored as a delta and 10 bytes
	v4Flags      = v4HasPrev | v4SeenSelf | v4InstallStd
)

// v4Types are the declared types stored as one byte; code 0 is a type
// spelled out.
var v4Types = []string{1: "", 2: "TEXT", 3: "INTEGER", 4: "REAL", 5: "BLOB", 6: "NUMERIC"}

var idEnc = base32.StdEncoding.WithPadding(base32.NoPadding)

// idBytes is a device id's 10 bytes (its base32 decoded).
func idBytes(id string) ([]byte, error) {
	if !ValidDeviceID(id) {
		return nil, fmt.Errorf("device id %q is malformed", short(id))
	}
	return idEnc.DecodeString(strings.ToUpper(id))
}

func idString(b []byte) string { return strings.ToLower(idEnc.EncodeToString(b)) }

// stdInstall splits a token of rowdrop's form (state.NewInstall:
// 13 zero-padded decimal digits of ms, '-', a 16-character id).
func stdInstall(tok string) (ms int64, id []byte, ok bool) {
	if len(tok) != 30 || tok[13] != '-' {
		return 0, nil, false
	}
	for i := 0; i < 13; i++ {
		if tok[i] < '0' || tok[i] > '9' {
			return 0, nil, false
		}
	}
	ms, err := strconv.ParseInt(tok[:13], 10, 64)
	if err != nil {
		return 0, nil, false
	}
	id, err = idBytes(tok[14:])
	return ms, id, err == nil
}

// truncHex is the first n bytes (2n hex digits) of a hex sum.
func truncHex(s string, n int) string {
	if len(s) > 2*n {
		return s[:2*n]
	}
	return s
}

// SumsMatch reports whether two sums name the same content: equal, or
// one is a version-4 truncation (at least 32 hex digits) of the other.
func SumsMatch(a, b string) bool {
	if len(a) > len(b) {
		a, b = b, a
	}
	return len(a) >= 2*v4Prev && strings.HasPrefix(b, a)
}

type v4Writer struct{ b []byte }

func (w *v4Writer) uvarint(v uint64) { w.b = binary.AppendUvarint(w.b, v) }
func (w *v4Writer) str(s string)     { w.uvarint(uint64(len(s))); w.b = append(w.b, s...) }

// encodeV4Body is the binary header of h (docs/FORMAT.md §5.2).
func encodeV4Body(h Header) ([]byte, error) {
	dev, err := idBytes(h.Device)
	if err != nil {
		return nil, err
	}
	psum, err := hex.DecodeString(truncHex(h.PayloadSHA256, v4Payload))
	if err != nil || len(psum) != v4Payload {
		return nil, fmt.Errorf("payload checksum %q malformed", short(h.PayloadSHA256))
	}
	var prev []byte
	flags := byte(0)
	if h.Prev != "" {
		if prev, err = hex.DecodeString(truncHex(h.Prev, v4Prev)); err != nil || len(prev) != v4Prev {
			return nil, fmt.Errorf("prev %q malformed", short(h.Prev))
		}
		flags |= v4HasPrev
	}
	if n, ok := h.Seen[h.Device]; ok && n == h.Seq {
		flags |= v4SeenSelf
	}
	ims, iid, std := stdInstall(h.Install)
	if std {
		flags |= v4InstallStd
	}
	w := &v4Writer{b: make([]byte, 0, 128)}
	w.b = append(w.b, flags)
	w.b = append(w.b, dev...)
	w.uvarint(h.Seq)
	w.b = binary.BigEndian.AppendUint64(w.b, h.HLC)
	w.b = binary.AppendVarint(w.b, h.CreatedMS-int64(h.HLC>>16))
	if std {
		w.b = binary.AppendVarint(w.b, h.CreatedMS-ims)
		w.b = append(w.b, iid...)
	} else {
		w.str(h.Install)
	}
	w.str(h.DeviceName)
	if h.Changes < 0 || h.PayloadLen < 0 || h.RawLen < 0 {
		return nil, errors.New("negative length")
	}
	w.uvarint(uint64(h.Changes))
	w.uvarint(uint64(h.PayloadLen))
	w.uvarint(uint64(h.RawLen))
	w.b = append(w.b, psum...)
	w.b = append(w.b, prev...)
	devs := make([]string, 0, len(h.Seen))
	for d := range h.Seen {
		if d != h.Device || flags&v4SeenSelf == 0 {
			devs = append(devs, d)
		}
	}
	sort.Strings(devs)
	w.uvarint(uint64(len(devs)))
	for _, d := range devs {
		b, err := idBytes(d)
		if err != nil {
			return nil, fmt.Errorf("seen: %w", err)
		}
		w.b = append(w.b, b...)
		w.uvarint(h.Seen[d])
	}
	w.uvarint(uint64(len(h.Tables)))
	for _, t := range h.Tables {
		w.str(t.Name)
		w.uvarint(uint64(len(t.Columns)))
		for _, c := range t.Columns {
			w.str(c.Name)
			code := 0
			for i, s := range v4Types {
				if i > 0 && s == c.Type {
					code = i
				}
			}
			w.b = append(w.b, byte(code))
			if code == 0 {
				w.str(c.Type)
			}
			if c.PK < 0 {
				return nil, fmt.Errorf("table %q: negative pk", short(t.Name))
			}
			m := uint64(c.PK) << 2
			if c.Local {
				m |= 2
			}
			if c.NotNull {
				m |= 1
			}
			w.uvarint(m)
		}
	}
	return w.b, nil
}

// encodeV4 is a version-4 file's bytes before the payload: magic,
// version, header length, header and header checksum.
func encodeV4(h Header) ([]byte, error) {
	body, err := encodeV4Body(h)
	if err != nil {
		return nil, err
	}
	b := make([]byte, 0, len(body)+16)
	b = append(b, Magic...)
	b = binary.BigEndian.AppendUint16(b, v4)
	b = binary.AppendUvarint(b, uint64(len(body)))
	b = append(b, body...)
	s := sha256.Sum256(b)
	return append(b, s[:v4Check]...), nil
}

type v4Reader struct {
	b   []byte
	err error
}

func (r *v4Reader) fail(f string, a ...any) {
	if r.err == nil {
		r.err = fmt.Errorf(f, a...)
	}
}

func (r *v4Reader) bytes(n int) []byte {
	if r.err != nil {
		return nil
	}
	if n < 0 || n > len(r.b) {
		r.fail("header ends inside a member")
		return nil
	}
	v := r.b[:n]
	r.b = r.b[n:]
	return v
}

func (r *v4Reader) uvarint() uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.fail("malformed varint")
		return 0
	}
	if n != len(binary.AppendUvarint(nil, v)) {
		r.fail("varint not in its shortest form")
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *v4Reader) varint() int64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Varint(r.b)
	if n <= 0 {
		r.fail("malformed varint")
		return 0
	}
	if n != len(binary.AppendVarint(nil, v)) {
		r.fail("varint not in its shortest form")
		return 0
	}
	r.b = r.b[n:]
	return v
}

// int is a uvarint that must fit an int64.
func (r *v4Reader) int() int64 {
	v := r.uvarint()
	if v > math.MaxInt64 {
		r.fail("number %d out of range", v)
		return 0
	}
	return int64(v)
}

func (r *v4Reader) str(what string, limit int) string {
	n := r.uvarint()
	if r.err == nil && n > uint64(limit) {
		r.fail("%s of %d bytes exceeds the limit of %d", what, n, limit)
		return ""
	}
	s := string(r.bytes(int(n)))
	if r.err == nil && !utf8.ValidString(s) {
		r.fail("%s is not UTF-8", what)
	}
	return s
}

// count is a uvarint count of items of at least min bytes each, bounded
// by what is left of the header (a hostile count allocates nothing).
func (r *v4Reader) count(what string, min int) int {
	n := r.uvarint()
	if r.err == nil && n > uint64(len(r.b)/min) {
		r.fail("%d %s do not fit in the header", n, what)
		return 0
	}
	return int(n)
}

// decodeV4Body parses a version-4 header (docs/FORMAT.md §5.2). Member
// constraints are checked afterwards by Header.validate.
func decodeV4Body(body []byte) (Header, error) {
	r := &v4Reader{b: body}
	h := Header{Kind: KindChangeset, Compression: "zstd"}
	flags := r.bytes(1)
	if r.err == nil && flags[0]&^v4Flags != 0 {
		r.fail("unknown flags %#x", flags[0])
	}
	if r.err != nil {
		return h, r.err
	}
	f := flags[0]
	h.Device = idString(r.bytes(10))
	h.Seq = r.uvarint()
	if b := r.bytes(8); b != nil {
		h.HLC = binary.BigEndian.Uint64(b)
	}
	h.CreatedMS = int64(h.HLC>>16) + r.varint()
	if f&v4InstallStd != 0 {
		ms := h.CreatedMS - r.varint()
		id := r.bytes(10)
		if r.err == nil && (ms < 0 || ms > 9_999_999_999_999) {
			r.fail("install time %d out of range", ms)
		}
		h.Install = fmt.Sprintf("%013d-%s", ms, idString(id))
	} else {
		h.Install = r.str("install", MaxInstall)
		if _, _, std := stdInstall(h.Install); std && r.err == nil {
			r.fail("install token spelled out though it has the short form")
		}
	}
	h.DeviceName = r.str("device_name", MaxDeviceName)
	h.Changes = r.int()
	h.PayloadLen = r.int()
	h.RawLen = r.int()
	h.PayloadSHA256 = hex.EncodeToString(r.bytes(v4Payload))
	if f&v4HasPrev != 0 {
		h.Prev = hex.EncodeToString(r.bytes(v4Prev))
	}
	if n := r.count("seen entries", 11); n > 0 || f&v4SeenSelf != 0 {
		h.Seen = make(map[string]uint64, n+1)
		last := ""
		for i := 0; i < n && r.err == nil; i++ {
			d := idString(r.bytes(10))
			v := r.uvarint()
			if r.err == nil && d <= last {
				r.fail("seen entries not in ascending order of device id")
			}
			if r.err == nil && d == h.Device && v == h.Seq && f&v4SeenSelf == 0 {
				r.fail("seen lists the writer at its own sequence number instead of the flag")
			}
			if r.err == nil && d == h.Device && f&v4SeenSelf != 0 {
				r.fail("seen lists the writer twice")
			}
			h.Seen[d], last = v, d
		}
		if f&v4SeenSelf != 0 {
			h.Seen[h.Device] = h.Seq
		}
	}
	nt := r.count("tables", 3)
	for i := 0; i < nt && r.err == nil; i++ {
		t := Table{Name: r.str("table name", MaxName)}
		nc := r.count("columns", 3)
		if r.err == nil && nc > MaxColumns {
			r.fail("table %q has %d columns, more than the limit of %d", short(t.Name), nc, MaxColumns)
		}
		for j := 0; j < nc && r.err == nil; j++ {
			c := Column{Name: r.str("column name", MaxName)}
			code := r.bytes(1)
			switch {
			case r.err != nil:
			case code[0] == 0:
				c.Type = r.str("column type", MaxType)
				for k, s := range v4Types {
					if k > 0 && s == c.Type && r.err == nil {
						r.fail("column type %q spelled out though it has a code", c.Type)
					}
				}
			case int(code[0]) < len(v4Types):
				c.Type = v4Types[code[0]]
			default:
				r.fail("unknown column type code %d", code[0])
			}
			m := r.uvarint()
			if r.err == nil && m>>2 > MaxColumns {
				r.fail("table %q: primary-key position %d out of range", short(t.Name), m>>2)
			}
			c.PK, c.Local, c.NotNull = int(m>>2), m&2 != 0, m&1 != 0
			t.Columns = append(t.Columns, c)
		}
		t.Fingerprint = Fingerprint(t.Name, t.Columns)
		h.Tables = append(h.Tables, t)
	}
	if r.err == nil && len(r.b) > 0 {
		r.fail("%d bytes after the last member", len(r.b))
	}
	return h, r.err
}
