package folder

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/rowdrop/rowdrop/internal/fsx"
	"github.com/rowdrop/rowdrop/internal/rdfile"
	"github.com/rowdrop/rowdrop/internal/seal"
)

// WithRing returns the folder with sealing on: every file written is
// sealed with r's folder key and signed with this device's key, every
// file read must be sealed, authentic and from an approved device
// (plaintext only where the key file lists it as older than the key).
// scratch is a private directory (the state directory) where a snapshot
// is built before it is sealed, so no plaintext ever lies in the folder.
func (f *Folder) WithRing(r *seal.Ring, scratch string) *Folder {
	c := *f
	c.ring, c.scratch = r, scratch
	return &c
}

// Ring is the folder's sealing context, nil when it is not sealed.
func (f *Folder) Ring() *seal.Ring { return f.ring }

// KeyFilePath is where a folder's key file lies.
func (f *Folder) KeyFilePath() string { return filepath.Join(f.dir, seal.KeyFileName) }

// TrustDir is the folder's directory of device approvals.
func (f *Folder) TrustDir() string { return filepath.Join(f.dir, seal.TrustDirName) }

// ReadKeyFile reads the folder's key file; a folder without one yields
// an error wrapping os.ErrNotExist.
func (f *Folder) ReadKeyFile() (*seal.KeyFile, error) {
	p := f.KeyFilePath()
	st, err := os.Lstat(p)
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() || st.Size() > 64<<10 {
		return nil, fmt.Errorf("%s: not a regular file of at most 64 KiB", p)
	}
	data, err := os.ReadFile(p)
	if err != nil {
		return nil, err
	}
	kf, err := seal.ParseKeyFile(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", p, err)
	}
	return kf, nil
}

// WriteKeyFile writes the folder's key file (key init, change-passphrase).
func (f *Folder) WriteKeyFile(kf *seal.KeyFile) error {
	data, err := kf.Marshal()
	if err != nil {
		return err
	}
	return fsx.Replace(f.KeyFilePath(), data)
}

// WriteTrust writes one trust record (an approval, a revocation, a
// request); each has its own name, written by one device only.
func (f *Folder) WriteTrust(r *seal.Record) error {
	data, err := r.Marshal()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(f.TrustDir(), 0o755); err != nil {
		return fmt.Errorf("create %s: %w", f.TrustDir(), err)
	}
	return fsx.Replace(filepath.Join(f.TrustDir(), r.FileName()), data)
}

// sealError turns a sealed reader's verdict into the file format's
// error classes: a file still arriving waits, anything else is refused.
func sealError(p string, err error) error {
	switch {
	case err == nil || errors.Is(err, io.EOF):
		return err
	case errors.Is(err, seal.ErrIncomplete):
		return fmt.Errorf("sealed file: %v: %w", err, rdfile.ErrIncomplete)
	case errors.Is(err, seal.ErrRefused), errors.Is(err, seal.ErrNotSealed):
		return fmt.Errorf("sealed file: %v: refused: %w", err, rdfile.ErrInvalid)
	}
	return err
}

// mapped is a sealed reader whose errors are the format's classes.
type mapped struct {
	r *seal.Reader
	p string
}

func (m mapped) Read(b []byte) (int, error) {
	n, err := m.r.Read(b)
	return n, sealError(m.p, err)
}

func (m mapped) Close() error { return m.r.Close() }

// openSealed opens the sealed file at p (named rel) for reading its
// plaintext, checked against what its name says.
func (f *Folder) openSealed(p string, e seal.Expect) (*seal.Reader, error) {
	fh, err := fsx.OpenRead(p)
	if err != nil {
		return nil, err
	}
	st, err := fh.Stat()
	if err != nil {
		fh.Close()
		return nil, err
	}
	r, err := seal.Open(fh, st.Size(), e, f.ring.Local.Key, f.ring, fh)
	if err != nil {
		fh.Close()
		return nil, sealError(p, err)
	}
	return r, nil
}

// expect is what rel's name says of the file.
func expect(rel string) seal.Expect {
	kind, dev, seq := rdfile.Classify(rel)
	e := seal.Expect{Device: dev, Seq: seq}
	switch kind {
	case rdfile.NameChangeset:
		e.Kind = seal.KindChangeset
	case rdfile.NameSnapshot:
		e.Kind = seal.KindSnapshot
	default:
		e.Seq = 0 // a conflict copy: its name keeps the device only
	}
	return e
}

// openRing is Open for a sealed folder.
func (f *Folder) openRing(rel, p string) (*rdfile.File, error) {
	var magic [4]byte
	if fh, err := fsx.OpenRead(p); err != nil {
		return nil, err
	} else {
		n, _ := io.ReadFull(fh, magic[:])
		fh.Close()
		if n == 4 && string(magic[:]) == rdfile.Magic {
			kind, dev, seq := rdfile.Classify(rel)
			if up, ok := f.ring.KeyFile.PlaintextUpTo[dev]; ok && kind == rdfile.NameChangeset && seq <= up {
				return rdfile.Open(p, f.limits)
			}
			return nil, fmt.Errorf("%s: a plaintext file in an encrypted folder: refused (written by a device without the folder key, or by someone forging one; on that device run `rowdrop key unlock`): %w", p, rdfile.ErrInvalid)
		}
	}
	e := expect(rel)
	r, err := f.openSealed(p, e)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", p, err)
	}
	size := r.Prefix().PlainLen
	r.Close()
	return rdfile.OpenSource(p, size, func() (io.ReadCloser, error) {
		r, err := f.openSealed(p, e)
		if err != nil {
			return nil, err
		}
		return mapped{r: r, p: p}, nil
	}, f.limits)
}

