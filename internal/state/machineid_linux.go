//go:build linux

package state

import (
	"os"
	"strings"
)

// machineID is systemd's /etc/machine-id ("" where there is none).
func machineID() string {
	mid, _ := os.ReadFile("/etc/machine-id")
	return strings.TrimSpace(string(mid))
}
