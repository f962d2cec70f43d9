//go:build windows

package state

import "golang.org/x/sys/windows/registry"

// machineID is the MachineGuid Windows setup writes to
// HKLM\SOFTWARE\Microsoft\Cryptography, "" if unreadable.
func machineID() string {
	k, err := registry.OpenKey(registry.LOCAL_MACHINE, `SOFTWARE\Microsoft\Cryptography`, registry.QUERY_VALUE|registry.WOW64_64KEY)
	if err != nil {
		return ""
	}
	defer k.Close()
	id, _, _ := k.GetStringValue("MachineGuid")
	return id
}
