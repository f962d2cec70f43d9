package importer

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/rowdrop/rowdrop/internal/changeset"
	"github.com/rowdrop/rowdrop/internal/fsx"
	"github.com/rowdrop/rowdrop/internal/rdfile"
	"github.com/rowdrop/rowdrop/merge"
)

// A file's changes are merged in key order, not in the order the file
// holds them (except the tables re-keying reads in file order:
// merge.Engine.FileOrderTables). A changeset lists rows in the writer's hash order, so in
// file order every change lands on a random page of each B-tree the merge
// touches (the live table, the base copy, the row metadata); in key order
// consecutive changes share pages, which then are read and written once.
// (docs/BENCH.md, P2.) The order of changes to different keys does not
// change the merge's outcome (merge.Engine.Apply already sorts each batch);
// changes to one key keep their file order.
//
// Staging copies the decompressed payload to a temporary file in the state
// directory and writes a fixed-size index entry per change; the index is
// sorted a window at a time, so memory stays bounded whatever the file's
// size.

// orderWindow is how many index entries are sorted at a time (4 MiB).
const orderWindow = 1 << 17

// entrySize is the bytes of one index entry on disk.
const entrySize = 32

// stagePrefix names the staging files in the state directory.
const stagePrefix = ".stage-"

// entry locates one change of the staged payload.
type entry struct {
	hi, lo uint64 // the leading key column's sort prefix
	off    int64  // the change's bytes in the payload, without table header
	n      uint32
	tbl    uint16 // index into staged.tables
}

// put writes e as an index entry (entrySize bytes) into b.
func (e entry) put(b []byte) {
	binary.BigEndian.PutUint64(b[0:], e.hi)
	binary.BigEndian.PutUint64(b[8:], e.lo)
	binary.BigEndian.PutUint64(b[16:], uint64(e.off))
	binary.BigEndian.PutUint32(b[24:], e.n)
	binary.BigEndian.PutUint16(b[28:], e.tbl)
}

// getEntry reads the index entry put wrote at the start of b.
func getEntry(b []byte) entry {
	return entry{
		hi: binary.BigEndian.Uint64(b[0:]), lo: binary.BigEndian.Uint64(b[8:]),
		off: int64(binary.BigEndian.Uint64(b[16:])), n: binary.BigEndian.Uint32(b[24:]), tbl: binary.BigEndian.Uint16(b[28:]),
	}
}

// staged is a validated file's changes, read back in key order. It is a
// merge.ChangeReader.
type staged struct {
	payload, index *os.File
	n              int64 // entries
	tables         []*changeset.Table
	headers        [][]byte
	rank           []int // per table: its name's place in name order

	window int // entries sorted at a time
	win    []entry
	pos    int
	read   int64 // entries loaded so far
	buf    []byte
	rbuf   []byte
	src    bytes.Reader
	dec    *changeset.Reader
}

// spillTee copies what is read to w; a failed write stops the copying
// (recorded in err) without failing the read, so validation goes on.
type spillTee struct {
	r   io.Reader
	w   *bufio.Writer
	err error
}

func (t *spillTee) Read(p []byte) (int, error) {
	n, err := t.r.Read(p)
	if n > 0 && t.err == nil {
		if _, werr := t.w.Write(p[:n]); werr != nil {
			t.err = werr
		}
	}
	return n, err
}

