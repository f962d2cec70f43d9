package scenario_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rowdrop/rowdrop"
	"github.com/rowdrop/rowdrop/scenario"
)

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
	a := scenario.NewSharedDevice(t, stick, "a", scenario.SharedOptions{Journal: "wal"})
	for i := 0; i < 30; i++ {
		a.Exec("INSERT INTO notes(id,title) VALUES(?,?)", "note-ü-"+string(rune('a'+i%26))+strings.Repeat("x", i), "t")
		a.Sync()
	}
	before := scenario.RelFiles(t, stick)
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
	after := scenario.RelFiles(t, back)
	if strings.Join(before, "\n") != strings.Join(after, "\n") {
		t.Fatalf("names changed on FAT32:\nbefore %v\nafter  %v", before, after)
	}
	// Device B reads the stick at its new path.
	b := scenario.NewSharedDevice(t, back, "b", scenario.SharedOptions{Journal: "wal"})
	b.Sync()
	if scenario.DumpNotes(t, a.DB) != scenario.DumpNotes(t, b.DB) {
		t.Fatalf("B did not catch up from the FAT32 copy")
	}
	// A stick mounted under another path, with no --state: rowdrop finds
	// the device's default state by its folder and continues as the same
	// device instead of joining as a new one.
	t.Setenv("XDG_STATE_HOME", filepath.Join(root, "xdg"))
	cdb := filepath.Join(root, "c.db")
	scenario.ScriptFile(t, cdb, scenario.NotesSchema+"INSERT INTO notes(id,title) VALUES('c1','from c');")
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
	os.WriteFile(filepath.Join(back, a.S.Identity().Device, ".rowdrop-tmp-deadbeef"), []byte("half"), 0o644)
	os.Rename(back, back+".pulled")
	a.Exec("UPDATE notes SET title='edited while the stick was out' WHERE id=(SELECT min(id) FROM notes)")
	a.S.Close()
	cfg := a.Config()
	cfg.Folder, cfg.DeviceName = back, a.Name
	sa := a.Open(cfg)
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
	if _, err := os.Stat(filepath.Join(back, a.S.Identity().Device, ".rowdrop-tmp-deadbeef")); err == nil {
		t.Fatal("leftover temp file of this device was not cleaned")
	}
	b.Sync()
	if got := scenario.DumpNotes(t, b.DB); !strings.Contains(got, "edited while the stick was out") {
		t.Fatalf("edit made while the stick was out did not arrive:\n%s", got)
	}
}
