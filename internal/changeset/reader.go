package changeset

import (
	"bufio"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
)

// Limits bounds what a [Reader] accepts. A zero field selects the default.
type Limits struct {
	// MaxColumns is the largest column count accepted in a table header.
	// Default DefaultMaxColumns (SQLite's default SQLITE_MAX_COLUMN).
	MaxColumns int
	// MaxValueBytes is the largest TEXT or BLOB value accepted.
	// Default DefaultMaxValueBytes.
	MaxValueBytes int
	// MaxTotalBytes is the largest input accepted; 0 or negative means
	// unlimited.
	MaxTotalBytes int64
}

// Default limits.
const (
	DefaultMaxColumns    = 2000
	DefaultMaxValueBytes = 1 << 30
)

const (
	// maxTableName bounds the table name, NUL terminator included, so a
	// missing terminator cannot make the reader buffer the whole input.
	maxTableName = 4096
	// readChunk is how much of a declared TEXT/BLOB length is allocated
	// before the bytes are actually seen, so a hostile length cannot force
	// a large allocation.
	readChunk = 64 << 10
	// smallArena is the smallest allocation for a change's TEXT/BLOB bytes.
	smallArena = 64
	// bufSize is the read buffer size.
	bufSize = 64 << 10
	// bigValue is the size from which a TEXT/BLOB value gets a buffer of
	// its own instead of a place in the change's arena: growing the arena
	// past a big value would copy it (and the other values) again.
	bigValue = 1 << 20
)

func (l Limits) withDefaults() Limits {
	if l.MaxColumns <= 0 {
		l.MaxColumns = DefaultMaxColumns
	}
	if l.MaxValueBytes <= 0 {
		l.MaxValueBytes = DefaultMaxValueBytes
	}
	if l.MaxTotalBytes < 0 {
		l.MaxTotalBytes = 0
	}
	return l
}

// Reader decodes a changeset from a stream, one change at a time. It holds
// only the current table header and change in memory, so arbitrarily large
// changesets can be read in constant memory apart from the largest row.
type Reader struct {
	br    *bufio.Reader
	src   io.Reader         // underlying reader, probed for MaxTotalBytes
	lr    *io.LimitedReader // non-nil when MaxTotalBytes is set
	lim   Limits
	off   int64  // bytes consumed from the input
	start int64  // offset of the last change returned
	table *Table // current table group, nil before the first header
	err   error  // sticky error, io.EOF at the end
	spans []span // scratch: where TEXT/BLOB bytes live in the arena
	b8    [8]byte
	// size is the input's length when known (-1: unknown): a value that
	// fits in what is left of it is allocated whole, at once.
	size int64
	// keysOnly: big non-key values are read past, not kept (KeysOnly).
	keysOnly bool
	// sumBigOld: an UPDATE's big non-key old values are hashed, not kept
	// (SumBigOld); summing is set while such a record is read, and sums
	// collects its Sums.
	sumBigOld, summing bool
	sums               map[int]Sum
	// refs, when set, is the input as a ReaderAt (refBase: the offset of
	// its byte 0 in it): big non-key BLOBs become sections of it (RefBig);
	// refing is set while a record that may hold them is read.
	refs    io.ReaderAt
	refBase int64
	refing  bool
	// pool, when set, lends the buffers of big values; lent are those of
	// the last change, given back at the next Next (UsePool).
	pool *Pool
	lent [][]byte
}

// Pool keeps the buffers of big values (1 MiB and more) for Readers to
// reuse: a pass that is done with each change before it asks for the
// next one then holds a big value's bytes once, however many changes and
// passes (each its own Reader, one after the other) read it. Not safe for
// concurrent use.
type Pool struct {
	free [][]byte
}

// get returns a free buffer of length n, or nil if none is big enough.
func (p *Pool) get(n int) []byte {
	best := -1
	for i, b := range p.free {
		if cap(b) >= n && (best < 0 || cap(b) < cap(p.free[best])) {
			best = i
		}
	}
	if best < 0 {
		return nil
	}
	b := p.free[best]
	p.free = append(p.free[:best], p.free[best+1:]...)
	return b[:n]
}

