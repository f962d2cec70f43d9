package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A typo'd --folder is refused with one line naming it and --create-folder,
// and leaves no state directory behind; --create-folder creates it.
func TestMissingFolderCLI(t *testing.T) {
	dir := t.TempDir()
	d := newDevice(t, filepath.Join(dir, "Dropbx", "notes"), "a")
	r := runRD(t, append([]string{"sync"}, d.flags()...)...)
	if r.code != 1 || strings.Count(strings.TrimSpace(r.stderr), "\n") != 0 ||
		!strings.Contains(r.stderr, d.folder) || !strings.Contains(r.stderr, "--create-folder") {
		t.Fatalf("sync with a missing folder: exit %d, stderr %q", r.code, r.stderr)
	}
	if _, err := os.Stat(d.state); err == nil {
		t.Fatalf("a refused sync created the state directory %s", d.state)
	}
	ok(t, append([]string{"sync", "--create-folder"}, d.flags()...)...)
	if st, err := os.Stat(d.folder); err != nil || !st.IsDir() {
		t.Fatalf("--create-folder did not create %s: %v", d.folder, err)
	}
}
