package state

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"zombiezen.com/go/sqlite"
	"zombiezen.com/go/sqlite/sqlitex"

	"github.com/rowdrop/rowdrop/internal/db"
	"github.com/rowdrop/rowdrop/internal/fsx"
)

// Held copies: a held table part lives in its file, and the file's owner
// may collect it once every device has applied it (this one did, bar the
// part). So each file with a held part is copied, byte for byte, into
// held/ of the state directory before the commit that records it applied,
// and the copy is recorded with its checksum in the same commit as the
// part (rowdrop_held_copies). It goes once no held part names it.

// HeldCopyDirName is the state directory's subdirectory of held copies.
const HeldCopyDirName = "held"

// ErrHeldCopyDamaged: a held copy's bytes no longer match its checksum.
var ErrHeldCopyDamaged = errors.New("held copy damaged")

// HeldCopy is this device's copy of a file with a held table part.
type HeldCopy struct {
	Path string // the file in the shared folder (HeldPart.Path)
	File string // the copy, a path in the state directory
	Sum  string // SHA-256 of the copy's bytes, hex
	Size int64
}

// HeldCopyDir is where the held copies are.
func (d *Dir) HeldCopyDir() string { return filepath.Join(d.Path, HeldCopyDirName) }

// heldCopyFile names the copy of folder file rel (<device>/<name>; both
// parts checked by the folder's name rules, so no path leads elsewhere).
func (d *Dir) heldCopyFile(rel string) string {
	return filepath.Join(d.HeldCopyDir(), strings.ReplaceAll(rel, "/", "_"))
}

// WriteHeldCopy writes what r yields as the copy of folder file rel:
// temporary name, fsync, rename, fsync of the directory. It records
// nothing: RecordHeldCopy does, in the commit that records the part, so a
// copy left by an interrupted import is unrecorded and swept.
func (d *Dir) WriteHeldCopy(rel string, r io.Reader) (HeldCopy, error) {
	c := HeldCopy{Path: rel, File: d.heldCopyFile(rel)}
	if err := os.MkdirAll(d.HeldCopyDir(), 0o700); err != nil {
		return c, fmt.Errorf("create %s: %w", d.HeldCopyDir(), err)
	}
	// A copy of the same file not recorded (an import cut short): replaced.
	if err := os.Remove(c.File); err != nil && !errors.Is(err, os.ErrNotExist) {
		return c, fmt.Errorf("remove the unrecorded copy %s: %w", c.File, err)
	}
	s := sha256.New()
	err := fsx.WriteFunc(c.File, func(w io.Writer) error {
		n, err := io.Copy(io.MultiWriter(w, s), r)
		c.Size = n
		return err
	})
	if err != nil {
		return c, fmt.Errorf("copy %s (a held table part) into %s: %w", rel, c.File, err)
	}
	c.Sum = hex.EncodeToString(s.Sum(nil))
	return c, nil
}

