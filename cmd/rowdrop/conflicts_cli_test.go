package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// listed is an entry of `conflicts --json`, values left typed.
type listed struct {
	RawID   json.RawMessage `json:"id"` // raw: the test also runs against numeric ids
	ID      string          `json:"-"`
	Seq     int64           `json:"seq"`
	Kind    string          `json:"kind"`
	Table   string          `json:"table"`
	Key     string          `json:"key"`
	Columns []string        `json:"columns"`
	Winner  map[string]any  `json:"winner"`
	Loser   map[string]any  `json:"loser"`
}

func conflictsJSON(t *testing.T, args ...string) []listed {
	t.Helper()
	r := ok(t, append([]string{"conflicts", "--json"}, args...)...)
	var out []listed
	if err := json.Unmarshal([]byte(r.stdout), &out); err != nil {
		t.Fatalf("conflicts --json: %v\n%s", err, r.stdout)
	}
	for i := range out {
		out[i].ID = strings.Trim(string(out[i].RawID), `"`)
	}
	return out
}

func ids(cs []listed) []string {
	var out []string
	for _, c := range cs {
		out = append(out, c.ID)
	}
	slices.Sort(out)
	return out
}

// The demo's offline edits hold two real conflicts (one title edited on
// two devices; a note edited on one and deleted on another) and edits of
// different columns of one note, which the app's updated_at trigger
// stamps on both devices. Every device's log holds one entry per real
// conflict, under the same ids, and nothing for updated_at alone.
func TestDemoConflictLog(t *testing.T) {
	r := ok(t, "demo", "--keep")
	m := regexp.MustCompile(`(?m)^kept (\S+); try:`).FindStringSubmatch(r.stdout)
	if m == nil {
		t.Fatalf("demo --keep does not say where it kept its files:\n%s", r.stdout)
	}
	root := m[1]
	t.Cleanup(func() { os.RemoveAll(root) })
	var first []string
	for _, dev := range []string{"laptop", "desktop", "usb-box"} {
		cs := conflictsJSON(t, "--db", filepath.Join(root, dev, "notes.db"), "--folder", filepath.Join(root, "shared"),
			"--state", filepath.Join(root, dev, "state"), "--exclude", "app_state")
		if len(cs) != 2 {
			t.Errorf("%s: %d entries, want 2 (the title edited twice, the note edited and deleted): %+v", dev, len(cs), cs)
		}
		title := false
		for _, c := range cs {
			if !slices.ContainsFunc(c.Columns, func(col string) bool { return col != "updated_at" }) {
				t.Errorf("%s: an entry of trigger-derived cells alone: %+v", dev, c)
			}
			if c.Kind == "cell" && c.Winner["title"] == "Shopping list" && c.Loser["title"] == "Groceries for the weekend" {
				title = true
			}
		}
		if !title {
			t.Errorf("%s: the title conflict is not one entry with both titles: %+v", dev, cs)
		}
		if first == nil {
			first = ids(cs)
		} else if got := ids(cs); !slices.Equal(got, first) {
			t.Errorf("%s: ids %v, laptop's %v", dev, got, first)
		}
	}
}

