//go:build windows

package fsx

import (
	"errors"

	"golang.org/x/sys/windows"
)

// isNoSpace reports a write refused for want of space (or quota).
func isNoSpace(err error) bool {
	return errors.Is(err, windows.ERROR_DISK_FULL) || errors.Is(err, windows.ERROR_HANDLE_DISK_FULL)
}