// RecordHeldCopy records copy c (in the caller's transaction, beside the
// part it keeps).
func (d *Dir) RecordHeldCopy(c HeldCopy) error {
	rel, err := filepath.Rel(d.HeldCopyDir(), c.File)
	if err != nil || strings.ContainsAny(rel, `/\`) {
		return fmt.Errorf("record held copy %s: not in %s", c.File, d.HeldCopyDir())
	}
	if err := db.Exec(d.conn, "INSERT OR REPLACE INTO rowdrop_held_copies(path, file, sum, size) VALUES(?,?,?,?)", c.Path, rel, c.Sum, c.Size); err != nil {
		return fmt.Errorf("record the held copy of %s in %s: %w", c.Path, d.Path, err)
	}
	return nil
}

// HeldCopies returns the recorded held copies by folder path.
func (d *Dir) HeldCopies() (map[string]HeldCopy, error) {
	out := map[string]HeldCopy{}
	err := sqlitex.Execute(d.conn, "SELECT path, file, sum, size FROM rowdrop_held_copies", &sqlitex.ExecOptions{ResultFunc: func(s *sqlite.Stmt) error {
		out[s.ColumnText(0)] = HeldCopy{Path: s.ColumnText(0), File: filepath.Join(d.HeldCopyDir(), s.ColumnText(1)), Sum: s.ColumnText(2), Size: s.ColumnInt64(3)}
		return nil
	}})
	if err != nil {
		return nil, fmt.Errorf("read held copies from %s: %w", d.Path, err)
	}
	return out, nil
}

// CheckHeldCopy reads copy c whole and checks its size and checksum; a
// mismatch is ErrHeldCopyDamaged, naming the copy.
func CheckHeldCopy(c HeldCopy) error {
	f, err := fsx.OpenRead(c.File)
	if err != nil {
		return fmt.Errorf("held copy %s of %s: %w", c.File, c.Path, err)
	}
	defer f.Close()
	s := sha256.New()
	n, err := io.Copy(s, f)
	if err != nil {
		return fmt.Errorf("held copy %s of %s: read: %w", c.File, c.Path, err)
	}
	if got := hex.EncodeToString(s.Sum(nil)); n != c.Size || got != c.Sum {
		return fmt.Errorf("held copy %s of %s: %d bytes with SHA-256 %s, recorded as %d bytes with %s: %w", c.File, c.Path, n, got, c.Size, c.Sum, ErrHeldCopyDamaged)
	}
	return nil
}

// DropUnusedHeldCopies forgets the copies no held part names any more (in
// the caller's transaction: the commit that applies or forgets a part).
// Their files go with the next SweepHeldCopies.
func (d *Dir) DropUnusedHeldCopies() error {
	if err := db.Exec(d.conn, "DELETE FROM rowdrop_held_copies WHERE path NOT IN (SELECT path FROM rowdrop_held_tables)"); err != nil {
		return fmt.Errorf("forget unused held copies in %s: %w", d.Path, err)
	}
	return nil
}

// SweepHeldCopies forgets the copies no held part names and removes the
// files in held/ that no record names: a copy whose part was applied, or
// one an import cut short wrote before its commit. It must not run
// between WriteHeldCopy and the commit recording the copy.
func (d *Dir) SweepHeldCopies() error {
	if err := d.DropUnusedHeldCopies(); err != nil {
		return err
	}
	ents, err := os.ReadDir(d.HeldCopyDir())
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("list held copies in %s: %w", d.HeldCopyDir(), err)
	}
	keep := map[string]bool{}
	err = sqlitex.Execute(d.conn, "SELECT file FROM rowdrop_held_copies", &sqlitex.ExecOptions{ResultFunc: func(s *sqlite.Stmt) error {
		keep[s.ColumnText(0)] = true
		return nil
	}})
	if err != nil {
		return fmt.Errorf("read held copies from %s: %w", d.Path, err)
	}
	removed := false
	for _, e := range ents {
		if keep[e.Name()] {
			continue
		}
		if err := os.Remove(filepath.Join(d.HeldCopyDir(), e.Name())); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("remove held copy %s no held part needs: %w", filepath.Join(d.HeldCopyDir(), e.Name()), err)
		}
		removed = true
	}
	if removed {
		return fsx.SyncDir(d.HeldCopyDir())
	}
	return nil
}

// HeldCopyUsage counts the recorded held copies and their bytes.
func (d *Dir) HeldCopyUsage() (files int, bytes int64, err error) {
	err = sqlitex.Execute(d.conn, "SELECT count(*), coalesce(sum(size), 0) FROM rowdrop_held_copies", &sqlitex.ExecOptions{ResultFunc: func(s *sqlite.Stmt) error {
		files, bytes = s.ColumnInt(0), s.ColumnInt64(1)
		return nil
	}})
	if err != nil {
		return 0, 0, fmt.Errorf("count held copies in %s: %w", d.Path, err)
	}
	return files, bytes, nil
}
