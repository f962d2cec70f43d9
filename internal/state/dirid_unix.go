//go:build unix

package state

import "golang.org/x/sys/unix"

// dirID is the inode of dir (0 if it cannot be read): a copied or
// restored state directory gets a new one.
func dirID(dir string) uint64 {
	var st unix.Stat_t
	if err := unix.Stat(dir, &st); err != nil {
		return 0
	}
	return uint64(st.Ino)
}