// UsePool makes r take the buffers of big values from p and give them
// back at its next Next (or Reset): a returned change's big values are
// valid only until then, so the caller must copy what it keeps. A value
// no free buffer fits is allocated as without a pool, and goes to p
// after its change.
func (r *Reader) UsePool(p *Pool) { r.pool = p }

// giveBack returns the last change's big buffers to the pool.
func (r *Reader) giveBack() {
	if r.pool == nil {
		return
	}
	r.pool.free = append(r.pool.free, r.lent...)
	clear(r.lent)
	r.lent = r.lent[:0]
}

// span records that vals[idx].Bytes is arena[off:off+n]; slices are
// attached once the whole change is read because the arena may move.
type span struct{ idx, off, n int }

// NewReader returns a Reader that decodes the changeset read from r, within
// the limits lim (zero fields take defaults). Reads are buffered, so the
// Reader may read past the end of the changeset in r.
func NewReader(r io.Reader, lim Limits) *Reader {
	lim = lim.withDefaults()
	rd := &Reader{src: r, lim: lim, size: inputSize(r)}
	src := r
	if lim.MaxTotalBytes > 0 {
		rd.lr = &io.LimitedReader{R: r, N: lim.MaxTotalBytes}
		src = rd.lr
	}
	rd.br = bufio.NewReaderSize(src, bufSize)
	return rd
}

// Offset returns the number of input bytes consumed so far. After Next
// returns a change it is the offset just past that change.
func (r *Reader) Offset() int64 { return r.off }

// Start returns the offset of the last change Next returned (its op byte):
// the change's bytes are [Start, Offset), without its table header.
func (r *Reader) Start() int64 { return r.start }

// Reset makes r decode src from its start, as a new Reader with r's
// limits would, reusing r's buffers.
func (r *Reader) Reset(src io.Reader) {
	r.giveBack()
	*r = Reader{br: r.br, src: src, lim: r.lim, spans: r.spans[:0], size: inputSize(src), keysOnly: r.keysOnly, sumBigOld: r.sumBigOld, pool: r.pool, lent: r.lent, refs: r.refs, refBase: r.refBase}
	if r.lim.MaxTotalBytes > 0 {
		r.lr = &io.LimitedReader{R: src, N: r.lim.MaxTotalBytes}
		src = r.lr
	}
	r.br.Reset(src)
}

// SetSize tells r that its input holds exactly n bytes from the current
// offset on (after Reset or NewReader), for inputs whose length r cannot
// see itself: a value that fits in them is then allocated whole instead
// of growing as its bytes arrive (which copies a big value about once
// more). A hostile declared length can still not allocate more than the
// input holds.
func (r *Reader) SetSize(n int64) { r.size = r.off + n }

// RefBig makes r read past the bytes of big non-key BLOBs (1 MiB and
// more) of INSERT and UPDATE records and return them as sections of src
// (Value.Src), where the input's first byte is at offset base: a pass
// that only copies values on (a Writer, internal/rows) then holds none of
// their bytes. src must hold the input as r reads it until the pass ends.
// DELETE records are read whole (their values are kept by the caller).
func (r *Reader) RefBig(src io.ReaderAt, base int64) { r.refs, r.refBase = src, base }

// SumBigOld makes r keep, of an UPDATE's big non-key old values (1 MiB
// and more), only their length and SHA-256 (Change.OldSums), for a pass
// that only compares old values (Change.OldEqual): a big edit then costs
// the new value's bytes in memory, not twice that.
func (r *Reader) SumBigOld(on bool) { r.sumBigOld = on }

// KeysOnly makes r read past the bytes of big TEXT and BLOB values (1 MiB
// and more) of non-key columns instead of keeping them: such a value comes
// back with its Kind and nil Bytes. For a pass that needs only the
// changes' keys and structure (validation, ordering), so memory stays
// small whatever the values' sizes.
func (r *Reader) KeysOnly(on bool) { r.keysOnly = on }

// inputSize returns the bytes left in r when r can tell (an in-memory
// reader, a section of a file), or -1.
func inputSize(r io.Reader) int64 {
	switch v := r.(type) {
	case interface{ Len() int }: // bytes.Reader, bytes.Buffer, strings.Reader
		return int64(v.Len())
	case *io.SectionReader:
		if off, err := v.Seek(0, io.SeekCurrent); err == nil {
			return v.Size() - off
		}
	}
	return -1
}

