package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rowdrop/rowdrop/internal/rdfile"

	"zombiezen.com/go/sqlite"
	"zombiezen.com/go/sqlite/sqlitex"
)

// The app's schema beyond the synced tables: an excluded table, a table
// rowdrop cannot sync (no primary key, so it stays device-local), an
// index, a view, user_version and WAL.
const restoreExtraSchema = `
CREATE TABLE cache(k TEXT PRIMARY KEY, v BLOB);
CREATE TABLE log_lines(at INTEGER, msg TEXT);
CREATE INDEX notes_updated ON notes(updated_at);
CREATE VIEW recent AS SELECT id, title FROM notes ORDER BY updated_at DESC;
PRAGMA user_version=42;
`

func queryStrings(t *testing.T, path, q string) []string {
	t.Helper()
	conn, err := sqlite.OpenConn(path, sqlite.OpenReadOnly)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var out []string
	err = sqlitex.Execute(conn, q, &sqlitex.ExecOptions{ResultFunc: func(s *sqlite.Stmt) error {
		var row []string
		for i := 0; i < s.ColumnCount(); i++ {
			row = append(row, s.ColumnText(i))
		}
		out = append(out, strings.Join(row, "|"))
		return nil
	}})
	if err != nil {
		t.Fatalf("%s: %s: %v", path, q, err)
	}
	return out
}

// appSchema is the app's part of sqlite_master (rowdrop's own objects,
// such as capture hints, aside).
func appSchema(t *testing.T, path string) string {
	return strings.Join(queryStrings(t, path, `SELECT type, name, tbl_name, sql FROM sqlite_master WHERE name NOT LIKE 'rowdrop\_%' ESCAPE '\' ORDER BY type, name`), "\n")
}

