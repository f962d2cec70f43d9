//go:build unix

package export

import (
	"fmt"
	"os"
	"syscall"
)

// FileID returns the identity of the file at path on its filesystem,
// device and inode, from a stat: the file is not opened (closing any
// descriptor of a SQLite file would drop the process's POSIX locks on it).
func FileID(path string) (string, error) {
	st, err := os.Stat(path)
	if err != nil {
		return "", err
	}
	sys, ok := st.Sys().(*syscall.Stat_t)
	if !ok {
		return "", nil
	}
	return fmt.Sprintf("%d:%d", uint64(sys.Dev), uint64(sys.Ino)), nil
}
