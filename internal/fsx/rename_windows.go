//go:build windows

package fsx

import (
	"errors"
	"os"
	"time"

	"golang.org/x/sys/windows"
)

// renameRetry bounds how long a rename waits for another process (a sync
// tool, a virus scanner, another rowdrop reading ack.json) to close the
// file it has open under the target name.
const renameRetry = 5 * time.Second

// Rename atomically replaces new with old: MoveFileEx with
// MOVEFILE_REPLACE_EXISTING and MOVEFILE_WRITE_THROUGH (durable on return:
// what replaces SyncDir here). Windows refuses to replace a file another
// process opened without FILE_SHARE_DELETE (rowdrop's own readers use
// OpenRead, which shares it; sync tools and scanners may not): the
// rename is retried for a few seconds while it reports a sharing or
// access violation, as Go's own tools do.
func Rename(old, new string) error {
	return moveFile(old, new, windows.MOVEFILE_REPLACE_EXISTING|windows.MOVEFILE_WRITE_THROUGH)
}

// linkNoReplace gives the finished temporary file tmp the name path unless
// path exists (then an error wrapping os.ErrExist), and removes tmp:
// MoveFileEx without MOVEFILE_REPLACE_EXISTING refuses an existing name in
// one atomic step, and MOVEFILE_WRITE_THROUGH makes it durable.
func linkNoReplace(tmp, path string) error {
	err := moveFile(tmp, path, windows.MOVEFILE_WRITE_THROUGH)
	if err == nil {
		return nil
	}
	os.Remove(tmp)
	if errors.Is(err, windows.ERROR_ALREADY_EXISTS) || errors.Is(err, windows.ERROR_FILE_EXISTS) {
		return os.ErrExist
	}
	return err
}

func moveFile(old, new string, flags uint32) error {
	from, err := windows.UTF16PtrFromString(old)
	if err != nil {
		return &os.LinkError{Op: "rename", Old: old, New: new, Err: err}
	}
	to, err := windows.UTF16PtrFromString(new)
	if err != nil {
		return &os.LinkError{Op: "rename", Old: old, New: new, Err: err}
	}
	deadline := time.Now().Add(renameRetry)
	wait := 10 * time.Millisecond
	for {
		err = windows.MoveFileEx(from, to, flags)
		if err == nil {
			return nil
		}
		transient := errors.Is(err, windows.ERROR_SHARING_VIOLATION) || errors.Is(err, windows.ERROR_ACCESS_DENIED) || errors.Is(err, windows.ERROR_LOCK_VIOLATION)
		if !transient || time.Now().After(deadline) {
			return &os.LinkError{Op: "rename", Old: old, New: new, Err: err}
		}
		time.Sleep(wait)
		wait = min(2*wait, 500*time.Millisecond)
	}
}
