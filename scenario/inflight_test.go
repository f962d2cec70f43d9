package scenario_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"zombiezen.com/go/sqlite"
	"zombiezen.com/go/sqlite/sqlitex"

	"github.com/rowdrop/rowdrop"
	"github.com/rowdrop/rowdrop/internal/changeset"
	"github.com/rowdrop/rowdrop/internal/state"
	"github.com/rowdrop/rowdrop/scenario"
)

const itemsSchema = `CREATE TABLE items(id INTEGER PRIMARY KEY, title TEXT, body TEXT);`

// An import into an INTEGER-keyed table cut short after live committed
// and before base did (here: the state directory's disk fills; a crash
// leaves the same), then the app edits a row the import had written.
// The re-run must take that row for the import's own (plus an edit made
// here), not for a row created here that collides with the insert: no
// re-keyed copy, one row with the edit on every device.
func TestInterruptedIntegerImportNoDuplicate(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	folder := filepath.Join(root, "folder")
	os.MkdirAll(folder, 0o755)
	small := filepath.Join(root, "small")
	resize := smallDisk(t, small, "4m")
	aDB, bDB := filepath.Join(root, "a.db"), filepath.Join(root, "b.db")
	newDB(t, aDB, itemsSchema)
	newDB(t, bDB, itemsSchema)
	a := openSyncer(t, rowdrop.Config{DB: aDB, Folder: folder, State: filepath.Join(root, "a-state"), DeviceName: "a"})
	bState := filepath.Join(small, "state")
	b := openSyncer(t, rowdrop.Config{DB: bDB, Folder: folder, State: bState, DeviceName: "b", MergeBatch: 100})
	for _, s := range []*rowdrop.Syncer{b, a, b} {
		if _, err := s.Sync(ctx); err != nil {
			t.Fatal(err)
		}
	}
	scenario.ExecFile(t, aDB, `WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM n WHERE i < 3000)
		INSERT INTO items(id,title,body) SELECT i, 'from a', hex(randomblob(800)) FROM n`)
	if _, err := a.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Sync(ctx); err == nil {
		t.Fatal("the import should have failed on the full disk")
	}
	live := scenario.ValueFile(t, bDB, "SELECT count(*) FROM items")
	base := scenario.ValueFile(t, filepath.Join(bState, "base.db"), "SELECT count(*) FROM items")
	if live == base {
		t.Fatalf("the merge should have been cut short between live's commits and base's: live %s rows, base %s", live, base)
	}
	// The app edits a row the interrupted import wrote.
	scenario.ExecFile(t, bDB, "UPDATE items SET title='edited on b' WHERE id=5")
	resize("64m")
	for _, s := range []*rowdrop.Syncer{b, b, a, b} {
		if _, err := s.Sync(ctx); err != nil {
			t.Fatal(err)
		}
	}
	for name, path := range map[string]string{"A": aDB, "B": bDB} {
		if n := scenario.ValueFile(t, path, "SELECT count(*) FROM items"); n != "3000" {
			t.Errorf("%s holds %s items, want 3000 (re-keyed copies: %s)", name, n,
				scenario.ValueFile(t, path, "SELECT group_concat(id || ':' || title) FROM items WHERE id < 0 OR id > 3000"))
		}
		if got := scenario.ValueFile(t, path, "SELECT title FROM items WHERE id=5"); got != "edited on b" {
			t.Errorf("%s: item 5 is %q, want B's edit", name, got)
		}
	}
	if da, db := scenario.RowsFile(t, aDB, "SELECT id, title FROM items ORDER BY id"), scenario.RowsFile(t, bDB, "SELECT id, title FROM items ORDER BY id"); da != db {
		t.Error("A and B differ")
	}
}

