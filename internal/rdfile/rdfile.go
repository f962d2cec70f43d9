// Package rdfile is rowdrop's file format: one immutable, self-validating
// file per export, holding a standard SQLite changeset (zstd-compressed) and a
// JSON header with everything a reader needs to tell whole from partial and
// applicable from not-yet-applicable. docs/FORMAT.md is the normative spec.
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

	"github.com/klauspost/compress/zstd"

	"rowdrop/internal/fsx"
)

// Magic opens every rowdrop changeset file.
const Magic = "RDCS"

// Version is the format version this build writes and the newest it reads.
const Version = 1

// prefixLen is magic (4) + version (2) + header length (4).
const prefixLen = 10

// MaxHeader bounds the JSON header so a hostile length can't make us allocate.
const MaxHeader = 16 << 20

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

// Header is the JSON header of a changeset file.
type Header struct {
	Kind       string  `json:"kind"` // "changeset"
	Device     string  `json:"device"`
	DeviceName string  `json:"device_name,omitempty"`
	Install    string  `json:"install"` // per-installation token: detects cloned state directories
	Seq        uint64  `json:"seq"`
	HLC        uint64  `json:"hlc"`
	CreatedMS  int64   `json:"created_ms"`
	Tables     []Table `json:"tables"`
	Changes    int64   `json:"changes"`
	// Payload description: the payload is a zstd frame whose decompressed
	// content is exactly RawLen bytes of SQLite changeset.
	Compression   string `json:"compression"` // "zstd"
	PayloadLen    int64  `json:"payload_len"`
	PayloadSHA256 string `json:"payload_sha256"`
	RawLen        int64  `json:"raw_len"`
}

// Limits bound what a reader accepts from a file in the shared folder.
type Limits struct {
	MaxRaw int64 // largest decompressed changeset accepted; 0 = 4 GiB
}

func (l Limits) maxRaw() int64 {
	if l.MaxRaw <= 0 {
		return 4 << 30
	}
	return l.MaxRaw
}

// Build writes a complete file to path (atomically, never replacing an
// existing file), compressing the changeset read from cs. It fills in the
// payload fields of h and returns the final header.
func Build(path string, h Header, cs io.Reader) (Header, error) {
	h.Kind = "changeset"
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
// header's SHA-256.
func encodePrefix(h Header) ([]byte, error) {
	js, err := json.Marshal(h)
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	b.WriteString(Magic)
	_ = binary.Write(&b, binary.BigEndian, uint16(Version))
	_ = binary.Write(&b, binary.BigEndian, uint32(len(js)))
	b.Write(js)
	s := sha256.Sum256(b.Bytes())
	b.Write(s[:])
	return b.Bytes(), nil
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
}

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
	h, off, err := ReadHeader(bufio.NewReader(f), st.Size())
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &File{Path: path, Header: h, offset: off, lim: lim}, nil
}

// ReadHeader parses and validates a file's prefix and header from r; size
// is the file's total length.
func ReadHeader(r io.Reader, size int64) (Header, int64, error) {
	var h Header
	var pre [prefixLen]byte
	if n, err := io.ReadFull(r, pre[:]); err != nil {
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
	hl := int64(binary.BigEndian.Uint32(pre[6:10]))
	if hl > MaxHeader {
		return h, 0, fmt.Errorf("header of %d bytes exceeds %d: %w", hl, MaxHeader, ErrInvalid)
	}
	if prefixLen+hl+sha256.Size > size {
		return h, 0, fmt.Errorf("file is %d bytes, header alone needs %d: %w", size, prefixLen+hl+sha256.Size, ErrIncomplete)
	}
	buf := make([]byte, hl+sha256.Size)
	if _, err := io.ReadFull(r, buf); err != nil {
		return h, 0, fmt.Errorf("read header: %w", ErrIncomplete)
	}
	hs := sha256.New()
	hs.Write(pre[:])
	hs.Write(buf[:hl])
	if !bytes.Equal(hs.Sum(nil), buf[hl:]) {
		return h, 0, fmt.Errorf("header checksum mismatch: %w", ErrIncomplete)
	}
	dec := json.NewDecoder(bytes.NewReader(buf[:hl]))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&h); err != nil {
		return h, 0, fmt.Errorf("header JSON: %v: %w", err, ErrInvalid)
	}
	if err := h.validate(); err != nil {
		return h, 0, err
	}
	off := prefixLen + hl + sha256.Size
	if off+h.PayloadLen != size {
		return h, 0, fmt.Errorf("file is %d bytes, header announces %d: %w", size, off+h.PayloadLen, ErrIncomplete)
	}
	return h, off, nil
}

func (h *Header) validate() error {
	bad := func(f string, a ...any) error {
		return fmt.Errorf("%s: %w", fmt.Sprintf(f, a...), ErrInvalid)
	}
	switch {
	case h.Kind != "changeset":
		return bad("kind %q is not \"changeset\"", h.Kind)
	case !ValidDeviceID(h.Device):
		return bad("device id %q is malformed", h.Device)
	case h.Seq == 0:
		return bad("sequence number 0")
	case h.Compression != "zstd":
		return bad("compression %q unsupported", h.Compression)
	case h.PayloadLen < 0 || h.RawLen < 0 || h.Changes < 0:
		return bad("negative length")
	case len(h.PayloadSHA256) != 64:
		return bad("payload checksum malformed")
	}
	for _, t := range h.Tables {
		if t.Name == "" || len(t.Columns) == 0 {
			return bad("table entry without name or columns")
		}
	}
	return nil
}

// Verify checks the payload's checksum by streaming it once.
func (f *File) Verify() error {
	fh, err := os.Open(f.Path)
	if err != nil {
		return err
	}
	defer fh.Close()
	if _, err := fh.Seek(f.offset, io.SeekStart); err != nil {
		return err
	}
	s := sha256.New()
	n, err := io.Copy(s, fh)
	if err != nil {
		return fmt.Errorf("%s: read payload: %w", f.Path, err)
	}
	if n != f.Header.PayloadLen || hex.EncodeToString(s.Sum(nil)) != f.Header.PayloadSHA256 {
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
		return nil, fmt.Errorf("%s: changeset of %d bytes exceeds the limit of %d: %w", f.Path, f.Header.RawLen, f.lim.maxRaw(), ErrInvalid)
	}
	fh, err := os.Open(f.Path)
	if err != nil {
		return nil, err
	}
	if _, err := fh.Seek(f.offset, io.SeekStart); err != nil {
		fh.Close()
		return nil, err
	}
	dec, err := zstd.NewReader(bufio.NewReaderSize(fh, 256<<10), zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxMemory(256<<20), zstd.WithDecoderMaxWindow(64<<20))
	if err != nil {
		fh.Close()
		return nil, err
	}
	return &boundedReader{f: fh, dec: dec, left: f.Header.RawLen, path: f.Path}, nil
}

type boundedReader struct {
	f    *os.File
	dec  *zstd.Decoder
	left int64
	path string
}

func (b *boundedReader) Read(p []byte) (int, error) {
	if b.left <= 0 {
		// Anything beyond the announced length is a lie in the header.
		var one [1]byte
		if n, _ := b.dec.Read(one[:]); n > 0 {
			return 0, fmt.Errorf("%s: payload longer than announced: %w", b.path, ErrInvalid)
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
