package main

import (
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"zombiezen.com/go/sqlite"
	"zombiezen.com/go/sqlite/sqlitex"

	"github.com/rowdrop/rowdrop/internal/rdfile"
)

// Held table parts survive their file's collection (issue 21, item 1): the
// holder keeps a checked copy of the file in its state directory.

// collectOwn has owner d take a snapshot and collect its own files, and
// fails unless file seq of device id left the folder.
func collectOwn(t *testing.T, d *device, folder, id string, seq uint64) {
	t.Helper()
	if r := runRD(t, append([]string{"snapshot"}, d.flags()...)...); r.code != 0 && r.code != 3 {
		t.Fatalf("%s's snapshot: exit %d\n%s", d.name, r.code, r.stderr)
	}
	if r := runRD(t, append([]string{"gc"}, d.flags()...)...); r.code != 0 && r.code != 3 {
		t.Fatalf("%s's gc: exit %d\n%s\n%s", d.name, r.code, r.stdout, r.stderr)
	}
	if _, err := os.Stat(filepath.Join(folder, id, rdfile.FileName(seq))); !os.IsNotExist(err) {
		t.Fatalf("file %d of %s is still in the folder after gc (err %v): the test needs it collected", seq, d.name, err)
	}
}

// heldCopies lists the files in d's held-copy directory.
func heldCopies(t *testing.T, d *device) []string {
	t.Helper()
	ents, err := os.ReadDir(filepath.Join(d.state, "held"))
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		out = append(out, e.Name())
	}
	return out
}

// heldPartSetup: beta's app is newer (notes has a column alpha lacks) and
// beta writes a file touching notes and note_tags, then a later one.
// Alpha applies both (notes' part of the first held), acknowledges, and
// beta collects the first file. It returns beta's id.
func heldPartSetup(t *testing.T, folder string, a, b *device, beforeCollect ...func()) string {
	t.Helper()
	a.exec(t, "INSERT INTO notes(id,title) VALUES('n1','one')")
	a.sync(t)
	b.sync(t)
	b.exec(t, "ALTER TABLE notes ADD COLUMN pinned INTEGER NOT NULL DEFAULT 0")
	b.execScript(t, "UPDATE notes SET title='edited on beta', pinned=1 WHERE id='n1'; INSERT INTO note_tags VALUES('n1','beta');")
	b.sync(t)
	bID := b.status(t)["device"].(string)
	syncAny(t, a)
	if got := a.query(t, "SELECT tag FROM note_tags"); got != "beta" {
		t.Fatalf("alpha's tags: %q (only notes is held)", got)
	}
	if got := a.query(t, "SELECT title FROM notes"); got != "one" {
		t.Fatalf("alpha's notes: %q, want held", got)
	}
	// The newest file always stays: beta writes another.
	b.exec(t, "INSERT INTO note_tags VALUES('n1','later')")
	b.sync(t)
	syncAny(t, a) // applies it and acknowledges both
	syncAny(t, b) // reads alpha's ack
	for _, fn := range beforeCollect {
		fn()
	}
	collectOwn(t, b, folder, bID, 1)
	return bID
}

// A table's part held because its shape differs here still applies once
// the table matches, after the file's owner collected it; the copy goes
// once the part is applied.
func TestCLIHeldPartSurvivesCollection(t *testing.T) {
	folder := t.TempDir()
	a, b := newDevice(t, folder, "alpha"), newDevice(t, folder, "beta")
	heldPartSetup(t, folder, a, b)
	if len(heldCopies(t, a)) != 1 {
		t.Errorf("alpha's held copies: %v, want one", heldCopies(t, a))
	}
	st, _ := statusAny(t, a)
	if hc, _ := st["held_copies"].(map[string]any); hc == nil || hc["files"] != 1.0 || hc["bytes"].(float64) <= 0 {
		t.Errorf("alpha's status: held copies %v, want one file", st["held_copies"])
	}
	if text := runRD(t, append([]string{"status"}, a.flags()...)...).stdout; !strings.Contains(text, "held copies: 1 file(s)") {
		t.Errorf("alpha's status text has no held-copies line:\n%s", text)
	}
	// alpha's app upgrades: the held part applies from alpha's copy.
	a.exec(t, "ALTER TABLE notes ADD COLUMN pinned INTEGER NOT NULL DEFAULT 0")
	syncAny(t, a)
	if got := a.query(t, "SELECT title || '/' || pinned FROM notes"); got != "edited on beta/1" {
		t.Fatalf("alpha's notes after upgrading: %q, want beta's edit from the collected file", got)
	}
	st, _ = statusAny(t, a)
	if heldTable(st, "tables_held", "notes") != nil || st["held_copies"] != nil {
		t.Errorf("notes still held: %v, copies %v", st["tables_held"], st["held_copies"])
	}
	if c := heldCopies(t, a); len(c) != 0 {
		t.Errorf("alpha's held copies after the part applied: %v, want none", c)
	}
}

