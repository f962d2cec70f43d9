package main

import (
	"encoding/json"
	"strings"
	"testing"
)

// Per-table holds and what-syncs migrations (issue 21, items 1 and 2).

// statusAny runs `rowdrop status --json` for d, accepting exit 0 and 3
// (something held), and returns the object and the exit code.
func statusAny(t *testing.T, d *device, extra ...string) (map[string]any, int) {
	t.Helper()
	r := runRD(t, append(append([]string{"status", "--json"}, d.flags()...), extra...)...)
	if r.code != 0 && r.code != 3 {
		t.Fatalf("rowdrop status (%s): exit %d\n%s", d.name, r.code, r.stderr)
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &m); err != nil {
		t.Fatalf("status --json: %v\n%s", err, r.stdout)
	}
	return m, r.code
}

// heldTable returns the entry of list key (tables_held or
// tables_catching_up) for table in st, or nil.
func heldTable(st map[string]any, key, table string) map[string]any {
	list, _ := st[key].([]any)
	for _, e := range list {
		m, _ := e.(map[string]any)
		if m["table"] == table {
			return m
		}
	}
	return nil
}

func strList(v any) []string {
	l, _ := v.([]any)
	out := make([]string, 0, len(l))
	for _, x := range l {
		s, _ := x.(string)
		out = append(out, s)
	}
	return out
}

func contains(l []string, s string) bool {
	for _, x := range l {
		if x == s {
			return true
		}
	}
	return false
}

// A column dropped on one device holds only that table's part of the
// other's files: every other table keeps syncing, a later file touching
// only other tables does not wait, the hold names the exact difference
// and what to do (never "does not have"), sync and status exit 3 while it
// lasts. A file naming a table this device lacks applies without it, and
// the held part applies by itself once the table exists here.
func TestCLIDroppedColumnHoldsOnlyThatTable(t *testing.T) {
	folder := t.TempDir()
	a, b := newDevice(t, folder, "alpha"), newDevice(t, folder, "beta")
	a.exec(t, "INSERT INTO notes(id,title,updated_at) VALUES('n1','one',1)")
	a.exec(t, "INSERT INTO note_tags VALUES('n1','first')")
	a.sync(t)
	b.sync(t)
	a.sync(t)
	if got := b.query(t, "SELECT tag FROM note_tags ORDER BY tag"); got != "first" {
		t.Fatalf("beta's tags after the first sync: %q", got)
	}

	// alpha's app drops a column: alpha leaves notes out.
	a.exec(t, "ALTER TABLE notes DROP COLUMN updated_at")
	syncAny(t, a)
	// beta changes notes and note_tags in one transaction, then only
	// note_tags.
	b.execScript(t, "UPDATE notes SET title='edited on beta', updated_at=2 WHERE id='n1'; INSERT INTO note_tags VALUES('n1','beta1');")
	b.sync(t)
	r := runRD(t, append([]string{"sync"}, a.flags()...)...)
	if r.code != 3 {
		t.Fatalf("alpha's sync with notes held: exit %d, want 3 (done, but a table held)\n%s", r.code, r.stderr)
	}
	if got := a.query(t, "SELECT tag FROM note_tags ORDER BY tag"); got != "beta1,first" {
		t.Fatalf("alpha's tags after beta's file touching notes and note_tags: %q, want beta1,first (only notes is held)", got)
	}
	if got := a.query(t, "SELECT title FROM notes"); got != "one" {
		t.Fatalf("alpha's notes: %q: notes must stay held", got)
	}
	b.exec(t, "INSERT INTO note_tags VALUES('n1','beta2')")
	b.sync(t)
	syncAny(t, a)
	if got := a.query(t, "SELECT tag FROM note_tags ORDER BY tag"); got != "beta1,beta2,first" {
		t.Fatalf("alpha's tags after beta's later file touching only note_tags: %q: it must not wait behind the held part", got)
	}
	st, code := statusAny(t, a)
	if code != 3 {
		t.Errorf("alpha's status with notes held: exit %d, want 3", code)
	}
	h := heldTable(st, "tables_held", "notes")
	if h == nil {
		t.Fatalf("alpha's status lists no held table notes: %v", st["tables_held"])
	}
	reason, _ := h["reason"].(string)
	for _, want := range []string{"column(s) only on the writing device: updated_at INTEGER NOT NULL", "exclude table notes on every device", "migrate the app to the same shape"} {
		if !strings.Contains(reason, want) {
			t.Errorf("held reason %q lacks %q", reason, want)
		}
	}
	if strings.Contains(reason, "does not have") {
		t.Errorf("held reason says %q", reason)
	}
	if n, _ := h["files"].(float64); n != 1 {
		t.Errorf("held parts of notes: %v, want 1 (beta's second file does not touch notes)", h["files"])
	}
	if files, _ := st["files"].([]any); len(files) != 0 {
		t.Errorf("alpha's status lists files not applied: %v (only a table's part is held)", files)
	}
	text := runRD(t, append([]string{"status"}, a.flags()...)...).stdout
	if !strings.Contains(text, "tables held") || !strings.Contains(text, "updated_at") {
		t.Errorf("alpha's status text does not show the held table:\n%s", text)
	}

	// The reverse: beta's app adds a table alpha lacks, in the same
	// transaction as a note_tags edit.
	b.execScript(t, "CREATE TABLE extra(id TEXT PRIMARY KEY, v TEXT); INSERT INTO extra VALUES('x1','from beta'); INSERT INTO note_tags VALUES('n1','beta3');")
	b.sync(t)
	syncAny(t, a)
	if got := a.query(t, "SELECT tag FROM note_tags ORDER BY tag"); got != "beta1,beta2,beta3,first" {
		t.Fatalf("alpha's tags after beta's file naming a new table: %q", got)
	}
	st, _ = statusAny(t, a)
	if h := heldTable(st, "tables_held", "extra"); h == nil {
		t.Fatalf("alpha's status lists no held table extra: %v", st["tables_held"])
	} else if r, _ := h["reason"].(string); !strings.Contains(r, "is not in this database") || strings.Contains(r, "does not have") {
		t.Errorf("held reason for extra: %q", r)
	}
	// The app here creates the table: the held part applies by itself.
	a.exec(t, "CREATE TABLE extra(id TEXT PRIMARY KEY, v TEXT)")
	syncAny(t, a)
	if got := a.query(t, "SELECT v FROM extra"); got != "from beta" {
		t.Fatalf("alpha's extra after creating the table: %q, want the held part applied", got)
	}
	st, _ = statusAny(t, a)
	if heldTable(st, "tables_held", "extra") != nil {
		t.Errorf("extra is still held: %v", st["tables_held"])
	}
}

