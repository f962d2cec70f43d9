package fsx

import "errors"

// ErrLockHeld means another process holds the lock TryLock asked for.
var ErrLockHeld = errors.New("lock held by another process")
