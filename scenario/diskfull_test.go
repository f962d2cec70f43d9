package scenario_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"zombiezen.com/go/sqlite"
	"zombiezen.com/go/sqlite/sqlitex"

	"github.com/rowdrop/rowdrop"
	"github.com/rowdrop/rowdrop/internal/changeset"
	"github.com/rowdrop/rowdrop/internal/fsx"
	"github.com/rowdrop/rowdrop/internal/rdfile"
	"github.com/rowdrop/rowdrop/scenario"
)

// smallDisk mounts a tmpfs of size (like "4m") at dir, unmounted when the
// test ends (after the devices, registered later, are closed). It skips
// the test, saying why, where that is impossible (not root, no mount).
// The returned function resizes it (mount -o remount).
func smallDisk(t *testing.T, dir, size string) (resize func(size string)) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("disk-full tests mount a small tmpfs and need root (run as root, as CI does): skipped")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size, "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a %s tmpfs at %s (%v: %s): disk-full tests skipped", size, dir, err, strings.TrimSpace(string(out)))
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", "-l", dir).CombinedOutput(); err != nil {
			t.Logf("umount %s: %v %s", dir, err, out)
		}
	})
	return func(size string) {
		t.Helper()
		if out, err := exec.Command("mount", "-o", "remount,size="+size, dir).CombinedOutput(); err != nil {
			t.Fatalf("resize tmpfs %s to %s: %v %s", dir, size, err, out)
		}
	}
}

// newNotesDB creates a NotesSchema database in WAL mode at path.
func newNotesDB(t *testing.T, path string) {
	t.Helper()
	newDB(t, path, scenario.NotesSchema)
}

// newDB creates a database with schema in WAL mode at path.
func newDB(t *testing.T, path, schema string) {
	t.Helper()
	conn, err := sqlite.OpenConn(path)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if err := sqlitex.ExecuteScript(conn, schema, nil); err != nil {
		t.Fatal(err)
	}
	if err := sqlitex.ExecuteTransient(conn, "PRAGMA journal_mode=WAL", nil); err != nil {
		t.Fatal(err)
	}
}

