// Package folder is the one door to the shared folder: it lists it (Scan),
// opens the rowdrop files in it (Open, wrapping rdfile with the reader's
// limits) and publishes into it (Publish, Build, WriteAck: temporary name,
// fsync, rename). No other package reads or writes the folder's files, so
// a layer below it (encryption) has exactly one reader and one writer to
// wrap.
//
// The names themselves (device ids, <seq>.rdc, snap-<n>.rds, ack.json,
// artefacts, conflict copies) are part of the file format and live in
// internal/rdfile (names.go, docs/FORMAT.md §1-2); temporary names in
// internal/fsx. This package applies them to a directory.
package folder

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/rowdrop/rowdrop/internal/ack"
	"github.com/rowdrop/rowdrop/internal/fsx"
	"github.com/rowdrop/rowdrop/internal/rdfile"
	"github.com/rowdrop/rowdrop/internal/seal"
)

// Folder is a shared folder on this machine. It holds no open files and
// no state besides its path and the limits its reader enforces, so it is
// cheap to copy around and safe for concurrent use.
type Folder struct {
	dir     string
	limits  rdfile.Limits
	ring    *seal.Ring // nil: not sealed (sealed.go)
	scratch string
}

// New returns the shared folder at dir. Files opened through it are
// bounded by lim (rdfile.Limits{} for the defaults).
func New(dir string, lim rdfile.Limits) *Folder {
	return &Folder{dir: dir, limits: lim}
}

// At splits the path of a file inside a shared folder,
// <folder>/<device>/<name>, into that folder (default limits) and the
// file's slash-separated name relative to it. For callers handed a path,
// such as a published file's (export.Result.File).
func At(path string) (*Folder, string) {
	dev := filepath.Dir(path)
	return New(filepath.Dir(dev), rdfile.Limits{}), filepath.Base(dev) + "/" + filepath.Base(path)
}

// Dir is the folder's path, for messages.
func (f *Folder) Dir() string { return f.dir }

// Path is the operating-system path of rel, a slash-separated name
// relative to the folder (a device id, or <device>/<file>), for messages
// and for the caller's own checks.
func (f *Folder) Path(rel string) string {
	return filepath.Join(f.dir, filepath.FromSlash(rel))
}

// AckRel is the name of device dev's acknowledgement, relative to the folder.
func AckRel(dev string) string { return dev + "/" + rdfile.AckName }

// Available returns nil if the folder exists and is a directory, else why
// not (a pulled USB stick, an unmounted share).
func (f *Folder) Available() error {
	st, err := os.Stat(f.dir)
	if err != nil {
		return err
	}
	if !st.IsDir() {
		return errors.New("not a directory")
	}
	return nil
}

// HasDevice reports whether the folder holds a directory for device dev
// (a valid device id): that device publishes here.
func (f *Folder) HasDevice(dev string) bool {
	if !rdfile.ValidDeviceID(dev) {
		return false
	}
	st, err := os.Stat(f.Path(dev))
	return err == nil && st.IsDir()
}

// Create makes the folder (and its parents) when it does not exist: the
// first run of a pair asked to (--create-folder).
func (f *Folder) Create() error {
	if err := os.MkdirAll(f.dir, 0o755); err != nil {
		return fmt.Errorf("create shared folder %s: %w", f.dir, err)
	}
	return nil
}

// Open reads and validates the header of the rowdrop file rel (a
// changeset, a snapshot, or a sync tool's conflict copy of one). Names
// outside the layout are refused without being opened, so no path built
// from the folder's content can lead elsewhere, and a symbolic link is
// never followed.
func (f *Folder) Open(rel string) (*rdfile.File, error) {
	switch kind, _, _ := rdfile.Classify(rel); kind {
	case rdfile.NameChangeset, rdfile.NameSnapshot, rdfile.NameConflictCopy:
	default:
		return nil, fmt.Errorf("%s: not the name of a rowdrop file in the shared folder (<device>/<seq>%s or <device>/snap-<n>%s): %w", rel, rdfile.Ext, rdfile.SnapshotExt, rdfile.ErrInvalid)
	}
	// rdfile.Open checks the file it opened, which may be a symbolic
	// link's target: the name itself must be a regular file.
	p := f.Path(rel)
	if st, err := os.Lstat(p); err == nil && !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%s: not a regular file: %w", p, rdfile.ErrInvalid)
	}
	if f.ring != nil {
		return f.openRing(rel, p)
	}
	file, err := rdfile.Open(p, f.limits)
	if err != nil {
		return nil, notKeyed(p, err)
	}
	return file, nil
}

// Names lists the names in device dev's directory, whatever they are.
// It is for dev itself, the directory's only writer (which sequence
// numbers it used, and whether another installation wrote there); readers
// of other devices' files use Scan.
func (f *Folder) Names(dev string) ([]string, error) {
	ents, err := os.ReadDir(f.Path(dev))
	if err != nil {
		return nil, err
	}
	out := make([]string, len(ents))
	for i, e := range ents {
		out[i] = e.Name()
	}
	return out, nil
}