// Next decodes and returns the next change. It returns io.EOF at the clean
// end of the input, an error wrapping ErrCorrupt (a *CorruptError with the
// byte offset) for malformed, truncated or over-limit input, ErrPatchset for
// a patchset, or the underlying reader's error. Errors are sticky.
//
// Each returned Change owns its slices (Old, New and value bytes); the
// *Table is shared by all changes of one table group.
//
// A table header not followed by any change is accepted, as SQLite accepts
// it. Defined non-key values in the old record of an UPDATE whose new value
// is undefined are returned as stored (SQLite's iterator hides them).
func (r *Reader) Next() (*Change, error) {
	r.giveBack()
	if r.err != nil {
		return nil, r.err
	}
	c, err := r.next()
	if err != nil {
		r.err = err
		return nil, err
	}
	return c, nil
}

func (r *Reader) next() (*Change, error) {
	for {
		start := r.off
		b, err := r.br.ReadByte()
		if err != nil {
			if err == io.EOF {
				if err := r.checkLimitAtEOF(); err != nil {
					return nil, err
				}
				return nil, io.EOF
			}
			return nil, r.readErr(err, "op byte")
		}
		r.off++
		switch b {
		case 'T':
			t, err := r.readHeader()
			if err != nil {
				return nil, err
			}
			r.table = t
			continue
		case 'P':
			return nil, fmt.Errorf("%w (patchset table header at byte offset %d)", ErrPatchset, start)
		}
		op := Op(b)
		if !op.valid() {
			return nil, r.corrupt(start, "unknown op or header byte 0x%02x", b)
		}
		if r.table == nil {
			return nil, r.corrupt(start, "%v change before the first table header", op)
		}
		r.start = start
		return r.readChange(op, start)
	}
}

// readHeader reads a table header after its 'T' byte.
func (r *Reader) readHeader() (*Table, error) {
	// The previous group ends here; clearing it also keeps its name out of
	// error messages about this header.
	r.table = nil
	start := r.off
	nCol, err := r.readVarint("table header column count")
	if err != nil {
		return nil, err
	}
	if nCol == 0 {
		return nil, r.corrupt(start, "table header with zero columns")
	}
	if nCol > uint64(r.lim.MaxColumns) {
		return nil, r.corrupt(start, "table header declares %d columns, more than Limits.MaxColumns (%d)", nCol, r.lim.MaxColumns)
	}
	pk := make([]byte, nCol)
	if err := r.readFull(pk, "table header primary key flags"); err != nil {
		return nil, err
	}
	nameStart := r.off
	var name []byte
	for {
		b, err := r.readByte("table name")
		if err != nil {
			return nil, err
		}
		if b == 0 {
			break
		}
		if len(name) >= maxTableName-1 {
			return nil, r.corrupt(nameStart, "table name not NUL-terminated within %d bytes", maxTableName)
		}
		name = append(name, b)
	}
	t := &Table{Name: string(name), PK: pk}
	if !t.hasPK() {
		// SQLite never records tables without a primary key, and their
		// changes could not be keyed.
		return nil, r.corrupt(start, "table %q has no primary key column", t.Name)
	}
	return t, nil
}

