package folder

import (
	"fmt"
	"io"
	"os"

	"github.com/rowdrop/rowdrop/internal/fsx"
	"github.com/rowdrop/rowdrop/internal/rdfile"
)

// A device keeps a copy of each file holding a table part it could not
// apply yet (internal/state, held_copies.go), so the part outlives the
// file's collection from the folder. The copy is the folder file's bytes,
// sealed or not, and is read as if it were that file.

// OpenRaw opens changeset or snapshot rel in the folder for reading its
// bytes as they are (to copy them). The name and file are checked as Open
// checks them; the content is not.
func (f *Folder) OpenRaw(rel string) (io.ReadCloser, error) {
	if !copyable(rel) {
		return nil, fmt.Errorf("%s: not the name of a changeset or snapshot in the shared folder: %w", rel, rdfile.ErrInvalid)
	}
	p := f.Path(rel)
	if st, err := os.Lstat(p); err != nil {
		return nil, err
	} else if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%s: not a regular file: %w", p, rdfile.ErrInvalid)
	}
	return fsx.OpenRead(p)
}

// OpenCopy reads and validates the header of the file at path, a copy
// outside the folder of changeset or snapshot rel, as Open reads rel
// itself: in a sealed folder it must be sealed for rel's device and
// sequence.
func (f *Folder) OpenCopy(rel, path string) (*rdfile.File, error) {
	if !copyable(rel) {
		return nil, fmt.Errorf("%s: not the name of a changeset or snapshot in the shared folder: %w", rel, rdfile.ErrInvalid)
	}
	if st, err := os.Lstat(path); err != nil {
		return nil, err
	} else if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%s: not a regular file: %w", path, rdfile.ErrInvalid)
	}
	if f.ring != nil {
		return f.openRing(rel, path)
	}
	file, err := rdfile.Open(path, f.limits)
	if err != nil {
		return nil, notKeyed(path, err)
	}
	return file, nil
}

// copyable: rel names a changeset or a snapshot.
func copyable(rel string) bool {
	kind, _, _ := rdfile.Classify(rel)
	return kind == rdfile.NameChangeset || kind == rdfile.NameSnapshot
}
