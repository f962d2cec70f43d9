//go:build windows

package fsx

import (
	"fmt"

	"golang.org/x/sys/windows"
)

// FreeBytes is the space available to this user (quotas included) on the
// volume holding dir: GetDiskFreeSpaceEx.
func FreeBytes(dir string) (int64, error) {
	p, err := windows.UTF16PtrFromString(dir)
	if err != nil {
		return 0, fmt.Errorf("free space of %s: %w", dir, err)
	}
	var avail, total, totalFree uint64
	if err := windows.GetDiskFreeSpaceEx(p, &avail, &total, &totalFree); err != nil {
		return 0, fmt.Errorf("free space of %s: %w", dir, err)
	}
	if avail > 1<<62 {
		avail = 1 << 62
	}
	return int64(avail), nil
}
