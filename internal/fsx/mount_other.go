//go:build !unix

package fsx

// IsMountPoint reports whether dir is the root of a mounted filesystem;
// on this platform it cannot tell and says no.
func IsMountPoint(dir string) bool { return false }
