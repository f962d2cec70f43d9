package scenario_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"zombiezen.com/go/sqlite"
	"zombiezen.com/go/sqlite/sqlitex"

	"github.com/rowdrop/rowdrop"
	"github.com/rowdrop/rowdrop/export"
	"github.com/rowdrop/rowdrop/scenario"
)

// Invariant 13b: a database restored, reset or replaced under rowdrop is
// recognised before its differences from the base copy are captured, and
// never wipes or reverts the other devices (issue 20).

const notesSchema = `CREATE TABLE notes(id TEXT PRIMARY KEY, title TEXT, body TEXT);
CREATE TABLE tags(note TEXT, tag TEXT, PRIMARY KEY(note, tag)) WITHOUT ROWID;`

// restorePair returns devices a and b in sync on notes n1 and n2 (and a
// tag), both initialised so their edits carry real clocks.
func restorePair(t *testing.T, opt scenario.Options) (*scenario.World, *scenario.Device, *scenario.Device) {
	t.Helper()
	w := scenario.NewWorld(t, notesSchema)
	opt.Name, opt.Initialised = "a", true
	a := w.AddDevice(opt)
	opt.Name = "b"
	b := w.AddDevice(opt)
	w.Tick(1000)
	a.Exec("INSERT INTO notes VALUES('n1','first','one'),('n2','second','two')")
	a.Exec("INSERT INTO tags VALUES('n1','x')")
	w.Quiesce(10)
	return w, a, b
}

// recognised returns the last recognition a's status reports.
func recognised(t *testing.T, d *scenario.Device) string {
	t.Helper()
	r := d.Status().Recognised
	if r == nil {
		return ""
	}
	return r.Kind
}

func restoredConflicts(d *scenario.Device) []*rowdrop.Conflict {
	var out []*rowdrop.Conflict
	for _, c := range d.Conflicts() {
		if c.Kind == export.KindRestoredCopy {
			out = append(out, c)
		}
	}
	return out
}

// checkRestoreOutcome is the promise after a restore of a's older
// copy: b's edit of n1 and b's note n3 are on both devices, a's restored
// title is in a's conflict log, nothing is missing anywhere.
func checkRestoreOutcome(t *testing.T, w *scenario.World, a, b *scenario.Device) {
	t.Helper()
	w.Quiesce(10)
	w.AssertConverged()
	for _, d := range []*scenario.Device{a, b} {
		if got := d.Value("SELECT title FROM notes WHERE id='n1'"); got != "edited by b" {
			t.Errorf("%s: n1 title %s, want b's edit", d.Name, got)
		}
		if got := d.Value("SELECT count(*) FROM notes"); got != "3" {
			t.Errorf("%s: %s notes, want 3 (n1, n2, n3):\n%s", d.Name, got, d.Dump())
		}
	}
	cs := restoredConflicts(a)
	found := false
	for _, c := range cs {
		if c.Key == "'n1'" && c.Loser["title"] == "'first'" && c.Winner["title"] == "'edited by b'" {
			found = true
		}
	}
	if !found {
		t.Errorf("a's conflict log lacks the restored title of n1: %+v", cs)
	}
}

// TestRestoreOlderCopyInPlace: the scenario, the backup copied back
// over the same file (same inode): the header's change counter went back.
func TestRestoreOlderCopyInPlace(t *testing.T) {
	w, a, b := restorePair(t, scenario.Options{})
	backup := filepath.Join(w.Dir, "a-backup.db")
	a.WithAppClosed(func(path string) { scenario.CopyFile(t, path, backup) })
	w.Tick(1000)
	b.Exec("UPDATE notes SET title='edited by b' WHERE id='n1'")
	b.Exec("INSERT INTO notes VALUES('n3','third','three')")
	w.Quiesce(10)
	if got := a.Value("SELECT count(*) FROM notes"); got != "3" {
		t.Fatalf("a has %s notes before the restore", got)
	}
	a.WithAppClosed(func(path string) {
		before, _ := export.FileID(path)
		b, err := os.ReadFile(backup)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, b, 0o644); err != nil { // same inode
			t.Fatal(err)
		}
		if after, _ := export.FileID(path); after != before {
			t.Fatalf("the copy changed the file's identity (%s -> %s): not an in-place restore", before, after)
		}
	})
	r := a.Export()
	if r.Recognised == nil || r.Recognised.Kind != export.RecognisedOlder {
		t.Fatalf("the restored copy was not recognised as older: %+v", r.Recognised)
	}
	if r.Recognised.Restored != 1 || r.Recognised.Reverted != 1 {
		t.Errorf("recognition %+v: want n3 brought back and n1 reverted", r.Recognised)
	}
	checkRestoreOutcome(t, w, a, b)
	if got := recognised(t, a); got != export.RecognisedOlder {
		t.Errorf("status says %q", got)
	}
}