// TestCrashMidIntegerImport kills B's sync child (kill -9) at random
// moments while it imports A's inserts into an INTEGER-keyed table; after
// each kill the app edits a row the import had already written. In the
// end every row exists once on both devices (no re-keyed copy) and holds
// B's edit. Seeded like the other crash tests (ROWDROP_SEED,
// ROWDROP_CRASH_TRIALS).
func TestCrashMidIntegerImport(t *testing.T) {
	trials, rng, root, folder := crashSetup(t, 12)
	t.Setenv("ROWDROP_MERGE_BATCH", "100")
	var devs []*crashDev
	for _, name := range []string{"a", "b"} {
		d := &crashDev{name: name, db: filepath.Join(root, name+".db"), state: filepath.Join(root, name+"-state")}
		newDB(t, d.db, itemsSchema)
		devs = append(devs, d)
	}
	a, b := devs[0], devs[1]
	span := calibrate(t, devs, folder)
	edited := map[int]string{}
	total, kills := 0, 0
	for trial := 0; trial < trials; trial++ {
		n := 1000 + rng.Intn(2000)
		scenario.ExecFile(t, a.db, `WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM n WHERE i < ?)
			INSERT INTO items(id,title,body) SELECT ?*10000+i, 'from a', hex(randomblob(100)) FROM n`, n, trial+1)
		total += n
		if runKilled(t, trial, a, folder, time.Hour) {
			t.Fatal("a's export was not meant to be killed")
		}
		// B imports, killed at a random moment; the import takes longer
		// than the calibration run, so spread the kills over its length.
		if runKilled(t, trial, b, folder, time.Duration(rng.Int63n(int64(span)*4))) {
			kills++
		}
		checkAfterCrash(t, trial, b, folder)
		// The app edits a row of this trial that B's live holds now.
		id := scenario.ValueFile(t, b.db, "SELECT coalesce((SELECT id FROM items WHERE id/10000 = ? ORDER BY abs(random()) LIMIT 1), 0)", trial+1)
		if id != "0" {
			v := fmt.Sprintf("edited on b, trial %d", trial)
			scenario.ExecFile(t, b.db, "UPDATE items SET title=? WHERE id=?", v, id)
			k, _ := strconv.Atoi(id)
			edited[k] = v
		}
	}
	t.Logf("%d of %d imports were killed", kills, trials)
	converge(t, devs, folder, 3)
	for _, d := range devs {
		if got := scenario.ValueFile(t, d.db, "SELECT count(*) FROM items"); got != strconv.Itoa(total) {
			t.Errorf("%s holds %s items, want %d (re-keyed copies: %s)", d.name, got, total,
				scenario.ValueFile(t, d.db, "SELECT group_concat(id || ':' || title) FROM items WHERE id < 0"))
		}
		for id, v := range edited {
			if got := scenario.ValueFile(t, d.db, "SELECT coalesce((SELECT title FROM items WHERE id=?), '')", id); got != v {
				t.Errorf("%s: item %d is %q, want B's edit %q", d.name, id, got, v)
			}
		}
	}
}

