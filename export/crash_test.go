package export

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rowdrop/rowdrop/internal/fsx"
	"github.com/rowdrop/rowdrop/internal/rdfile"
	"github.com/rowdrop/rowdrop/internal/state"
)

// Crash safety of the sequence: whatever instant an export is interrupted
// at, the next export neither skips nor reuses a sequence number, the
// folder never holds a file the base copy does not account for, and every
// file in the folder describes exactly base(n-1) -> base(n).

const crashSchema = "CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT);"

// simulateCrash runs an export that dies (panics) at point, then reopens
// the state directory as a restarted process would.
func simulateCrash(t *testing.T, e *env, point string) {
	t.Helper()
	crashHook = func(p string) error {
		if p == point {
			panic("simulated crash at " + p)
		}
		return nil
	}
	defer func() { crashHook = nil }()
	func() {
		defer func() {
			if r := recover(); r == nil {
				t.Fatalf("export did not reach %q", point)
			}
		}()
		e.exp.Export(context.Background(), e.tables())
	}()
	// A crashed process leaves its transaction open; the restarted one
	// finds it rolled back. Closing without commit does exactly that.
	e.close()
	e.open(false)
}

func outbox(t *testing.T, e *env) []string {
	t.Helper()
	ents, err := os.ReadDir(e.st.Outbox())
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, ent := range ents {
		out = append(out, ent.Name())
	}
	return out
}

// checkChain verifies that the folder holds files 1..n of the device and
// that applying them in order to an empty copy of the schema gives live.
func checkChain(t *testing.T, e *env, empty string, n int) {
	t.Helper()
	files := folderFiles(t, e.folder)
	if len(files) != n {
		t.Fatalf("folder holds %v, want %d files", files, n)
	}
	replica := filepath.Join(e.dir, "chain.db")
	snapshotDB(t, empty, replica)
	for i, rel := range files {
		if want := rdfile.RelPath(e.exp.ID.Device, uint64(i+1)); rel != want {
			t.Fatalf("file %d is %s, want %s (a sequence number skipped or reused)", i+1, rel, want)
		}
		h, _, _ := readFile(t, filepath.Join(e.folder, rel))
		if h.Seq != uint64(i+1) {
			t.Fatalf("%s: header seq %d", rel, h.Seq)
		}
		applyFile(t, replica, filepath.Join(e.folder, rel))
	}
	tabs := e.tables()
	if r, l := dumpTables(t, replica, tabs), dumpTables(t, e.live, tabs); r != l {
		t.Fatalf("the files' changes do not add up to live:\nreplica:\n%s\nlive:\n%s", r, l)
	}
	if b, l := dumpTables(t, filepath.Join(e.st.Path, "base.db"), tabs), dumpTables(t, e.live, tabs); b != l {
		t.Fatalf("base copy differs from live")
	}
}

func TestCrashAfterBuildBeforeCommit(t *testing.T) {
	e := newEnv(t, envOpts{schema: crashSchema})
	empty := filepath.Join(e.dir, "empty.db")
	snapshotDB(t, e.live, empty)
	e.exec("INSERT INTO t VALUES(1, 'a')")
	e.export()
	e.exec("INSERT INTO t VALUES(2, 'b')")
	simulateCrash(t, e, "built")
	// The crash left file 2 in the outbox, but the base copy and next_seq
	// never moved: it must not be published.
	if got := outbox(t, e); len(got) != 1 || got[0] != rdfile.FileName(2) {
		t.Fatalf("outbox after the crash: %v", got)
	}
	if n := stateInt(t, e.st, state.KeyNextSeq); n != 2 {
		t.Fatalf("next_seq = %d after a crash before the commit", n)
	}
	// Edits made after the crash join the same, not yet published, file 2.
	e.exec("UPDATE t SET v='a2' WHERE id=1")
	r := e.export()
	if r.Seq != 2 || r.Changes != 2 {
		t.Fatalf("export after the crash: %+v, want seq 2 with both edits", r)
	}
	if got := outbox(t, e); len(got) != 0 {
		t.Fatalf("outbox not empty: %v", got)
	}
	checkChain(t, e, empty, 2)
}

func TestCrashAfterCommitBeforePublish(t *testing.T) {
	e := newEnv(t, envOpts{schema: crashSchema})
	empty := filepath.Join(e.dir, "empty.db")
	snapshotDB(t, e.live, empty)
	e.exec("INSERT INTO t VALUES(1, 'a')")
	simulateCrash(t, e, "advanced")
	if got := outbox(t, e); len(got) != 1 || got[0] != rdfile.FileName(1) {
		t.Fatalf("outbox after the crash: %v", got)
	}
	if files := folderFiles(t, e.folder); len(files) != 0 {
		t.Fatalf("folder after the crash: %v", files)
	}
	// Nothing new changed: the restarted export publishes file 1 anyway.
	r := e.export()
	if r.Mode != ModeNone || r.File == "" || r.Pending {
		t.Fatalf("export after the crash: %+v", r)
	}
	e.exec("INSERT INTO t VALUES(2, 'b')")
	if r := e.export(); r.Seq != 2 {
		t.Fatalf("next export: %+v", r)
	}
	checkChain(t, e, empty, 2)
}

