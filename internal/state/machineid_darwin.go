//go:build darwin

package state

import "golang.org/x/sys/unix"

// machineID is the kernel's boot-volume UUID (sysctl kern.uuid, the
// IOPlatformUUID), "" if unreadable.
func machineID() string {
	id, _ := unix.Sysctl("kern.uuid")
	return id
}
