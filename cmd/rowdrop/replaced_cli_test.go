package main

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"
)

// Issue 20 through the CLI, on real files: a database restored, reset or
// bulk-emptied never wipes or reverts the other devices.

// restoreFile puts the bytes of backup at d's database path: by a rename
// of a fresh copy (a new file, as most restore tools do), or written over
// the existing file in place.
func restoreFile(t *testing.T, d *device, backup []byte, inPlace bool) {
	t.Helper()
	for _, suffix := range []string{"-wal", "-shm"} {
		os.Remove(d.db + suffix)
	}
	if inPlace {
		if err := os.WriteFile(d.db, backup, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	tmp := d.db + ".restore"
	if err := os.WriteFile(tmp, backup, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, d.db); err != nil {
		t.Fatal(err)
	}
}

func (d *device) conflicts(t *testing.T) []map[string]any {
	t.Helper()
	r := ok(t, append([]string{"conflicts", "--json"}, d.flags()...)...)
	var cs []map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &cs); err != nil {
		t.Fatalf("conflicts --json: %v\n%s", err, r.stdout)
	}
	return cs
}

// TestCLIRestoreFromBackup is the scenario: A and B in sync; B
// edits n1 and adds n3; A syncs and has both; A's database is restored
// from a backup made before. After syncing both ways B's edit and n3 are
// on both devices and A's restored title is in A's conflict log.
func TestCLIRestoreFromBackup(t *testing.T) {
	for _, inPlace := range []bool{false, true} {
		t.Run(fmt.Sprintf("in-place=%v", inPlace), func(t *testing.T) {
			folder := t.TempDir()
			a, b := newDevice(t, folder, "alpha"), newDevice(t, folder, "beta")
			a.exec(t, "INSERT INTO notes(id,title,body) VALUES('n1','first','one'),('n2','second','two')")
			a.sync(t)
			b.sync(t)
			a.sync(t)
			backup, err := os.ReadFile(a.db) // no connection is open: the WAL was checkpointed
			if err != nil {
				t.Fatal(err)
			}
			b.exec(t, "UPDATE notes SET title='edited by beta' WHERE id='n1'")
			b.exec(t, "INSERT INTO notes(id,title,body) VALUES('n3','third','three')")
			b.sync(t)
			a.sync(t)
			if !strings.Contains(a.dump(t), "'third'") {
				t.Fatalf("alpha lacks n3 before the restore:\n%s", a.dump(t))
			}
			restoreFile(t, a, backup, inPlace)
			a.sync(t)
			b.sync(t)
			a.sync(t)
			sameDB(t, a, b)
			if got := b.dump(t); !strings.Contains(got, "'edited by beta'") || !strings.Contains(got, "'third'") {
				t.Fatalf("the restore reverted beta's work:\n%s", got)
			}
			found := false
			for _, c := range a.conflicts(t) {
				loser, _ := c["loser"].(map[string]any)
				if c["kind"] == "restored-copy" && c["key"] == "'n1'" && loser["title"] == "first" { // typed JSON: a string, not an SQL literal
					found = true
				}
			}
			if !found {
				t.Fatalf("alpha's conflict log lacks the restored title: %v", a.conflicts(t))
			}
			rec, _ := a.status(t)["live_database_recognised"].(map[string]any)
			if rec == nil || (rec["kind"] != "replaced" && rec["kind"] != "older-copy") {
				t.Fatalf("status does not say the database was restored: %v", rec)
			}
		})
	}
}

// TestCLIResetToEmpty: the app on alpha is reinstalled and creates a
// fresh, empty database. Its next sync refills it and deletes nothing on
// beta; status says why.
func TestCLIResetToEmpty(t *testing.T) {
	folder := t.TempDir()
	a, b := newDevice(t, folder, "alpha"), newDevice(t, folder, "beta")
	a.exec(t, "INSERT INTO notes(id,title,body) VALUES('n1','first','one'),('n2','second','two')")
	a.exec(t, "INSERT INTO note_tags VALUES('n1','x')")
	a.sync(t)
	b.sync(t)
	want := b.dump(t)
	for _, suffix := range []string{"", "-wal", "-shm"} {
		os.Remove(a.db + suffix)
	}
	fresh := newDevice(t, folder, "alpha")
	if err := os.Rename(fresh.db, a.db); err != nil {
		t.Fatal(err)
	}
	r := ok(t, append([]string{"sync"}, a.flags()...)...)
	if !strings.Contains(r.stderr, "empty") {
		t.Errorf("the log does not say the database was empty:\n%s", r.stderr)
	}
	b.sync(t)
	if got := a.dump(t); got != want {
		t.Fatalf("alpha not refilled:\n%s\nwant:\n%s", got, want)
	}
	if got := b.dump(t); got != want {
		t.Fatalf("beta lost rows:\n%s", got)
	}
	rec, _ := a.status(t)["live_database_recognised"].(map[string]any)
	if rec == nil || rec["kind"] != "emptied" {
		t.Fatalf("status does not say the database was emptied: %v", rec)
	}
}

// TestCLIMassDeleteHeld: the app deletes 25 of 40 notes. `rowdrop sync`
// exits 1 saying why and how to confirm, status says it is held, beta
// keeps every note; `rowdrop sync --confirm-mass-change` publishes it.
func TestCLIMassDeleteHeld(t *testing.T) {
	folder := t.TempDir()
	a, b := newDevice(t, folder, "alpha"), newDevice(t, folder, "beta")
	var script strings.Builder
	for i := 0; i < 40; i++ {
		fmt.Fprintf(&script, "INSERT INTO notes(id,title) VALUES('n%02d','note %d');", i, i)
	}
	a.execScript(t, script.String())
	a.sync(t)
	b.sync(t)
	a.exec(t, "DELETE FROM notes WHERE id < 'n25'")
	r := runRD(t, append([]string{"sync"}, a.flags()...)...)
	if r.code != 1 || !strings.Contains(r.stderr, "25 of the 40 rows of notes") || !strings.Contains(r.stderr, "--confirm-mass-change") {
		t.Fatalf("sync after a mass delete: exit %d\n%s", r.code, r.stderr)
	}
	if held, _ := a.status(t)["export_held"].(string); !strings.Contains(held, "notes") {
		t.Fatalf("status does not say the export is held: %q", held)
	}
	b.sync(t)
	if got := strings.Count(b.dump(t), "'note "); got != 40 {
		t.Fatalf("the held delete reached beta: %d notes", got)
	}
	ok(t, append([]string{"sync", "--confirm-mass-change"}, a.flags()...)...)
	b.sync(t)
	sameDB(t, a, b)
	if got := strings.Count(b.dump(t), "'note "); got != 15 {
		t.Fatalf("beta has %d notes after the confirmed delete, want 15", got)
	}
	if held, _ := a.status(t)["export_held"].(string); held != "" {
		t.Fatalf("still held: %q", held)
	}
}

// TestCLIAdopt: the user means it. alpha's app deleted every note (which a
// sync would take for a reset and refill); `rowdrop adopt --dry-run` prints
// what adopting would do and changes nothing; `rowdrop adopt` makes the
// empty state win on every device.
func TestCLIAdopt(t *testing.T) {
	folder := t.TempDir()
	a, b := newDevice(t, folder, "alpha"), newDevice(t, folder, "beta")
	a.exec(t, "INSERT INTO notes(id,title,body) VALUES('n1','first','one'),('n2','second','two')")
	a.exec(t, "INSERT INTO note_tags VALUES('n1','x')")
	a.sync(t)
	b.sync(t)
	a.execScript(t, "DELETE FROM notes; DELETE FROM note_tags;")
	r := ok(t, append([]string{"adopt", "--dry-run"}, a.flags()...)...)
	if !strings.Contains(r.stdout, "would change") || !strings.Contains(r.stdout, "notes: 0 row(s) inserted, 0 changed, 2 deleted") || !strings.Contains(r.stdout, "note_tags: 0 row(s) inserted, 0 changed, 1 deleted") {
		t.Fatalf("adopt --dry-run printed:\n%s", r.stdout)
	}
	if strings.Contains(a.dump(t), "'first'") {
		t.Fatal("adopt --dry-run changed the live database")
	}
	r = ok(t, append([]string{"adopt"}, a.flags()...)...)
	if !strings.Contains(r.stdout, "notes: 0 row(s) inserted, 0 changed, 2 deleted") {
		t.Fatalf("adopt printed:\n%s", r.stdout)
	}
	b.sync(t)
	sameDB(t, a, b)
	if got := b.dump(t); got != "" {
		t.Fatalf("beta after alpha adopted its empty database:\n%s", got)
	}
}