// readChange reads a change after its op byte, which was at offset start.
func (r *Reader) readChange(op Op, start int64) (*Change, error) {
	ind, err := r.readByte("indirect flag")
	if err != nil {
		return nil, err
	}
	if ind > 1 {
		return nil, r.corrupt(r.off-1, "indirect flag is 0x%02x, want 0 or 1", ind)
	}
	t := r.table
	n := t.NumCols()
	nv := n
	if op == OpUpdate {
		nv = 2 * n
	}
	vals := make([]Value, nv)
	c := &Change{Table: t, Op: op, Indirect: ind == 1}
	r.spans = r.spans[:0]
	var arena []byte
	r.refing = r.refs != nil && op != OpDelete
	defer func() { r.refing = false }()
	if op != OpInsert {
		c.Old = vals[:n:n]
		r.summing, r.sums = r.sumBigOld && op == OpUpdate, nil
		arena, err = r.readRecord(vals, 0, n, arena, "old")
		c.OldSums, r.summing, r.sums = r.sums, false, nil
		if err != nil {
			return nil, err
		}
	}
	if op != OpDelete {
		c.New = vals[nv-n : nv : nv]
		if arena, err = r.readRecord(vals, nv-n, n, arena, "new"); err != nil {
			return nil, err
		}
	}
	for _, s := range r.spans {
		vals[s.idx].Bytes = arena[s.off : s.off+s.n : s.off+s.n]
	}
	if err := checkDefined(t, op, c.Old, c.New); err != nil {
		return nil, r.corrupt(start, "%v", err)
	}
	return c, nil
}

// readRecord decodes n values into vals[base:base+n]. TEXT and BLOB bytes
// are appended to arena and noted in r.spans.
func (r *Reader) readRecord(vals []Value, base, n int, arena []byte, which string) ([]byte, error) {
	for i := 0; i < n; i++ {
		tb, err := r.readByte("value type")
		if err != nil {
			return arena, err
		}
		v := &vals[base+i]
		v.Kind = Kind(tb)
		switch v.Kind {
		case KindUndefined, KindNull:
		case KindInteger, KindFloat:
			if err := r.readFull(r.b8[:], "8-byte number"); err != nil {
				return arena, err
			}
			u := binary.BigEndian.Uint64(r.b8[:])
			if v.Kind == KindInteger {
				v.Int = int64(u)
			} else {
				v.Float = math.Float64frombits(u)
			}
		case KindText, KindBlob:
			lenOff := r.off
			l, err := r.readVarint("TEXT/BLOB length")
			if err != nil {
				return arena, err
			}
			if l > uint64(r.lim.MaxValueBytes) {
				return arena, r.corrupt(lenOff, "%s value of %d bytes in %s record column %d exceeds the limit of %d bytes per value (Limits.MaxValueBytes; rowdrop's setting max_value)", v.Kind, l, which, i, r.lim.MaxValueBytes)
			}
			if total := r.lim.MaxTotalBytes; total > 0 && l > uint64(total-r.off) {
				return arena, r.corrupt(lenOff, "%s value of %d bytes runs past Limits.MaxTotalBytes (%d)", v.Kind, l, total)
			}
			if l >= bigValue && r.refing && v.Kind == KindBlob && r.table.PK[i] == 0 && !r.keysOnly {
				v.Src = io.NewSectionReader(r.refs, r.refBase+r.off, int64(l))
				m, err := r.br.Discard(int(l))
				r.off += int64(m)
				if err != nil {
					return arena, r.readErr(err, "TEXT/BLOB value")
				}
				continue
			}
			if l >= bigValue && r.summing && r.table.PK[i] == 0 && !r.keysOnly {
				h := sha256.New()
				m, err := io.CopyN(h, r.br, int64(l))
				r.off += m
				if err != nil {
					return arena, r.readErr(err, "TEXT/BLOB value")
				}
				if r.sums == nil {
					r.sums = map[int]Sum{}
				}
				sum := Sum{N: int(l)}
				h.Sum(sum.SHA256[:0])
				r.sums[i] = sum
				continue
			}
			if l >= bigValue {
				if v.Bytes, err = r.readBig(int(l), r.keysOnly && r.table.PK[i] == 0); err != nil {
					return arena, err
				}
				continue
			}
			off := len(arena)
			if arena, err = r.readBytes(arena, int(l), "TEXT/BLOB value"); err != nil {
				return arena, err
			}
			r.spans = append(r.spans, span{idx: base + i, off: off, n: int(l)})
		default:
			return arena, r.corrupt(r.off-1, "unknown value type 0x%02x in %s record column %d", tb, which, i)
		}
	}
	return arena, nil
}

