package scenario_test

import (
	"context"
	"fmt"
	"io"
	"math/rand"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"zombiezen.com/go/sqlite"

	"github.com/rowdrop/rowdrop"
	"github.com/rowdrop/rowdrop/internal/rdfile"
	"github.com/rowdrop/rowdrop/scenario"
)

// TestJoinLateFromSnapshot: two devices work for a while, one snapshots,
// their early files are collected; a third device joins from the snapshot
// plus the later files, and all three converge.
func TestJoinLateFromSnapshot(t *testing.T) {
	w := scenario.NewWorld(t, snapSchema)
	a := w.AddDevice(scenario.Options{Name: "a", Initialised: true})
	b := w.AddDevice(scenario.Options{Name: "b", Initialised: true, Hints: true, WAL: true})
	for i := 0; i < 20; i++ {
		d := a
		if i%2 == 1 {
			d = b
		}
		w.Tick(1000)
		d.Exec("INSERT INTO notes VALUES(?,?,?,?,?,x'01ff')", "n"+string(rune('a'+i)), "title", "body", i, float64(i)/2)
		d.Exec("INSERT INTO tags VALUES(?,?)", "n"+string(rune('a'+i)), "t"+string(rune('a'+i%3)))
		d.Sync()
	}
	w.QuiesceAmong(a, b)
	w.Tick(1000)
	a.Exec("UPDATE notes SET title='edited by a' WHERE id='nb'")
	b.Exec("DELETE FROM notes WHERE id='nc'")
	w.QuiesceAmong(a, b)
	snap := a.Snapshot()
	if snap.Seen[b.ID] == 0 || snap.Seen[a.ID] == 0 {
		t.Fatalf("snapshot seen vector %v lacks a device", snap.Seen)
	}
	// The payload is one self-contained SQLite file in rollback mode,
	// though base.db is in WAL mode (FORMAT §14).
	sf, err := scenario.OpenFile(snap.File)
	if err != nil {
		t.Fatal(err)
	}
	payload, err := sf.Changeset()
	if err != nil {
		t.Fatal(err)
	}
	head := make([]byte, 100)
	_, err = io.ReadFull(payload, head)
	payload.Close()
	if err != nil || string(head[:16]) != "SQLite format 3\x00" || head[18] != 1 || head[19] != 1 {
		t.Fatalf("snapshot payload header %q (read/write versions %d/%d, want 1/1: rollback journal), %v", head[:16], head[18], head[19], err)
	}
	// Later work, after the snapshot.
	w.Tick(1000)
	a.Exec("UPDATE notes SET body='after snapshot' WHERE id='nd'")
	b.Exec("INSERT INTO notes VALUES('late','late row',NULL,NULL,NULL,NULL)")
	w.QuiesceAmong(a, b)
	// Both collect what the snapshot covers.
	w.Collect(a, snap.Seen[a.ID])
	w.Collect(b, snap.Seen[b.ID])

	c := w.AddDevice(scenario.Options{Name: "c"})
	for _, from := range []*scenario.Device{a, b} {
		w.DeliverAll(from, c)
		w.DeliverSnapshots(from, c)
	}
	r, err := c.S.Sync(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("c: %+v", r)
	if st := c.Status(); len(st.Files) > 0 {
		t.Fatalf("c: files not applied after joining: %+v", st.Files)
	}
	w.Quiesce(10)
	w.AssertConverged()
	if got := c.Dump(); !strings.Contains(got, "'after snapshot'") || !strings.Contains(got, "'late row'") || strings.Contains(got, "'nc'|'title'") {
		t.Fatalf("c lacks later files or kept a deleted row:\n%s", got)
	}
}

// twoWithData returns devices a and b holding the same rows, plus a
// snapshot of a's state.
func twoWithData(t *testing.T, w *scenario.World, n int) (a, b *scenario.Device) {
	t.Helper()
	a = w.AddDevice(scenario.Options{Name: "a", Initialised: true})
	b = w.AddDevice(scenario.Options{Name: "b", Initialised: true, Hints: true})
	for i := 0; i < n; i++ {
		d := a
		if i%2 == 1 {
			d = b
		}
		w.Tick(1000)
		id := fmt.Sprintf("n%02d", i)
		d.Exec("INSERT INTO notes VALUES(?,?,?,?,?,NULL)", id, "title "+id, "body "+id, i, float64(i)/4)
		d.Exec("INSERT INTO tags VALUES(?,?)", id, fmt.Sprintf("t%d", i%3))
		d.Sync()
	}
	w.QuiesceAmong(a, b)
	return a, b
}

// TestJoinNonEmptyDevice: a new device whose database already holds rows
// joins from a snapshot. Its own rows survive and reach the others, every
// snapshot row reaches it, and where both hold a row with other values its
// values stay and the snapshot's are in its conflict log.
func TestJoinNonEmptyDevice(t *testing.T) {
	w := scenario.NewWorld(t, snapSchema)
	a, b := twoWithData(t, w, 10)
	w.Tick(1000)
	snap := a.Snapshot()
	w.Collect(a, snap.Seen[a.ID])
	w.Collect(b, snap.Seen[b.ID])

	c := w.AddDevice(scenario.Options{Name: "c"})
	c.Exec("INSERT INTO notes VALUES('c1','only on c','c body',7,NULL,x'c1')")
	c.Exec("INSERT INTO notes VALUES('n03','c title','body n03',3,0.75,NULL)") // differs from the snapshot's title
	c.Exec("INSERT INTO tags VALUES('c1','t9')")
	w.DeliverSnapshots(a, c)
	w.Tick(1000)
	if _, err := c.S.Sync(context.Background()); err != nil {
		t.Fatal(err)
	}
	if st := c.Status(); len(st.Files) > 0 {
		t.Fatalf("c: files not applied after joining: %+v", st.Files)
	}
	got := c.Dump()
	for _, want := range []string{"'c1'|'only on c'", "'n03'|'c title'", "'n09'|'title n09'", "'n00'|'t0'", "'c1'|'t9'"} {
		if !strings.Contains(got, want) {
			t.Fatalf("c lacks %s after joining:\n%s", want, got)
		}
	}
	found := false
	for _, cf := range c.Conflicts() {
		if cf.Kind == "local-kept" && cf.Loser["title"] == "'title n03'" {
			found = true
		}
	}
	if !found {
		t.Fatalf("the snapshot's title of n03 is not in c's conflict log: %+v", c.Conflicts())
	}
	w.Quiesce(10)
	w.AssertConverged()
	if got := a.Dump(); !strings.Contains(got, "'c1'|'only on c'") || !strings.Contains(got, "'n03'|'c title'") {
		t.Fatalf("c's rows did not reach a:\n%s", got)
	}
}

// TestRejoinAfterCollection: a device is away while the others work,
// snapshot and collect the files it needs. It comes back with offline
// edits: they are exported first, it re-bases on the snapshot, applies the
// later files, and everything converges with its edits intact.
func TestRejoinAfterCollection(t *testing.T) {
	w := scenario.NewWorld(t, snapSchema)
	a, b := twoWithData(t, w, 8)
	c := w.AddDevice(scenario.Options{Name: "c", Initialised: true})
	w.Quiesce(10)
	// c leaves; everyone edits.
	w.Tick(1000)
	c.Exec("UPDATE notes SET body='offline body' WHERE id='n01'")
	c.Exec("UPDATE notes SET title='offline title' WHERE id='n02'")
	c.Exec("INSERT INTO notes VALUES('c-new','made offline',NULL,1,NULL,NULL)")
	c.Exec("DELETE FROM notes WHERE id='n04'")
	for i := 0; i < 6; i++ {
		w.Tick(1000)
		a.Exec("UPDATE notes SET n=n+100 WHERE id=?", fmt.Sprintf("n%02d", i))
		b.Exec("INSERT INTO notes VALUES(?,?,NULL,NULL,NULL,NULL)", fmt.Sprintf("b%02d", i), "while c was away")
		w.QuiesceAmong(a, b)
	}
	w.Tick(1000)
	a.Exec("UPDATE notes SET title='a title' WHERE id='n02'") // concurrent with c's offline edit
	b.Exec("DELETE FROM notes WHERE id='n05'")
	w.QuiesceAmong(a, b)
	snap := b.Snapshot()
	w.Collect(a, snap.Seen[a.ID])
	w.Collect(b, snap.Seen[b.ID])
	// More after the snapshot.
	w.Tick(1000)
	a.Exec("UPDATE notes SET score=42 WHERE id='n06'")
	w.QuiesceAmong(a, b)

	// c comes back (later than every edit above, so its export wins).
	w.Tick(1000)
	for _, from := range []*scenario.Device{a, b} {
		w.DeliverAll(from, c)
		w.DeliverSnapshots(from, c)
	}
	if _, err := c.S.Sync(context.Background()); err != nil {
		t.Fatal(err)
	}
	if st := c.Status(); len(st.Files) > 0 {
		t.Fatalf("c: files not applied after rejoining: %+v", st.Files)
	}
	w.Quiesce(10)
	w.AssertConverged()
	got := a.Dump()
	for _, want := range []string{"'n01'|'title n01'|'offline body'|101", "'n02'|'offline title'", "'c-new'|'made offline'", "'b05'|'while c was away'", "'n06'|'title n06'|'body n06'|6|42.0"} {
		if !strings.Contains(got, want) {
			t.Fatalf("after c rejoined, a lacks %s:\n%s", want, got)
		}
	}
	for _, gone := range []string{"'n04'|'title", "'n05'|'title"} {
		if strings.Contains(got, gone) {
			t.Fatalf("after c rejoined, a deleted row is back (%s):\n%s", gone, got)
		}
	}
	// The concurrent title lost on every device that held it, and is logged
	// on c, where both met.
	found := false
	for _, cf := range c.Conflicts() {
		if cf.Loser["title"] == "'a title'" {
			found = true
		}
	}
	if !found {
		t.Fatalf("a's concurrent title is not in c's conflict log: %+v", c.Conflicts())
	}
}

// TestJoinInterrupted: a join stopped between two batches leaves some rows
// merged into live and base; the next sync finishes it, and none of the
// merged rows is exported as an edit of the joining device.
func TestJoinInterrupted(t *testing.T) {
	w := scenario.NewWorld(t, snapSchema)
	a := w.AddDevice(scenario.Options{Name: "a", Initialised: true})
	a.Exec(`WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM n WHERE i<1300)
		INSERT INTO notes(id,title,n) SELECT printf('r%04d',i), 'row '||i, i FROM n`)
	a.Export()
	w.Tick(1000)
	snap := a.Snapshot()
	w.Collect(a, snap.Seen[a.ID])

	var cancel context.CancelFunc
	var calls []int
	c := w.AddDevice(scenario.Options{Name: "c", Config: func(cfg *rowdrop.Config) {
		cfg.Progress = func(done, total int, file string) {
			calls = append(calls, done)
			if cancel != nil && strings.HasSuffix(file, ".rds") {
				cancel()
			}
		}
	}})
	w.DeliverSnapshots(a, c)
	ctx, cf := context.WithCancel(context.Background())
	cancel = cf
	if _, err := c.S.Sync(ctx); err == nil {
		t.Fatal("interrupted join reported success")
	}
	cancel = nil
	if n := c.Value("SELECT count(*) FROM notes"); n == "0" || n == "1300" {
		t.Fatalf("after the interruption c holds %s rows: the test wanted a partial join", n)
	}
	r, err := c.S.Sync(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if r.Export.Seq != 0 {
		t.Fatalf("c exported %d changes after finishing the join: merged rows taken for local edits", r.Export.Changes)
	}
	// At least one call in each sync (the set-wise join reports per
	// chunk, the row-by-row merge per batch), the last at the total.
	if len(calls) < 2 || calls[len(calls)-1] != 1300 {
		t.Fatalf("progress calls %v", calls)
	}
	w.Quiesce(10)
	w.AssertConverged()
}

// r applied a's row under id 1 but not b's (earlier) row under id 1; b's
// file is collected; r re-bases on a snapshot by s, which holds b's row at
// 1 and a's at its mover id.
func TestRejoinAfterIDCollision(t *testing.T) {
	w := scenario.NewWorld(t, kbIntSchema)
	a := w.AddDevice(scenario.Options{Name: "a", Initialised: true})
	b := w.AddDevice(scenario.Options{Name: "b", Initialised: true})
	s := w.AddDevice(scenario.Options{Name: "s", Initialised: true})
	r := w.AddDevice(scenario.Options{Name: "r", Initialised: true})
	b.Exec(`INSERT INTO notebooks VALUES(1, 'B-book')`)
	bFirst := b.Export().Seq
	w.Tick(1000)
	a.Exec(`INSERT INTO notebooks VALUES(1, 'A-book')`)
	a.Export()
	w.Tick(1000)
	b.Exec(`INSERT INTO notebooks VALUES(2, 'B-book2')`)
	b.Export()
	w.DeliverAll(a, s)
	w.DeliverAll(b, s)
	s.Import()
	w.DeliverAll(a, r)
	r.Import()
	w.DeliverAll(b, a)
	a.Import()
	t.Logf("r before: %v", r.Query("SELECT * FROM notebooks ORDER BY id"))
	t.Logf("s: %v", s.Query("SELECT * FROM notebooks ORDER BY id"))
	s.Snapshot()
	w.Collect(b, bFirst)
	w.DeliverAll(b, r)
	w.DeliverSnapshots(s, r)
	w.DeliverAll(s, r)
	r.Sync()
	t.Logf("r after rebase: %v", r.Query("SELECT * FROM notebooks ORDER BY id"))
	w.Tick(1000)
	// Only deliver what is in the folders (b's first file is gone).
	w.Quiesce(8)
	for _, d := range w.Devs {
		t.Logf("%s: %v", d.Name, d.Query("SELECT * FROM notebooks ORDER BY id"))
	}
	w.AssertConverged()
	for _, d := range w.Devs {
		got := d.Query("SELECT name FROM notebooks ORDER BY name")
		var names []string
		for _, x := range got {
			names = append(names, x[0])
		}
		if strings.Join(names, ",") != "A-book,B-book,B-book2" {
			t.Errorf("%s: %v", d.Name, names)
		}
	}
}

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
				scenario.CopyFile(t, from.FilePath(s), filepath.Join(cloneFolder, from.ID, rdfile.FileName(s)))
			}
		}
	}
	scenario.CopyFile(t, snap.File, filepath.Join(cloneFolder, snapper.ID, rdfile.SnapshotName(snap.Seq)))
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
