// Package seal encrypts and signs the files rowdrop writes into the
// shared folder (docs/FORMAT.md §16, docs/ENCRYPTION.md). A sealed file
// is an envelope around the plaintext file's bytes: a cleartext prefix
// (kind, device, sequence, lengths: what a reader without the key needs),
// the plaintext in chunks sealed with XChaCha20-Poly1305 under a key
// derived per file with HKDF-SHA256 from the folder key, and an Ed25519
// signature of the writing device over the prefix and the ciphertext.
//
// Only internal/folder calls it: that package is the one reader and
// writer of the folder, so everything in the folder is sealed in one
// place.
package seal

import (
	"bufio"
	"bytes"
	"crypto/ed25519"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"io"

	"golang.org/x/crypto/chacha20poly1305"
)

// Magic opens every sealed file.
const Magic = "RDSL"

// Version is the envelope version this build reads and writes.
const Version = 1

// Kinds of sealed files (the prefix's kind byte).
const (
	KindChangeset byte = 'c'
	KindSnapshot  byte = 's'
	KindAck       byte = 'a'
)

// Layout constants (docs/FORMAT.md §16.2).
const (
	DeviceLen = 16                                                     // bytes of a device id
	SaltLen   = 24                                                     // random bytes per file
	KeyIDLen  = 8                                                      // folder key id
	PrefixLen = 4 + 1 + 1 + DeviceLen + 8 + KeyIDLen + SaltLen + 8 + 4 // 74
	// HeadLen is the prefix and its tag: the prefix is authenticated on
	// its own before its lengths are believed, so a flipped length bit is
	// refused rather than taken for a file still arriving.
	HeadLen = PrefixLen + TagLen
	TagLen  = chacha20poly1305.Overhead // 16 per chunk
	SigLen  = ed25519.SignatureSize     // 64
	// ChunkSize is the plaintext bytes per chunk the writer uses.
	ChunkSize = 64 << 10
	// MinChunk and MaxChunk bound what a reader accepts.
	MinChunk = 1 << 10
	MaxChunk = 16 << 20
	// KeyLen is the folder key's length.
	KeyLen = 32
)

// Errors a reader classifies sealed files by.
var (
	// ErrIncomplete: shorter or longer than its prefix announces: a file
	// still arriving.
	ErrIncomplete = errors.New("incomplete sealed file")
	// ErrNotSealed: the file does not start like a sealed file.
	ErrNotSealed = errors.New("not a sealed file")
	// ErrRefused: whole, but not authentic (a chunk or the signature does
	// not verify), sealed with another folder key, renamed, or from a
	// device that is not approved or revoked.
	ErrRefused = errors.New("sealed file refused")
)

// Prefix is the cleartext part of a sealed file.
type Prefix struct {
	Kind     byte
	Device   string
	Seq      uint64 // changeset sequence, snapshot number; 0 for an ack
	KeyID    [KeyIDLen]byte
	Salt     [SaltLen]byte
	PlainLen int64
	Chunk    uint32
}

func (p *Prefix) encode() []byte {
	b := make([]byte, 0, PrefixLen)
	b = append(b, Magic...)
	b = append(b, Version, p.Kind)
	b = append(b, p.Device...)
	b = binary.BigEndian.AppendUint64(b, p.Seq)
	b = append(b, p.KeyID[:]...)
	b = append(b, p.Salt[:]...)
	b = binary.BigEndian.AppendUint64(b, uint64(p.PlainLen))
	b = binary.BigEndian.AppendUint32(b, p.Chunk)
	return b
}

// chunks is the number of chunks of a plaintext of n bytes (at least one:
// an empty plaintext is one empty chunk, so even it carries a tag).
func chunks(n int64, chunk uint32) int64 {
	if n == 0 {
		return 1
	}
	return (n + int64(chunk) - 1) / int64(chunk)
}

// SealedLen is the length of the sealed file of a plaintext of n bytes.
func (p *Prefix) SealedLen() int64 {
	return HeadLen + p.PlainLen + chunks(p.PlainLen, p.Chunk)*TagLen + SigLen
}

