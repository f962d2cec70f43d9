// Package rdfile is rowdrop's file format: one immutable, self-validating
// file per export, holding a standard SQLite changeset (zstd-compressed) and
// a header (JSON in versions 1-3, binary in version 4) with everything a
// reader needs to tell whole from partial and applicable from
// not-yet-applicable. docs/FORMAT.md is the normative spec.
package rdfile

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/klauspost/compress/zstd"

	"github.com/rowdrop/rowdrop/internal/fsx"
)

// Magic opens every rowdrop changeset file.
const Magic = "RDCS"

// Version is the newest format version this build reads. Version 2 differs
// from 1 only in what a snapshot's payload may hold (the writer's schema,
// docs/FORMAT.md §14.2); version 3 adds the hash chain (a changeset's
// `prev`, a snapshot's `heads`, §5.1); version 4 is the compact binary
// header, for changesets (§5.2). Snapshots are written as the lowest
// JSON version that has every member they hold (their header is small
// beside their payload, and older readers keep joining from them);
// changesets as version 4.
const Version = 4

// versionOf is the version a file with header h is written as.
func versionOf(h Header) uint16 {
	switch {
	case h.Kind != KindSnapshot:
		return v4
	case len(h.Heads) > 0 || h.Prev != "":
		return 3
	}
	return 2
}

// jsonVersion is the version a JSON header (versions 1 to 3) with h's
// members needs: what a version-3 writer wrote.
func jsonVersion(h Header) uint16 {
	switch {
	case h.Prev != "" || len(h.Heads) > 0:
		return 3
	case h.Kind == KindSnapshot:
		return 2
	}
	return 1
}

// prefixLen is magic (4) + version (2) + header length (4).
const prefixLen = 10

// MaxHeader is the format's bound on the header, JSON or binary
// (docs/FORMAT.md §4).
const MaxHeader = 16 << 20

// Limits on header members (docs/FORMAT.md §11), fixed: no writer needs
// more, and every message that names a member stays short.
const (
	MaxDeviceName = 256  // bytes of device_name
	MaxInstall    = 64   // bytes of install
	MaxName       = 4096 // bytes of a table or column name (also the changeset reader's bound)
	MaxType       = 1024 // bytes of a declared column type
	MaxColumns    = 2000 // columns per table: SQLite's default SQLITE_MAX_COLUMN
)

// Default reader limits (Limits' zero fields).
const (
	DefaultMaxHeader = 1 << 20   // header bytes
	DefaultMaxRaw    = 4 << 30   // decompressed bytes per file
	DefaultMaxValue  = 256 << 20 // bytes per TEXT or BLOB value
)

// Errors a reader classifies files by.
var (
	// ErrIncomplete: wrong length or checksum. Treated as "not arrived
	// yet": sync tools deliver files late and in pieces.
	ErrIncomplete = errors.New("incomplete or damaged file")
	// ErrForeign: not a rowdrop changeset at all.
	ErrForeign = errors.New("not a rowdrop changeset file")
	// ErrTooNew: written by a newer rowdrop; held until this one is upgraded.
	ErrTooNew = errors.New("written by a newer rowdrop format")
	// ErrInvalid: whole and checksummed but self-contradictory or hostile.
	ErrInvalid = errors.New("invalid rowdrop file")
)

// Column describes one column of a synced table as the writer saw it.
type Column struct {
	Name    string `json:"name"`
	Type    string `json:"type"`
	PK      int    `json:"pk,omitempty"` // 1-based position in the primary key, 0 if not part of it
	NotNull bool   `json:"notnull,omitempty"`
	// Local marks a column that is device-local on the writing device: its
	// values in the file are placeholders (NULL in INSERT and DELETE,
	// undefined in UPDATE), not data. Not part of the fingerprint.
	Local bool `json:"local,omitempty"`
}

// Table is the schema of one table the file touches, and its fingerprint.
type Table struct {
	Name        string   `json:"name"`
	Columns     []Column `json:"columns"`
	Fingerprint string   `json:"fingerprint"`
}

