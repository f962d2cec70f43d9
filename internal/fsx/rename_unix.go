//go:build unix

package fsx

import "os"

// Rename atomically replaces new with old: rename(2), which succeeds even
// while another process has new open (it keeps reading the old file).
// Callers fsync the directory afterwards (SyncDir).
func Rename(old, new string) error { return os.Rename(old, new) }

// linkNoReplace gives the finished temporary file tmp the name path unless
// path exists (then an error wrapping os.ErrExist), and removes tmp.
// A hard link refuses to replace a name, unlike rename; where hard links
// are unsupported (FAT, some FUSE mounts) it falls back to check, then
// rename, which is safe because only this device writes its directory.
func linkNoReplace(tmp, path string) error {
	lerr := os.Link(tmp, path)
	if lerr == nil {
		os.Remove(tmp)
		return nil
	}
	if os.IsExist(lerr) {
		os.Remove(tmp)
		return os.ErrExist
	}
	if _, err := os.Lstat(path); err == nil {
		os.Remove(tmp)
		return os.ErrExist
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return err
	}
	return nil
}
