package fsx

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func entries(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		out = append(out, e.Name())
	}
	return out
}

func TestWriteFunc(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "0000000001.rdc")
	var tmpSeen string
	err := WriteFunc(p, func(w io.Writer) error {
		// While being written the file exists only under a temp name
		// that readers ignore.
		names := entries(t, dir)
		if len(names) != 1 || !IsTemp(names[0]) || !strings.HasPrefix(names[0], ".") {
			t.Fatalf("during write: %v", names)
		}
		tmpSeen = names[0]
		_, err := w.Write([]byte("hello"))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(p); string(b) != "hello" {
		t.Fatalf("content %q", b)
	}
	if names := entries(t, dir); len(names) != 1 || names[0] != "0000000001.rdc" {
		t.Fatalf("after write: %v (temp was %s)", names, tmpSeen)
	}
	// Written once: a second write under the same name is refused and
	// changes nothing.
	err = WriteFunc(p, func(w io.Writer) error { _, err := w.Write([]byte("other")); return err })
	if !errors.Is(err, os.ErrExist) {
		t.Fatalf("second write: %v", err)
	}
	if b, _ := os.ReadFile(p); string(b) != "hello" {
		t.Fatalf("content after refused write %q", b)
	}
	if names := entries(t, dir); len(names) != 1 {
		t.Fatalf("leftovers: %v", names)
	}
	// A failing writer leaves nothing behind.
	boom := errors.New("boom")
	q := filepath.Join(dir, "0000000002.rdc")
	if err := WriteFunc(q, func(w io.Writer) error { w.Write([]byte("half")); return boom }); !errors.Is(err, boom) {
		t.Fatalf("failing writer: %v", err)
	}
	if names := entries(t, dir); len(names) != 1 {
		t.Fatalf("after a failed write: %v", names)
	}
	// A missing directory is reported with its name.
	err = WriteFunc(filepath.Join(dir, "gone", "x"), func(io.Writer) error { return nil })
	if err == nil || !strings.Contains(err.Error(), filepath.Join(dir, "gone")) {
		t.Fatalf("missing directory: %v", err)
	}
}

func TestIsTemp(t *testing.T) {
	for name, want := range map[string]bool{
		TempPrefix + "0123456789ab": true,
		TempPrefix + "payload-1":    true,
		TempPrefix:                  false,
		"0000000001.rdc":            false,
		".rowdrop-tm":               false,
		"x" + TempPrefix + "1":      false,
	} {
		if IsTemp(name) != want {
			t.Errorf("IsTemp(%q) = %t", name, !want)
		}
	}
}

func TestPublish(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "outbox", "0000000001.rdc")
	os.MkdirAll(filepath.Dir(src), 0o755)
	if err := os.WriteFile(src, bytes.Repeat([]byte("abc"), 50000), 0o644); err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(dir, "folder", "dev", "0000000001.rdc") // parent created on demand
	if err := Publish(src, dst); err != nil {
		t.Fatal(err)
	}
	if same, err := SameContent(src, dst); err != nil || !same {
		t.Fatalf("published copy differs: %v", err)
	}
	// Retrying after a crash that happened after the copy is harmless.
	if err := Publish(src, dst); err != nil {
		t.Fatalf("republish of identical bytes: %v", err)
	}
	// Different bytes under the same name: refused, nothing touched.
	other := filepath.Join(dir, "outbox", "other")
	os.WriteFile(other, []byte("different"), 0o644)
	if err := Publish(other, dst); !errors.Is(err, os.ErrExist) {
		t.Fatalf("publish over different content: %v", err)
	}
	if same, _ := SameContent(src, dst); !same {
		t.Fatal("existing file modified")
	}
	if names := entries(t, filepath.Dir(dst)); len(names) != 1 {
		t.Fatalf("folder holds %v", names)
	}
}

func TestSameContent(t *testing.T) {
	dir := t.TempDir()
	w := func(n, s string) string {
		p := filepath.Join(dir, n)
		os.WriteFile(p, []byte(s), 0o644)
		return p
	}
	big := strings.Repeat("x", 200<<10)
	a, b := w("a", big), w("b", big)
	c := w("c", big[:len(big)-1]+"y") // same size, last byte differs
	d := w("d", big+"z")
	e, f := w("e", ""), w("f", "")
	for _, tc := range []struct {
		x, y string
		want bool
	}{{a, b, true}, {a, c, false}, {a, d, false}, {e, f, true}, {a, e, false}} {
		if got, err := SameContent(tc.x, tc.y); err != nil || got != tc.want {
			t.Errorf("SameContent(%s, %s) = %t, %v", filepath.Base(tc.x), filepath.Base(tc.y), got, err)
		}
	}
	if _, err := SameContent(a, filepath.Join(dir, "missing")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
}

func TestReplace(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "state")
	for _, s := range []string{"one", "two, longer"} {
		if err := Replace(p, []byte(s)); err != nil {
			t.Fatal(err)
		}
		if b, _ := os.ReadFile(p); string(b) != s {
			t.Fatalf("content %q, want %q", b, s)
		}
	}
	if names := entries(t, dir); len(names) != 1 {
		t.Fatalf("leftovers: %v", names)
	}
}

func TestSyncDir(t *testing.T) {
	if err := SyncDir(t.TempDir()); err != nil {
		t.Fatal(err)
	}
	if err := SyncDir(filepath.Join(t.TempDir(), "missing")); err == nil {
		t.Fatal("SyncDir of a missing directory succeeded")
	}
}

// A mount point is told by its device number; sticks are mounted below
// /media, /run/media, /mnt or /Volumes.
func TestMountPoints(t *testing.T) {
	if _, err := os.Stat("/proc/self"); err == nil && !IsMountPoint("/proc") {
		t.Error("/proc is not seen as a mount point")
	}
	dir := t.TempDir()
	if IsMountPoint(dir) || IsMountPoint(filepath.Join(dir, "missing")) {
		t.Errorf("a plain directory %s is seen as a mount point", dir)
	}
	for dir, want := range map[string]bool{"/media/alice/STICK": true, "/run/media/bob/SD": true, "/mnt/usb": true,
		"/Volumes/STICK": true, "/media": false, "/home/alice/media": false, "/mediaX/a": false} {
		if got := UnderRemovableRoot(dir); got != want {
			t.Errorf("UnderRemovableRoot(%s) = %v, want %v", dir, got, want)
		}
	}
}
