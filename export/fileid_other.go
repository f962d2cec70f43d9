//go:build !unix && !windows

package export

// FileID has no file identity to offer on this platform: the other
// signals (export/recognise.go) still apply.
func FileID(string) (string, error) { return "", nil }
