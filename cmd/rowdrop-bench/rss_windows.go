//go:build windows

package main

import "os"

// peakRSS is 0 on Windows: an exited child's memory counters are gone with
// its process handle, so the bench reports no peak there.
func peakRSS(ps *os.ProcessState) int64 { return 0 }
