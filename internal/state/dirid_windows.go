//go:build windows

package state

import "golang.org/x/sys/windows"

// dirID is the NTFS file index of dir (0 if it cannot be read), Windows'
// inode: a copied or restored state directory gets a new one. A directory
// opens only with FILE_FLAG_BACKUP_SEMANTICS.
func dirID(dir string) uint64 {
	p, err := windows.UTF16PtrFromString(dir)
	if err != nil {
		return 0
	}
	h, err := windows.CreateFile(p, 0, windows.FILE_SHARE_READ|windows.FILE_SHARE_WRITE|windows.FILE_SHARE_DELETE,
		nil, windows.OPEN_EXISTING, windows.FILE_FLAG_BACKUP_SEMANTICS, 0)
	if err != nil {
		return 0
	}
	defer windows.CloseHandle(h)
	var fi windows.ByHandleFileInformation
	if err := windows.GetFileInformationByHandle(h, &fi); err != nil {
		return 0
	}
	return uint64(fi.FileIndexHigh)<<32 | uint64(fi.FileIndexLow)
}