// A table excluded on one device, then included again, catches up with
// what the others changed meanwhile before it counts as synced; leaving
// deletes nothing anywhere.
func TestCLIReincludedTableCatchesUp(t *testing.T) {
	folder := t.TempDir()
	a, b := newDevice(t, folder, "alpha"), newDevice(t, folder, "beta")
	a.exec(t, "INSERT INTO notes(id,title) VALUES('n1','one')")
	a.exec(t, "INSERT INTO note_tags VALUES('n1','before')")
	a.sync(t)
	b.sync(t)
	excl := []string{"--exclude", "note_tags"}
	bx := func(cmd string) []string { return append(append([]string{cmd}, b.flags()...), excl...) }

	// beta stops syncing note_tags; alpha goes on editing it.
	ok(t, bx("sync")...)
	a.exec(t, "INSERT INTO note_tags VALUES('n1','while-excluded')")
	a.exec(t, "UPDATE notes SET title='two' WHERE id='n1'")
	a.sync(t)
	ok(t, bx("sync")...)
	if got := b.query(t, "SELECT title FROM notes"); got != "two" {
		t.Fatalf("beta's notes while note_tags is excluded: %q", got)
	}
	if got := b.query(t, "SELECT tag FROM note_tags ORDER BY tag"); got != "before" {
		t.Fatalf("beta's tags while excluded: %q, want the rows it had, untouched", got)
	}
	if got := a.query(t, "SELECT tag FROM note_tags ORDER BY tag"); got != "before,while-excluded" {
		t.Fatalf("alpha's tags: %q: leaving the sync set on beta deletes nothing", got)
	}
	st, _ := statusAny(t, b, excl...)
	if contains(strList(st["tables_synced"]), "note_tags") {
		t.Errorf("beta's status with note_tags excluded calls it synced: %v", st["tables_synced"])
	}

	// beta includes note_tags again: before the next sync it is catching
	// up, not synced.
	st, _ = statusAny(t, b)
	if contains(strList(st["tables_synced"]), "note_tags") {
		t.Errorf("beta's status says note_tags is synced before it caught up: %v", st["tables_synced"])
	}
	if heldTable(st, "tables_catching_up", "note_tags") == nil {
		t.Errorf("beta's status does not list note_tags as catching up: %v", st["tables_catching_up"])
	}
	b.sync(t)
	if got := b.query(t, "SELECT tag FROM note_tags ORDER BY tag"); got != "before,while-excluded" {
		t.Fatalf("beta's tags after including note_tags again: %q, want what alpha changed meanwhile", got)
	}
	st = b.status(t)
	if !contains(strList(st["tables_synced"]), "note_tags") || st["tables_catching_up"] != nil {
		t.Errorf("beta's status after catching up: synced %v, catching up %v", st["tables_synced"], st["tables_catching_up"])
	}
	a.sync(t)
	sameDB(t, a, b)
}