// Header is the header of a changeset or snapshot file, as read from JSON
// (versions 1-3) or binary (version 4).
type Header struct {
	Kind       string `json:"kind"` // "changeset"
	Device     string `json:"device"`
	DeviceName string `json:"device_name,omitempty"`
	Install    string `json:"install"` // per-installation token: detects cloned state directories
	Seq        uint64 `json:"seq"`
	// HLC is written as a decimal string: it exceeds 2^53, which readers
	// that parse JSON numbers as doubles (JavaScript) would round.
	HLC       uint64  `json:"hlc,string"`
	CreatedMS int64   `json:"created_ms"`
	Tables    []Table `json:"tables"`
	Changes   int64   `json:"changes"`
	// Payload description: the payload is a zstd frame whose decompressed
	// content is exactly RawLen bytes of SQLite changeset.
	Compression   string `json:"compression"` // "zstd"
	PayloadLen    int64  `json:"payload_len"`
	PayloadSHA256 string `json:"payload_sha256"`
	RawLen        int64  `json:"raw_len"`
	// Seen is, per device, the highest sequence number of its changesets
	// that the writer had applied (its own: published) when it wrote this
	// file. In a snapshot it is exactly the set of changesets the snapshot
	// includes; in a changeset it is the writer's causal context.
	Seen map[string]uint64 `json:"seen,omitempty"`
	// Prev (version 3, changesets) is the file sum (File.Sum) of the same
	// device's changeset Seq-1: the files of a device form a hash chain,
	// so one replaced under its own name no longer matches its successor.
	// Empty in file 1, and where the writer does not know it (the first
	// file it writes after upgrading from a version without the chain).
	Prev string `json:"prev,omitempty"`
	// Heads (version 3, snapshots) is, per device of Seen, the file sum
	// of its changeset Seen[d]: the chain head the snapshot includes.
	Heads map[string]string `json:"heads,omitempty"`
}

// Kinds of files.
const (
	KindChangeset = "changeset" // payload: a SQLite changeset
	KindSnapshot  = "snapshot"  // payload: a SQLite database (base tables + merge metadata)
)

// Limits bound what a reader accepts from a file in the shared folder
// (docs/FORMAT.md §11); a zero field takes the default. A file beyond one
// is refused (ErrInvalid) with the limit named.
type Limits struct {
	MaxRaw    int64 // largest decompressed payload (max_changeset); 0 = DefaultMaxRaw
	MaxHeader int64 // largest header (max_header); 0 = DefaultMaxHeader, never above MaxHeader
	MaxValue  int64 // largest TEXT or BLOB value in a changeset (max_value); 0 = DefaultMaxValue
}

func (l Limits) maxRaw() int64 {
	if l.MaxRaw <= 0 {
		return DefaultMaxRaw
	}
	return l.MaxRaw
}

func (l Limits) maxHeader() int64 {
	if l.MaxHeader <= 0 {
		return DefaultMaxHeader
	}
	return min(l.MaxHeader, MaxHeader)
}

// ValueLimit is the largest TEXT or BLOB value a changeset read under l
// may hold, for the changeset reader.
func (l Limits) ValueLimit() int {
	if l.MaxValue <= 0 {
		return DefaultMaxValue
	}
	return int(min(l.MaxValue, 1<<31-1))
}

