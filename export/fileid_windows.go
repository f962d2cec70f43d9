//go:build windows

package export

import (
	"fmt"

	"golang.org/x/sys/windows"
)

// FileID returns the identity of the file at path on its filesystem: the
// volume serial number and file index (what os.SameFile compares). The
// handle asks for attributes only and shares everything, so it neither
// blocks the app nor touches SQLite's locks (on Windows those belong to
// SQLite's own handle).
func FileID(path string) (string, error) {
	p, err := windows.UTF16PtrFromString(path)
	if err != nil {
		return "", err
	}
	h, err := windows.CreateFile(p, windows.FILE_READ_ATTRIBUTES,
		windows.FILE_SHARE_READ|windows.FILE_SHARE_WRITE|windows.FILE_SHARE_DELETE, nil,
		windows.OPEN_EXISTING, windows.FILE_FLAG_BACKUP_SEMANTICS, 0)
	if err != nil {
		return "", fmt.Errorf("open %s for its file index: %w", path, err)
	}
	defer windows.CloseHandle(h)
	var fi windows.ByHandleFileInformation
	if err := windows.GetFileInformationByHandle(h, &fi); err != nil {
		return "", fmt.Errorf("file index of %s: %w", path, err)
	}
	return fmt.Sprintf("%x:%x%08x", fi.VolumeSerialNumber, fi.FileIndexHigh, fi.FileIndexLow), nil
}
