package scenario_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"zombiezen.com/go/sqlite"
	"zombiezen.com/go/sqlite/sqlitex"

	"rowdrop"
)

func relFiles(t *testing.T, root string) []string {
	t.Helper()
	var out []string
	filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			rel, _ := filepath.Rel(root, p)
			out = append(out, filepath.ToSlash(rel))
		}
		return nil
	})
	sort.Strings(out)
	return out
}

// A USB stick: the folder round-trips through a real FAT32 filesystem image
// (mtools; this machine cannot loop-mount), comes back under another path,
// and the devices carry on. A pulled stick leaves a temp file behind and
// the folder gone; the export waits in the outbox and is published later.
func TestUSBStickFAT32RoundTripAndPulledStick(t *testing.T) {
	for _, tool := range []string{"mkfs.vfat", "mcopy", "mdir"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed (apt-get install dosfstools mtools; .ci/run does)", tool)
		}
	}
	ctx := context.Background()
	root := t.TempDir()
	stick := filepath.Join(root, "stick-a")
	os.MkdirAll(stick, 0o755)
	a := newDevice(t, stick, "a", false)
	for i := 0; i < 30; i++ {
		a.exec("INSERT INTO notes(id,title) VALUES(?,?)", "note-ü-"+string(rune('a'+i%26))+strings.Repeat("x", i), "t")
		a.sync()
	}
	before := relFiles(t, stick)
	for _, f := range before {
		if strings.ContainsAny(f, `:*?"<>|\`) || strings.ToLower(f) != f {
			t.Fatalf("name not FAT-safe: %s", f)
		}
	}
	img := filepath.Join(root, "stick.img")
	run := func(name string, args ...string) {
		t.Helper()
		cmd := exec.Command(name, args...)
		cmd.Env = append(os.Environ(), "MTOOLS_SKIP_CHECK=1", "MTOOLS_NO_VFAT=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%s %v: %v\n%s", name, args, err, out)
		}
	}
	run("truncate", "-s", "64M", img)
	run("mkfs.vfat", "-F", "32", img)
	// Copy onto the FAT32 image and back into a different path.
	ents, _ := os.ReadDir(stick)
	for _, e := range ents {
		run("mcopy", "-s", "-i", img, filepath.Join(stick, e.Name()), "::/")
	}
	back := filepath.Join(root, "media", "STICK")
	os.MkdirAll(back, 0o755)
	run("mcopy", "-s", "-n", "-i", img, "::/*", back)
	after := relFiles(t, back)
	if strings.Join(before, "\n") != strings.Join(after, "\n") {
		t.Fatalf("names changed on FAT32:\nbefore %v\nafter  %v", before, after)
	}
	// Device B reads the stick at its new path.
	b := newDevice(t, back, "b", false)
	b.sync()
	if dump(t, a.db) != dump(t, b.db) {
		t.Fatalf("B did not catch up from the FAT32 copy")
	}
	// A stick mounted under another path, with no --state: rowdrop finds
	// the device's default state by its folder and continues as the same
	// device instead of joining as a new one.
	t.Setenv("XDG_STATE_HOME", filepath.Join(root, "xdg"))
	cdb := filepath.Join(root, "c.db")
	execScript(t, cdb, notesSchema+"INSERT INTO notes(id,title) VALUES('c1','from c');")
	mount1 := filepath.Join(root, "mnt1")
	os.MkdirAll(mount1, 0o755)
	c1, err := rowdrop.Open(ctx, rowdrop.Config{DB: cdb, Folder: mount1})
	if err != nil {
		t.Fatal(err)
	}
	c1.Sync(ctx)
	idC := c1.Identity().Device
	c1.Close()
	mount2 := filepath.Join(root, "mnt2")
	os.Rename(mount1, mount2)
	c2, err := rowdrop.Open(ctx, rowdrop.Config{DB: cdb, Folder: mount2})
	if err != nil {
		t.Fatal(err)
	}
	if c2.Identity().Device != idC {
		t.Fatalf("same stick under another path became a new device %s (was %s)", c2.Identity().Device, idC)
	}
	c2.Close()
	// Pulled mid-write: a temp file of A's is left and then the folder is gone.
	os.WriteFile(filepath.Join(back, a.s.Identity().Device, ".rowdrop-tmp-deadbeef"), []byte("half"), 0o644)
	os.Rename(back, back+".pulled")
	a.exec("UPDATE notes SET title='edited while the stick was out' WHERE id=(SELECT min(id) FROM notes)")
	a.s.Close()
	sa := reopenAt(t, a, back)
	if _, err := sa.Sync(ctx); err == nil || !strings.Contains(err.Error(), back) {
		t.Fatalf("sync without the folder should fail naming it, got %v", err)
	}
	st, _ := sa.Status(ctx)
	if st.Outbox != 1 {
		t.Fatalf("the export should wait in the outbox, outbox=%d", st.Outbox)
	}
	os.Rename(back+".pulled", back)
	if _, err := sa.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(back, a.s.Identity().Device, ".rowdrop-tmp-deadbeef")); err == nil {
		t.Fatal("leftover temp file of this device was not cleaned")
	}
	b.sync()
	if got := dump(t, b.db); !strings.Contains(got, "edited while the stick was out") {
		t.Fatalf("edit made while the stick was out did not arrive:\n%s", got)
	}
}

func reopenAt(t *testing.T, d *device, folder string) *rowdrop.Syncer {
	t.Helper()
	s, err := rowdrop.Open(context.Background(), rowdrop.Config{DB: d.db, Folder: folder, State: filepath.Join(filepath.Dir(d.db), "state"), DeviceName: d.name})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func execScript(t *testing.T, path, script string) {
	t.Helper()
	conn, err := sqlite.OpenConn(path)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if err := sqlitex.ExecuteScript(conn, script, nil); err != nil {
		t.Fatal(err)
	}
}