func openSyncer(t *testing.T, cfg rowdrop.Config) *rowdrop.Syncer {
	t.Helper()
	s, err := rowdrop.Open(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// publishedKeys lists the notes keys in every changeset device dev
// published in folder.
func publishedKeys(t *testing.T, folder, dev string) []string {
	t.Helper()
	var out []string
	for _, seq := range scenario.Seqs(t, folder, dev) {
		pf, err := scenario.ReadFile(filepath.Join(folder, dev, rdfile.FileName(seq)))
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range pf.Changes {
			if c.Table.Name != "notes" {
				continue
			}
			vals := c.Old // an update's key is in its old values
			if c.Op == changeset.OpInsert {
				vals = c.New
			}
			out = append(out, vals[0].String())
		}
	}
	return out
}

// A disk that fills between an import's live commit and its base commit:
// live holds merged rows the base copy lacks. The sync says "disk full"
// with the place and its free space; while the import cannot finish, this
// device exports nothing (the merged rows would go out as its own edits);
// once there is room, the import finishes first and the next export holds
// only this device's own edit.
func TestDiskFullBetweenLiveAndBase(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	folder := filepath.Join(root, "folder")
	os.MkdirAll(folder, 0o755)
	small := filepath.Join(root, "small")
	resize := smallDisk(t, small, "4m")
	aDB, bDB := filepath.Join(root, "a.db"), filepath.Join(root, "b.db")
	newNotesDB(t, aDB)
	newNotesDB(t, bDB)
	a := openSyncer(t, rowdrop.Config{DB: aDB, Folder: folder, State: filepath.Join(root, "a-state"), DeviceName: "a"})
	bState := filepath.Join(small, "state")
	b := openSyncer(t, rowdrop.Config{DB: bDB, Folder: folder, State: bState, DeviceName: "b", MergeBatch: 100})
	scenario.ExecFile(t, bDB, "INSERT INTO notes(id,title) VALUES('b0','before')")
	for _, s := range []*rowdrop.Syncer{b, a, b} {
		if _, err := s.Sync(ctx); err != nil {
			t.Fatal(err)
		}
	}
	// About 5 MB of rows: more than B's state directory can hold.
	scenario.ExecFile(t, aDB, `WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM n WHERE i < 3000)
		INSERT INTO notes(id,title,body) SELECT printf('a%05d', i), 'from a', hex(randomblob(800)) FROM n`)
	if _, err := a.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	bDev := b.Identity().Device
	published := len(scenario.Seqs(t, folder, bDev))

	_, err := b.Sync(ctx)
	var full *fsx.DiskFullError
	if !errors.As(err, &full) || !strings.Contains(err.Error(), "disk full: free ") || !strings.Contains(err.Error(), " MB at "+small) {
		t.Fatalf("want a disk-full error naming %s, got %v", small, err)
	}
	t.Logf("first sync: %v", err)
	live := scenario.ValueFile(t, bDB, "SELECT count(*) FROM notes")
	base := scenario.ValueFile(t, filepath.Join(bState, "base.db"), "SELECT count(*) FROM notes")
	if live == base {
		t.Fatalf("the disk should have filled after live's commits and before base's: live %s rows, base %s", live, base)
	}
	t.Logf("live holds %s rows, base %s", live, base)

	// The app goes on; the disk is still full: nothing is published.
	scenario.ExecFile(t, bDB, "INSERT INTO notes(id,title) VALUES('b1','written on b')")
	_, err = b.Sync(ctx)
	if err == nil || !(errors.As(err, &full) || errors.Is(err, rowdrop.ErrInflight)) {
		t.Fatalf("with the disk still full, sync should fail saying why, got %v", err)
	}
	t.Logf("second sync: %v", err)
	if n := len(scenario.Seqs(t, folder, bDev)); n != published {
		t.Fatalf("B published %d file(s) while its import was unfinished: %v", n-published, publishedKeys(t, folder, bDev))
	}

	// Room again: the import finishes, then B's own edit goes out alone.
	resize("64m")
	if _, err := b.Sync(ctx); err != nil {
		t.Fatalf("with room again: %v", err)
	}
	if _, err := b.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	for _, k := range publishedKeys(t, folder, bDev) {
		if strings.HasPrefix(k, "'a") || strings.HasPrefix(k, "a") {
			t.Fatalf("B published A's row %s as its own edit (echo)", k)
		}
	}
	if _, err := a.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	da, db := scenario.DumpNotes(t, aDB), scenario.DumpNotes(t, bDB)
	if da != db {
		t.Fatal("A and B differ after the disk was freed")
	}
	if got := scenario.ValueFile(t, aDB, "SELECT count(*) FROM notes"); got != fmt.Sprint(3002) {
		t.Fatalf("A holds %s notes, want 3002", got)
	}
	if lb, bb := scenario.ValueFile(t, bDB, "SELECT count(*) FROM notes"), scenario.ValueFile(t, filepath.Join(bState, "base.db"), "SELECT count(*) FROM notes"); lb != bb {
		t.Fatalf("B's base (%s rows) still behind live (%s)", bb, lb)
	}
}

// The disk-full harness: device B's state directory and the shared folder
// each on a small tmpfs; before each sync a filler leaves a random amount
// of space on one of them, so the disk fills at a random point of an
// export (capture, outbox, publish) or an import (staging, live and base
// commits, bookkeeping). Every failure must say "disk full" (or that an
// interrupted import waits); once there is room again nothing is lost
// (every key holds its last write on both devices) and nothing is echoed
// (a device publishes only its own keys). Seeded: ROWDROP_SEED reruns a
// failure, ROWDROP_DISKFULL_TRIALS sets the number of trials.
func TestDiskFullHarness(t *testing.T) {
	ctx := context.Background()
	trials := 16
	if v, err := strconv.Atoi(os.Getenv("ROWDROP_DISKFULL_TRIALS")); err == nil && v > 0 {
		trials = v
	}
	seed := seedFromEnv(t)
	t.Logf("seed %d (rerun with ROWDROP_SEED=%d), %d trials", seed, seed, trials)
	rng := rand.New(rand.NewSource(seed))
	root := t.TempDir()
	smallState, folder := filepath.Join(root, "small-state"), filepath.Join(root, "folder")
	smallDisk(t, smallState, "6m")
	smallDisk(t, folder, "6m")
	type dev struct {
		name, db string
		s        *rowdrop.Syncer
		keys     []string
		last     map[string]string
	}
	var devs []*dev
	for _, name := range []string{"a", "b"} {
		d := &dev{name: name, db: filepath.Join(root, name+".db"), last: map[string]string{}}
		newNotesDB(t, d.db)
		st := filepath.Join(root, "a-state")
		if name == "b" {
			st = filepath.Join(smallState, "state")
		}
		d.s = openSyncer(t, rowdrop.Config{DB: d.db, Folder: folder, State: st, DeviceName: name, MergeBatch: 50})
		for k := 0; k < 6; k++ {
			d.keys = append(d.keys, fmt.Sprintf("%s-%d", name, k))
		}
		devs = append(devs, d)
	}
	fill := func(dir string, leave int64) (undo func()) {
		free, err := fsx.FreeBytes(dir)
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, "filler.bin")
		if n := free - leave; n > 0 {
			f, err := os.Create(p)
			if err != nil {
				t.Fatal(err)
			}
			buf := make([]byte, 64<<10)
			for n > 0 {
				k := min(n, int64(len(buf)))
				if _, err := f.Write(buf[:k]); err != nil {
					break // full already
				}
				n -= k
			}
			f.Close()
		}
		return func() { os.Remove(p) }
	}
	sync := func(trial int, d *dev, where string) {
		t.Helper()
		_, err := d.s.Sync(ctx)
		var full *fsx.DiskFullError
		switch {
		case err == nil:
		case errors.As(err, &full), errors.Is(err, rowdrop.ErrInflight):
			t.Logf("trial %d: %s, %s nearly full: %v", trial, d.name, where, err)
		default:
			t.Fatalf("trial %d (seed %d): %s's sync with %s nearly full failed without saying the disk is full: %v", trial, seed, d.name, where, err)
		}
	}
	for _, d := range devs {
		sync(-1, d, "nothing")
	}
	for trial := 0; trial < trials; trial++ {
		d := devs[rng.Intn(len(devs))]
		for e := 0; e < 1+rng.Intn(4); e++ {
			k := d.keys[rng.Intn(len(d.keys))]
			v := fmt.Sprintf("t%d-e%d-%x", trial, e, rng.Int63())
			body := rng.Intn(40 << 10)
			scenario.ExecFile(t, d.db, "INSERT INTO notes(id,title,body) VALUES(?,?,hex(randomblob(?))) ON CONFLICT(id) DO UPDATE SET title=excluded.title, body=excluded.body", k, v, body/2)
			d.last[k] = v
		}
		where := smallState
		if rng.Intn(2) == 0 {
			where = folder
		}
		undo := fill(where, rng.Int63n(1<<20))
		sync(trial, d, where)
		sync(trial, devs[rng.Intn(len(devs))], where)
		undo()
	}
	// Room again: converge, and check.
	for round := 0; round < 4; round++ {
		for _, d := range devs {
			if _, err := d.s.Sync(ctx); err != nil {
				t.Fatalf("seed %d: sync with room again: %v", seed, err)
			}
		}
	}
	for _, d := range devs {
		for _, k := range d.keys {
			for _, o := range devs {
				if got := scenario.ValueFile(t, o.db, "SELECT coalesce((SELECT title FROM notes WHERE id=?), '')", k); got != d.last[k] {
					t.Fatalf("seed %d: key %s on %s is %q, the last write on %s was %q", seed, k, o.name, got, d.name, d.last[k])
				}
			}
		}
		for _, k := range publishedKeys(t, folder, d.s.Identity().Device) {
			if !strings.Contains(k, d.name+"-") {
				t.Fatalf("seed %d: %s published another device's row %s (echo)", seed, d.name, k)
			}
		}
	}
	if da, db := scenario.DumpNotes(t, devs[0].db), scenario.DumpNotes(t, devs[1].db); da != db {
		t.Fatalf("seed %d: devices differ", seed)
	}
}
