package check

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rowdrop/rowdrop/internal/folder"
	"github.com/rowdrop/rowdrop/internal/rdfile"
)

func TestOriginalName(t *testing.T) {
	for in, want := range map[string]string{
		"0000000003.sync-conflict-20261126-101500-ABCDEFG.rdc":      "0000000003.rdc",
		"snap-0000000001.sync-conflict-20261126-101500-ABCDEFG.rds": "snap-0000000001.rds",
		"ack.sync-conflict-20261126-101500-ABCDEFG.json":            "ack.json",
		"0000000003 (Ann's conflicted copy 2026-11-26).rdc":         "0000000003.rdc",
		"ack (Ann's conflicted copy 2026-11-26).json":               "ack.json",
	} {
		if got := originalName(in); got != want {
			t.Errorf("originalName(%q) = %q, want %q", in, got, want)
		}
	}
}

// An empty folder is clean; a folder holding only names rowdrop ignores
// (artefacts, top-level files, other directories) is clean too.
func TestEmptyAndIgnoredNames(t *testing.T) {
	dir := t.TempDir()
	for _, p := range []string{".stfolder/x", "README.txt", "Photos/a.jpg", "abcdefghijklmnop/.DS_Store", "abcdefghijklmnop/.rowdrop-tmp-0123456789ab"} {
		os.MkdirAll(filepath.Join(dir, filepath.Dir(p)), 0o755)
		os.WriteFile(filepath.Join(dir, p), []byte("x"), 0o644)
	}
	r, err := Run(context.Background(), folder.New(dir, rdfile.Limits{}), Options{ReadData: true})
	if err != nil {
		t.Fatal(err)
	}
	if !r.OK || len(r.Problems) != 0 || !strings.HasPrefix(r.Summary, "no problems: 1 device, 0 changesets") {
		t.Fatalf("%+v", r)
	}
}

// A cancelled check stops with the context's error.
func TestCancelled(t *testing.T) {
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "abcdefghijklmnop"), 0o755)
	os.WriteFile(filepath.Join(dir, "abcdefghijklmnop", rdfile.FileName(1)), []byte("x"), 0o644)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Run(ctx, folder.New(dir, rdfile.Limits{}), Options{}); err != context.Canceled {
		t.Fatalf("got %v", err)
	}
}
