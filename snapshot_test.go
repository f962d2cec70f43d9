package rowdrop_test

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"zombiezen.com/go/sqlite"
	"zombiezen.com/go/sqlite/sqlitex"

	"rowdrop"
	"rowdrop/internal/rdfile"
	"rowdrop/internal/simtest"
)

const snapSchema = `
CREATE TABLE notes(id TEXT PRIMARY KEY, title TEXT, body TEXT, n INTEGER, score REAL, data BLOB);
CREATE TABLE tags(note TEXT, tag TEXT, PRIMARY KEY(tag, note)) WITHOUT ROWID;
`

// quiesceAmong floods and syncs the given devices until nothing moves.
func quiesceAmong(t *testing.T, w *simtest.World, devs ...*simtest.Device) {
	t.Helper()
	saved := w.Devs
	w.Devs = devs
	defer func() { w.Devs = saved }()
	w.Quiesce(10)
}

// TestJoinLateFromSnapshot: two devices work for a while, one snapshots,
// their early files are collected; a third device joins from the snapshot
// plus the later files, and all three converge.
func TestJoinLateFromSnapshot(t *testing.T) {
	w := simtest.NewWorld(t, snapSchema)
	a := w.AddDevice(simtest.Options{Name: "a", Initialised: true})
	b := w.AddDevice(simtest.Options{Name: "b", Initialised: true, Hints: true, WAL: true})
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
	quiesceAmong(t, w, a, b)
	w.Tick(1000)
	a.Exec("UPDATE notes SET title='edited by a' WHERE id='nb'")
	b.Exec("DELETE FROM notes WHERE id='nc'")
	quiesceAmong(t, w, a, b)
	snap := a.Snapshot()
	if snap.Seen[b.ID] == 0 || snap.Seen[a.ID] == 0 {
		t.Fatalf("snapshot seen vector %v lacks a device", snap.Seen)
	}
	// The payload is one self-contained SQLite file in rollback mode,
	// though base.db is in WAL mode (FORMAT §14).
	sf, err := simtest.OpenFile(snap.File)
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
	quiesceAmong(t, w, a, b)
	// Both collect what the snapshot covers.
	w.Collect(a, snap.Seen[a.ID])
	w.Collect(b, snap.Seen[b.ID])

	c := w.AddDevice(simtest.Options{Name: "c"})
	for _, from := range []*simtest.Device{a, b} {
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
func twoWithData(t *testing.T, w *simtest.World, n int) (a, b *simtest.Device) {
	t.Helper()
	a = w.AddDevice(simtest.Options{Name: "a", Initialised: true})
	b = w.AddDevice(simtest.Options{Name: "b", Initialised: true, Hints: true})
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
	quiesceAmong(t, w, a, b)
	return a, b
}

// TestJoinNonEmptyDevice: a new device whose database already holds rows
// joins from a snapshot. Its own rows survive and reach the others, every
// snapshot row reaches it, and where both hold a row with other values its
// values stay and the snapshot's are in its conflict log.
func TestJoinNonEmptyDevice(t *testing.T) {
	w := simtest.NewWorld(t, snapSchema)
	a, b := twoWithData(t, w, 10)
	w.Tick(1000)
	snap := a.Snapshot()
	w.Collect(a, snap.Seen[a.ID])
	w.Collect(b, snap.Seen[b.ID])

	c := w.AddDevice(simtest.Options{Name: "c"})
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
	w := simtest.NewWorld(t, snapSchema)
	a, b := twoWithData(t, w, 8)
	c := w.AddDevice(simtest.Options{Name: "c", Initialised: true})
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
		quiesceAmong(t, w, a, b)
	}
	w.Tick(1000)
	a.Exec("UPDATE notes SET title='a title' WHERE id='n02'") // concurrent with c's offline edit
	b.Exec("DELETE FROM notes WHERE id='n05'")
	quiesceAmong(t, w, a, b)
	snap := b.Snapshot()
	w.Collect(a, snap.Seen[a.ID])
	w.Collect(b, snap.Seen[b.ID])
	// More after the snapshot.
	w.Tick(1000)
	a.Exec("UPDATE notes SET score=42 WHERE id='n06'")
	quiesceAmong(t, w, a, b)

	// c comes back (later than every edit above, so its export wins).
	w.Tick(1000)
	for _, from := range []*simtest.Device{a, b} {
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

// craftSnapshot decompresses a real snapshot, lets edit change the SQLite
// database and the header, and publishes the result under device dev's
// snapshot number n in to's folder, well-formed as a file (checksums
// right): only its content is wrong.
func craftSnapshot(t *testing.T, src string, to *simtest.Device, dev string, n uint64, edit func(conn *sqlite.Conn, h *rdfile.Header)) string {
	t.Helper()
	f, err := simtest.OpenFile(src)
	if err != nil {
		t.Fatal(err)
	}
	rc, err := f.Changeset()
	if err != nil {
		t.Fatal(err)
	}
	raw, err := io.ReadAll(rc)
	rc.Close()
	if err != nil {
		t.Fatal(err)
	}
	tmp := filepath.Join(t.TempDir(), "snap.db")
	if err := os.WriteFile(tmp, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	h := f.Header
	h.Seq = n
	if edit != nil {
		conn, err := sqlite.OpenConn(tmp, sqlite.OpenReadWrite)
		if err != nil {
			t.Fatal(err)
		}
		edit(conn, &h)
		conn.Close()
	}
	in, err := os.Open(tmp)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	rel := dev + "/" + rdfile.SnapshotName(n)
	if err := os.MkdirAll(filepath.Join(to.Folder, dev), 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := rdfile.Build(filepath.Join(to.Folder, filepath.FromSlash(rel)), h, in); err != nil {
		t.Fatal(err)
	}
	return rel
}

func mustExecT(t *testing.T, conn *sqlite.Conn, q string) {
	t.Helper()
	if err := sqlitex.ExecuteScript(conn, q, nil); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}

// TestBadSnapshotsSkipped: corrupt, truncated, foreign and hostile
// snapshots are reported and skipped; the database is untouched; the good
// one, once it arrives, is used.
func TestBadSnapshotsSkipped(t *testing.T) {
	w := simtest.NewWorld(t, snapSchema)
	a, b := twoWithData(t, w, 6)
	w.Tick(1000)
	good := a.Snapshot()
	w.Collect(a, good.Seen[a.ID])
	w.Collect(b, good.Seen[b.ID])
	w.Tick(1000)
	a.Exec("UPDATE notes SET body='after' WHERE id='n00'")
	quiesceAmong(t, w, a, b)

	c := w.AddDevice(simtest.Options{Name: "c"})
	c.Exec("INSERT INTO notes VALUES('cx','c row',NULL,NULL,NULL,NULL)")
	w.DeliverAll(a, c)
	w.DeliverAll(b, c)
	before := c.Dump()
	want := map[string]string{} // rel -> status
	// Each bad variant claims to include more than the good one, so it is
	// tried first.
	more := func(h *rdfile.Header) { h.Seen = map[string]uint64{a.ID: good.Seen[a.ID], b.ID: good.Seen[b.ID]} }
	n := uint64(10)
	next := func() uint64 { n++; return n }

	// Truncated: still arriving, waits.
	rel := craftSnapshot(t, good.File, c, a.ID, next(), func(_ *sqlite.Conn, h *rdfile.Header) { more(h) })
	data, _ := os.ReadFile(filepath.Join(c.Folder, rel))
	os.WriteFile(filepath.Join(c.Folder, rel), data[:len(data)/2], 0o644)
	want[rel] = "waiting"
	// Foreign bytes under a snapshot name.
	rel = a.ID + "/" + rdfile.SnapshotName(next())
	os.WriteFile(filepath.Join(c.Folder, rel), []byte("PK\x03\x04 not a rowdrop file at all"), 0o644)
	want[rel] = "broken"
	// A changeset header under a snapshot name (wrong kind).
	rel = craftSnapshot(t, good.File, c, a.ID, next(), func(_ *sqlite.Conn, h *rdfile.Header) { more(h); h.Kind = rdfile.KindChangeset })
	want[rel] = "broken"
	// Checksummed garbage instead of a database.
	rel = a.ID + "/" + rdfile.SnapshotName(next())
	gf, err := simtest.OpenFile(good.File)
	if err != nil {
		t.Fatal(err)
	}
	h := gf.Header
	h.Seq = n
	if _, err := rdfile.Build(filepath.Join(c.Folder, rel), h, strings.NewReader(strings.Repeat("garbage ", 1000))); err != nil {
		t.Fatal(err)
	}
	want[rel] = "broken"
	// Hostile content, each in an otherwise valid snapshot.
	for _, hostile := range []string{
		"CREATE TABLE evil(x)",
		"CREATE TRIGGER evil AFTER INSERT ON notes BEGIN DELETE FROM tags; END",
		"CREATE VIEW rowdrop_state AS SELECT 1 AS k, 2 AS v",
		"CREATE INDEX evil ON notes(lower(title))",
		"ALTER TABLE rowdrop_rows DROP COLUMN cells",
		"UPDATE rowdrop_rows SET cells=x'05626f6479'",                                                     // a cell name cut short
		"UPDATE rowdrop_rows SET cells=x'03626f62011061616161616161616161616161616161' WHERE tbl='notes'", // a cell clock of column "bob"
		"ALTER TABLE notes ADD COLUMN extra TEXT",
		"INSERT INTO rowdrop_rows(tbl,pk,ins,ins_dev,wmax,wmax_dev) VALUES('sqlite_master',x'01',1,'aaaaaaaaaaaaaaaa',1,'aaaaaaaaaaaaaaaa')",
		"INSERT INTO rowdrop_rows(tbl,pk,ins,ins_dev,wmax,wmax_dev) VALUES('notes',x'ff00',1,'aaaaaaaaaaaaaaaa',1,'aaaaaaaaaaaaaaaa')",
		"UPDATE rowdrop_rows SET wmax=wmax+1000000000000000 WHERE pk=(SELECT pk FROM rowdrop_rows WHERE tbl='notes' LIMIT 1)",
		"UPDATE rowdrop_rows SET wmax=wmax+1000000000000000",
		"DELETE FROM rowdrop_rows WHERE tbl='tags'",
		"UPDATE rowdrop_devices SET applied=applied+5",
		"PRAGMA writable_schema=ON; UPDATE sqlite_master SET sql='CREATE TABLE notes(id TEXT PRIMARY KEY, title TEXT, body TEXT, n INTEGER, score REAL, data BLOB, x AS (1))' WHERE name='notes'",
	} {
		rel := craftSnapshot(t, good.File, c, a.ID, next(), func(conn *sqlite.Conn, h *rdfile.Header) {
			more(h)
			mustExecT(t, conn, hostile)
		})
		want[rel] = "broken"
	}
	// A device id in the header that is not the directory's.
	rel = craftSnapshot(t, good.File, c, a.ID, next(), func(_ *sqlite.Conn, h *rdfile.Header) { more(h); h.Device = b.ID })
	want[rel] = "broken"

	for round := 0; round < 2; round++ { // twice: nothing changes on a retry
		w.Tick(1000)
		if _, err := c.S.Sync(context.Background()); err != nil {
			t.Fatalf("c: sync with bad snapshots: %v", err)
		}
	}
	st := c.Status()
	seen := map[string]rowdrop.FileStatus{}
	for _, f := range st.Files {
		seen[f.Path] = f
	}
	for rel, status := range want {
		f, ok := seen[rel]
		if !ok {
			t.Errorf("%s not reported (want %s)", rel, status)
			continue
		}
		if f.Status != status {
			t.Errorf("%s: status %s (%s), want %s", rel, f.Status, f.Reason, status)
		}
		t.Logf("%s: %s: %s", rel, f.Status, f.Reason)
	}
	gap := false
	for _, f := range st.Files {
		if strings.HasSuffix(f.Path, ".rdc") && strings.Contains(f.Reason, "snapshot") {
			gap = true
		}
	}
	if !gap {
		t.Errorf("the missing file is not reported with the advice to get a snapshot: %+v", st.Files)
	}
	if got := c.Dump(); got != before {
		t.Fatalf("bad snapshots changed c's database:\nbefore:\n%s\nafter:\n%s", before, got)
	}
	if t.Failed() {
		t.FailNow()
	}
	// The good snapshot arrives: c re-bases and converges.
	w.DeliverSnapshots(a, c)
	w.Tick(1000)
	if _, err := c.S.Sync(context.Background()); err != nil {
		t.Fatal(err)
	}
	w.Quiesce(10)
	w.AssertConverged()
	if got := a.Dump(); !strings.Contains(got, "'cx'|'c row'") || !strings.Contains(got, "'after'") {
		t.Fatalf("after the good snapshot:\n%s", got)
	}
}

// TestSnapshotIfDue: watch's trigger, by files and by time.
func TestSnapshotIfDue(t *testing.T) {
	w := simtest.NewWorld(t, snapSchema)
	a := w.AddDevice(simtest.Options{Name: "a", Initialised: true})
	ctx := context.Background()
	due := func() bool {
		t.Helper()
		r, err := a.S.SnapshotIfDue(ctx, 3, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		return r != nil
	}
	if due() {
		t.Fatal("snapshot due before any file")
	}
	for i := 0; i < 3; i++ {
		if due() {
			t.Fatalf("snapshot due after %d file(s)", i)
		}
		w.Tick(1000)
		a.Exec("INSERT INTO notes(id) VALUES(?)", fmt.Sprint(i))
		a.Export()
	}
	if !due() {
		t.Fatal("no snapshot after 3 files")
	}
	if due() {
		t.Fatal("a second snapshot right after the first")
	}
	w.Tick(2 * 3600 * 1000)
	if due() {
		t.Fatal("a snapshot by time although nothing changed")
	}
	a.Exec("INSERT INTO notes(id) VALUES('x')")
	a.Export()
	if !due() {
		t.Fatal("no snapshot after an hour and a new file")
	}
	if got := a.Snapshots(); len(got) != 2 {
		t.Fatalf("snapshots %v, want 2", got)
	}
}

// TestJoinInterrupted: a join stopped between two batches leaves some rows
// merged into live and base; the next sync finishes it, and none of the
// merged rows is exported as an edit of the joining device.
func TestJoinInterrupted(t *testing.T) {
	w := simtest.NewWorld(t, snapSchema)
	a := w.AddDevice(simtest.Options{Name: "a", Initialised: true})
	a.Exec(`WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM n WHERE i<1300)
		INSERT INTO notes(id,title,n) SELECT printf('r%04d',i), 'row '||i, i FROM n`)
	a.Export()
	w.Tick(1000)
	snap := a.Snapshot()
	w.Collect(a, snap.Seen[a.ID])

	var cancel context.CancelFunc
	var calls []int
	c := w.AddDevice(simtest.Options{Name: "c", Config: func(cfg *rowdrop.Config) {
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
	if len(calls) < 3 || calls[len(calls)-1] != 1300 {
		t.Fatalf("progress calls %v", calls)
	}
	w.Quiesce(10)
	w.AssertConverged()
}