// notKeyed explains a sealed file opened by a device without the key.
func notKeyed(p string, err error) error {
	if !errors.Is(err, rdfile.ErrForeign) {
		return err
	}
	fh, oerr := fsx.OpenRead(p)
	if oerr != nil {
		return err
	}
	defer fh.Close()
	var b [4]byte
	if n, _ := io.ReadFull(fh, b[:]); n == 4 && seal.IsSealed(b[:]) {
		return fmt.Errorf("%s: sealed with the folder key, which this device does not hold: run `rowdrop key unlock` with the folder's passphrase: %w", p, rdfile.ErrInvalid)
	}
	return err
}

// publishSealed seals the outbox file src as rel.
func (f *Folder) publishSealed(rel, src string) error {
	_, dev, seq := rdfile.Classify(rel)
	if dev != f.ring.Local.Self.Device {
		return fmt.Errorf("publish %s: this device (%s) seals only its own files", rel, f.ring.Local.Self.Device)
	}
	dst := f.Path(rel)
	if err := f.MkdirDevice(dev); err != nil {
		return fmt.Errorf("create %s: %w", f.Path(dev), err)
	}
	// A retry after a crash: the sealed bytes differ each time (a new
	// salt), so compare plaintexts.
	if r, err := f.openSealed(dst, expect(rel)); err == nil {
		same, cerr := samePlain(r, src)
		r.Close()
		if cerr == nil && same {
			return nil
		}
		return fmt.Errorf("%s already exists with other content: %w", dst, os.ErrExist)
	} else if _, serr := os.Lstat(dst); serr == nil {
		return fmt.Errorf("%s already exists with other content (%v): %w", dst, err, os.ErrExist)
	}
	return f.sealInto(dst, src, seal.KindChangeset, seq)
}

// sealInto writes src sealed at dst (temporary name, fsync, rename).
func (f *Folder) sealInto(dst, src string, kind byte, seq uint64) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	st, err := in.Stat()
	if err != nil {
		return err
	}
	return fsx.WriteFunc(dst, func(w io.Writer) error {
		if err := seal.Seal(w, in, st.Size(), kind, seq, f.ring.Local.Key, f.ring.Local.Self); err != nil {
			return fmt.Errorf("seal %s into %s: %w", src, dst, err)
		}
		return nil
	})
}

// samePlain reports whether r's plaintext equals the file at path.
func samePlain(r io.Reader, path string) (bool, error) {
	b, err := os.Open(path)
	if err != nil {
		return false, err
	}
	defer b.Close()
	x, y := make([]byte, 64<<10), make([]byte, 64<<10)
	for {
		n, errA := io.ReadFull(r, x)
		m, errB := io.ReadFull(b, y)
		if n != m || !bytes.Equal(x[:n], y[:m]) {
			return false, nil
		}
		if errA != nil || errB != nil {
			if (errA == io.EOF || errA == io.ErrUnexpectedEOF) && (errB == io.EOF || errB == io.ErrUnexpectedEOF) {
				return true, nil
			}
			if errA != nil && errA != io.EOF && errA != io.ErrUnexpectedEOF {
				return false, errA
			}
			return false, errB
		}
	}
}

// buildSealed builds a snapshot in the scratch directory and seals it
// into rel.
func (f *Folder) buildSealed(rel string, h rdfile.Header, r io.Reader) (rdfile.Header, error) {
	_, _, seq := rdfile.Classify(rel)
	kind := seal.KindChangeset
	if h.Kind == rdfile.KindSnapshot {
		kind = seal.KindSnapshot
	}
	tmp, err := os.CreateTemp(f.scratch, fsx.TempPrefix+"seal-")
	if err != nil {
		return h, fmt.Errorf("stage %s in %s: %w", rel, f.scratch, err)
	}
	tmp.Close()
	os.Remove(tmp.Name())
	defer os.Remove(tmp.Name())
	h, err = rdfile.Build(tmp.Name(), h, r)
	if err != nil {
		return h, err
	}
	return h, f.sealInto(f.Path(rel), tmp.Name(), kind, seq)
}

// Unlock returns the folder read with the folder key that passphrase
// opens, for readers without a state directory (`rowdrop check`): it can
// read and verify every sealed file, and write none.
func (f *Folder) Unlock(passphrase []byte) (*Folder, error) {
	kf, err := f.ReadKeyFile()
	if err != nil {
		return nil, err
	}
	k, err := kf.Unlock(passphrase)
	if errors.Is(err, seal.ErrPassphrase) {
		return nil, fmt.Errorf("the passphrase does not open %s (wrong passphrase): try again", f.KeyFilePath())
	}
	if err != nil {
		return nil, err
	}
	r, err := seal.NewRing(&seal.Local{Key: k}, kf, f.dir)
	if err != nil {
		return nil, err
	}
	return f.WithRing(r, os.TempDir()), nil
}

// Keyed reports whether the folder has a key file (it is encrypted).
func (f *Folder) Keyed() bool {
	_, err := os.Lstat(f.KeyFilePath())
	return err == nil
}
