package inspect

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"zombiezen.com/go/sqlite"
	"zombiezen.com/go/sqlite/sqlitex"

	"github.com/rowdrop/rowdrop/internal/db"
	"github.com/rowdrop/rowdrop/internal/profile"
)

// The fixtures in testdata were made by the real apps: buku.db by
// `buku -a`, calibre.db by `calibredb add --empty` (calibre 6.13),
// joplin.db by the Joplin terminal client.

func inspectFile(t *testing.T, path, app string) *Report {
	t.Helper()
	// A copy: inspect only reads, and the fixture stays as the app made it.
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	cp := filepath.Join(t.TempDir(), filepath.Base(path))
	if err := os.WriteFile(cp, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	conn, err := db.OpenLive(cp, true)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	all, err := profile.Builtin()
	if err != nil {
		t.Fatal(err)
	}
	r, err := Run(conn, cp, all, app)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func action(r *Report, table string) (string, string) {
	for _, t := range r.Tables {
		if t.Name == table {
			return t.Action, t.Reason
		}
	}
	return "", ""
}

func warned(r *Report, table, kind string) bool {
	for _, w := range r.Warnings {
		if w.Table == table && w.Kind == kind {
			return true
		}
	}
	return false
}

func TestInspectBuku(t *testing.T) {
	r := inspectFile(t, "testdata/buku.db", "")
	if r.App != "buku" {
		t.Fatalf("app %q, want buku", r.App)
	}
	act, why := action(r, "bookmarks")
	if act != "sync" || !strings.Contains(why, "URL") {
		t.Fatalf("bookmarks: %s (%s), want synced, matched by URL", act, why)
	}
	// Without the profile, the renumbered key is what inspect warns of.
	r = inspectFile(t, "testdata/buku.db", "none")
	if !warned(r, "bookmarks", "renumbered-key") || !strings.Contains(r.Snippet, "URL") {
		t.Fatalf("unrecognised buku: warnings %+v, snippet %s", r.Warnings, r.Snippet)
	}
}

func TestInspectCalibre(t *testing.T) {
	r := inspectFile(t, "testdata/calibre.db", "")
	if r.App != "calibre" {
		t.Fatalf("app %q, want calibre", r.App)
	}
	for table, want := range map[string]string{"books": "sync", "authors": "sync", "books_authors_link": "sync", "library_id": "exclude",
		"preferences": "exclude", "annotations_fts": "exclude", "sqlite_sequence": "exclude"} {
		if act, why := action(r, table); act != want {
			t.Errorf("%s: %s (%s), want %s", table, act, why, want)
		}
	}
	if _, why := action(r, "library_id"); !strings.Contains(why, "calibre profile") {
		t.Errorf("library_id's reason %q does not name the profile", why)
	}
	// The profile's stand-ins cover the triggers' functions.
	for _, w := range r.Warnings {
		if w.Kind == "missing-function" {
			t.Errorf("with the profile: %s", w.Message)
		}
	}
	r = inspectFile(t, "testdata/calibre.db", "none")
	for _, f := range []string{"title_sort", "uuid4"} {
		if !strings.Contains(r.Snippet, f+":") {
			t.Errorf("without the profile the snippet lacks a stand-in for %s:\n%s", f, r.Snippet)
		}
	}
	if !warned(r, "library_id", "one-row") || !warned(r, "preferences", "device-local-name") {
		t.Errorf("without the profile: warnings %+v", r.Warnings)
	}
}

// An app no profile knows: each device-local pattern is warned of.
func TestInspectUnknownSchema(t *testing.T) {
	path := filepath.Join(t.TempDir(), "app.db")
	conn, err := sqlite.OpenConn(path)
	if err != nil {
		t.Fatal(err)
	}
	err = sqlitex.ExecuteScript(conn, `
CREATE TABLE items(id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, body TEXT);
CREATE TABLE sync_state(id INTEGER PRIMARY KEY, cursor TEXT);
CREATE TABLE key_values(key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE install(id INTEGER PRIMARY KEY, uuid TEXT);
INSERT INTO install VALUES (1, 'b3c1');
CREATE TABLE attachments(id TEXT PRIMARY KEY, local_path TEXT);
INSERT INTO attachments VALUES ('a', '/home/ann/files/a.pdf');
CREATE TABLE counters(name TEXT PRIMARY KEY, seq INTEGER);
CREATE TABLE loose(x TEXT);
CREATE TRIGGER items_ai AFTER INSERT ON items BEGIN UPDATE items SET body = make_body(new.name, 'not_a_call(') WHERE id = new.id; END;
`, nil)
	conn.Close()
	if err != nil {
		t.Fatal(err)
	}
	r := inspectFile(t, path, "")
	if r.App != "" {
		t.Fatalf("recognised as %s", r.App)
	}
	for _, w := range []struct{ table, kind string }{
		{"sync_state", "device-local-name"}, {"key_values", "device-local-name"}, {"install", "one-row"},
		{"attachments", "absolute-path"}, {"counters", "counter"}, {"items", "renumbered-key"}, {"", "missing-function"},
	} {
		if !warned(r, w.table, w.kind) {
			t.Errorf("no %s warning for %q: %+v", w.kind, w.table, r.Warnings)
		}
	}
	if act, _ := action(r, "loose"); act != "skip" {
		t.Errorf("loose (no primary key): %s, want skip", act)
	}
	for _, w := range r.Warnings {
		if strings.Contains(w.Message, "not_a_call") {
			t.Errorf("a string literal read as a call: %s", w.Message)
		}
	}
	for _, want := range []string{"sync_state", "key_values", "install", "make_body: identity", "name"} {
		if !strings.Contains(r.Snippet, want) {
			t.Errorf("snippet lacks %q:\n%s", want, r.Snippet)
		}
	}
}

// joplin.db was made by the terminal client 3.5.1 (mkbook, mknote).
func TestInspectJoplin(t *testing.T) {
	r := inspectFile(t, "testdata/joplin.db", "")
	if r.App != "joplin" {
		t.Fatalf("app %q, want joplin", r.App)
	}
	for table, want := range map[string]string{"notes": "sync", "folders": "sync", "tags": "sync", "note_tags": "sync", "resources": "sync",
		"settings": "exclude", "item_changes": "exclude", "sync_items": "exclude", "deleted_items": "exclude", "key_values": "exclude",
		"notes_normalized": "exclude", "notes_fts": "exclude"} {
		if act, why := action(r, table); act != want {
			t.Errorf("%s: %s (%s), want %s", table, act, why, want)
		}
	}
	for _, w := range r.Warnings {
		t.Errorf("with the profile: %s", w.Message)
	}
}
