//go:build unix

package main

import (
	"os"
	"runtime"
	"syscall"
)

// peakRSS is an exited child's peak resident set in kB, from its rusage:
// ru_maxrss counts kB on Linux and bytes on macOS.
func peakRSS(ps *os.ProcessState) int64 {
	ru, ok := ps.SysUsage().(*syscall.Rusage)
	if !ok {
		return 0
	}
	if runtime.GOOS == "darwin" {
		return int64(ru.Maxrss) >> 10
	}
	return int64(ru.Maxrss)
}