// Build writes a complete file to path (atomically, never replacing an
// existing file), compressing the changeset read from cs. It fills in the
// payload fields of h and returns the final header.
func Build(path string, h Header, cs io.Reader) (Header, error) {
	if h.Kind != KindSnapshot {
		h.Kind = KindChangeset
	}
	h.Compression = "zstd"
	// Stage the compressed payload next to the target: the header records
	// its length and checksum, so they must be known before the header.
	stage, err := os.CreateTemp(filepath.Dir(path), fsx.TempPrefix+"payload-")
	if err != nil {
		return h, fmt.Errorf("stage payload in %s: %w", filepath.Dir(path), err)
	}
	defer func() { stage.Close(); os.Remove(stage.Name()) }()
	sum := sha256.New()
	cw := &countWriter{w: io.MultiWriter(stage, sum)}
	enc, err := zstd.NewWriter(cw, zstd.WithEncoderLevel(zstd.SpeedDefault), zstd.WithEncoderConcurrency(1))
	if err != nil {
		return h, err
	}
	raw, err := io.Copy(enc, cs)
	if err != nil {
		enc.Close()
		return h, fmt.Errorf("compress changeset: %w", err)
	}
	if err := enc.Close(); err != nil {
		return h, fmt.Errorf("compress changeset: %w", err)
	}
	h.RawLen = raw
	h.PayloadLen = cw.n
	h.PayloadSHA256 = hex.EncodeToString(sum.Sum(nil))
	if versionOf(h) == v4 {
		// What the file holds, so the header returned is the one read.
		h.PayloadSHA256, h.Prev = truncHex(h.PayloadSHA256, v4Payload), truncHex(h.Prev, v4Prev)
	}
	if _, err := stage.Seek(0, io.SeekStart); err != nil {
		return h, err
	}
	prefix, err := encodePrefix(h)
	if err != nil {
		return h, err
	}
	err = fsx.WriteFunc(path, func(w io.Writer) error {
		if _, err := w.Write(prefix); err != nil {
			return fmt.Errorf("write %s: %w", path, err)
		}
		if _, err := io.Copy(w, stage); err != nil {
			return fmt.Errorf("write %s: %w", path, err)
		}
		return nil
	})
	return h, err
}

// encodePrefix returns magic, version, header length, header and the
// header's checksum: the file's bytes before its payload.
func encodePrefix(h Header) ([]byte, error) {
	if v := versionOf(h); v == v4 {
		return encodeV4(h)
	}
	return encodeJSON(h, jsonVersion(h))
}

// encodeJSON is encodePrefix for a JSON header (versions 1 to 3).
func encodeJSON(h Header, ver uint16) ([]byte, error) {
	js, err := json.Marshal(h)
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	b.WriteString(Magic)
	_ = binary.Write(&b, binary.BigEndian, ver)
	_ = binary.Write(&b, binary.BigEndian, uint32(len(js)))
	b.Write(js)
	s := sha256.Sum256(b.Bytes())
	b.Write(s[:])
	return b.Bytes(), nil
}

// EncodeHeader is what Build writes before the payload for the final
// header h (magic, version, header, checksum): for tools and tests that
// rewrite a file's header and keep its payload.
func EncodeHeader(h Header) ([]byte, error) { return encodePrefix(h) }

// SumOf is the file sum (File.Sum) of a file with the final header h, as
// Build returns it: the writer records it, and names it as the next file's
// Prev, without reading the file back.
func SumOf(h Header) (string, error) {
	pre, err := encodePrefix(h)
	if err != nil {
		return "", err
	}
	if versionOf(h) == v4 {
		s := sha256.Sum256(pre[:len(pre)-v4Check])
		return hex.EncodeToString(s[:]), nil
	}
	return hex.EncodeToString(pre[len(pre)-sha256.Size:]), nil
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// File is an opened, header-validated changeset file.
type File struct {
	Path   string
	Header Header
	offset int64 // where the payload starts
	lim    Limits
	sum    [sha256.Size]byte
	src    Source // nil: the bytes at Path
}

// Source opens a file's bytes as a stream from their start: the
// plaintext of a sealed file (internal/seal), which lives at Path only in
// its sealed form. The stream's errors are the reader's verdict; a
// stream read to its end has been authenticated.
type Source func() (io.ReadCloser, error)

// Sum is the file's sum: the hex SHA-256 of its bytes up to the end of the
// header (its header checksum). The header holds the payload's SHA-256, so
// the sum names the whole content; a file under the same name with another
// sum is another file (docs/FORMAT.md §5.1).
func (f *File) Sum() string { return hex.EncodeToString(f.sum[:]) }

// Limits are the limits f was opened with.
func (f *File) Limits() Limits { return f.lim }

// Open reads and validates the header of the file at path and checks that
// the file has exactly the announced length. It does not read the payload.
func Open(path string, lim Limits) (*File, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%s: not a regular file: %w", path, ErrInvalid)
	}
	h, off, sum, err := readHeader(bufio.NewReader(f), st.Size(), lim)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &File{Path: path, Header: h, offset: off, lim: lim, sum: sum}, nil
}

