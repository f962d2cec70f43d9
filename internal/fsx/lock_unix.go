//go:build unix

package fsx

import (
	"errors"
	"os"

	"golang.org/x/sys/unix"
)

// TryLock takes an exclusive advisory lock on the open file f without
// waiting: flock(2), released when f is closed or the process dies. It
// fails with an error wrapping ErrLockHeld if another process holds it.
func TryLock(f *os.File) error {
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		if errors.Is(err, unix.EWOULDBLOCK) {
			return ErrLockHeld
		}
		return err
	}
	return nil
}