// Two devices edit the same cells of one row in one export each: one
// entry per row (with every cell), the same id on both devices, values
// typed in JSON; then --table, --since, dismiss, show by id, prefix and
// local number, and prune.
func TestConflictsLogCommands(t *testing.T) {
	folder := t.TempDir()
	a, b := newDevice(t, folder, "alpha"), newDevice(t, folder, "beta")
	for _, d := range []*device{a, b} {
		d.exec(t, "CREATE TABLE things(id TEXT PRIMARY KEY, n INTEGER, data BLOB, r REAL)")
	}
	a.exec(t, "INSERT INTO notes(id,title,body) VALUES('n1','t','b')")
	a.exec(t, "INSERT INTO things VALUES('k', 0, X'00', 0.5)")
	a.sync(t)
	b.sync(t)
	a.exec(t, "UPDATE notes SET title='alpha title', body='alpha body' WHERE id='n1'")
	a.exec(t, "UPDATE things SET n=1, data=X'00ff', r=NULL WHERE id='k'")
	a.sync(t)
	b.exec(t, "UPDATE notes SET title='beta title', body='beta body' WHERE id='n1'")
	b.exec(t, "UPDATE things SET n=2, data=X'abcd', r=1.5 WHERE id='k'")
	b.sync(t)
	a.sync(t)
	sameDB(t, a, b)

	ca, cb := conflictsJSON(t, a.flags()...), conflictsJSON(t, b.flags()...)
	if len(ca) != 2 || len(cb) != 2 {
		t.Fatalf("want one entry per row on each device, got alpha %+v, beta %+v", ca, cb)
	}
	if !slices.Equal(ids(ca), ids(cb)) {
		t.Fatalf("ids differ: alpha %v, beta %v", ids(ca), ids(cb))
	}
	var note, thing listed
	for _, c := range ca {
		switch c.Table {
		case "notes":
			note = c
		case "things":
			thing = c
		}
	}
	if got := strings.Join(note.Columns, ","); got != "title,body" || note.Winner["body"] != "beta body" || note.Loser["title"] != "alpha title" {
		t.Fatalf("notes entry: %+v", note)
	}
	// Typed values: numbers, a blob as {"blob": hex}, null.
	if thing.Winner["n"] != 2.0 || thing.Loser["n"] != 1.0 || thing.Winner["r"] != 1.5 || thing.Loser["r"] != nil {
		t.Fatalf("things entry: numbers and null not typed: %+v", thing)
	}
	if blob, _ := thing.Loser["data"].(map[string]any); blob["blob"] != "00ff" {
		t.Fatalf("things entry: blob not {\"blob\": hex}: %+v", thing.Loser["data"])
	}
	if _, isNull := thing.Loser["r"]; !isNull {
		t.Fatalf("things entry: a NULL is left out instead of null: %+v", thing.Loser)
	}

	if cs := conflictsJSON(t, append([]string{"--table", "things"}, a.flags()...)...); len(cs) != 1 || cs[0].ID != thing.ID {
		t.Fatalf("--table things: %+v", cs)
	}
	if cs := conflictsJSON(t, append([]string{"--since", "1h"}, a.flags()...)...); len(cs) != 2 {
		t.Fatalf("--since 1h: %+v", cs)
	}
	if cs := conflictsJSON(t, append([]string{"--since", "2099-01-01"}, a.flags()...)...); len(cs) != 0 {
		t.Fatalf("--since 2099-01-01: %+v", cs)
	}
	if r := exits(t, 2, append([]string{"conflicts", "--since", "yesterday"}, a.flags()...)...); !strings.Contains(r.stderr, "yesterday") {
		t.Fatalf("a bad --since is not named: %q", r.stderr)
	}

	// show by id, by a prefix, by the local number printed before.
	for _, ref := range []string{note.ID, note.ID[:6], strconv.FormatInt(note.Seq, 10)} {
		r := ok(t, append([]string{"conflicts", "show", ref}, a.flags()...)...)
		if !strings.Contains(r.stdout, note.ID) || !strings.Contains(r.stdout, "alpha title") {
			t.Fatalf("conflicts show %s:\n%s", ref, r.stdout)
		}
	}
	ok(t, append([]string{"conflicts", "dismiss", note.ID}, a.flags()...)...)
	if cs := conflictsJSON(t, a.flags()...); len(cs) != 1 || cs[0].ID != thing.ID {
		t.Fatalf("after dismiss: %+v", cs)
	}
	if cs := conflictsJSON(t, append([]string{"--all"}, a.flags()...)...); len(cs) != 2 {
		t.Fatalf("--all after dismiss: %+v", cs)
	}
	if r := ok(t, append([]string{"conflicts", "show", note.ID}, a.flags()...)...); !strings.Contains(r.stdout, "dismissed") {
		t.Fatalf("show of a dismissed entry does not say so:\n%s", r.stdout)
	}
	// The other device's log is its own.
	if cs := conflictsJSON(t, b.flags()...); len(cs) != 2 {
		t.Fatalf("beta after alpha's dismiss: %+v", cs)
	}
	exits(t, 2, append([]string{"conflicts", "prune"}, a.flags()...)...)
	if r := ok(t, append([]string{"conflicts", "prune", "--before", "2099-01-01"}, a.flags()...)...); !strings.Contains(r.stdout, "deleted 2 ") {
		t.Fatalf("prune:\n%s", r.stdout)
	}
	if cs := conflictsJSON(t, append([]string{"--all"}, a.flags()...)...); len(cs) != 0 {
		t.Fatalf("after prune: %+v", cs)
	}
}
