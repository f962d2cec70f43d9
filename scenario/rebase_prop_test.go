package scenario_test

import (
	"context"
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"zombiezen.com/go/sqlite"

	"rowdrop"
	"rowdrop/internal/rdfile"
	"rowdrop/scenario"
)

// TestRebaseEqualsReplay: random edits, exports, partial deliveries and
// imports on four devices; device l stops half way. At the end l is
// cloned: the original catches up by replaying every file, the clone by
// re-basing on a snapshot (the files it covers removed from the clone's
// folder). Both must hold the same synced tables and base copies, equal to
// the others'. Seeds: ROWDROP_SEED=n runs one; ROWDROP_SEEDS=N runs N.
func TestRebaseEqualsReplay(t *testing.T) {
	seeds := []int64{}
	if s := os.Getenv("ROWDROP_SEED"); s != "" {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			t.Fatalf("ROWDROP_SEED: %v", err)
		}
		seeds = append(seeds, n)
	} else {
		count := 8
		if testing.Short() {
			count = 2
		}
		if n, err := strconv.Atoi(os.Getenv("ROWDROP_SEEDS")); err == nil && n > 0 {
			count = n
		}
		base := time.Now().UnixNano() % 1_000_000
		for i := 0; i < count; i++ {
			seeds = append(seeds, base+int64(i))
		}
	}
	for _, seed := range seeds {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			t.Logf("seed %d (rerun with ROWDROP_SEED=%d)", seed, seed)
			rebaseVsReplay(t, seed)
		})
	}
}

func rebaseVsReplay(t *testing.T, seed int64) {
	rng := rand.New(rand.NewSource(seed))
	w := scenario.NewWorld(t, snapSchema)
	w.Quiet = true
	var devs []*scenario.Device
	for i, name := range []string{"a", "b", "c", "l"} {
		devs = append(devs, w.AddDevice(scenario.Options{Name: name, Initialised: rng.Intn(3) > 0, Hints: i%2 == 1}))
	}
	l := devs[3]
	active := devs
	edit := func(d *scenario.Device) {
		id := fmt.Sprintf("k%d", rng.Intn(8))
		switch rng.Intn(6) {
		case 0, 1:
			d.Exec("INSERT OR IGNORE INTO notes VALUES(?,?,?,?,NULL,NULL)", id, "t"+strconv.Itoa(rng.Intn(100)), d.Name, rng.Intn(10))
		case 2:
			d.Exec("UPDATE notes SET title=? WHERE id=?", d.Name+strconv.Itoa(rng.Intn(100)), id)
		case 3:
			d.Exec("UPDATE notes SET n=?, body=? WHERE id=?", rng.Intn(1000), d.Name, id)
		case 4:
			d.Exec("DELETE FROM notes WHERE id=?", id)
		case 5:
			if rng.Intn(2) == 0 {
				d.Exec("INSERT OR IGNORE INTO tags VALUES(?,?)", id, "g"+strconv.Itoa(rng.Intn(3)))
			} else {
				d.Exec("DELETE FROM tags WHERE note=?", id)
			}
		}
	}
	steps := 60
	for step := 0; step < steps; step++ {
		if step == steps/2 {
			// l leaves, with nothing unexported.
			l.Export()
			active = devs[:3]
		}
		w.Tick(int64(1 + rng.Intn(2000)))
		d := active[rng.Intn(len(active))]
		switch r := rng.Intn(10); {
		case r < 5:
			edit(d)
		case r < 7:
			d.Export()
		case r < 9:
			from := active[rng.Intn(len(active))]
			w.DeliverAll(from, d)
		default:
			d.Import()
		}
	}
	// The others converge; one of them snapshots.
	saved := w.Devs
	w.Devs = devs[:3]
	for _, from := range devs[:3] {
		w.DeliverAll(l, from)
	}
	w.Quiesce(10)
	w.Devs = saved
	snapper := devs[rng.Intn(3)]
	w.Tick(1000)
	snap := snapper.Snapshot()

	// l imports what it has, then is cloned (closed meanwhile).
	l.Import()
	clone := filepath.Join(w.Dir, "clone")
	if err := os.MkdirAll(clone, 0o755); err != nil {
		t.Fatal(err)
	}
	l.Reopen(func() {
		for _, p := range []string{l.DB, l.State} {
			if err := os.CopyFS(filepath.Join(clone, filepath.Base(p)), os.DirFS(p)); err != nil {
				// l.DB is a file: CopyFS wants a directory.
				data, rerr := os.ReadFile(p)
				if rerr != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(filepath.Join(clone, filepath.Base(p)), data, 0o644); err != nil {
					t.Fatal(err)
				}
			}
		}
	})
	cloneFolder := filepath.Join(clone, "folder")
	os.MkdirAll(cloneFolder, 0o755)
	// l replays every file.
	for _, from := range devs[:3] {
		w.DeliverAll(from, l)
	}
	for i := 0; i < 3; i++ {
		l.Import()
	}
	// The clone gets the snapshot and only the files it does not cover.
	for _, from := range devs[:3] {
		for _, s := range from.Published() {
			if s > snap.Seen[from.ID] {
				copyFile(t, from.FilePath(s), filepath.Join(cloneFolder, from.ID, rdfile.FileName(s)))
			}
		}
	}
	copyFile(t, snap.File, filepath.Join(cloneFolder, snapper.ID, rdfile.SnapshotName(snap.Seq)))
	cs, err := rowdrop.Open(context.Background(), rowdrop.Config{DB: filepath.Join(clone, filepath.Base(l.DB)), Folder: cloneFolder,
		State: filepath.Join(clone, filepath.Base(l.State)), DeviceName: "l-clone", Now: func() time.Time { return time.UnixMilli(w.NowMS) }})
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Close()
	for i := 0; i < 2; i++ {
		r, err := cs.Import(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if r.Waiting+r.Held+r.Broken > 0 {
			st, _ := cs.Status(context.Background())
			t.Fatalf("clone: files not applied: %+v", st.Files)
		}
	}
	replayed, replayedBase := l.Dump(), l.DumpBase()
	l.Reopen(func() {
		// Look at the clone through l's helpers: swap its files in.
		for _, p := range []string{l.DB, l.State} {
			os.RemoveAll(p)
			if err := os.Rename(filepath.Join(clone, filepath.Base(p)), p); err != nil {
				t.Fatal(err)
			}
		}
		cs.Close()
		// The app's connection still reads the replaced file.
		l.App.Close()
		app, err := sqlite.OpenConn(l.DB, sqlite.OpenReadWrite)
		if err != nil {
			t.Fatal(err)
		}
		l.App = app
	})
	_ = replayedBase
	rebased, rebasedBase := l.Dump(), l.DumpBase()
	if rebased != replayed {
		t.Fatalf("rebase and replay differ:\nreplayed:\n%s\nrebased:\n%s", replayed, rebased)
	}
	if rebasedBase != rebased || replayedBase != replayed {
		t.Fatalf("base differs from live:\nreplayed live:\n%s\nreplayed base:\n%s\nrebased live:\n%s\nrebased base:\n%s", replayed, replayedBase, rebased, rebasedBase)
	}
	if ref := devs[0].Dump(); ref != replayed {
		t.Fatalf("l differs from a:\na:\n%s\nl:\n%s", ref, replayed)
	}
}
