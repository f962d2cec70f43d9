package scenario_test

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rowdrop/rowdrop"
	"github.com/rowdrop/rowdrop/export"
	"github.com/rowdrop/rowdrop/internal/rdfile"
	"github.com/rowdrop/rowdrop/scenario"
)

// A state directory cloned to another machine: both installations publish
// file N under one device id, each into its own copy of the folder; the
// sync tool keeps one and makes a conflict copy of the other. The newer
// installation (the clone) stops publishing with instructions; the older
// carries on; the clone, given a new identity as told, loses nothing.
func TestClonedStateDirectoryDetected(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	fa, fb := filepath.Join(root, "folder-a"), filepath.Join(root, "folder-b")
	os.MkdirAll(fa, 0o755)
	a := scenario.NewSharedDevice(t, fa, "a", scenario.SharedOptions{Journal: "wal"})
	a.Exec("INSERT INTO notes(id,title) VALUES('n1','one')")
	a.Sync()
	a.S.Close()
	// Clone: state directory and database copied to "another machine".
	cloneDir := filepath.Join(root, "clone")
	if out, err := exec.Command("cp", "-a", filepath.Dir(a.DB), cloneDir).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v %s", err, out)
	}
	if out, err := exec.Command("cp", "-a", fa, fb).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v %s", err, out)
	}
	cfg := a.Config()
	cfg.Folder, cfg.DeviceName = fa, a.Name
	sa := a.Open(cfg)
	cloneDB := filepath.Join(cloneDir, "a.db")
	sb, err := rowdrop.Open(ctx, rowdrop.Config{DB: cloneDB, Folder: fb, State: filepath.Join(cloneDir, "state")})
	if err != nil {
		t.Fatal(err)
	}
	defer sb.Close()
	if sa.Identity().Device != sb.Identity().Device || sa.Identity().Install == sb.Identity().Install {
		t.Fatalf("clone should share the device id but get a new install token: %+v %+v", sa.Identity(), sb.Identity())
	}
	// Both edit and publish file 2 into their own folder copy.
	scenario.ExecFile(t, a.DB, "UPDATE notes SET title='from original' WHERE id='n1'")
	scenario.ExecFile(t, cloneDB, "INSERT INTO notes(id,title) VALUES('n2','written on the clone')")
	if _, err := sa.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := sb.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	dev := sa.Identity().Device
	name := rdfile.FileName(2)
	// The sync tool: each side gets the other's file 2 as a conflict copy.
	conflictName := strings.TrimSuffix(name, ".rdc") + ".sync-conflict-20261126-101500-ABCDEFG.rdc"
	scenario.CopyFile(t, filepath.Join(fa, dev, name), filepath.Join(fb, dev, conflictName))
	scenario.CopyFile(t, filepath.Join(fb, dev, name), filepath.Join(fa, dev, conflictName))
	// The clone (newer) refuses to publish, saying what to do.
	scenario.ExecFile(t, cloneDB, "INSERT INTO notes(id,title) VALUES('n3','also on the clone')")
	_, err = sb.Sync(ctx)
	if !errors.Is(err, export.ErrDuplicateIdentity) || !strings.Contains(err.Error(), "mv ") {
		t.Fatalf("clone should stop publishing with instructions, got %v", err)
	}
	// The original carries on.
	scenario.ExecFile(t, a.DB, "UPDATE notes SET title='original again' WHERE id='n1'")
	if _, err := sa.Sync(ctx); err != nil {
		t.Fatalf("the older installation should carry on: %v", err)
	}
	st, _ := sa.Status(ctx)
	reported := false
	for _, f := range st.Files {
		if strings.Contains(f.Path, "sync-conflict") {
			reported = true
		}
	}
	if !reported {
		t.Fatalf("conflict copy not reported: %+v", st.Files)
	}
	// The clone follows the instructions: new identity; its rows arrive.
	sb.Close()
	os.Rename(filepath.Join(cloneDir, "state"), filepath.Join(cloneDir, "state.old"))
	scenario.CopyDir(t, fa, fb) // the folders sync up again
	sb2, err := rowdrop.Open(ctx, rowdrop.Config{DB: cloneDB, Folder: fb, State: filepath.Join(cloneDir, "state")})
	if err != nil {
		t.Fatal(err)
	}
	defer sb2.Close()
	if _, err := sb2.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	scenario.CopyDir(t, fb, fa)
	if _, err := sa.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	got := scenario.DumpNotes(t, a.DB)
	for _, want := range []string{`"n2"|"written on the clone"`, `"n3"|"also on the clone"`, `"n1"|"original again"`} {
		if !strings.Contains(got, want) {
			t.Fatalf("missing %s after the clone rejoined:\n%s", want, got)
		}
	}
}