// A table excluded here, then included again, gets the rows the others
// changed meanwhile even though their files were collected.
func TestCLIExcludedPartSurvivesCollection(t *testing.T) {
	folder := t.TempDir()
	a, b := newDevice(t, folder, "alpha"), newDevice(t, folder, "beta")
	a.exec(t, "INSERT INTO notes(id,title) VALUES('n1','one')")
	a.exec(t, "INSERT INTO note_tags VALUES('n1','before')")
	a.sync(t)
	b.sync(t)
	aID := a.status(t)["device"].(string)
	bx := func(cmd string) []string {
		return append(append([]string{cmd}, b.flags()...), "--exclude", "note_tags")
	}
	ok(t, bx("sync")...)
	a.execScript(t, "INSERT INTO note_tags VALUES('n1','while-excluded'); UPDATE notes SET title='two' WHERE id='n1';")
	a.sync(t) // file 2
	ok(t, bx("sync")...)
	a.exec(t, "UPDATE notes SET title='three' WHERE id='n1'")
	a.sync(t) // file 3: file 2 is not the newest
	ok(t, bx("sync")...)
	a.sync(t)
	collectOwn(t, a, folder, aID, 2)
	if got := b.query(t, "SELECT tag FROM note_tags ORDER BY tag"); got != "before" {
		t.Fatalf("beta's tags while excluded: %q", got)
	}
	b.sync(t) // note_tags included again
	if got := b.query(t, "SELECT tag FROM note_tags ORDER BY tag"); got != "before,while-excluded" {
		t.Fatalf("beta's tags after including note_tags again: %q, want alpha's row from the collected file", got)
	}
	if got := b.query(t, "SELECT title FROM notes"); got != "three" {
		t.Fatalf("beta's notes: %q", got)
	}
	st := b.status(t)
	if st["tables_catching_up"] != nil || st["tables_held"] != nil {
		t.Errorf("beta still holds: catching up %v, held %v", st["tables_catching_up"], st["tables_held"])
	}
	if c := heldCopies(t, b); len(c) != 0 {
		t.Errorf("beta's held copies after catching up: %v, want none", c)
	}
	a.sync(t)
	sameDB(t, a, b)
}

