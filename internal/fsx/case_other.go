//go:build !darwin && !windows

package fsx

// foldsCase: Linux and BSD file systems are case-sensitive (a vfat or
// exFAT mount is not, but its names are compared as given).
const foldsCase = false