// MkdirDevice creates device dev's directory if it does not exist (a
// device creates its own on its first publication).
func (f *Folder) MkdirDevice(dev string) error {
	return os.MkdirAll(f.Path(dev), 0o755)
}

// RemoveTemps removes rowdrop's temporary files from device dev's
// directory: what an interrupted publication left. Only dev itself may
// call it (nobody else writes there).
func (f *Folder) RemoveTemps(dev string) {
	names, _ := f.Names(dev)
	for _, n := range names {
		if fsx.IsTemp(n) {
			os.Remove(f.Path(dev + "/" + n))
		}
	}
}

// Publish copies the finished file src (in the private outbox) to rel in
// the folder atomically: it appears whole under its final name or not at
// all, and an existing file is never replaced. If rel already holds
// identical bytes (a retry after a crash) it succeeds; if it holds other
// bytes it fails with an error wrapping os.ErrExist and touches nothing.
func (f *Folder) Publish(rel, src string) error {
	if kind, _, _ := rdfile.Classify(rel); kind != rdfile.NameChangeset {
		return fmt.Errorf("publish %s: not a changeset name (<device>/<seq>%s)", rel, rdfile.Ext)
	}
	if f.ring != nil {
		return f.publishSealed(rel, src)
	}
	return fsx.Publish(src, f.Path(rel))
}

// Build writes a complete rowdrop file (header h, payload compressed from
// r) as rel, with the guarantees of Publish: staged under a temporary
// name, never replacing a file. It returns the final header. Snapshots
// are built this way, straight into the folder.
func (f *Folder) Build(rel string, h rdfile.Header, r io.Reader) (rdfile.Header, error) {
	switch kind, dev, _ := rdfile.Classify(rel); kind {
	case rdfile.NameChangeset, rdfile.NameSnapshot:
		if err := f.MkdirDevice(dev); err != nil {
			return h, fmt.Errorf("create %s: %w", f.Path(dev), err)
		}
	default:
		return h, fmt.Errorf("build %s: not a changeset or snapshot name", rel)
	}
	if f.ring != nil {
		return f.buildSealed(rel, h, r)
	}
	return rdfile.Build(f.Path(rel), h, r)
}

// Remove deletes rel. The caller decides that it may (collection: only a
// file's own device deletes it, docs/FORMAT.md §15).
func (f *Folder) Remove(rel string) error {
	return os.Remove(f.Path(rel))
}

// ReadAck reads and validates device dev's ack.json. A missing file
// yields an error wrapping os.ErrNotExist; anything else that is wrong
// wraps ack.ErrInvalid and names the file.
func (f *Folder) ReadAck(dev string) (*ack.Ack, error) {
	p := f.Path(AckRel(dev))
	st, err := os.Lstat(p)
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%s: not a regular file: %w", p, ack.ErrInvalid)
	}
	limit := int64(ack.MaxSize)
	if f.ring != nil {
		limit += seal.HeadLen + seal.SigLen + seal.TagLen*(ack.MaxSize/seal.ChunkSize+1)
	}
	if st.Size() > limit {
		return nil, fmt.Errorf("%s: %d bytes, more than the %d an ack.json may have: %w", p, st.Size(), ack.MaxSize, ack.ErrInvalid)
	}
	fh, err := fsx.OpenRead(p)
	if err != nil {
		return nil, err
	}
	defer fh.Close()
	data, err := io.ReadAll(io.LimitReader(fh, limit+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", p, err)
	}
	switch {
	case f.ring != nil && seal.IsSealed(data):
		if data, err = seal.OpenBytes(data, seal.Expect{Device: dev, Kind: seal.KindAck}, f.ring.Local.Key, f.ring); err != nil {
			return nil, fmt.Errorf("%s: %v: %w", p, err, ack.ErrInvalid)
		}
	case f.ring != nil:
		return nil, fmt.Errorf("%s: a plaintext ack in an encrypted folder (its device has no folder key yet: run `rowdrop key unlock` there): %w", p, ack.ErrInvalid)
	case seal.IsSealed(data):
		return nil, fmt.Errorf("%s: sealed with the folder key, which this device does not hold: run `rowdrop key unlock`: %w", p, ack.ErrInvalid)
	}
	a, err := ack.Parse(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", p, err)
	}
	if a.Device != dev {
		return nil, fmt.Errorf("%s: says device %s, but lies in the directory of %s: %w", p, a.Device, dev, ack.ErrInvalid)
	}
	return a, nil
}

// WriteAck atomically replaces the ack.json of a.Device (temporary name,
// fsync, rename): the one file in the folder that is rewritten, by its
// device alone, which is the only caller allowed.
func (f *Folder) WriteAck(a *ack.Ack) error {
	data, err := ack.Marshal(a)
	if err != nil {
		return err
	}
	if err := f.MkdirDevice(a.Device); err != nil {
		return fmt.Errorf("create %s: %w (check that the shared folder is mounted and writable)", f.Path(a.Device), err)
	}
	if f.ring != nil {
		if data, err = seal.SealBytes(data, seal.KindAck, 0, f.ring.Local.Key, f.ring.Local.Self); err != nil {
			return err
		}
	}
	return fsx.Replace(f.Path(AckRel(a.Device)), data)
}
