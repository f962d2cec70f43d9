package fsx

import "path/filepath"

// Inside reports whether path p is dir or below it, once both are made
// absolute and their symbolic links resolved (see RealPath), compared by
// PathKey (case-folded where the file systems fold case).
func Inside(p, dir string) bool {
	a, b := RealPath(p), RealPath(dir)
	if a == "" || b == "" {
		return false
	}
	rel, err := filepath.Rel(PathKey(b), PathKey(a))
	return err == nil && rel != ".." && !filepath.IsAbs(rel) && (rel == "." || len(rel) < 3 || rel[:3] != "../")
}

// RealPath returns p absolute, with its symbolic links resolved. Of a path
// that does not exist (yet), the nearest existing ancestor is resolved and
// the rest appended, so a folder or state directory to be created compares
// where it will be. It returns "" only when p cannot be made absolute.
func RealPath(p string) string {
	abs, err := filepath.Abs(p)
	if err != nil {
		return ""
	}
	rest := ""
	for dir := abs; ; {
		if real, err := filepath.EvalSymlinks(dir); err == nil {
			return filepath.Join(real, rest)
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return abs
		}
		rest = filepath.Join(filepath.Base(dir), rest)
		dir = parent
	}
}

// removableRoots are where desktops mount sticks and cards: udisks under
// /media/$USER or /run/media/$USER, by hand under /mnt, macOS under
// /Volumes.
var removableRoots = []string{"/media", "/run/media", "/mnt", "/Volumes"}

// OnRemovableMount reports whether dir is a mounted filesystem under one of
// the places sticks are mounted (/media, /run/media, /mnt, /Volumes): a
// folder to be created directly in it is on a stick that is in.
func OnRemovableMount(dir string) bool {
	return UnderRemovableRoot(dir) && IsMountPoint(dir)
}

// UnderRemovableRoot reports whether dir (resolved) lies below one of the
// places sticks are mounted.
func UnderRemovableRoot(dir string) bool {
	real := RealPath(dir)
	for _, root := range removableRoots {
		if real != root && Inside(real, root) {
			return true
		}
	}
	return false
}
