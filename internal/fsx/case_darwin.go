//go:build darwin

package fsx

// foldsCase: APFS and HFS+ volumes are case-insensitive by default.
const foldsCase = true
