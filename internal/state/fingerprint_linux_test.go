package state

import (
	"fmt"
	"os"
	"strings"
	"syscall"
	"testing"
)

// The fingerprint on Linux must stay the string it was before the
// platform split, or every existing installation would look moved.
func TestMachineFingerprintUnchangedOnLinux(t *testing.T) {
	dir := t.TempDir()
	host, _ := os.Hostname()
	mid, _ := os.ReadFile("/etc/machine-id")
	st, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf("%s|%s|%d", host, strings.TrimSpace(string(mid)), st.Sys().(*syscall.Stat_t).Ino)
	if got := machineFingerprint(dir); got != want {
		t.Fatalf("machineFingerprint = %q, want %q", got, want)
	}
}
