//go:build unix

package fsx

import (
	"os"
	"path/filepath"
	"syscall"
)

// IsMountPoint reports whether dir is the root of a mounted filesystem:
// it lies on another device than its parent directory.
func IsMountPoint(dir string) bool {
	dir = RealPath(dir)
	parent := filepath.Dir(dir)
	if dir == "" || parent == dir {
		return false
	}
	a, err1 := os.Stat(dir)
	b, err2 := os.Stat(parent)
	if err1 != nil || err2 != nil || !a.IsDir() {
		return false
	}
	sa, ok1 := a.Sys().(*syscall.Stat_t)
	sb, ok2 := b.Sys().(*syscall.Stat_t)
	return ok1 && ok2 && sa.Dev != sb.Dev
}
