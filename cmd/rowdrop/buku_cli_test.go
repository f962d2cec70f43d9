package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// The real buku (Debian package buku), driven by its own commands, synced
// through `rowdrop sync` with `identity: {bookmarks: [URL]}`. buku
// renumbers on delete: the last bookmark moves into the freed id. buku
// fetches a page's title even when given one, so every URL here is on
// loopback, at a port where nothing listens (the fetch fails at once).
// Skipped when buku is not installed.

// bukuDevice is one device's buku: its own XDG_DATA_HOME.
type bukuDevice struct {
	name, home, db, state, folder, config string
}

func newBukuDevice(t *testing.T, folder, config, name string) *bukuDevice {
	dir := t.TempDir()
	d := &bukuDevice{name: name, home: dir, db: filepath.Join(dir, "buku", "bookmarks.db"), state: filepath.Join(dir, "state"), folder: folder, config: config}
	d.buku(t, "-p") // buku creates its database on first use
	if _, err := os.Stat(d.db); err != nil {
		t.Fatalf("%s: buku made no database at %s: %v", name, d.db, err)
	}
	return d
}

func (d *bukuDevice) buku(t *testing.T, args ...string) string {
	t.Helper()
	cmd := exec.Command("buku", append([]string{"--nostdin", "--np", "--tacit"}, args...)...)
	cmd.Env = append(os.Environ(), "XDG_DATA_HOME="+d.home)
	out, err := cmd.Output()
	if err != nil {
		var stderr []byte
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = ee.Stderr
		}
		// `-p` on an empty database exits 1 after creating it.
		if len(args) != 1 || args[0] != "-p" {
			t.Fatalf("%s: buku %s: %v\n%s%s", d.name, strings.Join(args, " "), err, out, stderr)
		}
	}
	return string(out)
}

func (d *bukuDevice) sync(t *testing.T) {
	t.Helper()
	ok(t, "sync", "--config", d.config, "--db", d.db, "--folder", d.folder, "--state", d.state, "--device", d.name)
}

type bukuMark struct {
	Index int    `json:"index"`
	URI   string `json:"uri"`
	Title string `json:"title"`
}

// marks lists the bookmarks as buku prints them, by URL.
func (d *bukuDevice) marks(t *testing.T) []bukuMark {
	t.Helper()
	var ms []bukuMark
	out := d.buku(t, "-p", "-j")
	if err := json.Unmarshal([]byte(out), &ms); err != nil {
		t.Fatalf("%s: buku -p -j: %v\n%s", d.name, err, out)
	}
	sort.Slice(ms, func(i, j int) bool { return ms[i].URI < ms[j].URI })
	return ms
}

func (d *bukuDevice) index(t *testing.T, url string) string {
	t.Helper()
	for _, m := range d.marks(t) {
		if m.URI == url {
			return strings.TrimSpace(jsonInt(m.Index))
		}
	}
	t.Fatalf("%s: buku has no bookmark %s", d.name, url)
	return ""
}

func jsonInt(n int) string { b, _ := json.Marshal(n); return string(b) }

// titles renders the bookmarks as "url=title" lines, without buku's ids
// (device-local).
func titles(ms []bukuMark) string {
	var s []string
	for _, m := range ms {
		s = append(s, m.URI+"="+m.Title)
	}
	return strings.Join(s, "\n")
}

func TestBukuIdentity(t *testing.T) {
	if _, err := exec.LookPath("buku"); err != nil {
		t.Skip("buku is not installed (Debian: apt-get install buku)")
	}
	root := t.TempDir()
	folder := filepath.Join(root, "shared")
	if err := os.Mkdir(folder, 0o755); err != nil {
		t.Fatal(err)
	}
	config := filepath.Join(root, "rowdrop.yaml")
	if err := os.WriteFile(config, []byte("identity:\n  bookmarks: [URL]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	a := newBukuDevice(t, folder, config, "a")
	b := newBukuDevice(t, folder, config, "b")
	// Columns that cannot identify a bookmark are refused, named.
	bad := filepath.Join(root, "bad.yaml")
	if err := os.WriteFile(bad, []byte("identity:\n  bookmarks: [metadata]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	r := exits(t, 1, "sync", "--config", bad, "--db", a.db, "--folder", folder, "--state", filepath.Join(root, "bad-state"))
	if !strings.Contains(r.stderr, "identity of table bookmarks (metadata): column metadata may be NULL") {
		t.Fatalf("a nullable identity column: %s", r.stderr)
	}
	if entries, _ := os.ReadDir(folder); len(entries) != 0 {
		t.Fatalf("the refused config wrote into the shared folder: %v", entries)
	}
	u := func(s string) string { return "http://127.0.0.1:9/" + s }
	for _, s := range []string{"one", "two", "three"} {
		a.buku(t, "-a", u(s), "--title", "title "+s)
	}
	a.sync(t)
	b.sync(t)
	if got, want := titles(b.marks(t)), titles(a.marks(t)); got != want {
		t.Fatalf("b after the first sync:\n%s\nwant:\n%s", got, want)
	}

	// a deletes "one" (id 1): buku moves "three" into id 1. b meanwhile
	// retitles "three" under the id it has there.
	a.buku(t, "-d", a.index(t, u("one")))
	if got := a.index(t, u("three")); got != "1" {
		t.Fatalf("a: buku did not renumber: three has index %s", got)
	}
	b.buku(t, "-u", b.index(t, u("three")), "--title", "retitled on b")
	for _, d := range []*bukuDevice{a, b, a} {
		d.sync(t)
	}
	want := u("three") + "=retitled on b\n" + u("two") + "=title two"
	for _, d := range []*bukuDevice{a, b} {
		if got := titles(d.marks(t)); got != want {
			t.Errorf("%s after the renumbering delete and the retitle:\n%s\nwant:\n%s", d.name, got, want)
		}
	}

	// The same URL added on both devices: one bookmark stays, the other
	// is in the conflict log.
	a.buku(t, "-a", u("same"), "--title", "added on a")
	b.buku(t, "-a", u("same"), "--title", "added on b")
	for _, d := range []*bukuDevice{a, b, a} {
		d.sync(t)
	}
	ma, mb := a.marks(t), b.marks(t)
	if titles(ma) != titles(mb) {
		t.Fatalf("a and b differ after both added %s:\n%s\n--\n%s", u("same"), titles(ma), titles(mb))
	}
	var kept string
	n := 0
	for _, m := range ma {
		if m.URI == u("same") {
			kept, n = m.Title, n+1
		}
	}
	if n != 1 {
		t.Fatalf("%d bookmarks for %s, want 1:\n%s", n, u("same"), titles(ma))
	}
	lost := "added on a"
	if kept == "added on a" {
		lost = "added on b"
	}
	logged := false
	for _, d := range []*bukuDevice{a, b} {
		out := ok(t, "conflicts", "--json", "--config", d.config, "--db", d.db, "--folder", d.folder, "--state", d.state).stdout
		var cs []struct {
			Table string         `json:"table"`
			Loser map[string]any `json:"loser"` // typed JSON values
		}
		if err := json.Unmarshal([]byte(out), &cs); err != nil {
			t.Fatalf("%s: conflicts --json: %v\n%s", d.name, err, out)
		}
		for _, c := range cs {
			if c.Table == "bookmarks" && c.Loser["metadata"] == lost {
				logged = true
			}
		}
	}
	if !logged {
		t.Fatalf("the bookmark that lost (%s) is in no conflict log", lost)
	}
}
