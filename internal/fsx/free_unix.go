//go:build unix

package fsx

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// FreeBytes is the space available to this (unprivileged) user on the
// file system holding dir. The statfs field types differ between
// platforms (darwin's block size is uint32, linux's int64), hence the
// conversions.
func FreeBytes(dir string) (int64, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return 0, fmt.Errorf("free space of %s: %w", dir, err)
	}
	free := uint64(st.Bavail) * uint64(st.Bsize)
	if free > 1<<62 {
		free = 1 << 62
	}
	return int64(free), nil
}