// An import killed while it waits for live's write lock, with the file's
// INTEGER-key inserts colliding with rows created here and not yet
// exported: the re-run must take live's rows for this device's own (they
// move), not for the interrupted merge's inserts. The in-flight journal
// used to list every insert before the lock was taken, and a re-run that
// found live holding rows under most of them counted the batch as
// written: the rows created here were recorded as the other device's in
// base, exported as edits of them, and the other device's rows were lost
// everywhere (found by TestCrashDuringRekey under load).
func TestImportKilledBeforeLiveLockKeepsCollidingRows(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	folder := filepath.Join(root, "folder")
	os.MkdirAll(folder, 0o755)
	const schema = `CREATE TABLE notebooks(id INTEGER PRIMARY KEY, uid TEXT NOT NULL, name TEXT);`
	aDB, bDB := filepath.Join(root, "a.db"), filepath.Join(root, "b.db")
	newDB(t, aDB, schema)
	newDB(t, bDB, schema)
	bState := filepath.Join(root, "b-state")
	a := openSyncer(t, rowdrop.Config{DB: aDB, Folder: folder, State: filepath.Join(root, "a-state"), DeviceName: "a"})
	b := openSyncer(t, rowdrop.Config{DB: bDB, Folder: folder, State: bState, DeviceName: "b"})
	for _, s := range []*rowdrop.Syncer{a, b, a, b} {
		if _, err := s.Sync(ctx); err != nil {
			t.Fatal(err)
		}
	}
	b.Close()
	scenario.ExecFile(t, aDB, `INSERT INTO notebooks VALUES(1,'a-1','a-1'),(2,'a-2','a-2'),(3,'a-3','a-3')`)
	if _, err := a.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	// Rows created on b under two of the same ids, not exported yet.
	scenario.ExecFile(t, bDB, `INSERT INTO notebooks VALUES(1,'b-1','b-1'),(2,'b-2','b-2')`)

	// The app holds live's write lock; b's import starts and is killed
	// while it waits for it (after it journaled, if it journals first).
	app, err := sqlite.OpenConn(bDB, sqlite.OpenReadWrite)
	if err != nil {
		t.Fatal(err)
	}
	if err := sqlitex.ExecuteTransient(app, "BEGIN IMMEDIATE", nil); err != nil {
		t.Fatal(err)
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, "-test.run=^$")
	cmd.Env = append(os.Environ(), "ROWDROP_CRASH_CHILD=import", "ROWDROP_DB="+bDB, "ROWDROP_FOLDER="+folder, "ROWDROP_STATE="+bState)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	journal := filepath.Join(bState, "inflight-keys")
	deadline := time.Now().Add(3 * time.Second)
	for time.Now().Before(deadline) {
		if data, _ := os.ReadFile(journal); bytes.Contains(data, []byte("\nT ")) {
			break // the old journal's intent, written before the lock
		}
		time.Sleep(5 * time.Millisecond)
	}
	cmd.Process.Kill()
	cmd.Wait()
	if err := sqlitex.ExecuteTransient(app, "ROLLBACK", nil); err != nil {
		t.Fatal(err)
	}
	app.Close()
	if n := scenario.ValueFile(t, bDB, "SELECT count(*) FROM notebooks"); n != "2" {
		t.Fatalf("the killed import wrote to live (%s rows): it was meant to die waiting for the lock\n%s", n, out.String())
	}

	b = openSyncer(t, rowdrop.Config{DB: bDB, Folder: folder, State: bState, DeviceName: "b"})
	for _, s := range []*rowdrop.Syncer{b, a, b, a} {
		if _, err := s.Sync(ctx); err != nil {
			t.Fatal(err)
		}
	}
	for name, path := range map[string]string{"A": aDB, "B": bDB} {
		if got := scenario.ValueFile(t, path, "SELECT group_concat(uid, ' ') FROM (SELECT uid FROM notebooks ORDER BY uid)"); got != "a-1 a-2 a-3 b-1 b-2" {
			t.Errorf("%s holds notebooks %q, want every one of both devices once", name, got)
		}
	}
}

// A merge killed between journaling a live batch and its commit record.
// The state left by such a kill is built here as the merge writes it: the
// file in flight and its journal holding the batch's intent without the
// commit record.
//
// Not committed, then the app inserts rows: an INTEGER id is the next
// free one, so the app's rows take exactly the ids the batch had
// journaled. The re-run must tell them from the batch's own by content,
// not by presence: else the app's rows are recorded as the other
// device's in base, exported as edits of them, and the other device's
// rows are lost everywhere (found by TestCrashDuringRekey under load).
//
// Committed, then the app edits one of the batch's rows: the other row
// still holds what the batch wrote, so the batch counts as written, and
// the edited row is the import's own plus the edit (no re-keyed copy).
func TestKilledBeforeCommitRecord(t *testing.T) {
	for _, committed := range []bool{false, true} {
		t.Run(fmt.Sprintf("committed=%v", committed), func(t *testing.T) { killedBeforeCommitRecord(t, committed) })
	}
}