// OpenSource is Open for a file whose bytes (size of them) come from src
// rather than from path, which names it in messages.
func OpenSource(path string, size int64, src Source, lim Limits) (*File, error) {
	r, err := src()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	defer r.Close()
	h, off, sum, err := readHeader(bufio.NewReader(r), size, lim)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &File{Path: path, Header: h, offset: off, lim: lim, sum: sum, src: src}, nil
}

// payload opens the file's bytes positioned at the payload.
func (f *File) payload() (io.ReadCloser, error) {
	if f.src == nil {
		fh, err := os.Open(f.Path)
		if err != nil {
			return nil, err
		}
		if _, err := fh.Seek(f.offset, io.SeekStart); err != nil {
			fh.Close()
			return nil, err
		}
		return fh, nil
	}
	r, err := f.src()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", f.Path, err)
	}
	if _, err := io.CopyN(io.Discard, r, f.offset); err != nil {
		r.Close()
		return nil, fmt.Errorf("%s: read header: %w", f.Path, err)
	}
	return r, nil
}

// ReadHeader parses and validates a file's prefix and header from r within
// the limits lim; size is the file's total length. It returns the header
// and the offset of the payload.
func ReadHeader(r io.Reader, size int64, lim Limits) (Header, int64, error) {
	h, off, _, err := readHeader(r, size, lim)
	return h, off, err
}

// readHeader is ReadHeader that also returns the file sum (the header
// checksum).
func readHeader(r io.Reader, size int64, lim Limits) (Header, int64, [sha256.Size]byte, error) {
	var sum [sha256.Size]byte
	h, off, err := readHeaderInto(r, size, lim, &sum)
	return h, off, sum, err
}

func readHeaderInto(r io.Reader, size int64, lim Limits, sum *[sha256.Size]byte) (Header, int64, error) {
	var h Header
	var pre [prefixLen]byte
	if n, err := io.ReadFull(r, pre[:]); err != nil {
		if errors.Is(err, ErrInvalid) {
			return h, 0, err // a Source's verdict (a sealed file refused)
		}
		// A short file that does not even start like a rowdrop file is
		// foreign, not "still arriving": say so instead of waiting forever.
		if got := min(n, len(Magic)); got > 0 && !bytes.HasPrefix([]byte(Magic), pre[:got]) {
			return h, 0, ErrForeign
		}
		if size < prefixLen && size >= 0 && bytes.HasPrefix([]byte(Magic), pre[:min(int(size), 4)]) {
			return h, 0, fmt.Errorf("file is %d bytes, shorter than a header: %w", size, ErrIncomplete)
		}
		return h, 0, fmt.Errorf("read header: %w", ErrIncomplete)
	}
	if string(pre[:4]) != Magic {
		return h, 0, ErrForeign
	}
	ver := binary.BigEndian.Uint16(pre[4:6])
	if ver > Version {
		return h, 0, fmt.Errorf("format version %d, this rowdrop reads up to %d (upgrade rowdrop on this device): %w", ver, Version, ErrTooNew)
	}
	if ver == 0 {
		return h, 0, fmt.Errorf("format version 0: %w", ErrInvalid)
	}
	if ver == v4 {
		return readV4(r, pre, size, lim, sum)
	}
	hl := int64(binary.BigEndian.Uint32(pre[6:10]))
	if hl > MaxHeader {
		return h, 0, fmt.Errorf("header of %d bytes exceeds the format's %d: %w", hl, MaxHeader, ErrInvalid)
	}
	if hl > lim.maxHeader() {
		return h, 0, fmt.Errorf("header of %d bytes exceeds this reader's limit of %d (setting max_header; the format allows up to %d): refused: %w", hl, lim.maxHeader(), MaxHeader, ErrInvalid)
	}
	if prefixLen+hl+sha256.Size > size {
		return h, 0, fmt.Errorf("file is %d bytes, header alone needs %d: %w", size, prefixLen+hl+sha256.Size, ErrIncomplete)
	}
	buf := make([]byte, hl+sha256.Size)
	if _, err := io.ReadFull(r, buf); err != nil {
		if errors.Is(err, ErrInvalid) {
			return h, 0, err
		}
		return h, 0, fmt.Errorf("read header: %w", ErrIncomplete)
	}
	hs := sha256.New()
	hs.Write(pre[:])
	hs.Write(buf[:hl])
	if !bytes.Equal(hs.Sum(nil), buf[hl:]) {
		return h, 0, fmt.Errorf("header checksum mismatch: %w", ErrIncomplete)
	}
	copy(sum[:], buf[hl:])
	if err := checkMembers(buf[:hl], ver); err != nil {
		return h, 0, fmt.Errorf("header JSON: %v: %w", err, ErrInvalid)
	}
	dec := json.NewDecoder(bytes.NewReader(buf[:hl]))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&h); err != nil {
		return h, 0, fmt.Errorf("header JSON: %v: %w", err, ErrInvalid)
	}
	if dec.More() {
		return h, 0, fmt.Errorf("header JSON: data after the object: %w", ErrInvalid)
	}
	if err := h.validate(ver); err != nil {
		return h, 0, err
	}
	return checkSizes(h, prefixLen+hl+sha256.Size, size, lim)
}