// ParsePrefix reads a prefix from its PrefixLen bytes.
func ParsePrefix(b []byte) (Prefix, error) {
	var p Prefix
	if len(b) < PrefixLen {
		if len(b) > 0 && !bytes.HasPrefix([]byte(Magic), b[:min(len(b), 4)]) {
			return p, ErrNotSealed
		}
		return p, fmt.Errorf("%d bytes, shorter than the %d-byte prefix: %w", len(b), PrefixLen, ErrIncomplete)
	}
	if string(b[:4]) != Magic {
		return p, ErrNotSealed
	}
	if b[4] != Version {
		return p, fmt.Errorf("sealed with envelope version %d, this rowdrop reads version %d (upgrade rowdrop on this device): %w", b[4], Version, ErrRefused)
	}
	p.Kind = b[5]
	switch p.Kind {
	case KindChangeset, KindSnapshot, KindAck:
	default:
		return p, fmt.Errorf("unknown kind byte 0x%02x: %w", p.Kind, ErrRefused)
	}
	p.Device = string(b[6 : 6+DeviceLen])
	o := 6 + DeviceLen
	p.Seq = binary.BigEndian.Uint64(b[o:])
	o += 8
	copy(p.KeyID[:], b[o:])
	o += KeyIDLen
	copy(p.Salt[:], b[o:])
	o += SaltLen
	pl := binary.BigEndian.Uint64(b[o:])
	o += 8
	p.Chunk = binary.BigEndian.Uint32(b[o:])
	if pl > 1<<50 {
		return p, fmt.Errorf("plaintext length %d out of range: %w", pl, ErrRefused)
	}
	p.PlainLen = int64(pl)
	if p.Chunk < MinChunk || p.Chunk > MaxChunk {
		return p, fmt.Errorf("chunk size %d outside %d..%d: %w", p.Chunk, MinChunk, MaxChunk, ErrRefused)
	}
	return p, nil
}

// Key is an unlocked folder key.
type Key struct {
	k  [KeyLen]byte
	id [KeyIDLen]byte
}

// NewKey wraps raw folder key bytes.
func NewKey(raw []byte) (*Key, error) {
	if len(raw) != KeyLen {
		return nil, fmt.Errorf("folder key is %d bytes, want %d", len(raw), KeyLen)
	}
	k := &Key{}
	copy(k.k[:], raw)
	id, err := hkdf.Key(sha256.New, k.k[:], nil, "rowdrop-seal-v1 key id", KeyIDLen)
	if err != nil {
		return nil, err
	}
	copy(k.id[:], id)
	return k, nil
}

// GenerateKey makes a random folder key.
func GenerateKey() *Key {
	raw := make([]byte, KeyLen)
	rand.Read(raw)
	k, _ := NewKey(raw)
	return k
}

// Raw is the key's bytes, for storing it unlocked in the state directory.
func (k *Key) Raw() []byte { return bytes.Clone(k.k[:]) }

// ID is the key's public id (HKDF of the key): tells a file sealed under
// another folder key from a damaged one.
func (k *Key) ID() [KeyIDLen]byte { return k.id }

// derive returns a key for purpose (and salt), from the folder key.
func (k *Key) derive(salt []byte, info string) []byte {
	out, err := hkdf.Key(sha256.New, k.k[:], salt, info, KeyLen)
	if err != nil {
		panic(err) // only for lengths beyond HKDF's bound, never here
	}
	return out
}

// nonce of chunk i: its index and whether it is the last one. The key is
// unique per file (a random salt), so a counter is a safe nonce.
func nonce(i int64, final bool) []byte {
	n := make([]byte, chacha20poly1305.NonceSizeX)
	binary.BigEndian.PutUint64(n, uint64(i))
	if final {
		n[8] = 1
	}
	return n
}

// headNonce is the nonce of the prefix's own tag: no chunk index reaches it.
func headNonce() []byte {
	n := nonce(-1, true)
	return n
}

// sigHash starts the hash a signature covers: a domain string and the
// prefix, then every chunk's ciphertext.
func sigHash(prefix []byte) hash.Hash {
	h := sha512.New()
	h.Write([]byte("rowdrop-seal-v1 signature\x00"))
	h.Write(prefix)
	return h
}

// Signer is a device's signing key.
type Signer struct {
	Device string
	Key    ed25519.PrivateKey
}