// TestRestoreByRenameWhileWatching: the backup (made with VACUUM INTO)
// renamed over the live file while the Syncer stays open, in WAL mode:
// the file identity changed, and the Syncer follows the new file.
func TestRestoreByRenameWhileWatching(t *testing.T) {
	w, a, b := restorePair(t, scenario.Options{WAL: true, Hints: true})
	backup := filepath.Join(w.Dir, "a-backup.db")
	a.Exec("VACUUM INTO ?", backup)
	w.Tick(1000)
	b.Exec("UPDATE notes SET title='edited by b' WHERE id='n1'")
	b.Exec("INSERT INTO notes VALUES('n3','third','three')")
	w.Quiesce(10)
	a.WithAppClosed(func(path string) {
		for _, suffix := range []string{"-wal", "-shm"} {
			os.Remove(path + suffix)
		}
		if err := os.Rename(backup, path); err != nil {
			t.Fatal(err)
		}
	})
	// The backup is in rollback mode; the app switches it back.
	a.Exec("PRAGMA journal_mode=WAL")
	checkRestoreOutcome(t, w, a, b)
	if got := recognised(t, a); got != export.RecognisedReplaced {
		t.Errorf("status says %q, want %q", got, export.RecognisedReplaced)
	}
}

// TestVacuumIntoRenameSameContent: an app that compacts its database by
// VACUUM INTO + rename replaces the file with the same content: it is
// recognised, nothing is exported, nothing logged.
func TestVacuumIntoRenameSameContent(t *testing.T) {
	w, a, b := restorePair(t, scenario.Options{})
	a.WithAppClosed(func(path string) {
		tmp := path + ".compact"
		conn, err := sqlite.OpenConn(path, sqlite.OpenReadWrite)
		if err != nil {
			t.Fatal(err)
		}
		err = sqlitex.Execute(conn, "VACUUM INTO ?", &sqlitex.ExecOptions{Args: []any{tmp}})
		conn.Close()
		if err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, path); err != nil {
			t.Fatal(err)
		}
	})
	r := a.Export()
	if r.Recognised == nil || r.Recognised.Kind != export.RecognisedReplaced {
		t.Fatalf("the replaced file was not recognised: %+v", r.Recognised)
	}
	if r.Seq != 0 || r.Recognised.Reverted+r.Recognised.Restored+r.Recognised.Kept != 0 {
		t.Fatalf("a compacted copy with the same content exported or changed something: seq %d, %+v", r.Seq, r.Recognised)
	}
	if n := len(a.Conflicts()); n != 0 {
		t.Fatalf("%d conflicts logged", n)
	}
	// The file is the synced one from now on: an edit is an edit.
	w.Tick(1000)
	a.Exec("UPDATE notes SET title='after compaction' WHERE id='n2'")
	w.Quiesce(10)
	w.AssertConverged()
	if got := b.Value("SELECT title FROM notes WHERE id='n2'"); got != "after compaction" {
		t.Fatalf("b: n2 title %s", got)
	}
}

// emptiedCases are the ways an app's database comes back empty.
var emptiedCases = []struct {
	name  string
	reset func(t *testing.T, path string)
}{
	// A reinstalled app: the file is deleted and created anew.
	{"reinstall", func(t *testing.T, path string) {
		for _, suffix := range []string{"", "-wal", "-shm", "-journal"} {
			os.Remove(path + suffix)
		}
		scenario.ScriptFile(t, path, notesSchema)
	}},
	// The same file, its tables dropped and created again.
	{"schema-only-recreate", func(t *testing.T, path string) {
		scenario.ScriptFile(t, path, "DROP TABLE notes; DROP TABLE tags;"+notesSchema)
	}},
	// An empty database compacted into place by VACUUM INTO + rename.
	{"vacuum-into-rename", func(t *testing.T, path string) {
		tmp := path + ".new"
		scenario.ScriptFile(t, tmp, notesSchema)
		for _, suffix := range []string{"-wal", "-shm"} {
			os.Remove(path + suffix)
		}
		if err := os.Rename(tmp, path); err != nil {
			t.Fatal(err)
		}
	}},
}

