package scenario_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"zombiezen.com/go/sqlite"

	"github.com/rowdrop/rowdrop/export"
	"github.com/rowdrop/rowdrop/internal/rdfile"
	"github.com/rowdrop/rowdrop/scenario"
)

// A split identity: C's state directory is cloned (E); while apart both
// publish the same sequence number with different contents; A and B get
// C's, D gets the clone's. The sync tool then keeps one content under the
// name and the other as a conflict copy, everywhere. Following the advice
// rowdrop prints (the clone takes a new identity), all devices converge:
// every device merges both contents of the split file.
func TestSplitIdentityConverges(t *testing.T) {
	ctx := context.Background()
	w := scenario.NewWorld(t, scenario.NotesSchema)
	var devs []*scenario.Device
	for _, n := range []string{"a", "b", "c", "d", "e"} {
		devs = append(devs, w.AddDevice(scenario.Options{Name: n, Initialised: true}))
	}
	a, b, c, d, e := devs[0], devs[1], devs[2], devs[3], devs[4]
	w.Devs = devs[:4] // e is not a device yet: it becomes c's clone
	a.Exec("INSERT INTO notes(id,title) VALUES('n1','from a')")
	w.Quiesce(5)
	// Clone c's database and state directory into e's place.
	c.Reopen(func() {
		e.Reopen(func() {
			e.App.Close()
			os.RemoveAll(e.State)
			for _, p := range [][2]string{{c.DB, e.DB}, {c.State, e.State}} {
				if out, err := exec.Command("cp", "-a", p[0], p[1]).CombinedOutput(); err != nil {
					t.Fatalf("cp: %v %s", err, out)
				}
			}
			os.RemoveAll(e.Folder)
			if out, err := exec.Command("cp", "-a", c.Folder, e.Folder).CombinedOutput(); err != nil {
				t.Fatalf("cp: %v %s", err, out)
			}
			conn, err := sqlite.OpenConn(e.DB)
			if err != nil {
				t.Fatal(err)
			}
			e.App = conn
		})
	})
	if e.ID != c.ID {
		t.Fatalf("the clone should share c's device id: %s %s", e.ID, c.ID)
	}
	// Apart: both publish the same sequence number.
	w.Tick(1000)
	c.Exec("UPDATE notes SET title='from c' WHERE id='n1'")
	c.Export()
	w.Tick(1000)
	e.Exec("UPDATE notes SET title='from the clone' WHERE id='n1'")
	e.Exec("INSERT INTO notes(id,title) VALUES('n2','only on the clone')")
	e.Export()
	seq := c.Published()[len(c.Published())-1]
	if e.Published()[len(e.Published())-1] != seq {
		t.Fatalf("both should have published file %d", seq)
	}
	for _, to := range []*scenario.Device{a, b} {
		w.Deliver(c, seq, to)
		to.Import()
	}
	w.Deliver(e, seq, d)
	d.Import()
	// The sync tool meets both contents: c's stays under the name, the
	// clone's becomes a conflict copy, in every folder.
	name := rdfile.FileName(seq)
	copyName := strings.TrimSuffix(name, rdfile.Ext) + ".sync-conflict-20270115-101500-ABCDEFG" + rdfile.Ext
	cloneFile := filepath.Join(t.TempDir(), "clone.rdc")
	scenario.CopyFile(t, filepath.Join(e.Folder, c.ID, name), cloneFile)
	cFile := filepath.Join(c.Folder, c.ID, name)
	for _, to := range devs {
		dir := filepath.Join(to.Folder, c.ID)
		os.MkdirAll(dir, 0o755)
		if to != c {
			scenario.CopyFile(t, cFile, filepath.Join(dir, name))
		}
		scenario.CopyFile(t, cloneFile, filepath.Join(dir, copyName))
	}
	// Everyone syncs; the clone is told to take a new identity.
	for _, x := range devs[:4] {
		x.Sync()
	}
	_, err := e.S.Sync(ctx)
	if err == nil || !strings.Contains(err.Error(), "mv ") {
		t.Fatalf("the clone should be told to take a new identity, got %v", err)
	}
	if !strings.Contains(err.Error(), export.ErrDuplicateIdentity.Error()) {
		t.Fatalf("want ErrDuplicateIdentity, got %v", err)
	}
	t.Logf("the clone is told: %v", err)
	// The others' status says what the split means for them.
	for _, x := range []*scenario.Device{a, d} {
		told := false
		for _, f := range x.Status().Files {
			if strings.Contains(f.Path, "sync-conflict") && strings.Contains(f.Reason, "both contents are merged on this device") && strings.Contains(f.Reason, "new identity") {
				told = true
			}
		}
		if !told {
			t.Fatalf("%s: status should say the split file's contents are both merged and who must act: %+v", x.Name, x.Status().Files)
		}
	}
	// It follows the advice.
	e.Reopen(func() {
		if err := os.Rename(e.State, e.State+".old"); err != nil {
			t.Fatal(err)
		}
	})
	w.Devs = devs
	w.Quiesce(8)
	w.AssertConverged()
	for _, x := range devs {
		if got := x.Value("SELECT title FROM notes WHERE id='n2'"); got != "only on the clone" {
			t.Fatalf("%s: the clone's row is missing: %q\n%s", x.Name, got, x.Dump())
		}
	}
}
