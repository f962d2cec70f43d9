package fsx

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// DiskFullError is a write that failed because a file system ran out of
// space: it names the directory and the space left there, so the user
// knows where to make room.
type DiskFullError struct {
	Path string // the directory on the full file system
	Free int64  // bytes available there when the error was reported
	Err  error  // the failure as reported (ENOSPC, SQLITE_FULL, ...)
}

func (e *DiskFullError) Error() string {
	return fmt.Sprintf("disk full: free %.1f MB at %s (make room there, then sync again; nothing was lost, the interrupted work is redone): %v",
		float64(e.Free)/(1<<20), e.Path, e.Err)
}

func (e *DiskFullError) Unwrap() error { return e.Err }

// lowSpace is the free space under which a vague write error (SQLite's
// "disk I/O error", which it reports for some writes that meet ENOSPC) is
// taken for a full disk.
const lowSpace = 1 << 20

// DiskFull turns err into a *DiskFullError when it is one: an ENOSPC (or
// quota) error anywhere in its chain, or, when suspect (the caller saw
// SQLite's SQLITE_FULL or SQLITE_IOERR), one of dirs has under 1 MB free.
// The directory named is the one of dirs with the least space left.
// Anything else is returned unchanged.
func DiskFull(err error, suspect bool, dirs ...string) error {
	if err == nil {
		return nil
	}
	var df *DiskFullError
	if errors.As(err, &df) {
		return err
	}
	sure := isNoSpace(err)
	if !sure && !suspect {
		return err
	}
	path, free := "", int64(-1)
	for _, d := range dirs {
		if d == "" {
			continue
		}
		d = existingDir(d)
		n, ferr := FreeBytes(d)
		if ferr != nil {
			continue
		}
		if free < 0 || n < free {
			path, free = d, n
		}
	}
	if path == "" || (!sure && free >= lowSpace) {
		return err
	}
	return &DiskFullError{Path: path, Free: free, Err: err}
}

// existingDir is p if it is a directory, else its nearest existing parent
// (a file's directory, or a directory not created yet).
func existingDir(p string) string {
	for {
		if st, err := os.Stat(p); err == nil && st.IsDir() {
			return p
		}
		parent := filepath.Dir(p)
		if parent == p {
			return p
		}
		p = parent
	}
}
