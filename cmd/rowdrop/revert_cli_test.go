package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"zombiezen.com/go/sqlite"
	"zombiezen.com/go/sqlite/sqlitex"
)

// lastFile is the path of device d's newest published changeset.
func lastFile(t *testing.T, d *device) (id, path string) {
	t.Helper()
	id = d.status(t)["device"].(string)
	ents, err := os.ReadDir(filepath.Join(d.folder, id))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		if strings.HasSuffix(e.Name(), ".rdc") {
			names = append(names, e.Name())
		}
	}
	sort.Strings(names)
	if len(names) == 0 {
		t.Fatalf("%s published nothing", d.name)
	}
	return id, filepath.Join(d.folder, id, names[len(names)-1])
}

func (d *device) query(t *testing.T, q string) string {
	t.Helper()
	conn, err := sqlite.OpenConn(d.db, sqlite.OpenReadOnly)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var out []string
	if err := sqlitex.Execute(conn, q, &sqlitex.ExecOptions{ResultFunc: func(s *sqlite.Stmt) error {
		out = append(out, s.ColumnText(0))
		return nil
	}}); err != nil {
		t.Fatalf("%s: %s: %v", d.name, q, err)
	}
	return strings.Join(out, ",")
}

// TestCLIRevert: alpha's app deletes four notes, edits two and adds one in
// one export; beta has it. alpha then edits one of those cells again.
// `rowdrop revert --dry-run` on beta prints the plan and changes nothing;
// `rowdrop revert` on beta brings the four notes and the old values back
// on both devices (through the app's triggers: the FTS index finds them),
// deletes the added note and lists the cell edited since as skipped.
func TestCLIRevert(t *testing.T) {
	folder := t.TempDir()
	a, b := newDevice(t, folder, "alpha"), newDevice(t, folder, "beta")
	var script strings.Builder
	for i := 1; i <= 10; i++ {
		fmt.Fprintf(&script, "INSERT INTO notes(id,title,body) VALUES('n%02d','note %d','body %d');", i, i, i)
	}
	a.execScript(t, script.String())
	a.sync(t)
	b.sync(t)
	a.execScript(t, `DELETE FROM notes WHERE id <= 'n04';
		UPDATE notes SET title='oops five', body='gone five' WHERE id='n05';
		UPDATE notes SET title='oops six' WHERE id='n06';
		INSERT INTO notes(id,title) VALUES('n11','added');`)
	a.sync(t)
	aID, file := lastFile(t, a)
	seq := strings.TrimLeft(strings.TrimSuffix(filepath.Base(file), ".rdc"), "0")
	b.sync(t)
	a.exec(t, "UPDATE notes SET title='six, edited after' WHERE id='n06'")
	a.sync(t)
	b.sync(t)
	sameDB(t, a, b)

	before := b.dump(t)
	r := ok(t, append([]string{"revert", "--dry-run", aID + "/" + seq}, b.flags()...)...)
	for _, want := range []string{"would revert", "notes: 1 row(s) deleted, 4 re-inserted, 2 cell(s) written back, 1 skipped", "key 'n06' column title: changed since"} {
		if !strings.Contains(r.stdout, want) {
			t.Fatalf("revert --dry-run does not say %q:\n%s", want, r.stdout)
		}
	}
	if got := b.dump(t); got != before {
		t.Fatalf("revert --dry-run changed the database:\n%s", got)
	}
	r = ok(t, append([]string{"revert", "--dry-run", "--json", file}, b.flags()...)...)
	var plan struct {
		Tables []struct {
			Table                   string
			Delete, Reinsert, Cells int
			Skipped                 []map[string]string
		}
	}
	if err := json.Unmarshal([]byte(r.stdout), &plan); err != nil || len(plan.Tables) != 1 || plan.Tables[0].Reinsert != 4 || len(plan.Tables[0].Skipped) != 1 {
		t.Fatalf("revert --json: %v\n%s", err, r.stdout)
	}

	r = ok(t, append([]string{"revert", file}, b.flags()...)...)
	if !strings.Contains(r.stdout, "4 re-inserted") {
		t.Fatalf("revert does not print its plan first:\n%s", r.stdout)
	}
	a.sync(t)
	b.sync(t)
	sameDB(t, a, b)
	got := a.dump(t)
	for _, want := range []string{"'n01'|'note 1'|'body 1'", "'n04'|'note 4'|'body 4'", "'n05'|'note 5'|'body 5'", "'n06'|'six, edited after'"} {
		if !strings.Contains(got, want) {
			t.Fatalf("after the revert alpha lacks %s:\n%s", want, got)
		}
	}
	if strings.Contains(got, "'n11'") {
		t.Fatalf("the note the file added is still there:\n%s", got)
	}
	for _, d := range []*device{a, b} {
		if n := d.query(t, "SELECT count(*) FROM notes_fts WHERE notes_fts MATCH 'note'"); n != "9" {
			t.Fatalf("%s: the FTS index (the app's triggers) finds %s notes, want 9", d.name, n)
		}
	}
	// Reverting again changes nothing: everything was changed since.
	r = ok(t, append([]string{"revert", "--dry-run", file}, b.flags()...)...)
	if !strings.Contains(r.stdout, "nothing to revert") {
		t.Fatalf("a second revert is not empty:\n%s", r.stdout)
	}
}