func TestRestore(t *testing.T) {
	folder := t.TempDir()
	a := newDevice(t, folder, "a")
	a.execScript(t, restoreExtraSchema)
	c := newDevice(t, folder, "c") // a device that synced all along
	c.execScript(t, restoreExtraSchema)
	a.execScript(t, `
INSERT INTO notes(id, title, body, updated_at) VALUES ('n1', 'groceries', 'milk eggs', 1), ('n2', 'trip', 'pack the tent', 2), ('n3', 'gone', 'soon deleted', 3);
INSERT INTO note_tags VALUES ('n1', 'home'), ('n2', 'travel');
INSERT INTO cache VALUES ('x', x'00');
INSERT INTO log_lines VALUES (1, 'device-local');`)
	excl := []string{"--exclude", "cache"}
	ok(t, append(append([]string{"sync"}, a.flags()...), excl...)...)
	ok(t, append(append([]string{"sync"}, c.flags()...), excl...)...)
	ok(t, append(append([]string{"snapshot"}, a.flags()...), excl...)...)
	// Files after the snapshot: restore applies them too.
	a.execScript(t, `
UPDATE notes SET body = 'milk eggs bread', updated_at = 4 WHERE id = 'n1';
DELETE FROM notes WHERE id = 'n3';
INSERT INTO notes(id, title, body, updated_at) VALUES ('n4', 'after', 'the snapshot', 5);
DELETE FROM note_tags WHERE note_id = 'n2';`)
	ok(t, append(append([]string{"sync"}, a.flags()...), excl...)...)
	ok(t, append(append([]string{"sync"}, c.flags()...), excl...)...)
	sameDB(t, a, c)

	dir := t.TempDir()
	empty := filepath.Join(dir, "empty.db")
	if err := os.WriteFile(empty, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ name, db string }{{"missing path", filepath.Join(dir, "new.db")}, {"empty file", empty}} {
		t.Run(tc.name, func(t *testing.T) {
			b := &device{name: "b-" + filepath.Base(tc.db), db: tc.db, state: filepath.Join(dir, filepath.Base(tc.db)+".state"), folder: folder}
			// sync refuses the missing or table-less database and points
			// to restore.
			if r := runRD(t, append([]string{"sync"}, b.flags()...)...); r.code == 0 || !strings.Contains(r.stderr, "rowdrop restore") {
				t.Fatalf("sync on %s: exit %d, stderr %q; want a failure pointing to restore", tc.name, r.code, r.stderr)
			}
			r := ok(t, append([]string{"restore"}, b.flags()...)...)
			if !strings.Contains(r.stdout, "restored") {
				t.Errorf("restore printed %q", r.stdout)
			}
			sameDB(t, c, b)
			if got, want := appSchema(t, b.db), appSchema(t, a.db); got != want {
				t.Fatalf("restored schema differs from the writer's:\n%s\nwant:\n%s", got, want)
			}
			for _, q := range []string{"PRAGMA user_version", "PRAGMA journal_mode", "SELECT count(*) FROM cache", "SELECT count(*) FROM log_lines"} {
				got, want := queryStrings(t, b.db, q), queryStrings(t, a.db, q)
				if strings.HasPrefix(q, "SELECT") {
					want = []string{"0"} // excluded and unsyncable tables: present and empty
				}
				if strings.Join(got, ",") != strings.Join(want, ",") {
					t.Errorf("%s on the restored database: %v, want %v", q, got, want)
				}
			}
			if got := queryStrings(t, b.db, "PRAGMA integrity_check"); len(got) != 1 || got[0] != "ok" {
				t.Fatalf("integrity_check: %v", got)
			}
			b.exec(t, "INSERT INTO notes_fts(notes_fts) VALUES('integrity-check')")
			if got := queryStrings(t, b.db, "SELECT rowid FROM notes_fts WHERE notes_fts MATCH 'bread'"); len(got) != 1 {
				t.Errorf("full-text search on the restored database finds %v for a value of a file after the snapshot", got)
			}
			ents, _ := os.ReadDir(dir)
			for _, e := range ents {
				if strings.HasPrefix(e.Name(), ".rowdrop-tmp") {
					t.Errorf("restore left %s behind", e.Name())
				}
			}
			// The restored database is a device: its next edit reaches a.
			b.exec(t, "INSERT INTO notes(id, title, body, updated_at) VALUES (?, 'from the restored device', 'hi', 9)", b.name)
			b.sync(t)
			ok(t, append(append([]string{"sync"}, a.flags()...), excl...)...)
			if got := queryStrings(t, a.db, "SELECT title FROM notes WHERE id = '"+b.name+"'"); len(got) != 1 {
				t.Fatalf("the restored device's edit did not reach a: %v", got)
			}
			a.exec(t, "INSERT INTO notes_fts(notes_fts) VALUES('integrity-check')")
			ok(t, append(append([]string{"sync"}, c.flags()...), excl...)...)
			b.sync(t)
			sameDB(t, a, b)
			// A second restore refuses to overwrite it.
			if r := runRD(t, append([]string{"restore"}, b.flags()...)...); r.code == 0 || !strings.Contains(r.stderr, "--force") {
				t.Fatalf("restore over a database with tables: exit %d, stderr %q; want a refusal naming --force", r.code, r.stderr)
			}
		})
	}
	t.Run("force", func(t *testing.T) {
		d := newDevice(t, folder, "d")
		d.exec(t, "INSERT INTO notes(id, title) VALUES ('only-here', 'replaced')")
		ok(t, append([]string{"restore", "--force"}, d.flags()...)...)
		sameDB(t, a, d)
		if _, err := os.Stat(d.db + "-wal"); err == nil {
			if got := queryStrings(t, d.db, "SELECT count(*) FROM notes WHERE id = 'only-here'"); got[0] != "0" {
				t.Fatal("the replaced database's WAL was applied to the restored one")
			}
		}
	})
}

func TestRestoreNothingToRestore(t *testing.T) {
	folder, dir := t.TempDir(), t.TempDir()
	args := []string{"restore", "--db", filepath.Join(dir, "x.db"), "--folder", folder, "--state", filepath.Join(dir, "state")}
	if r := runRD(t, args...); r.code != 1 || !strings.Contains(r.stderr, "nothing to restore") {
		t.Fatalf("restore from an empty folder: exit %d, stderr %q", r.code, r.stderr)
	}
	r := ok(t, append(args, "--if-folder-has-data")...)
	if !strings.Contains(r.stdout, "nothing to restore") {
		t.Fatalf("restore --if-folder-has-data printed %q", r.stdout)
	}
	if _, err := os.Stat(filepath.Join(dir, "x.db")); err == nil {
		t.Fatal("restore from an empty folder created the database")
	}
}