func killedBeforeCommitRecord(t *testing.T, committed bool) {
	ctx := context.Background()
	root := t.TempDir()
	folder := filepath.Join(root, "folder")
	os.MkdirAll(folder, 0o755)
	const schema = `CREATE TABLE notebooks(id INTEGER PRIMARY KEY, uid TEXT NOT NULL, name TEXT);`
	aDB, bDB := filepath.Join(root, "a.db"), filepath.Join(root, "b.db")
	newDB(t, aDB, schema)
	newDB(t, bDB, schema)
	bState := filepath.Join(root, "b-state")
	a := openSyncer(t, rowdrop.Config{DB: aDB, Folder: folder, State: filepath.Join(root, "a-state"), DeviceName: "a"})
	b := openSyncer(t, rowdrop.Config{DB: bDB, Folder: folder, State: bState, DeviceName: "b"})
	for _, s := range []*rowdrop.Syncer{a, b, a, b} {
		if _, err := s.Sync(ctx); err != nil {
			t.Fatal(err)
		}
	}
	b.Close()
	scenario.ExecFile(t, aDB, `INSERT INTO notebooks VALUES(1,'a-1','a-1'),(2,'a-2','a-2')`)
	r, err := a.Export(ctx)
	if err != nil || r.File == "" {
		t.Fatalf("a's export: %+v %v", r, err)
	}
	rel, err := filepath.Rel(folder, r.File)
	if err != nil {
		t.Fatal(err)
	}
	rel = filepath.ToSlash(rel)

	st, err := state.Open(bState)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.BeginInflight(state.Inflight{Kind: state.InflightChangeset, Name: rel}); err != nil {
		t.Fatal(err)
	}
	if err := st.StartInflightKeys(rel); err != nil {
		t.Fatal(err)
	}
	var keys, sums []string
	for _, row := range [][]changeset.Value{
		{changeset.Int(1), changeset.Text("a-1"), changeset.Text("a-1")},
		{changeset.Int(2), changeset.Text("a-2"), changeset.Text("a-2")},
	} {
		keys = append(keys, state.InflightKeyText("notebooks", changeset.EncodeKey(row[:1])))
		sums = append(sums, state.InflightRowSum(row))
	}
	if _, err := st.IntendInflightKeys(1, keys, sums); err != nil {
		t.Fatal(err)
	}
	st.Close()
	want := "a-1 a-2 b-1 b-2"
	if committed {
		// Live took the batch; the app then edits one of its rows.
		scenario.ExecFile(t, bDB, `INSERT INTO notebooks VALUES(1,'a-1','a-1'),(2,'a-2','a-2')`)
		scenario.ExecFile(t, bDB, `UPDATE notebooks SET uid='a-2 edited on b' WHERE id=2`)
		want = "a-1 a-2 edited on b"
	} else {
		// The batch did not commit; the app goes on and takes ids 1 and 2.
		scenario.ExecFile(t, bDB, `INSERT INTO notebooks(uid, name) VALUES('b-1','b-1'),('b-2','b-2')`)
	}

	b = openSyncer(t, rowdrop.Config{DB: bDB, Folder: folder, State: bState, DeviceName: "b"})
	for _, s := range []*rowdrop.Syncer{b, a, b, a} {
		if _, err := s.Sync(ctx); err != nil {
			t.Fatal(err)
		}
	}
	for name, path := range map[string]string{"A": aDB, "B": bDB} {
		if got := scenario.ValueFile(t, path, "SELECT group_concat(uid, ' ') FROM (SELECT uid FROM notebooks ORDER BY uid)"); got != want {
			t.Errorf("%s holds notebooks %q, want %q", name, got, want)
		}
	}
}
