//go:build windows

package fsx

import (
	"os"

	"golang.org/x/sys/windows"
)

// OpenRead opens path for reading in a way that never stands in the way
// of a writer replacing it (Rename): with FILE_SHARE_DELETE, which
// os.Open does not pass, so the writer's MoveFileEx succeeds while this
// reader keeps the old file.
func OpenRead(path string) (*os.File, error) {
	p, err := windows.UTF16PtrFromString(path)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	h, err := windows.CreateFile(p, windows.GENERIC_READ,
		windows.FILE_SHARE_READ|windows.FILE_SHARE_WRITE|windows.FILE_SHARE_DELETE,
		nil, windows.OPEN_EXISTING, windows.FILE_ATTRIBUTE_NORMAL, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	return os.NewFile(uintptr(h), path), nil
}
