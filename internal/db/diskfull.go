package db

import (
	"strings"

	"zombiezen.com/go/sqlite"
)

// MaybeFull reports an error that a full disk may have caused: SQLite's
// SQLITE_FULL, or SQLITE_IOERR (which it reports for some writes that
// meet ENOSPC, the WAL's and the journal's among them), also when the
// error reached here as text only. fsx.DiskFull decides by the free space.
func MaybeFull(err error) bool {
	if err == nil {
		return false
	}
	switch sqlite.ErrCode(err).ToPrimary() {
	case sqlite.ResultFull, sqlite.ResultIOErr:
		return true
	}
	msg := err.Error()
	return strings.Contains(msg, "database or disk is full") || strings.Contains(msg, "disk I/O error")
}
