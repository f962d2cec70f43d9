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

// The sample config shipped in configs/ passes the strict checks.
func TestSampleConfigIsValid(t *testing.T) {
	if _, err := checkConfigFile(filepath.Join(pkgDir, "..", "..", "configs", "rowdrop.yaml")); err != nil {
		t.Fatal(err)
	}
}

// A config mistake is an error before anything runs: exit status 2, one
// line naming the file, the line and the key with a suggestion, and no
// state directory created.
func TestConfigTypoRefusedBeforeRunning(t *testing.T) {
	dir := t.TempDir()
	d := newDevice(t, t.TempDir(), "a")
	cfg := filepath.Join(dir, "rowdrop.yaml")
	yaml := "databases:\n  - db: " + d.db + "\n    folder: " + d.folder + "\n    state: " + d.state + "\n    exlude: [note_tags]\n"
	if err := os.WriteFile(cfg, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	r := exits(t, 2, "sync", "--config", cfg)
	for _, want := range []string{cfg, "line 5", `"exlude"`, `did you mean "exclude"`} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("stderr %q does not name %s", r.stderr, want)
		}
	}
	if strings.Count(strings.TrimSpace(r.stderr), "\n") != 0 {
		t.Errorf("want one line on stderr, got %q", r.stderr)
	}
	if _, err := os.Stat(d.state); err == nil {
		t.Errorf("a refused config created the state directory")
	}
	exits(t, 2, append([]string{"watch", "--debounce", "-5s"}, d.flags()...)...)
}
