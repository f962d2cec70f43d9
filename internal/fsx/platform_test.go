package fsx

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"testing"
)

func TestTryLockExcludesSecondHolder(t *testing.T) {
	p := filepath.Join(t.TempDir(), "lock")
	a, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	if err := TryLock(a); err != nil {
		t.Fatalf("first lock: %v", err)
	}
	b, err := os.OpenFile(p, os.O_RDWR, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if err := TryLock(b); !errors.Is(err, ErrLockHeld) {
		t.Fatalf("second lock while held: %v, want ErrLockHeld", err)
	}
	a.Close()
	if err := TryLock(b); err != nil {
		t.Fatalf("lock after the holder closed: %v", err)
	}
}

func TestFreeBytes(t *testing.T) {
	n, err := FreeBytes(t.TempDir())
	if err != nil || n <= 0 {
		t.Fatalf("FreeBytes = %d, %v", n, err)
	}
	if _, err := FreeBytes(filepath.Join(t.TempDir(), "missing")); err == nil {
		t.Fatal("FreeBytes of a missing directory: no error")
	}
}

func TestRenameOverOpenReader(t *testing.T) {
	dir := t.TempDir()
	dst := filepath.Join(dir, "ack.json")
	if err := os.WriteFile(dst, []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	r, err := OpenRead(dst)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if err := Replace(dst, []byte("new")); err != nil {
		t.Fatalf("replace while a reader has it open: %v", err)
	}
	got, _ := os.ReadFile(dst)
	if string(got) != "new" {
		t.Fatalf("after replace: %q", got)
	}
	old := make([]byte, 3)
	if _, err := r.Read(old); err != nil || string(old) != "old" {
		t.Fatalf("the open reader reads %q, %v; want the old content", old, err)
	}
}

func TestWriteFuncNeverReplaces(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "1.rdc")
	if err := os.WriteFile(p, []byte("first"), 0o644); err != nil {
		t.Fatal(err)
	}
	err := WriteFunc(p, func(w io.Writer) error { _, err := w.Write([]byte("second")); return err })
	if !errors.Is(err, os.ErrExist) {
		t.Fatalf("WriteFunc over an existing name: %v, want ErrExist", err)
	}
	got, _ := os.ReadFile(p)
	if string(got) != "first" {
		t.Fatalf("existing file changed to %q", got)
	}
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if IsTemp(e.Name()) {
			t.Fatalf("temporary file %s left behind", e.Name())
		}
	}
}

func TestPathKey(t *testing.T) {
	a, b := filepath.Join("/x", "Notes.db"), filepath.Join("/x", "notes.db")
	want := runtime.GOOS == "darwin" || runtime.GOOS == "windows"
	if got := SamePath(a, b); got != want {
		t.Fatalf("SamePath(%s, %s) = %v on %s, want %v", a, b, got, runtime.GOOS, want)
	}
	if !SamePath("/x/y/../notes.db", "/x/notes.db") {
		t.Fatal("SamePath does not clean")
	}
}