// Seal writes the sealed form of the plaintext read from r (exactly n
// bytes) to w, as a file of the given kind, device and sequence.
func Seal(w io.Writer, r io.Reader, n int64, kind byte, seq uint64, k *Key, s Signer) error {
	if len(s.Device) != DeviceLen {
		return fmt.Errorf("seal: device id %q is not %d bytes", s.Device, DeviceLen)
	}
	p := Prefix{Kind: kind, Device: s.Device, Seq: seq, KeyID: k.id, PlainLen: n, Chunk: ChunkSize}
	rand.Read(p.Salt[:])
	pre := p.encode()
	aead, err := chacha20poly1305.NewX(k.derive(p.Salt[:], "rowdrop-seal-v1 file"))
	if err != nil {
		return err
	}
	head := aead.Seal(pre, headNonce(), nil, pre)
	if _, err := w.Write(head); err != nil {
		return err
	}
	sh := sigHash(head)
	buf := make([]byte, ChunkSize, ChunkSize+TagLen)
	total := chunks(n, p.Chunk)
	left := n
	for i := int64(0); i < total; i++ {
		m := min(left, int64(ChunkSize))
		if _, err := io.ReadFull(r, buf[:m]); err != nil {
			return fmt.Errorf("seal: read plaintext: %w", err)
		}
		left -= m
		ct := aead.Seal(buf[:0], nonce(i, i == total-1), buf[:m], pre)
		sh.Write(ct)
		if _, err := w.Write(ct); err != nil {
			return err
		}
		buf = buf[:ChunkSize]
	}
	var one [1]byte
	if k, _ := r.Read(one[:]); k > 0 {
		return errors.New("seal: plaintext longer than announced")
	}
	_, err = w.Write(ed25519.Sign(s.Key, sh.Sum(nil)))
	return err
}

// SealBytes is Seal of a small plaintext held in memory (an ack).
func SealBytes(data []byte, kind byte, seq uint64, k *Key, s Signer) ([]byte, error) {
	var b bytes.Buffer
	err := Seal(&b, bytes.NewReader(data), int64(len(data)), kind, seq, k, s)
	return b.Bytes(), err
}

// Expect is what the reader knows of a file from its name: its device
// directory, its kind and its sequence number (0: not known, as for a
// sync tool's conflict copy). A prefix that says otherwise is refused:
// a file renamed to another sequence or device never verifies.
type Expect struct {
	Device string
	Kind   byte // 0: changeset or snapshot
	Seq    uint64
}

// Verifier tells whose signatures to accept: the public key of an
// approved device, and the highest sequence of its files still accepted
// (revocation). ok false: not approved here.
type Verifier interface {
	PublicKey(device string) (key ed25519.PublicKey, maxSeq uint64, err error)
}

// Reader streams the plaintext of one sealed file. Every chunk is checked
// before its bytes are returned, and the signature before the final
// io.EOF: a consumer that reads to the end has read an authentic file.
type Reader struct {
	src  *bufio.Reader
	p    Prefix
	pre  []byte
	aead interface {
		Open(dst, nonce, ct, ad []byte) ([]byte, error)
	}
	pub    ed25519.PublicKey
	sh     hash.Hash
	total  int64
	i      int64
	buf    []byte
	plain  []byte
	err    error
	closer io.Closer
}

// Open checks the prefix of the sealed file read from src (total size
// bytes) against e, the folder key and the signer's approval, and returns
// a reader of its plaintext. closer, if not nil, is closed by Close.
func Open(src io.Reader, size int64, e Expect, k *Key, v Verifier, closer io.Closer) (*Reader, error) {
	br := bufio.NewReaderSize(src, 256<<10)
	head := make([]byte, HeadLen)
	n, err := io.ReadFull(br, head)
	if err != nil && n == 0 && size == 0 {
		return nil, fmt.Errorf("empty file: %w", ErrIncomplete)
	}
	p, perr := ParsePrefix(head[:min(n, PrefixLen)])
	if perr != nil {
		return nil, perr
	}
	if n < HeadLen {
		return nil, fmt.Errorf("file is %d bytes, shorter than the %d-byte head: %w", size, HeadLen, ErrIncomplete)
	}
	pre := head[:PrefixLen]
	if p.KeyID != k.id {
		return nil, fmt.Errorf("sealed with another folder key (key id %x, this device holds %x): was the folder re-keyed? run rowdrop key unlock: %w", p.KeyID, k.id, ErrRefused)
	}
	aead, err := chacha20poly1305.NewX(k.derive(p.Salt[:], "rowdrop-seal-v1 file"))
	if err != nil {
		return nil, err
	}
	if _, err := aead.Open(nil, headNonce(), head[PrefixLen:], pre); err != nil {
		return nil, fmt.Errorf("its prefix does not authenticate (tampered or damaged): %w", ErrRefused)
	}
	if p.SealedLen() != size {
		if size < p.SealedLen() {
			return nil, fmt.Errorf("file is %d bytes, its prefix announces %d: %w", size, p.SealedLen(), ErrIncomplete)
		}
		return nil, fmt.Errorf("file is %d bytes, longer than the %d its prefix announces: %w", size, p.SealedLen(), ErrRefused)
	}
	if err := e.check(p); err != nil {
		return nil, err
	}
	pub, maxSeq, err := v.PublicKey(p.Device)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", err, ErrRefused)
	}
	if p.Kind != KindAck && p.Seq > maxSeq {
		return nil, fmt.Errorf("device %s was revoked after its file %d; this one (%d) is refused: %w", p.Device, maxSeq, p.Seq, ErrRefused)
	}
	return &Reader{src: br, p: p, pre: pre, aead: aead, pub: pub, sh: sigHash(head), total: chunks(p.PlainLen, p.Chunk),
		buf: make([]byte, int(p.Chunk)+TagLen), closer: closer}, nil
}