// TestResetToEmptyRefills: a device whose database comes back empty is
// treated as a device joining: every device keeps every row, and the reset
// one is refilled; new rows it gets meanwhile are kept.
func TestResetToEmptyRefills(t *testing.T) {
	for _, tc := range emptiedCases {
		t.Run(tc.name, func(t *testing.T) {
			w, a, b := restorePair(t, scenario.Options{})
			want := b.Dump()
			a.WithAppClosed(func(path string) { tc.reset(t, path) })
			w.Tick(1000)
			r := a.Export()
			if r.Recognised == nil || r.Recognised.Kind != export.RecognisedEmptied {
				t.Fatalf("the emptied database was not recognised: %+v", r.Recognised)
			}
			if r.Seq != 0 {
				t.Fatalf("an emptied database exported file %d", r.Seq)
			}
			if got := a.Dump(); got != want {
				t.Fatalf("a was not refilled from its base copy:\n%s\nwant:\n%s", got, want)
			}
			// The app adds a row to the refilled database: a normal edit.
			a.Exec("INSERT INTO notes VALUES('n4','after reset','four')")
			w.Quiesce(10)
			w.AssertConverged()
			if got := b.Value("SELECT count(*) FROM notes"); got != "3" {
				t.Fatalf("b has %s notes, want n1, n2 and n4:\n%s", got, b.Dump())
			}
			if st := a.Status(); st.Recognised == nil || st.Recognised.Kind != export.RecognisedEmptied {
				t.Fatalf("status does not say the database was emptied: %+v", st.Recognised)
			}
		})
	}
}

// TestAppDeletingEverythingIsAnEdit: the app deleting every row of the
// file last synced is the user's edit, not a reset: in small tables it
// propagates; in a table of 20 rows or more the mass-change guard holds it.
func TestAppDeletingEverythingIsAnEdit(t *testing.T) {
	w, a, b := restorePair(t, scenario.Options{})
	a.Script("DELETE FROM notes; DELETE FROM tags;")
	w.Quiesce(10)
	w.AssertConverged()
	if got := b.Value("SELECT count(*) FROM notes"); got != "0" {
		t.Fatalf("b has %s notes after a deleted every note", got)
	}
	for i := 0; i < 20; i++ {
		b.Exec("INSERT INTO notes VALUES(?,?,?)", fmt.Sprintf("m%02d", i), "t", "b")
	}
	w.Quiesce(10)
	a.Script("DELETE FROM notes;")
	if _, err := a.S.Sync(context.Background()); !errors.Is(err, rowdrop.ErrMassChange) {
		t.Fatalf("a deleting all 20 notes b wrote: %v", err)
	}
	if got := a.Value("SELECT count(*) FROM notes"); got != "0" {
		t.Fatalf("a's delete was undone: %s notes", got)
	}
}

// TestMassDeleteHeldUntilConfirmed: the app deletes 30 of 50 notes; the
// export is held (nothing published, b keeps every note), Sync and status
// say why; once confirmed it propagates.
func TestMassDeleteHeldUntilConfirmed(t *testing.T) {
	w := scenario.NewWorld(t, notesSchema)
	a := w.AddDevice(scenario.Options{Name: "a", Initialised: true, Hints: true})
	b := w.AddDevice(scenario.Options{Name: "b", Initialised: true})
	w.Tick(1000)
	for i := 0; i < 50; i++ {
		a.Exec("INSERT INTO notes VALUES(?,?,?)", fmt.Sprintf("n%02d", i), "title", "body")
	}
	w.Quiesce(10)
	w.Tick(1000)
	a.Exec("DELETE FROM notes WHERE id < 'n30'")
	_, err := a.S.Sync(context.Background())
	if !errors.Is(err, rowdrop.ErrMassChange) || !strings.Contains(err.Error(), "30 of the 50 rows of notes") || !strings.Contains(err.Error(), "--confirm-mass-change") {
		t.Fatalf("sync after a mass delete: %v", err)
	}
	if st := a.Status(); !strings.Contains(st.Held, "notes") {
		t.Fatalf("status does not say the export is held: %q", st.Held)
	}
	w.Flood()
	b.Import()
	if got := b.Value("SELECT count(*) FROM notes"); got != "50" {
		t.Fatalf("the held delete reached b: %s notes", got)
	}
	// A small edit meanwhile waits with it; imports go on.
	b.Exec("UPDATE notes SET body='b edit' WHERE id='n40'")
	b.Export()
	w.Flood()
	if _, err := a.S.Sync(context.Background()); !errors.Is(err, rowdrop.ErrMassChange) {
		t.Fatalf("second sync: %v", err)
	}
	if got := a.Value("SELECT body FROM notes WHERE id='n40'"); got != "b edit" {
		t.Fatalf("a did not import b's edit while held: %s", got)
	}
	a.ReopenWith(func(c *rowdrop.Config) { c.ConfirmMassChange = true })
	if _, err := a.S.Sync(context.Background()); err != nil {
		t.Fatalf("confirmed sync: %v", err)
	}
	if st := a.Status(); st.Held != "" {
		t.Fatalf("still held after confirming: %q", st.Held)
	}
	w.Quiesce(10)
	w.AssertConverged()
	if got := b.Value("SELECT count(*) FROM notes"); got != "20" {
		t.Fatalf("b has %s notes after the confirmed delete, want 20", got)
	}
}