// readV4 reads the rest of a version-4 header (docs/FORMAT.md §4.1) after
// its first prefixLen bytes, pre, into h and sum.
func readV4(r io.Reader, pre [prefixLen]byte, size int64, lim Limits, sum *[sha256.Size]byte) (Header, int64, error) {
	var h Header
	// The length is a uvarint of at most 4 bytes (the format's 16 MiB
	// needs 4), so it lies within the bytes already read.
	u, n := binary.Uvarint(pre[6:])
	if n <= 0 || n != len(binary.AppendUvarint(nil, u)) {
		return h, 0, fmt.Errorf("header length malformed: %w", ErrInvalid)
	}
	hl := int64(u)
	if hl > MaxHeader || hl == 0 {
		return h, 0, fmt.Errorf("header of %d bytes is outside the format's 1 to %d: %w", hl, MaxHeader, ErrInvalid)
	}
	if hl > lim.maxHeader() {
		return h, 0, fmt.Errorf("header of %d bytes exceeds this reader's limit of %d (setting max_header; the format allows up to %d): refused: %w", hl, lim.maxHeader(), MaxHeader, ErrInvalid)
	}
	start := int64(6 + n) // where the header starts
	end := start + hl + v4Check
	if end > size {
		return h, 0, fmt.Errorf("file is %d bytes, header alone needs %d: %w", size, end, ErrIncomplete)
	}
	buf := make([]byte, end)
	copy(buf, pre[:])
	if _, err := io.ReadFull(r, buf[prefixLen:]); err != nil {
		if errors.Is(err, ErrInvalid) {
			return h, 0, err
		}
		return h, 0, fmt.Errorf("read header: %w", ErrIncomplete)
	}
	*sum = sha256.Sum256(buf[:start+hl])
	if !bytes.Equal(sum[:v4Check], buf[start+hl:]) {
		return h, 0, fmt.Errorf("header checksum mismatch: %w", ErrIncomplete)
	}
	h, err := decodeV4Body(buf[start : start+hl])
	if err != nil {
		return h, 0, fmt.Errorf("header: %v: %w", err, ErrInvalid)
	}
	if err := h.validate(v4); err != nil {
		return h, 0, err
	}
	return checkSizes(h, end, size, lim)
}

// checkSizes checks a validated header h against the reader's limits and
// the file's size, its payload starting at off.
func checkSizes(h Header, off, size int64, lim Limits) (Header, int64, error) {
	if h.RawLen > lim.maxRaw() {
		return h, 0, fmt.Errorf("decompressed payload of %d bytes exceeds this reader's limit of %d (setting max_changeset): refused: %w", h.RawLen, lim.maxRaw(), ErrInvalid)
	}
	switch want := off + h.PayloadLen; {
	case size < want:
		return h, 0, fmt.Errorf("file is %d bytes, header announces %d: %w", size, want, ErrIncomplete)
	case size > want:
		// The header is intact and checksummed, so this is not a file
		// still arriving: something appended to it.
		return h, 0, fmt.Errorf("file is %d bytes, longer than the %d its header announces: %w", size, want, ErrInvalid)
	}
	return h, off, nil
}

