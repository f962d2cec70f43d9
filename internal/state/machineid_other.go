//go:build !linux && !darwin && !windows

package state

// machineID is unknown on other systems: the hostname and the directory's
// identity still tell machines and copies apart.
func machineID() string { return "" }
