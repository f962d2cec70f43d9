package fsx

import (
	"path/filepath"
	"strings"
)

// PathKey is the form of an absolute, cleaned path under which two
// spellings of one file compare equal on this platform's usual file
// systems: as is where names are case-sensitive (Linux), lower-cased
// where the default file systems fold case (APFS and HFS+ on macOS, NTFS
// on Windows), so /Users/a/Notes.db and /users/a/notes.db give one state
// directory, not two devices. A case-sensitive APFS volume on macOS is
// rare; there two names differing only by case would share a key, which
// errs on the side of one device.
func PathKey(p string) string {
	p = filepath.Clean(p)
	if foldsCase {
		return strings.ToLower(p)
	}
	return p
}

// SamePath reports whether two absolute paths name the same file by
// PathKey.
func SamePath(a, b string) bool { return PathKey(a) == PathKey(b) }
