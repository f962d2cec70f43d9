//go:build unix

package fsx

import (
	"errors"
	"syscall"
)

// isNoSpace reports a write refused for want of space (or quota).
func isNoSpace(err error) bool {
	return errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT)
}
