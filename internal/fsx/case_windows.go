//go:build windows

package fsx

// foldsCase: NTFS, FAT and exFAT are case-insensitive on Windows.
const foldsCase = true