// validate checks h's members, read from a file of version ver.
func (h *Header) validate(ver uint16) error {
	sumLen, prevLen := 64, 64
	if ver == v4 {
		sumLen, prevLen = 2*v4Payload, 2*v4Prev
	}
	bad := func(f string, a ...any) error {
		return fmt.Errorf("%s: %w", fmt.Sprintf(f, a...), ErrInvalid)
	}
	switch {
	case h.Kind != KindChangeset && h.Kind != KindSnapshot:
		return bad("kind %q is neither \"changeset\" nor \"snapshot\"", short(h.Kind))
	case !ValidDeviceID(h.Device):
		return bad("device id %q is malformed", short(h.Device))
	case len(h.DeviceName) > MaxDeviceName:
		return bad("device_name of %d bytes exceeds the limit of %d", len(h.DeviceName), MaxDeviceName)
	case len(h.Install) > MaxInstall:
		return bad("install of %d bytes exceeds the limit of %d", len(h.Install), MaxInstall)
	case h.Seq == 0 || h.Seq > MaxSeq:
		return bad("sequence number %d out of range", h.Seq)
	case h.Compression != "zstd":
		return bad("compression %q unsupported", short(h.Compression))
	case h.PayloadLen < 0 || h.RawLen < 0 || h.Changes < 0:
		return bad("negative length")
	case !isLowerHex(h.PayloadSHA256, sumLen):
		return bad("payload checksum malformed")
	}
	for dev, n := range h.Seen {
		if !ValidDeviceID(dev) || n > MaxSeq {
			return bad("seen entry %q: %d is malformed", short(dev), n)
		}
	}
	if h.Prev != "" && (h.Kind != KindChangeset || h.Seq == 1 || !isLowerHex(h.Prev, prevLen)) {
		return bad("prev %q is not the file sum of a previous changeset", short(h.Prev))
	}
	if len(h.Heads) > 0 && h.Kind != KindSnapshot {
		return bad("heads in a %s", h.Kind)
	}
	for dev, sum := range h.Heads {
		if n, ok := h.Seen[dev]; !ok || n == 0 || !isLowerHex(sum, 64) {
			return bad("heads entry %q: %q is not the file sum of a changeset the snapshot includes", short(dev), short(sum))
		}
	}
	seen := map[string]bool{}
	for _, t := range h.Tables {
		if t.Name == "" || len(t.Columns) == 0 {
			return bad("table entry without name or columns")
		}
		if len(t.Name) > MaxName {
			return bad("table name of %d bytes exceeds the limit of %d", len(t.Name), MaxName)
		}
		if len(t.Columns) > MaxColumns {
			return bad("table %q has %d columns, more than the limit of %d", short(t.Name), len(t.Columns), MaxColumns)
		}
		if seen[t.Name] {
			return bad("table %q listed twice", short(t.Name))
		}
		seen[t.Name] = true
		pks := map[int]bool{}
		for _, c := range t.Columns {
			if c.Name == "" || c.PK < 0 || c.PK > len(t.Columns) || (c.PK > 0 && pks[c.PK]) {
				return bad("table %q: malformed column entry", short(t.Name))
			}
			if len(c.Name) > MaxName || len(c.Type) > MaxType {
				return bad("table %q: a column name or type exceeds the limit of %d or %d bytes", short(t.Name), MaxName, MaxType)
			}
			if c.PK > 0 {
				pks[c.PK] = true
			}
		}
		if len(pks) == 0 {
			return bad("table %q has no primary key", short(t.Name))
		}
		for i := 1; i <= len(pks); i++ {
			if !pks[i] {
				return bad("table %q: primary key positions are not 1..%d", short(t.Name), len(pks))
			}
		}
		if Fingerprint(t.Name, t.Columns) != t.Fingerprint {
			return bad("table %q: fingerprint does not match its columns", short(t.Name))
		}
	}
	return nil
}

