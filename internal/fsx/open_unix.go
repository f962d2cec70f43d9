//go:build unix

package fsx

import "os"

// OpenRead opens path for reading in a way that never stands in the way
// of a writer replacing it (Rename): on Unix, any open does.
func OpenRead(path string) (*os.File, error) { return os.Open(path) }