// A crash between copying into the folder and removing the outbox entry:
// the same bytes are already there, so publishing again is a no-op.
func TestCrashDuringPublish(t *testing.T) {
	e := newEnv(t, envOpts{schema: crashSchema})
	empty := filepath.Join(e.dir, "empty.db")
	snapshotDB(t, e.live, empty)
	e.exec("INSERT INTO t VALUES(1, 'a')")
	simulateCrash(t, e, "advanced")
	src := filepath.Join(e.st.Outbox(), rdfile.FileName(1))
	dst := filepath.Join(e.folder, e.exp.ID.Device, rdfile.FileName(1))
	if err := fsx.Publish(src, dst); err != nil {
		t.Fatal(err)
	}
	// ...and a temp file of another interrupted copy, in the folder and
	// in the outbox, plus capture leftovers in the state directory.
	for _, p := range []string{
		filepath.Join(e.folder, e.exp.ID.Device, fsx.TempPrefix+"0123456789ab"),
		filepath.Join(e.st.Outbox(), fsx.TempPrefix+"payload-1"),
		filepath.Join(e.st.Path, ".capture-123"),
		filepath.Join(e.st.Path, ".export-123"),
	} {
		if err := os.WriteFile(p, []byte("partial"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	e.exec("INSERT INTO t VALUES(2, 'b')")
	if r := e.export(); r.Seq != 2 || r.Pending {
		t.Fatalf("export: %+v", r)
	}
	checkChain(t, e, empty, 2) // also fails on the leftover temp file
	if got := outbox(t, e); len(got) != 0 {
		t.Fatalf("outbox: %v", got)
	}
	ents, _ := os.ReadDir(e.st.Path)
	for _, ent := range ents {
		if strings.HasPrefix(ent.Name(), ".") {
			t.Errorf("leftover in the state directory: %s", ent.Name())
		}
	}
}

// A failure inside the base transaction rolls everything back: no file,
// no sequence number used, base unchanged.
func TestFailureInsideBaseTransaction(t *testing.T) {
	e := newEnv(t, envOpts{schema: crashSchema})
	empty := filepath.Join(e.dir, "empty.db")
	snapshotDB(t, e.live, empty)
	e.exec("INSERT INTO t VALUES(1, 'a')")
	e.export()
	basePath := filepath.Join(e.st.Path, "base.db")
	before := dumpTables(t, basePath, e.tables())
	e.exec("INSERT INTO t VALUES(2, 'b'); UPDATE t SET v='x' WHERE id=1;")
	boom := errors.New("disk on fire")
	crashHook = func(p string) error {
		if p == "advancing" {
			return boom
		}
		return nil
	}
	_, err := e.exp.Export(context.Background(), e.tables())
	crashHook = nil
	if !errors.Is(err, boom) {
		t.Fatalf("export: %v", err)
	}
	if after := dumpTables(t, basePath, e.tables()); after != before {
		t.Fatalf("base copy changed by a failed export")
	}
	if n := stateInt(t, e.st, state.KeyNextSeq); n != 2 {
		t.Fatalf("next_seq = %d", n)
	}
	if got := outbox(t, e); len(got) != 0 {
		t.Fatalf("outbox after a failed export: %v", got)
	}
	if r := e.export(); r.Seq != 2 || r.Changes != 2 {
		t.Fatalf("retry: %+v", r)
	}
	checkChain(t, e, empty, 2)
}

// The folder disappears (a pulled USB stick): files wait in the outbox,
// the error names the folder, and they are published in order when it
// comes back, even if nothing else changed.
func TestMissingFolderThenBack(t *testing.T) {
	e := newEnv(t, envOpts{schema: crashSchema})
	empty := filepath.Join(e.dir, "empty.db")
	snapshotDB(t, e.live, empty)
	e.exec("INSERT INTO t VALUES(1, 'a')")
	e.export()
	pulled := e.folder + ".away" // the stick, out of the machine
	if err := os.Rename(e.folder, pulled); err != nil {
		t.Fatal(err)
	}
	for i, q := range []string{"INSERT INTO t VALUES(2, 'b')", "UPDATE t SET v='c' WHERE id=1"} {
		e.exec(q)
		r := e.export()
		if r.Seq != uint64(i+2) || !r.Pending || r.File != "" || r.PublishErr == nil || !strings.Contains(r.PublishErr.Error(), e.folder) {
			t.Fatalf("export %d without the folder: %+v", i+2, r)
		}
		if _, err := os.Stat(e.folder); !os.IsNotExist(err) {
			t.Fatalf("export created the missing folder (it would hide a pulled stick): %v", err)
		}
	}
	if got := outbox(t, e); len(got) != 2 {
		t.Fatalf("outbox: %v", got)
	}
	if err := os.Rename(pulled, e.folder); err != nil {
		t.Fatal(err)
	}
	r := e.export()
	if r.Mode != ModeNone || r.Pending || !strings.HasSuffix(r.File, rdfile.FileName(3)) {
		t.Fatalf("export after the folder came back: %+v", r)
	}
	e.close()
	e.open(false)
	checkChain(t, e, empty, 3)
}

// A folder that refuses writes (read-only mount, or a file where this
// device's directory should be): clear error naming the path, nothing
// half-written visible, the file waits in the outbox.
func TestUnwritableFolder(t *testing.T) {
	for _, c := range []struct {
		name  string
		block func(t *testing.T, e *env)
	}{
		{"file-in-the-way", func(t *testing.T, e *env) {
			if err := os.WriteFile(filepath.Join(e.folder, e.exp.ID.Device), []byte("not a directory"), 0o644); err != nil {
				t.Fatal(err)
			}
		}},
		{"read-only", func(t *testing.T, e *env) {
			if err := os.MkdirAll(filepath.Join(e.folder, e.exp.ID.Device), 0o755); err != nil {
				t.Fatal(err)
			}
			for _, d := range []string{e.folder, filepath.Join(e.folder, e.exp.ID.Device)} {
				if err := os.Chmod(d, 0o555); err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { os.Chmod(d, 0o755) })
			}
			if f, err := os.Create(filepath.Join(e.folder, e.exp.ID.Device, "probe")); err == nil {
				f.Close()
				t.Skip("permissions are not enforced for this user (root?)")
			}
		}},
		{"immutable", func(t *testing.T, e *env) {
			// What root gets instead of a read-only directory.
			d := filepath.Join(e.folder, e.exp.ID.Device)
			if err := os.MkdirAll(d, 0o755); err != nil {
				t.Fatal(err)
			}
			if out, err := exec.Command("chattr", "+i", d).CombinedOutput(); err != nil {
				t.Skipf("chattr +i unavailable here: %v %s", err, out)
			}
			t.Cleanup(func() { exec.Command("chattr", "-i", d).Run() })
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t, envOpts{schema: crashSchema})
			c.block(t, e)
			e.exec("INSERT INTO t VALUES(1, 'a')")
			r := e.export()
			if !r.Pending || r.Seq != 1 || r.PublishErr == nil {
				t.Fatalf("export into an unwritable folder: %+v", r)
			}
			t.Logf("publish error: %v", r.PublishErr)
			want := filepath.Join(e.folder, e.exp.ID.Device)
			if !strings.Contains(r.PublishErr.Error(), want) {
				t.Fatalf("error does not name %s: %v", want, r.PublishErr)
			}
			var visible []string
			filepath.WalkDir(e.folder, func(p string, d os.DirEntry, err error) error {
				if err == nil && !d.IsDir() && p != want {
					visible = append(visible, p)
				}
				return nil
			})
			if len(visible) != 0 {
				t.Fatalf("left in the folder: %v", visible)
			}
			if got := outbox(t, e); len(got) != 1 {
				t.Fatalf("outbox: %v", got)
			}
		})
	}
}

// A sequence number is never reused: a file in the folder beyond this
// state's next_seq (a restored or cloned state directory) stops export
// before anything is written.
func TestClonedStateRefused(t *testing.T) {
	e := newEnv(t, envOpts{schema: crashSchema})
	e.exec("INSERT INTO t VALUES(1, 'a')")
	r := e.export()
	// Pretend the state was restored from before export 1.
	if err := e.st.Set("next_seq", 1); err != nil {
		t.Fatal(err)
	}
	e.exec("INSERT INTO t VALUES(2, 'b')")
	_, err := e.exp.Export(context.Background(), e.tables())
	if !errors.Is(err, ErrDuplicateIdentity) {
		t.Fatalf("export with a stale state directory: %v", err)
	}
	if got := outbox(t, e); len(got) != 0 {
		t.Fatalf("outbox: %v", got)
	}
	if files := folderFiles(t, e.folder); len(files) != 1 {
		t.Fatalf("folder: %v", files)
	}
	h, _, _ := readFile(t, r.File)
	if h.Seq != 1 || h.Changes != 1 {
		t.Fatalf("file 1 was changed: %+v", h)
	}
}