func (e Expect) check(p Prefix) error {
	if p.Device != e.Device {
		return fmt.Errorf("sealed by device %q but lies in the directory of %s (moved from another device's directory): %w", p.Device, e.Device, ErrRefused)
	}
	switch {
	case e.Kind != 0 && p.Kind != e.Kind:
		return fmt.Errorf("sealed as kind %q, its name says %q (renamed): %w", p.Kind, e.Kind, ErrRefused)
	case e.Kind == 0 && p.Kind == KindAck:
		return fmt.Errorf("an ack sealed under a changeset's name (renamed): %w", ErrRefused)
	case e.Seq != 0 && p.Seq != e.Seq:
		return fmt.Errorf("sealed as number %d, its name says %d (renamed): %w", p.Seq, e.Seq, ErrRefused)
	}
	return nil
}

// Prefix is the file's cleartext prefix.
func (r *Reader) Prefix() Prefix { return r.p }

// Read implements io.Reader.
func (r *Reader) Read(b []byte) (int, error) {
	for len(r.plain) == 0 {
		if r.err != nil {
			return 0, r.err
		}
		r.err = r.next()
	}
	n := copy(b, r.plain)
	r.plain = r.plain[n:]
	return n, nil
}

// next opens the next chunk, or checks the signature after the last.
func (r *Reader) next() error {
	if r.i == r.total {
		sig := make([]byte, SigLen)
		if _, err := io.ReadFull(r.src, sig); err != nil {
			return fmt.Errorf("read signature: %w", ErrIncomplete)
		}
		if !ed25519.Verify(r.pub, r.sh.Sum(nil), sig) {
			return fmt.Errorf("signature of device %s does not verify (tampered, or signed by another key): %w", r.p.Device, ErrRefused)
		}
		return io.EOF
	}
	m := int64(r.p.Chunk)
	if r.i == r.total-1 {
		m = r.p.PlainLen - r.i*int64(r.p.Chunk)
	}
	ct := r.buf[:m+TagLen]
	if _, err := io.ReadFull(r.src, ct); err != nil {
		return fmt.Errorf("read chunk %d: %v: %w", r.i, err, ErrIncomplete)
	}
	r.sh.Write(ct)
	pt, err := r.aead.Open(ct[:0], nonce(r.i, r.i == r.total-1), ct, r.pre)
	if err != nil {
		return fmt.Errorf("chunk %d does not authenticate (tampered or damaged): %w", r.i, ErrRefused)
	}
	r.i++
	r.plain = pt
	return nil
}

// Close closes the underlying file, if any.
func (r *Reader) Close() error {
	if r.closer != nil {
		return r.closer.Close()
	}
	return nil
}

// OpenBytes opens a small sealed file held in memory and returns its
// whole, verified plaintext.
func OpenBytes(data []byte, e Expect, k *Key, v Verifier) ([]byte, error) {
	r, err := Open(bytes.NewReader(data), int64(len(data)), e, k, v, nil)
	if err != nil {
		return nil, err
	}
	return io.ReadAll(r)
}

// IsSealed reports whether b (a file's first bytes) starts like a sealed file.
func IsSealed(b []byte) bool { return bytes.HasPrefix(b, []byte(Magic)) }
