package main

import (
	"encoding/json"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"zombiezen.com/go/sqlite"
	"zombiezen.com/go/sqlite/sqlitex"
)

// rowdropObjects lists the rowdrop_* tables and triggers in a database.
func rowdropObjects(t *testing.T, path string) []string {
	t.Helper()
	conn, err := sqlite.OpenConn(path, sqlite.OpenReadOnly)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var out []string
	if err := sqlitex.Execute(conn, `SELECT type||' '||name FROM sqlite_master WHERE name LIKE 'rowdrop\_%' ESCAPE '\' ORDER BY 1`,
		&sqlitex.ExecOptions{ResultFunc: func(s *sqlite.Stmt) error { out = append(out, s.ColumnText(0)); return nil }}); err != nil {
		t.Fatal(err)
	}
	return out
}

func hasObject(objs []string, prefix string) bool {
	return slices.ContainsFunc(objs, func(o string) bool { return strings.HasPrefix(o, prefix) })
}

// Switching hints off removes the capture triggers and rowdrop_dirty from
// the app's database at the next sync; syncing goes on by full diffs.
func TestHintsOffRemovesTriggers(t *testing.T) {
	folder := t.TempDir()
	a, b := newDevice(t, folder, "alpha"), newDevice(t, folder, "beta")
	a.exec(t, "INSERT INTO notes(id,title) VALUES('n1','one')")
	ok(t, append([]string{"sync", "--hints"}, a.flags()...)...)
	ok(t, append([]string{"sync", "--hints"}, a.flags()...)...)
	objs := rowdropObjects(t, a.db)
	if !hasObject(objs, "table rowdrop_dirty") || !hasObject(objs, "trigger rowdrop_dirty_") {
		t.Fatalf("hints on: no capture triggers installed: %v", objs)
	}
	a.exec(t, "INSERT INTO notes(id,title) VALUES('n2','two')")
	a.sync(t) // hints off
	objs = rowdropObjects(t, a.db)
	if hasObject(objs, "table rowdrop_dirty") || hasObject(objs, "trigger rowdrop_dirty_") {
		t.Fatalf("hints off: capture triggers or rowdrop_dirty left in the app's database: %v", objs)
	}
	a.exec(t, "UPDATE notes SET title='two, edited' WHERE id='n2'")
	a.sync(t)
	b.sync(t)
	sameDB(t, a, b)
	if d := b.dump(t); !strings.Contains(d, "'two, edited'") {
		t.Fatalf("edits after hints off did not sync:\n%s", d)
	}
}

// uninstall --dry-run lists what rowdrop put into the app's database and
// changes nothing; uninstall removes all of it and names what stays.
func TestUninstall(t *testing.T) {
	folder := t.TempDir()
	a := newDevice(t, folder, "alpha")
	a.exec(t, "INSERT INTO notes(id,title) VALUES('n1','one')")
	ok(t, append([]string{"sync", "--hints"}, a.flags()...)...)
	ok(t, append([]string{"sync", "--hints"}, a.flags()...)...)
	before := rowdropObjects(t, a.db)
	for _, want := range []string{"table rowdrop_dirty", "table rowdrop_marker", "trigger rowdrop_dirty_"} {
		if !hasObject(before, want) {
			t.Fatalf("after syncing with hints, %q is not in the app's database: %v", want, before)
		}
	}
	dump := a.dump(t)

	r := ok(t, append([]string{"uninstall", "--dry-run"}, a.flags()...)...)
	if got := rowdropObjects(t, a.db); !slices.Equal(got, before) {
		t.Fatalf("--dry-run changed the database: %v, was %v", got, before)
	}
	for _, o := range before {
		if !strings.Contains(r.stdout, o) {
			t.Errorf("--dry-run does not list %s:\n%s", o, r.stdout)
		}
	}
	if !strings.Contains(r.stdout, "would remove") || !strings.Contains(r.stdout, a.state) {
		t.Errorf("--dry-run does not say it removes nothing or where the state stays:\n%s", r.stdout)
	}

	r = ok(t, append([]string{"uninstall", "--json"}, a.flags()...)...)
	var reps []struct {
		Removed     []struct{ Type, Name string } `json:"removed"`
		State       string                        `json:"state_dir"`
		DeviceFiles string                        `json:"device_files"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &reps); err != nil || len(reps) != 1 {
		t.Fatalf("uninstall --json: %v\n%s", err, r.stdout)
	}
	if len(reps[0].Removed) != len(before) || reps[0].State != a.state || filepath.Dir(reps[0].DeviceFiles) != folder {
		t.Fatalf("uninstall --json report: %+v (had %v)", reps[0], before)
	}
	if got := rowdropObjects(t, a.db); len(got) != 0 {
		t.Fatalf("uninstall left rowdrop's objects in the app's database: %v", got)
	}
	if got := a.dump(t); got != dump {
		t.Fatalf("uninstall changed the app's data:\n%s\nwas\n%s", got, dump)
	}
	r = ok(t, append([]string{"uninstall"}, a.flags()...)...)
	if !strings.Contains(r.stdout, "nothing of rowdrop's") || !strings.Contains(r.stdout, a.state) {
		t.Fatalf("a second uninstall:\n%s", r.stdout)
	}
}