func TestRestoreWithoutSnapshotExplains(t *testing.T) {
	folder := t.TempDir()
	a := newDevice(t, folder, "a")
	a.exec(t, "INSERT INTO notes(id, title) VALUES ('n1', 'x')")
	a.sync(t)
	dir := t.TempDir()
	r := runRD(t, "restore", "--db", filepath.Join(dir, "x.db"), "--folder", folder, "--state", filepath.Join(dir, "state"))
	if r.code != 1 || !strings.Contains(r.stderr, "rowdrop snapshot") {
		t.Fatalf("restore without a snapshot: exit %d, stderr %q; want the advice to take one", r.code, r.stderr)
	}
	if _, err := os.Stat(filepath.Join(dir, "x.db")); err == nil {
		t.Fatal("a failed restore left a database under the final name")
	}
}

// A restore killed (SIGKILL) at a random moment leaves either no database
// under the final name or a complete one; run again, it finishes (resumes)
// and the result equals a device that synced all along.
func TestRestoreKilled(t *testing.T) {
	if testing.Short() {
		t.Skip("kills restores in a loop")
	}
	rng := rand.New(rand.NewPCG(seed(t), 0))
	folder := t.TempDir()
	a := newDevice(t, folder, "a")
	n := 0
	batch := func(rows int) {
		var b strings.Builder
		for range rows {
			n++
			fmt.Fprintf(&b, "INSERT INTO notes(id, title, body, updated_at) VALUES ('n%05d', 'title %d', 'body of note %d', %d);\n", n, n, n, n)
		}
		a.execScript(t, b.String())
		a.sync(t)
	}
	for range 5 {
		batch(400)
	}
	ok(t, append([]string{"snapshot"}, a.flags()...)...)
	for range 15 {
		batch(200)
	}
	dir := t.TempDir()
	timed := func(db string) time.Duration {
		start := time.Now()
		ok(t, "restore", "--db", db, "--folder", folder, "--state", db+".state")
		return time.Since(start)
	}
	full := timed(filepath.Join(dir, "reference.db"))
	t.Logf("a whole restore takes %s", full)
	kills := 0
	defer func() { t.Logf("%d restores killed", kills) }()
	for i := range 6 {
		db := filepath.Join(dir, fmt.Sprintf("k%d.db", i))
		args := []string{"restore", "--db", db, "--folder", folder, "--state", db + ".state"}
		for attempt := 0; ; attempt++ {
			cmd := exec.Command(bin, args...)
			var errb bytes.Buffer
			cmd.Stderr = &errb
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			done := make(chan error, 1)
			go func() { done <- cmd.Wait() }()
			delay := time.Duration(rng.Int64N(int64(full + full/5)))
			killed := false
			select {
			case err := <-done:
				if err != nil {
					t.Fatalf("restore %d (attempt %d): %v\n%s", i, attempt, err, errb.String())
				}
			case <-time.After(delay):
				_ = cmd.Process.Signal(syscall.SIGKILL)
				<-done
				killed = true
				kills++
			}
			if _, err := os.Stat(db); err == nil {
				// Under the final name: complete, whatever the moment.
				if got, want := mustDump(t, db), a.dump(t); got != want {
					t.Fatalf("restore %d killed after %s left an incomplete database under the final name", i, delay)
				}
				break
			}
			if !killed {
				t.Fatalf("restore %d finished without a database", i)
			}
			if attempt > 20 {
				t.Fatalf("restore %d never finished", i)
			}
		}
		// Run again after the kill: refused if it was complete, else
		// resumed; either way the database equals the writer's.
		r := runRD(t, args...)
		if r.code != 0 && !strings.Contains(r.stderr, "--force") {
			t.Fatalf("restore %d run again: exit %d, stderr %q", i, r.code, r.stderr)
		}
		if got, want := mustDump(t, db), a.dump(t); got != want {
			t.Fatalf("restore %d: the database differs from the writer's", i)
		}
		if got := queryStrings(t, db, "PRAGMA integrity_check"); got[0] != "ok" {
			t.Fatalf("restore %d: integrity_check %v", i, got)
		}
	}
	// The device works: an edit syncs.
	b := &device{name: "k", db: filepath.Join(dir, "k0.db"), state: filepath.Join(dir, "k0.db.state"), folder: folder}
	b.exec(t, "INSERT INTO notes(id, title) VALUES ('k', 'after the kill')")
	b.sync(t)
	a.sync(t)
	sameDB(t, a, b)
}

func mustDump(t *testing.T, path string) string {
	t.Helper()
	s, err := dumpDB(path)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return s
}