// TestCLIRevertRefuses: a damaged changeset, a copy outside the shared
// folder, a name that is no changeset and a file this device never applied
// are refused with a message that says why, and change nothing.
func TestCLIRevertRefuses(t *testing.T) {
	folder := t.TempDir()
	a, b := newDevice(t, folder, "alpha"), newDevice(t, folder, "beta")
	a.exec(t, "INSERT INTO notes(id,title) VALUES('n1','one')")
	a.sync(t)
	b.sync(t)
	aID, file := lastFile(t, a)
	raw, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	outside := filepath.Join(t.TempDir(), filepath.Base(file))
	if err := os.WriteFile(outside, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	seq := strings.TrimLeft(strings.TrimSuffix(filepath.Base(file), ".rdc"), "0")
	// the same bytes under the next sequence number: its header says otherwise
	renamed := filepath.Join(folder, aID, strings.Replace(filepath.Base(file), seq+".rdc", "7.rdc", 1))
	if err := os.WriteFile(renamed, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	before := b.dump(t)
	for _, c := range []struct{ file, want string }{
		{outside, "not a file of the shared folder"},
		{filepath.Join(folder, aID, "ack.json"), "not a changeset file"},
		{renamed, "not the file its name says"},
		{aID + "/42", "no such file"},
	} {
		r := runRD(t, append([]string{"revert", c.file}, b.flags()...)...)
		if r.code == 0 || !strings.Contains(r.stderr, c.want) {
			t.Fatalf("revert %s: exit %d, want a refusal saying %q:\n%s%s", c.file, r.code, c.want, r.stderr, r.stdout)
		}
	}
	// the file itself damaged after beta applied it (a bad disk, a torn copy)
	broken := append([]byte(nil), raw...)
	broken[len(broken)-3] ^= 0xff
	if err := os.WriteFile(file, broken, 0o644); err != nil {
		t.Fatal(err)
	}
	r := runRD(t, append([]string{"revert", file}, b.flags()...)...)
	if r.code == 0 || !strings.Contains(r.stderr, "cannot be reverted") {
		t.Fatalf("revert of a damaged file: exit %d\n%s", r.code, r.stderr)
	}
	t.Logf("damaged: %s", strings.TrimSpace(r.stderr))
	if err := os.WriteFile(file, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	// alpha's file applied on beta, but not on a device that never synced
	c := newDevice(t, folder, "gamma")
	r = runRD(t, append([]string{"revert", file}, c.flags()...)...)
	if r.code == 0 || !strings.Contains(r.stderr, "has not applied that file") {
		t.Fatalf("revert on a device that never applied the file: exit %d\n%s", r.code, r.stderr)
	}
	if got := b.dump(t); got != before {
		t.Fatalf("a refused revert changed beta:\n%s", got)
	}
}

// TestCLIRevertOwnMassDelete: alpha's app deletes 25 of 40 notes, the user
// confirms the held export, beta applies it; alpha reverts its own file
// and every note is back on both devices.
func TestCLIRevertOwnMassDelete(t *testing.T) {
	folder := t.TempDir()
	a, b := newDevice(t, folder, "alpha"), newDevice(t, folder, "beta")
	var script strings.Builder
	for i := 0; i < 40; i++ {
		fmt.Fprintf(&script, "INSERT INTO notes(id,title) VALUES('n%02d','note %d');", i, i)
	}
	a.execScript(t, script.String())
	a.sync(t)
	b.sync(t)
	full := b.dump(t)
	a.exec(t, "DELETE FROM notes WHERE id < 'n25'")
	exits(t, 1, append([]string{"sync"}, a.flags()...)...)
	ok(t, append([]string{"sync", "--confirm-mass-change"}, a.flags()...)...)
	b.sync(t)
	if got := strings.Count(b.dump(t), "'note "); got != 15 {
		t.Fatalf("beta has %d notes after the confirmed delete, want 15", got)
	}
	_, file := lastFile(t, a)
	r := ok(t, append([]string{"revert", file}, a.flags()...)...)
	if !strings.Contains(r.stdout, "25 re-inserted, 0 cell(s) written back, 0 skipped") {
		t.Fatalf("revert on alpha:\n%s", r.stdout)
	}
	b.sync(t)
	sameDB(t, a, b)
	if got := b.dump(t); got != full {
		t.Fatalf("after the revert beta holds:\n%s\nwant:\n%s", got, full)
	}
}