// After `devices forget`, a retired identity's files are no longer
// reported held or waiting, nor its held table parts.
func TestCLIForgottenDeviceNotHeld(t *testing.T) {
	folder := t.TempDir()
	a, c := newDevice(t, folder, "alpha"), newDevice(t, folder, "gamma")
	c.execScript(t, "CREATE TABLE extra(id TEXT PRIMARY KEY, v TEXT); INSERT INTO extra VALUES('x1','v');")
	c.sync(t)
	cID := deviceWithFile(t, folder, 1)
	syncAny(t, a)
	if _, code := statusAny(t, a); code != 3 {
		t.Fatalf("alpha with gamma's table extra held: status exit %d, want 3", code)
	}
	ok(t, append([]string{"devices", "forget", cID}, a.flags()...)...)
	syncAny(t, a)
	st, code := statusAny(t, a)
	if files, _ := st["files"].([]any); st["tables_held"] != nil || len(files) != 0 || code != 0 {
		t.Errorf("alpha after forgetting gamma: exit %d, tables held %v, files %v", code, st["tables_held"], files)
	}
}

// A snapshot carries its writer's held table parts: a device joining from
// it holds them too (the snapshot's state lacks them) and applies them
// once its table takes them, instead of counting the files as applied
// and never getting those changes.
func TestCLISnapshotCarriesHeldParts(t *testing.T) {
	folder := t.TempDir()
	a, b := newDevice(t, folder, "alpha"), newDevice(t, folder, "beta")
	a.exec(t, "INSERT INTO notes(id,title) VALUES('n1','one')")
	a.sync(t)
	b.sync(t)
	// beta's app is newer: it adds a column and uses it.
	b.exec(t, "ALTER TABLE notes ADD COLUMN pinned INTEGER NOT NULL DEFAULT 0")
	b.execScript(t, "UPDATE notes SET title='edited on beta', pinned=1 WHERE id='n1'; INSERT INTO note_tags VALUES('n1','beta');")
	b.sync(t)
	syncAny(t, a)
	if got := a.query(t, "SELECT tag FROM note_tags"); got != "beta" {
		t.Fatalf("alpha's tags: %q", got)
	}
	if r := runRD(t, append([]string{"snapshot"}, a.flags()...)...); r.code != 0 && r.code != 3 {
		t.Fatalf("alpha's snapshot: exit %d\n%s", r.code, r.stderr)
	}
	// gamma joins, with alpha's (older) app: from alpha's snapshot.
	c := newDevice(t, folder, "gamma")
	syncAny(t, c)
	if got := c.query(t, "SELECT tag FROM note_tags"); got != "beta" {
		t.Fatalf("gamma's tags after joining: %q", got)
	}
	st, code := statusAny(t, c)
	if heldTable(st, "tables_held", "notes") == nil || code != 3 {
		t.Fatalf("gamma after joining from alpha's snapshot: exit %d, tables held %v: beta's notes part must be held here too", code, st["tables_held"])
	}
	// gamma's app upgrades: beta's held part applies.
	c.exec(t, "ALTER TABLE notes ADD COLUMN pinned INTEGER NOT NULL DEFAULT 0")
	syncAny(t, c)
	if got := c.query(t, "SELECT title || '/' || pinned FROM notes"); got != "edited on beta/1" {
		t.Fatalf("gamma's notes after upgrading: %q, want beta's edit", got)
	}
}

// A device that joins from a snapshot while it excludes a table the
// snapshot carries gets that table's rows from the snapshot (merged for
// that table alone) once it includes the table, before status calls it
// synced.
func TestCLIJoinerIncludingTableCatchesUpFromSnapshot(t *testing.T) {
	folder := t.TempDir()
	a := newDevice(t, folder, "alpha")
	a.exec(t, "INSERT INTO notes(id,title) VALUES('n1','one')")
	a.exec(t, "INSERT INTO note_tags VALUES('n1','t1')")
	a.sync(t)
	ok(t, append([]string{"snapshot"}, a.flags()...)...)
	c := newDevice(t, folder, "gamma")
	ok(t, append(append([]string{"sync"}, c.flags()...), "--exclude", "note_tags")...)
	if got := c.query(t, "SELECT title FROM notes"); got != "one" {
		t.Fatalf("gamma's notes after joining: %q", got)
	}
	if got := c.query(t, "SELECT count(*) FROM note_tags"); got != "0" {
		t.Fatalf("gamma's tags while excluded: %q", got)
	}
	st, _ := statusAny(t, c)
	if contains(strList(st["tables_synced"]), "note_tags") || heldTable(st, "tables_catching_up", "note_tags") == nil {
		t.Errorf("gamma including note_tags before catching up: synced %v, catching up %v", st["tables_synced"], st["tables_catching_up"])
	}
	c.sync(t)
	if got := c.query(t, "SELECT tag FROM note_tags"); got != "t1" {
		t.Fatalf("gamma's tags after including the table: %q, want alpha's row from the snapshot", got)
	}
	if st := c.status(t); st["tables_catching_up"] != nil {
		t.Errorf("gamma still catching up: %v", st["tables_catching_up"])
	}
}