// readBytes appends n input bytes to arena. Memory grows only as bytes
// actually arrive, so a truncated input with a huge declared length costs
// at most about twice the bytes present.
func (r *Reader) readBytes(arena []byte, n int, what string) ([]byte, error) {
	for n > 0 {
		k := min(n, readChunk)
		if need := len(arena) + k; need > cap(arena) {
			// Double for amortized O(n), starting at smallArena so that a
			// row of short values costs one allocation, but never reserve
			// more than this value still needs beyond that.
			newCap := min(max(2*cap(arena), need, smallArena), len(arena)+max(n, smallArena))
			grown := make([]byte, len(arena), newCap)
			copy(grown, arena)
			arena = grown
		}
		m, err := io.ReadFull(r.br, arena[len(arena):len(arena)+k])
		r.off += int64(m)
		if err != nil {
			return arena, r.readErr(err, what)
		}
		arena = arena[:len(arena)+k]
		n -= k
	}
	return arena, nil
}

// readBig reads a big value of n bytes into a buffer of its own: whole
// when the input is known to hold it, else growing as its bytes arrive
// (see readBytes); skip discards the bytes instead.
func (r *Reader) readBig(n int, skip bool) ([]byte, error) {
	const what = "TEXT/BLOB value"
	if skip {
		m, err := r.br.Discard(n)
		r.off += int64(m)
		if err != nil {
			return nil, r.readErr(err, what)
		}
		return nil, nil
	}
	if r.pool != nil {
		// A pooled buffer is filled in place: a hostile declared length
		// costs nothing beyond the buffer the pool already holds.
		if b := r.pool.get(n); b != nil {
			r.lent = append(r.lent, b)
			return b, r.readFull(b, what)
		}
	}
	var b []byte
	var err error
	if r.size >= 0 && int64(n) <= r.size-r.off {
		b = make([]byte, n)
		err = r.readFull(b, what)
	} else {
		b, err = r.readBytes(nil, n, what)
	}
	if r.pool != nil && b != nil {
		r.lent = append(r.lent, b)
	}
	return b, err
}

func (r *Reader) readByte(what string) (byte, error) {
	b, err := r.br.ReadByte()
	if err != nil {
		return 0, r.readErr(err, what)
	}
	r.off++
	return b, nil
}

func (r *Reader) readFull(p []byte, what string) error {
	m, err := io.ReadFull(r.br, p)
	r.off += int64(m)
	if err != nil {
		return r.readErr(err, what)
	}
	return nil
}

// readVarint reads an SQLite varint (see Varint).
func (r *Reader) readVarint(what string) (uint64, error) {
	var v uint64
	for range MaxVarintLen - 1 {
		b, err := r.readByte(what)
		if err != nil {
			return 0, err
		}
		v = v<<7 | uint64(b&0x7f)
		if b&0x80 == 0 {
			return v, nil
		}
	}
	b, err := r.readByte(what)
	if err != nil {
		return 0, err
	}
	return v<<8 | uint64(b), nil
}

// readErr converts an error from the buffered reader into the error Next
// reports: EOF in the middle of something means truncation (or the total
// size limit), anything else is the underlying reader's failure.
func (r *Reader) readErr(err error, what string) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		if lerr := r.checkLimitAtEOF(); lerr != nil {
			return lerr
		}
		return r.corrupt(r.off, "truncated input: unexpected end of data in %s", what)
	}
	return fmt.Errorf("changeset: read error at byte offset %d: %w", r.off, err)
}

// checkLimitAtEOF reports whether an EOF was caused by MaxTotalBytes rather
// than by the end of the input, by probing the underlying reader for one more
// byte.
func (r *Reader) checkLimitAtEOF() error {
	if r.lr == nil || r.lr.N > 0 {
		return nil
	}
	var one [1]byte
	for range 100 { // tolerate readers that return (0, nil) a few times
		n, err := r.src.Read(one[:])
		if n > 0 {
			return r.corrupt(r.off, "input exceeds Limits.MaxTotalBytes (%d)", r.lim.MaxTotalBytes)
		}
		if err != nil {
			return nil
		}
	}
	return nil
}

func (r *Reader) corrupt(off int64, format string, args ...any) error {
	reason := fmt.Sprintf(format, args...)
	if r.table != nil {
		reason = fmt.Sprintf("table %q: %s", r.table.Name, reason)
	}
	return &CorruptError{Offset: off, Reason: reason}
}
