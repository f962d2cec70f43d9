package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

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
func heldPartSetup(t *testing.T, folder string, a, b *device) string {
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
	// alpha's app upgrades: the held part applies from alpha's copy.
	a.exec(t, "ALTER TABLE notes ADD COLUMN pinned INTEGER NOT NULL DEFAULT 0")
	syncAny(t, a)
	if got := a.query(t, "SELECT title || '/' || pinned FROM notes"); got != "edited on beta/1" {
		t.Fatalf("alpha's notes after upgrading: %q, want beta's edit from the collected file", got)
	}
	st, _ := statusAny(t, a)
	if heldTable(st, "tables_held", "notes") != nil {
		t.Errorf("notes still held: %v", st["tables_held"])
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

var _ = strings.Contains