// Restore from a folder whose old files were collected: the snapshot
// stands in for them.
func TestRestoreAfterCollection(t *testing.T) {
	folder := t.TempDir()
	a := newDevice(t, folder, "a")
	for i := range 3 {
		a.exec(t, "INSERT INTO notes(id, title, body) VALUES (?, 'before', 'the snapshot')", fmt.Sprintf("old%d", i))
		a.sync(t)
	}
	ok(t, append([]string{"snapshot"}, a.flags()...)...)
	a.exec(t, "UPDATE notes SET body = 'after' WHERE id = 'old1'")
	a.sync(t)
	ok(t, append([]string{"gc"}, a.flags()...)...)
	dev, err := os.ReadFile(filepath.Join(a.state, "device"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(folder, string(dev), "0000000001.rdc")); err == nil {
		t.Fatal("gc kept the first file: the test needs a collected folder")
	}
	dir := t.TempDir()
	b := &device{name: "b", db: filepath.Join(dir, "b.db"), state: filepath.Join(dir, "state"), folder: folder}
	ok(t, append([]string{"restore"}, b.flags()...)...)
	sameDB(t, a, b)
}

// A snapshot written by a rowdrop before restore existed (format version
// 1, no rowdrop_schema) still serves a joining device; restore explains
// that it cannot build a database from it.
func TestVersion1SnapshotStillJoins(t *testing.T) {
	folder := t.TempDir()
	a := newDevice(t, folder, "a")
	a.exec(t, "INSERT INTO notes(id, title, body) VALUES ('n1', 'one', 'x'), ('n2', 'two', 'y')")
	a.sync(t)
	r := ok(t, append([]string{"snapshot", "--json"}, a.flags()...)...)
	var snap struct{ File string }
	if err := json.Unmarshal([]byte(r.stdout), &snap); err != nil {
		t.Fatal(err)
	}
	a.exec(t, "UPDATE notes SET body = 'later' WHERE id = 'n2'")
	a.sync(t)
	ok(t, append([]string{"gc"}, a.flags()...)...) // the snapshot now stands in for file 1
	if _, err := os.Stat(filepath.Join(filepath.Dir(snap.File), "0000000001.rdc")); err == nil {
		t.Fatal("gc kept file 1: the joining device would not need the snapshot")
	}
	downgradeSnapshot(t, snap.File)

	c := newDevice(t, folder, "c")
	c.sync(t)
	sameDB(t, a, c)

	dir := t.TempDir()
	rr := runRD(t, "restore", "--db", filepath.Join(dir, "x.db"), "--folder", folder, "--state", filepath.Join(dir, "state"))
	if rr.code != 1 || !strings.Contains(rr.stderr, "older rowdrop") {
		t.Fatalf("restore from a version-1 snapshot: exit %d, stderr %q", rr.code, rr.stderr)
	}
}

// downgradeSnapshot rewrites the snapshot at path as a version-1 writer
// made it: without rowdrop_schema, format version 1.
func downgradeSnapshot(t *testing.T, path string) {
	t.Helper()
	f, err := rdfile.Open(path, rdfile.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	rc, err := f.Changeset()
	if err != nil {
		t.Fatal(err)
	}
	payload := filepath.Join(t.TempDir(), "payload.db")
	out, err := os.Create(payload)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, rc); err != nil {
		t.Fatal(err)
	}
	rc.Close()
	out.Close()
	conn, err := sqlite.OpenConn(payload, sqlite.OpenReadWrite)
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{"DROP TABLE rowdrop_schema", "VACUUM"} {
		if err := sqlitex.ExecuteTransient(conn, q, nil); err != nil {
			t.Fatal(err)
		}
	}
	conn.Close()
	in, err := os.Open(payload)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	h := f.Header
	h.Heads = nil // version 3's chain heads: a version-1 writer had none
	if _, err := rdfile.Build(path, h, in); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	binary.BigEndian.PutUint16(b[4:6], 1)
	hl := int(binary.BigEndian.Uint32(b[6:10]))
	sum := sha256.Sum256(b[:10+hl])
	copy(b[10+hl:], sum[:])
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if f, err := rdfile.Open(path, rdfile.Limits{}); err != nil || f.Verify() != nil {
		t.Fatalf("the downgraded snapshot does not read: %v", err)
	}
}
