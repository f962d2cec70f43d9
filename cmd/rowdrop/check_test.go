package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestCheckCommand: `rowdrop check` on a folder two real syncs made exits
// 0; after damage it exits 3 with the verdict first and one line per
// problem naming the file; --json says the same; an unreadable folder is
// exit 1, a missing --folder exit 2; no database or state directory is
// needed and nothing in the folder changes.
func TestCheckCommand(t *testing.T) {
	folder := t.TempDir()
	a, b := newDevice(t, folder, "alpha"), newDevice(t, folder, "beta")
	a.exec(t, "INSERT INTO notes(id,title) VALUES('n1','hello')")
	a.sync(t)
	b.exec(t, "INSERT INTO notes(id,title) VALUES('n2','world')")
	b.sync(t)
	a.sync(t)
	ok(t, append([]string{"snapshot"}, a.flags()...)...)

	// A clean environment: no config file, no state directory around.
	t.Setenv("XDG_CONFIG_HOME", t.TempDir())
	t.Setenv("XDG_STATE_HOME", t.TempDir())
	for _, args := range [][]string{{"check", "--folder", folder}, {"check", "--read-data", "--folder", folder}} {
		r := ok(t, args...)
		if !strings.HasPrefix(r.stdout, "no problems: 2 devices") || strings.Count(r.stdout, "\n") != 1 {
			t.Fatalf("%v: %q", args, r.stdout)
		}
	}
	alphaID := a.status(t)["device"].(string)
	damaged := filepath.Join(folder, alphaID, "0000000001.rdc")
	data, err := os.ReadFile(damaged)
	if err != nil {
		t.Fatal(err)
	}
	data[len(data)-2] ^= 1
	if err := os.WriteFile(damaged, data, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(folder, alphaID, "notes.txt"), []byte("hi"), 0o644); err != nil {
		t.Fatal(err)
	}
	before := listing(t, folder)

	r := runRD(t, "check", "--folder", folder)
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if r.code != 3 || len(lines) != 3 || !strings.HasPrefix(lines[0], "2 problems: 2 devices") || r.stderr != "" {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
	}
	if !strings.Contains(r.stdout, alphaID+"/0000000001.rdc: payload checksum mismatch") || !strings.Contains(r.stdout, alphaID+"/notes.txt") {
		t.Fatalf("the problems do not name the files:\n%s", r.stdout)
	}

	r = runRD(t, "check", "--json", "--read-data", "--folder", folder)
	var rep struct {
		OK       bool   `json:"ok"`
		Summary  string `json:"summary"`
		ReadData bool   `json:"read_data"`
		Problems []struct {
			File, Device, Kind, What, Fix string
		} `json:"problems"`
		Devices []struct {
			ID   string `json:"id"`
			Name string `json:"name"`
		} `json:"devices"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
		t.Fatalf("check --json: %v\n%s", err, r.stdout)
	}
	if r.code != 3 || rep.OK || !rep.ReadData || len(rep.Problems) != 2 || len(rep.Devices) != 2 {
		t.Fatalf("exit %d: %+v", r.code, rep)
	}
	for _, p := range rep.Problems {
		if p.Device != alphaID || p.Kind == "" || p.Fix == "" || !strings.HasPrefix(p.File, alphaID+"/") {
			t.Fatalf("problem %+v", p)
		}
	}
	if after := listing(t, folder); after != before {
		t.Fatalf("check changed the folder:\n%s\n%s", before, after)
	}

	// ROWDROP_FOLDER is the same as --folder.
	t.Setenv("ROWDROP_FOLDER", folder)
	if r := runRD(t, "check"); r.code != 3 {
		t.Fatalf("with ROWDROP_FOLDER: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	os.Unsetenv("ROWDROP_FOLDER")

	r = runRD(t, "check", "--folder", filepath.Join(folder, "missing"))
	if r.code != 1 || !strings.Contains(r.stderr, "missing") || r.stdout != "" {
		t.Fatalf("unreadable folder: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if r := runRD(t, "check"); r.code != 2 || !strings.Contains(r.stderr, "--folder") {
		t.Fatalf("no folder: exit %d\n%s", r.code, r.stderr)
	}
	if r := runRD(t, "check", "--folder", folder, "extra"); r.code != 2 {
		t.Fatalf("extra argument: exit %d\n%s", r.code, r.stderr)
	}
	if r := ok(t, "check", "-h"); !strings.Contains(r.stdout, "--read-data") && !strings.Contains(r.stdout, "-read-data") {
		t.Fatalf("check -h:\n%s", r.stdout)
	}
}

// listing is every path under dir with its size and modification time.
func listing(t *testing.T, dir string) string {
	t.Helper()
	var b strings.Builder
	err := filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		fmt.Fprintf(&b, "%s %d %v\n", p, info.Size(), info.ModTime().UnixNano())
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return b.String()
}