// short is s for a message: at most 64 bytes of it, so a hostile header
// cannot make a report huge.
func short(s string) string {
	if len(s) <= 64 {
		return s
	}
	return s[:64] + fmt.Sprintf("… (%d bytes)", len(s))
}

func isLowerHex(s string, n int) bool {
	if len(s) != n {
		return false
	}
	for _, c := range s {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// Fingerprint identifies a table's shape: its name and, per column in
// order, the name, declared type (ASCII upper-cased), primary-key position
// and NOT NULL flag. It is the first 16 hex digits of the SHA-256 of
//
//	name 0x00 { colname 0x00 TYPE 0x00 pk-decimal 0x00 ("true"|"false") 0x00 }
//
// (docs/FORMAT.md). Devices exchange rows of a table only when their
// fingerprints agree. The Local flag is not part of it.
func Fingerprint(name string, cols []Column) string {
	h := sha256.New()
	h.Write([]byte(name))
	h.Write([]byte{0})
	for _, c := range cols {
		fmt.Fprintf(h, "%s\x00%s\x00%d\x00%t\x00", c.Name, asciiUpper(c.Type), c.PK, c.NotNull)
	}
	return hex.EncodeToString(h.Sum(nil))[:16]
}

// asciiUpper upper-cases ASCII letters only, as SQLite does with type
// names, so every implementation gets the same bytes whatever its Unicode
// tables say.
func asciiUpper(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c >= 'a' && c <= 'z' {
			b[i] = c - 'a' + 'A'
		}
	}
	return string(b)
}

// Verify checks the payload's checksum by streaming it once.
func (f *File) Verify() error {
	fh, err := f.payload()
	if err != nil {
		return err
	}
	defer fh.Close()
	s := sha256.New()
	n, err := io.Copy(s, fh)
	if err != nil {
		return fmt.Errorf("%s: read payload: %w", f.Path, err)
	}
	if got := hex.EncodeToString(s.Sum(nil)); n != f.Header.PayloadLen || len(f.Header.PayloadSHA256) < 2*v4Payload || !strings.HasPrefix(got, f.Header.PayloadSHA256) {
		return fmt.Errorf("%s: payload checksum mismatch: %w", f.Path, ErrIncomplete)
	}
	return nil
}

// Changeset returns the decompressed changeset stream. Call Verify first:
// the stream itself is only bounded, not authenticated. Reading past the
// announced raw length, or beyond Limits.MaxRaw, is an error (decompression
// bombs stop there).
func (f *File) Changeset() (io.ReadCloser, error) {
	if f.Header.RawLen > f.lim.maxRaw() {
		return nil, fmt.Errorf("%s: decompressed payload of %d bytes exceeds this reader's limit of %d (setting max_changeset): refused: %w", f.Path, f.Header.RawLen, f.lim.maxRaw(), ErrInvalid)
	}
	fh, err := f.payload()
	if err != nil {
		return nil, err
	}
	br := bufio.NewReaderSize(fh, 256<<10)
	dec, err := zstd.NewReader(br, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxMemory(256<<20), zstd.WithDecoderMaxWindow(64<<20))
	if err != nil {
		fh.Close()
		return nil, err
	}
	b := &boundedReader{f: fh, dec: dec, left: f.Header.RawLen, path: f.Path}
	if f.src != nil {
		b.drain = br
	}
	return b, nil
}

type boundedReader struct {
	f    io.Closer
	dec  *zstd.Decoder
	left int64
	path string
	// drain, for a Source, is read to its end once the payload is: the
	// source authenticates the whole file there (a sealed file's
	// signature), and the changeset read must not end before it did.
	drain io.Reader
}

func (b *boundedReader) Read(p []byte) (int, error) {
	if b.left <= 0 {
		// Anything beyond the announced length is a lie in the header.
		var one [1]byte
		if n, _ := b.dec.Read(one[:]); n > 0 {
			return 0, fmt.Errorf("%s: payload longer than announced: %w", b.path, ErrInvalid)
		}
		if b.drain != nil {
			if _, err := io.Copy(io.Discard, b.drain); err != nil {
				return 0, fmt.Errorf("%s: %w", b.path, err)
			}
			b.drain = nil
		}
		return 0, io.EOF
	}
	if int64(len(p)) > b.left {
		p = p[:b.left]
	}
	n, err := b.dec.Read(p)
	b.left -= int64(n)
	if err == io.EOF && b.left > 0 {
		return n, fmt.Errorf("%s: payload shorter than announced: %w", b.path, ErrInvalid)
	}
	if err != nil && err != io.EOF {
		return n, fmt.Errorf("%s: decompress: %v: %w", b.path, err, ErrInvalid)
	}
	return n, nil
}

func (b *boundedReader) Close() error {
	b.dec.Close()
	return b.f.Close()
}

// Header members by object, and which are required. encoding/json alone
// would match member names case-insensitively, let a duplicate override
// an earlier one and read an absent member as zero: a reader in another
// language would not, so neither does this one (docs/FORMAT.md §5).
var (
	headerMembers = map[string]bool{"kind": true, "device": true, "device_name": false, "install": true, "seq": true, "hlc": true,
		"created_ms": true, "tables": true, "changes": true, "compression": true, "payload_len": true, "payload_sha256": true, "raw_len": true, "seen": false,
		"prev": false, "heads": false}
	// v3Members are the header members versions 1 and 2 do not have.
	v3Members     = map[string]bool{"prev": true, "heads": true}
	tableMembers  = map[string]bool{"name": true, "columns": true, "fingerprint": true}
	columnMembers = map[string]bool{"name": true, "type": true, "pk": false, "notnull": false, "local": false}
)

// isHeader tells the header's member table from the tables' and columns'.
func isHeader(members map[string]bool) bool {
	_, ok := members["payload_sha256"]
	return ok
}

// checkMembers checks the member names of the header object and of its
// table and column objects: exact spelling, no duplicates, no unknown
// member (for version ver), every required member present.
func checkMembers(js []byte, ver uint16) error {
	dec := json.NewDecoder(bytes.NewReader(js))
	dec.UseNumber()
	var object func(members map[string]bool, child func(key string) error) error
	skip := func() error {
		var v json.RawMessage
		return dec.Decode(&v)
	}
	array := func(elem func() error) error {
		t, err := dec.Token()
		if err != nil {
			return err
		}
		if t == nil {
			return nil // null: the typed decode decides
		}
		if d, ok := t.(json.Delim); !ok || d != '[' {
			return fmt.Errorf("expected an array")
		}
		for dec.More() {
			if err := elem(); err != nil {
				return err
			}
		}
		_, err = dec.Token()
		return err
	}
	object = func(members map[string]bool, child func(key string) error) error {
		t, err := dec.Token()
		if err != nil {
			return err
		}
		if d, ok := t.(json.Delim); !ok || d != '{' {
			return fmt.Errorf("expected an object")
		}
		seen := map[string]bool{}
		for dec.More() {
			t, err := dec.Token()
			if err != nil {
				return err
			}
			key := t.(string)
			if _, known := members[key]; !known || (ver < 3 && v3Members[key] && isHeader(members)) {
				return fmt.Errorf("unknown member %q", key)
			}
			if seen[key] {
				return fmt.Errorf("member %q appears twice", key)
			}
			seen[key] = true
			if err := child(key); err != nil {
				return err
			}
		}
		if _, err := dec.Token(); err != nil {
			return err
		}
		for k, required := range members {
			if required && !seen[k] {
				return fmt.Errorf("member %q missing", k)
			}
		}
		return nil
	}
	column := func() error { return object(columnMembers, func(string) error { return skip() }) }
	table := func() error {
		return object(tableMembers, func(key string) error {
			if key == "columns" {
				return array(column)
			}
			return skip()
		})
	}
	return object(headerMembers, func(key string) error {
		if key == "tables" {
			return array(table)
		}
		return skip()
	})
}