// A damaged copy is never applied: the part stays held, and status names
// the copy and what to do.
func TestCLIHeldCopyDamaged(t *testing.T) {
	folder := t.TempDir()
	a, b := newDevice(t, folder, "alpha"), newDevice(t, folder, "beta")
	heldPartSetup(t, folder, a, b)
	c := heldCopies(t, a)
	if len(c) != 1 {
		t.Fatalf("alpha's held copies: %v, want one", c)
	}
	p := filepath.Join(a.state, "held", c[0])
	raw, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	raw[len(raw)-1] ^= 0x55 // a flipped byte at the end of the payload
	if err := os.WriteFile(p, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	a.exec(t, "ALTER TABLE notes ADD COLUMN pinned INTEGER NOT NULL DEFAULT 0")
	r := runRD(t, append([]string{"sync"}, a.flags()...)...)
	if r.code != 3 {
		t.Fatalf("alpha's sync with a damaged copy: exit %d, want 3 (a table held)\n%s", r.code, r.stderr)
	}
	if !strings.Contains(r.stderr, p) {
		t.Errorf("alpha's sync does not name the damaged copy %s:\n%s", p, r.stderr)
	}
	if got := a.query(t, "SELECT title || '/' || pinned FROM notes"); got != "one/0" {
		t.Fatalf("alpha's notes: %q: a damaged copy must not be applied", got)
	}
	st, code := statusAny(t, a)
	h := heldTable(st, "tables_held", "notes")
	if h == nil || code != 3 {
		t.Fatalf("alpha's status with a damaged copy: exit %d, held %v", code, st["tables_held"])
	}
	reason, _ := h["reason"].(string)
	for _, want := range []string{p, "damaged", "not applied", "put file", "rowdrop snapshot"} {
		if !strings.Contains(reason, want) {
			t.Errorf("held reason %q lacks %q", reason, want)
		}
	}
	if len(heldCopies(t, a)) != 1 {
		t.Errorf("the damaged copy was removed: %v (it is the user's to judge)", heldCopies(t, a))
	}
}

// A state directory from before held copies (held parts, no copies) gets
// its copies on the first sync while the files are still in the folder.
func TestCLIHeldCopyAddedOnUpgrade(t *testing.T) {
	folder := t.TempDir()
	a, b := newDevice(t, folder, "alpha"), newDevice(t, folder, "beta")
	heldPartSetup(t, folder, a, b, func() {
		dropHeldCopies(t, a)
		syncAny(t, a)
		if len(heldCopies(t, a)) != 1 {
			t.Fatalf("alpha's held copies after the first sync of the upgrade: %v, want one", heldCopies(t, a))
		}
	})
	a.exec(t, "ALTER TABLE notes ADD COLUMN pinned INTEGER NOT NULL DEFAULT 0")
	syncAny(t, a)
	if got := a.query(t, "SELECT title || '/' || pinned FROM notes"); got != "edited on beta/1" {
		t.Fatalf("alpha's notes after upgrading: %q, want beta's edit from the copy", got)
	}
	if c := heldCopies(t, a); len(c) != 0 {
		t.Errorf("alpha's held copies after the part applied: %v", c)
	}
}

// A part inherited from a snapshot (the joiner holds what the snapshot's
// writer held) survives the file's collection too.
func TestCLIInheritedPartSurvivesCollection(t *testing.T) {
	folder := t.TempDir()
	a, b := newDevice(t, folder, "alpha"), newDevice(t, folder, "beta")
	a.exec(t, "INSERT INTO notes(id,title) VALUES('n1','one')")
	a.sync(t)
	b.sync(t)
	b.exec(t, "ALTER TABLE notes ADD COLUMN pinned INTEGER NOT NULL DEFAULT 0")
	b.execScript(t, "UPDATE notes SET title='edited on beta', pinned=1 WHERE id='n1'; INSERT INTO note_tags VALUES('n1','beta');")
	b.sync(t)
	bID := b.status(t)["device"].(string)
	syncAny(t, a)
	if r := runRD(t, append([]string{"snapshot"}, a.flags()...)...); r.code != 0 && r.code != 3 {
		t.Fatalf("alpha's snapshot: exit %d\n%s", r.code, r.stderr)
	}
	c := newDevice(t, folder, "gamma")
	syncAny(t, c)
	if heldTable(func() map[string]any { st, _ := statusAny(t, c); return st }(), "tables_held", "notes") == nil {
		t.Fatalf("gamma does not hold beta's notes part after joining from alpha's snapshot")
	}
	if len(heldCopies(t, c)) != 1 {
		t.Errorf("gamma's held copies after joining: %v, want one", heldCopies(t, c))
	}
	b.exec(t, "INSERT INTO note_tags VALUES('n1','later')")
	b.sync(t)
	syncAny(t, a)
	syncAny(t, c)
	syncAny(t, b)
	collectOwn(t, b, folder, bID, 1)
	c.exec(t, "ALTER TABLE notes ADD COLUMN pinned INTEGER NOT NULL DEFAULT 0")
	syncAny(t, c)
	if got := c.query(t, "SELECT title || '/' || pinned FROM notes"); got != "edited on beta/1" {
		t.Fatalf("gamma's notes after upgrading: %q, want beta's edit from the collected file", got)
	}
}

// killedSync runs `rowdrop sync` for d and SIGKILLs it after delay unless
// it finished; it reports whether it was killed.
func killedSync(t *testing.T, d *device, delay time.Duration) bool {
	t.Helper()
	cmd := exec.Command(bin, append([]string{"sync"}, d.flags()...)...)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	timer := time.AfterFunc(delay, func() { cmd.Process.Kill() })
	err := cmd.Wait()
	if !timer.Stop() {
		return true
	}
	var ee *exec.ExitError
	if err != nil && !(errors.As(err, &ee) && ee.ExitCode() == 3) {
		t.Fatalf("sync of %s failed without being killed: %v", d.name, err)
	}
	return false
}

// A sync killed at any instant, while it copies and records a held part
// or while it applies the part from its copy and removes it, loses
// nothing: the copy is there whenever the part is recorded, and the part
// arrives once the table matches.
func TestCLIHeldCopyKilled(t *testing.T) {
	rng := mrand.New(mrand.NewPCG(seed(t), 0))
	// Kill moments are spread over a whole sync's time here (and a bit
	// past it, so some runs complete): measured on the previous syncs.
	span := 20 * time.Millisecond
	delay := func() time.Duration { return time.Duration(rng.Int64N(int64(span) * 5 / 4)) }
	kills := 0
	landed := map[string]int{} // where the kills landed, by what they left
	for trial := 0; trial < 6; trial++ {
		folder := t.TempDir()
		a, b := newDevice(t, folder, "alpha"), newDevice(t, folder, "beta")
		a.exec(t, "INSERT INTO notes(id,title) VALUES('n1','one')")
		a.sync(t)
		b.sync(t)
		b.exec(t, "ALTER TABLE notes ADD COLUMN pinned INTEGER NOT NULL DEFAULT 0")
		// Many rows in both tables: the copy, the apply of note_tags and
		// the release of notes take long enough for kills to land in them.
		b.execScript(t, `UPDATE notes SET title='edited on beta', pinned=1 WHERE id='n1'; INSERT INTO note_tags VALUES('n1','beta');
			WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM n WHERE i<3000)
			INSERT INTO notes(id,title,body,pinned) SELECT 'b'||i, 'bulk '||i, hex(randomblob(64)), 1 FROM n;
			WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM n WHERE i<3000)
			INSERT INTO note_tags SELECT 'b'||i, 'bulk' FROM n;`)
		start := time.Now()
		b.sync(t)
		span = time.Since(start)
		bID := b.status(t)["device"].(string)
		if killedSync(t, a, delay()) {
			kills++
			landed[fmt.Sprintf("apply: %s tags, %d copies", a.query(t, "SELECT count(*) FROM note_tags"), len(heldCopies(t, a)))]++
		}
		start = time.Now()
		syncAny(t, a)
		span = (span + time.Since(start)) / 2
		if got := a.query(t, "SELECT count(*) FROM note_tags WHERE tag IN ('beta','bulk')"); got != "3001" {
			t.Fatalf("trial %d: alpha's tags from beta: %s, want 3001", trial, got)
		}
		if got := a.query(t, "SELECT count(*) FROM notes"); got != "1" {
			t.Fatalf("trial %d: alpha's notes: %s, want 1 (beta's held)", trial, got)
		}
		if c := heldCopies(t, a); len(c) != 1 {
			t.Fatalf("trial %d: alpha's held copies after a killed sync and a whole one: %v, want one", trial, c)
		}
		b.exec(t, "INSERT INTO note_tags VALUES('n1','later')")
		b.sync(t)
		syncAny(t, a)
		syncAny(t, b)
		collectOwn(t, b, folder, bID, 1)
		a.exec(t, "ALTER TABLE notes ADD COLUMN pinned INTEGER NOT NULL DEFAULT 0")
		if killedSync(t, a, delay()) {
			kills++
			landed[fmt.Sprintf("release: %s notes, %d copies", a.query(t, "SELECT count(*) FROM notes"), len(heldCopies(t, a)))]++
		}
		syncAny(t, a)
		if got := a.query(t, "SELECT title || '/' || pinned FROM notes WHERE id='n1'"); got != "edited on beta/1" {
			t.Fatalf("trial %d: alpha's n1 after upgrading: %q, want beta's edit", trial, got)
		}
		if got := a.query(t, "SELECT count(*) || '/' || sum(pinned) FROM notes"); got != "3001/3001" {
			t.Fatalf("trial %d: alpha's notes after upgrading: %s, want 3001/3001", trial, got)
		}
		if got := a.query(t, "SELECT count(*) FROM note_tags"); got != "3002" {
			t.Fatalf("trial %d: alpha's tags: %s, want 3002", trial, got)
		}
		if c := heldCopies(t, a); len(c) != 0 {
			t.Fatalf("trial %d: alpha's held copies after the part applied: %v", trial, c)
		}
		st, _ := statusAny(t, a)
		if st["tables_held"] != nil {
			t.Fatalf("trial %d: alpha still holds: %v", trial, st["tables_held"])
		}
		syncAny(t, b)
		sameDB(t, a, b)
	}
	t.Logf("%d of 12 syncs killed mid-run; what they left: %v", kills, landed)
}

// A joiner that excluded a table the snapshot it joined from carries
// keeps a copy of that snapshot: once its writer collected it (a newer
// snapshot replaced it), including the table still brings its rows.
// Also from a state directory of before held copies: the copy is made on
// the next sync while the snapshot is still in the folder.
func TestCLIJoinerSnapshotPartSurvivesCollection(t *testing.T) {
	t.Run("joined", func(t *testing.T) { joinerSnapshotPart(t, false) })
	t.Run("upgraded", func(t *testing.T) { joinerSnapshotPart(t, true) })
}

// dropHeldCopies makes d's state directory what an older rowdrop left:
// no copy table, no copies.
func dropHeldCopies(t *testing.T, d *device) {
	t.Helper()
	conn, err := sqlite.OpenConn(filepath.Join(d.state, "base.db"), sqlite.OpenReadWrite)
	if err != nil {
		t.Fatal(err)
	}
	err = sqlitex.ExecuteTransient(conn, "DROP TABLE rowdrop_held_copies", nil)
	conn.Close()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(filepath.Join(d.state, "held")); err != nil {
		t.Fatal(err)
	}
}

func joinerSnapshotPart(t *testing.T, upgrade bool) {
	folder := t.TempDir()
	a := newDevice(t, folder, "alpha")
	a.exec(t, "INSERT INTO notes(id,title) VALUES('n1','one')")
	a.exec(t, "INSERT INTO note_tags VALUES('n1','t1')")
	a.sync(t)
	ok(t, append([]string{"snapshot"}, a.flags()...)...)
	aID := a.status(t)["device"].(string)
	c := newDevice(t, folder, "gamma")
	ok(t, append(append([]string{"sync"}, c.flags()...), "--exclude", "note_tags")...)
	if got := c.query(t, "SELECT count(*) FROM note_tags"); got != "0" {
		t.Fatalf("gamma's tags while excluded: %q", got)
	}
	first := mustReadDir(t, filepath.Join(folder, aID))
	if len(heldCopies(t, c)) != 1 {
		t.Fatalf("gamma's held copies after joining: %v, want the snapshot's", heldCopies(t, c))
	}
	if upgrade {
		dropHeldCopies(t, c)
	}
	a.exec(t, "INSERT INTO note_tags VALUES('n1','t2')")
	a.sync(t)
	ok(t, append(append([]string{"sync"}, c.flags()...), "--exclude", "note_tags")...)
	a.sync(t)
	ok(t, append([]string{"snapshot"}, a.flags()...)...)
	if r := runRD(t, append([]string{"gc"}, a.flags()...)...); r.code != 0 {
		t.Fatalf("alpha's gc: exit %d\n%s", r.code, r.stderr)
	}
	var snap string
	for _, n := range first {
		if strings.HasSuffix(n, rdfile.SnapshotExt) {
			snap = n
		}
	}
	if _, err := os.Stat(filepath.Join(folder, aID, snap)); snap == "" || !os.IsNotExist(err) {
		t.Fatalf("alpha's first snapshot %q is still in the folder (%v): the test needs it collected", snap, err)
	}
	c.sync(t) // note_tags included again
	if got := c.query(t, "SELECT group_concat(tag) FROM (SELECT tag FROM note_tags ORDER BY tag)"); got != "t1,t2" {
		t.Fatalf("gamma's tags after including the table: %q, want t1 (from the collected snapshot) and t2", got)
	}
	if st := c.status(t); st["tables_catching_up"] != nil || st["held_copies"] != nil {
		t.Errorf("gamma still catching up: %v, copies %v", st["tables_catching_up"], st["held_copies"])
	}
}