// TestMassGuardConfigurable: a higher threshold lets the same delete
// through; small tables are never held.
func TestMassGuardConfigurable(t *testing.T) {
	w := scenario.NewWorld(t, notesSchema)
	a := w.AddDevice(scenario.Options{Name: "a", Initialised: true, Config: func(c *rowdrop.Config) { c.MassChangePercent = 70 }})
	b := w.AddDevice(scenario.Options{Name: "b", Initialised: true})
	w.Tick(1000)
	for i := 0; i < 50; i++ {
		a.Exec("INSERT INTO notes VALUES(?,?,?)", fmt.Sprintf("n%02d", i), "title", "body")
		a.Exec("INSERT INTO tags VALUES(?,?)", fmt.Sprintf("n%02d", i), "t")
	}
	w.Quiesce(10)
	w.Tick(1000)
	a.Exec("DELETE FROM notes WHERE id < 'n30'")         // 60%: under 70%
	a.Exec("UPDATE tags SET tag='u' WHERE note < 'n40'") // 80% of tags
	if _, err := a.S.Sync(context.Background()); !errors.Is(err, rowdrop.ErrMassChange) || strings.Contains(err.Error(), "rows of notes") || !strings.Contains(err.Error(), "rows of tags") {
		t.Fatalf("sync: %v (want only tags held)", err)
	}
	_ = b
}

// TestMassOverwriteOfOthersWork: a device rewriting its own rows (a "mark
// all read") is its user's editing and goes out; overwriting most of the
// rows another device wrote is held.
func TestMassOverwriteOfOthersWork(t *testing.T) {
	w := scenario.NewWorld(t, notesSchema)
	a := w.AddDevice(scenario.Options{Name: "a", Initialised: true})
	b := w.AddDevice(scenario.Options{Name: "b", Initialised: true})
	w.Tick(1000)
	for i := 0; i < 40; i++ {
		a.Exec("INSERT INTO notes VALUES(?,?,?)", fmt.Sprintf("n%02d", i), "title", "body")
	}
	w.Quiesce(10)
	w.Tick(1000)
	a.Exec("UPDATE notes SET body='read'")
	if _, err := a.S.Sync(context.Background()); err != nil {
		t.Fatalf("a rewriting its own rows: %v", err)
	}
	w.Quiesce(10)
	w.Tick(1000)
	b.Exec("UPDATE notes SET title='b' WHERE id < 'n30'")
	if _, err := b.S.Sync(context.Background()); !errors.Is(err, rowdrop.ErrMassChange) || !strings.Contains(err.Error(), "30 of the 40 rows of notes") {
		t.Fatalf("b overwriting 30 of a's 40 notes: %v", err)
	}
}

// TestRestoreThroughBackupAPI: the app's own "restore backup" copies an
// older copy into the live file through SQLite's backup API, in WAL mode:
// same file, and the change counter grows. rowdrop's marker went back.
func TestRestoreThroughBackupAPI(t *testing.T) {
	w, a, b := restorePair(t, scenario.Options{WAL: true})
	backup := filepath.Join(w.Dir, "a-backup.db")
	a.Exec("VACUUM INTO ?", backup)
	w.Tick(1000)
	b.Exec("UPDATE notes SET title='edited by b' WHERE id='n1'")
	b.Exec("INSERT INTO notes VALUES('n3','third','three')")
	w.Quiesce(10)
	src, err := sqlite.OpenConn(backup, sqlite.OpenReadOnly)
	if err != nil {
		t.Fatal(err)
	}
	bk, err := sqlite.NewBackup(a.App, "main", src, "main")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bk.Step(-1); err != nil {
		t.Fatal(err)
	}
	if err := bk.Close(); err != nil {
		t.Fatal(err)
	}
	src.Close()
	r := a.Export()
	if r.Recognised == nil || r.Recognised.Kind != export.RecognisedOlder {
		t.Fatalf("the restored copy was not recognised as older: %+v", r.Recognised)
	}
	checkRestoreOutcome(t, w, a, b)
}
