//go:build unix

package fsx

import (
	"errors"
	"fmt"
	"os"
)

// SyncDir fsyncs a directory so a rename inside it is durable.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil && !errors.Is(err, os.ErrInvalid) {
		// Some filesystems (vfat via FUSE, some network mounts) refuse
		// directory fsync; the rename is still atomic there.
		return fmt.Errorf("fsync directory %s: %w", dir, err)
	}
	return nil
}