// stage validates a file's whole payload before anything of it reaches a
// database: every change decodes, names a table its header declares, fits
// the local table's shape, and the count matches the header. A non-empty
// reason says why the file is refused. The changes of the tables in skip
// are validated against the header only, and left out. It also stages the changes for
// merging in key order, the changes of fileOrder's tables keeping their
// file order; if staging fails (a full disk), s is nil and the file is
// merged in file order.
func (im *Importer) stage(f *rdfile.File, fileOrder map[string]int, skip map[string]bool) (*staged, string) {
	cs, err := f.Changeset()
	if err != nil {
		return nil, err.Error()
	}
	defer cs.Close()
	allowed := map[string]rdfile.Table{}
	for _, t := range f.Header.Tables {
		allowed[t.Name] = t
	}
	var tee *spillTee
	var iw *bufio.Writer
	var src io.Reader = cs
	s, err := im.newStaged(f.Header.RawLen + entrySize*f.Header.Changes)
	if err != nil {
		im.log().Warn("cannot stage a file for merging in key order; merging it in file order", "file", f.Path, "err", err)
		s = nil
	} else {
		tee = &spillTee{r: cs, w: bufio.NewWriterSize(s.payload, 1<<20)}
		iw = bufio.NewWriterSize(s.index, 64<<10)
		src = tee
	}
	// On refusal or failure the staging files go (s is the staging in
	// use: it is dropped, and set to nil, when staging fails midway).
	keep := false
	defer func() {
		if s != nil && !keep {
			s.Close()
		}
	}()
	rd := changeset.NewReader(src, changeset.Limits{MaxValueBytes: f.Limits().ValueLimit()}) // it buffers (64 KiB) itself
	// Validation and ordering need keys and shapes, not big values.
	rd.KeysOnly(true)
	var n int64
	var last *changeset.Table
	var rec [entrySize]byte
	for {
		c, err := rd.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, "invalid changeset payload, refused whole (nothing of it applied): " + err.Error()
		}
		n++
		if n > f.Header.Changes {
			// Refused now, before staging more than the header announced.
			return nil, fmt.Sprintf("holds more changes than the %d its header says: refused", f.Header.Changes)
		}
		ht, ok := allowed[c.Table.Name]
		if !ok {
			return nil, fmt.Sprintf("changes table %q, which its header does not declare: refused", c.Table.Name)
		}
		if c.Table != last {
			if why := agrees(ht, c.Table); why != "" {
				return nil, why + ": refused whole, nothing of it applied"
			}
		}
		if skip[c.Table.Name] {
			continue
		}
		if err := merge.CheckShape(im.Tables[c.Table.Name], c.Table); err != nil {
			return nil, err.Error()
		}
		if s == nil {
			continue
		}
		if c.Table != last {
			if len(s.tables) == math.MaxUint16 {
				s.Close() // absurdly many table groups: file order
				s = nil
				continue
			}
			last = c.Table
			s.tables = append(s.tables, c.Table)
			s.headers = append(s.headers, changeset.AppendHeader(nil, c.Table))
		}
		size := rd.Offset() - rd.Start()
		if size > math.MaxUint32 {
			s.Close() // a change of 4 GiB or more: file order
			s = nil
			continue
		}
		e := entry{off: rd.Start(), n: uint32(size), tbl: uint16(len(s.tables) - 1)}
		if _, ok := fileOrder[c.Table.Name]; ok {
			e.hi = uint64(n) // their place in the file
		} else if k := c.Key(); len(k) > 0 {
			e.hi, e.lo = sortPrefix(k[0])
		}
		e.put(rec[:])
		if _, err := iw.Write(rec[:]); err != nil && tee.err == nil {
			tee.err = err
		}
		s.n++
	}
	if n != f.Header.Changes {
		return nil, fmt.Sprintf("holds %d changes, its header says %d: refused", n, f.Header.Changes)
	}
	if s == nil {
		return nil, ""
	}
	if tee.err == nil {
		tee.err = tee.w.Flush()
	}
	if tee.err == nil {
		tee.err = iw.Flush()
	}
	if tee.err != nil {
		im.log().Warn("cannot stage a file for merging in key order; merging it in file order", "file", f.Path, "err", tee.err)
		return nil, ""
	}
	s.ranks(fileOrder)
	keep = true
	return s, ""
}

// agrees says how a table group of the payload disagrees with its
// table's entry in the header (docs/FORMAT.md §7.3), or "".
func agrees(ht rdfile.Table, ct *changeset.Table) string {
	if len(ht.Columns) != ct.NumCols() {
		return fmt.Sprintf("table %s: a change has %d columns, the header declares %d", ct.Name, ct.NumCols(), len(ht.Columns))
	}
	for i, c := range ht.Columns {
		if (c.PK != 0) != (ct.PK[i] != 0) {
			return fmt.Sprintf("table %s: the changes' primary key columns differ from the header's (column %s)", ct.Name, c.Name)
		}
	}
	return ""
}

// newStaged creates the staging files for size bytes (payload and index),
// if the state directory's file system has room for them and a margin.
func (im *Importer) newStaged(size int64) (*staged, error) {
	dir := im.State.Path
	removeStaging(dir)
	if free, err := fsx.FreeBytes(dir); err == nil {
		if size > free/2 {
			return nil, fmt.Errorf("staging needs %d MB, and the state directory %s has %d MB free (staging takes at most half)", size>>20, dir, free>>20)
		}
	}
	p, err := os.CreateTemp(dir, stagePrefix+"payload-")
	if err != nil {
		return nil, fmt.Errorf("create staging file in state directory %s: %w", dir, err)
	}
	x, err := os.CreateTemp(dir, stagePrefix+"index-")
	if err != nil {
		p.Close()
		os.Remove(p.Name())
		return nil, fmt.Errorf("create staging file in state directory %s: %w", dir, err)
	}
	w := orderWindow
	if im.orderWindow > 0 {
		w = im.orderWindow
	}
	dec := changeset.NewReader(nil, changeset.Limits{MaxValueBytes: math.MaxInt32}) // staged bytes passed the file's limits already
	// The merge only compares an UPDATE's old values with base's (a cell
	// edited without seeing the current value): a big one is kept as its
	// hash, and a big edit costs its new value's bytes, not twice that.
	dec.SumBigOld(true)
	return &staged{payload: p, index: x, window: w, dec: dec}, nil
}

// removeStaging removes staging files a process that died left in dir:
// they are of no use.
func removeStaging(dir string) {
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), stagePrefix) {
			os.Remove(filepath.Join(dir, e.Name()))
		}
	}
}

// ranks orders the tables by name, so a window's changes are grouped by
// table and, within one, by key; fileOrder's tables come first, by their
// rank there (parents first), then by their place in the file.
func (s *staged) ranks(fileOrder map[string]int) {
	names := make([]string, len(s.tables))
	for i, t := range s.tables {
		names[i] = t.Name
	}
	sorted := append([]string(nil), names...)
	sort.Strings(sorted)
	s.rank = make([]int, len(names))
	for i, n := range names {
		s.rank[i] = sort.SearchStrings(sorted, n)
		if r, ok := fileOrder[n]; ok {
			s.rank[i] = r - math.MaxInt32
		}
	}
}

// sortPrefix maps a key value to 16 bytes that sort, for values of one
// type, as SQLite sorts them (TEXT by bytes, as the BINARY collation).
func sortPrefix(v changeset.Value) (hi, lo uint64) {
	switch v.Kind {
	case changeset.KindInteger:
		return uint64(v.Int) ^ 1<<63, 0
	case changeset.KindFloat:
		b := math.Float64bits(v.Float)
		if b>>63 == 1 {
			b = ^b
		} else {
			b |= 1 << 63
		}
		return b, 0
	case changeset.KindText, changeset.KindBlob:
		var p [16]byte
		copy(p[:], v.Bytes)
		return binary.BigEndian.Uint64(p[:8]), binary.BigEndian.Uint64(p[8:])
	}
	return 0, 0
}

// Next returns the next change in key order.
func (s *staged) Next() (*changeset.Change, error) {
	for s.pos >= len(s.win) {
		if s.read >= s.n {
			return nil, io.EOF
		}
		if err := s.load(); err != nil {
			return nil, err
		}
	}
	e := s.win[s.pos]
	s.pos++
	h := s.headers[e.tbl]
	need := len(h) + int(e.n)
	if e.n >= bigChange {
		// Read through, not into a buffer: the decoded change is then
		// the only copy of its values (and no big buffer stays behind).
		s.dec.Reset(io.MultiReader(bytes.NewReader(h), io.NewSectionReader(s.payload, e.off, int64(e.n))))
		s.dec.SetSize(int64(need))
		c, err := s.dec.Next()
		if err != nil {
			return nil, fmt.Errorf("decode staged change at byte %d of %s: %w", e.off, s.payload.Name(), err)
		}
		c.Table = s.tables[e.tbl]
		return c, nil
	}
	if cap(s.buf) < need {
		s.buf = make([]byte, need)
	}
	s.buf = append(s.buf[:0], h...)[:need]
	if _, err := s.payload.ReadAt(s.buf[len(h):], e.off); err != nil {
		return nil, fmt.Errorf("read staged change at byte %d of %s: %w", e.off, s.payload.Name(), err)
	}
	s.src.Reset(s.buf)
	s.dec.Reset(&s.src)
	c, err := s.dec.Next()
	if err != nil {
		return nil, fmt.Errorf("decode staged change at byte %d of %s: %w", e.off, s.payload.Name(), err)
	}
	c.Table = s.tables[e.tbl] // one *Table per group, as in file order
	return c, nil
}

// bigChange is the staged size from which a change is decoded straight
// from the staging file.
const bigChange = 1 << 20

// load reads and sorts the next window of index entries.
func (s *staged) load() error {
	k := min(int64(s.window), s.n-s.read)
	if cap(s.rbuf) < int(k)*entrySize {
		s.rbuf = make([]byte, int(k)*entrySize)
	}
	b := s.rbuf[:int(k)*entrySize]
	if _, err := s.index.ReadAt(b, s.read*entrySize); err != nil {
		return fmt.Errorf("read staging index %s: %w", s.index.Name(), err)
	}
	s.win = s.win[:0]
	for i := 0; i < int(k); i++ {
		s.win = append(s.win, getEntry(b[i*entrySize:]))
	}
	// Stable: changes to one key keep their file order.
	sort.SliceStable(s.win, func(i, j int) bool {
		a, b := s.win[i], s.win[j]
		if ra, rb := s.rank[a.tbl], s.rank[b.tbl]; ra != rb {
			return ra < rb
		}
		if a.hi != b.hi {
			return a.hi < b.hi
		}
		return a.lo < b.lo
	})
	s.pos = 0
	s.read += k
	return nil
}

// Close removes the staging files.
func (s *staged) Close() {
	for _, f := range []*os.File{s.payload, s.index} {
		f.Close()
		os.Remove(f.Name())
	}
}
