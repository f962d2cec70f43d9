package rowdrop

import (
	"context"
	"path/filepath"
	"slices"
	"testing"

	"github.com/rowdrop/rowdrop/internal/profile"

	"zombiezen.com/go/sqlite"
	"zombiezen.com/go/sqlite/sqlitex"
)

// feedSchema is an app whose own code (no trigger) logs changes in feed.
const feedSchema = `CREATE TABLE notes(id TEXT PRIMARY KEY, title TEXT);
CREATE TABLE feed(seq INTEGER PRIMARY KEY AUTOINCREMENT, item TEXT, op TEXT);`

func feedDevice(t *testing.T, folder, name string) (Config, string) {
	dir := t.TempDir()
	path := filepath.Join(dir, name+".db")
	conn, err := sqlite.OpenConn(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := sqlitex.ExecuteScript(conn, feedSchema, nil); err != nil {
		t.Fatal(err)
	}
	conn.Close()
	return Config{DB: path, Folder: folder, State: filepath.Join(dir, "state"), DeviceName: name, CreateFolder: true,
		Exclude:    []string{"feed"},
		AfterApply: map[string]string{"notes": "INSERT INTO feed(item, op) VALUES (:key, :op)"}}, path
}

func execDB(t *testing.T, path, q string) {
	conn, err := sqlite.OpenConn(path)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if err := sqlitex.ExecuteScript(conn, q, nil); err != nil {
		t.Fatal(err)
	}
}

func feedRows(t *testing.T, path string) []string {
	conn, err := sqlite.OpenConn(path)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var out []string
	err = sqlitex.ExecuteTransient(conn, "SELECT item || ':' || op FROM feed ORDER BY seq", &sqlitex.ExecOptions{ResultFunc: func(s *sqlite.Stmt) error {
		out = append(out, s.ColumnText(0))
		return nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func syncOnce(t *testing.T, cfg Config) {
	t.Helper()
	s, err := Open(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.Sync(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// Merged rows reach the app's own feed through the after-apply action:
// an insert, an update and a delete, each once, with its key.
func TestAfterApplyFeedsMergedRows(t *testing.T) {
	folder := filepath.Join(t.TempDir(), "shared")
	cfgA, dbA := feedDevice(t, folder, "a")
	cfgB, dbB := feedDevice(t, folder, "b")
	syncOnce(t, cfgA)
	syncOnce(t, cfgB)
	execDB(t, dbA, "INSERT INTO notes VALUES ('n1', 'first')")
	syncOnce(t, cfgA)
	syncOnce(t, cfgB)
	execDB(t, dbA, "UPDATE notes SET title = 'second' WHERE id = 'n1'")
	syncOnce(t, cfgA)
	syncOnce(t, cfgB)
	execDB(t, dbA, "DELETE FROM notes WHERE id = 'n1'")
	syncOnce(t, cfgA)
	syncOnce(t, cfgB)
	if got, want := feedRows(t, dbB), []string{"n1:insert", "n1:update", "n1:delete"}; !slices.Equal(got, want) {
		t.Fatalf("feed on B: %v, want %v", got, want)
	}
	if got := feedRows(t, dbA); len(got) != 0 {
		t.Fatalf("feed on A (local edits are the app's to log): %v", got)
	}
}

// A profile is a default: the user's include brings back a table the
// profile excludes; app: none turns it off.
func TestProfileUnderUserConfig(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "bookmarks.db")
	execDB(t, path, `CREATE TABLE bookmarks (id integer PRIMARY KEY, URL text NOT NULL UNIQUE, metadata text default '', tags text default ',', desc text default '', flags integer default 0);`)
	cfg := Config{DB: path, Folder: filepath.Join(dir, "shared"), State: filepath.Join(dir, "state"), CreateFolder: true}
	live, _, err := openLive(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer live.Close()
	withProfile := func(cfg Config) (Config, *profile.Profile, error) { return withProfile(cfg, live) }
	got, p, err := withProfile(cfg)
	if err != nil || p == nil || p.Name != "buku" || !slices.Equal(got.Identity["bookmarks"], []string{"URL"}) {
		t.Fatalf("buku's schema: profile %v, identity %v, err %v", p, got.Identity, err)
	}
	cfg.Identity = map[string][]string{"bookmarks": {"metadata"}}
	if got, _, _ := withProfile(cfg); !slices.Equal(got.Identity["bookmarks"], []string{"metadata"}) {
		t.Fatalf("the user's identity does not beat the profile's: %v", got.Identity)
	}
	cfg.App = "none"
	if got, p, _ := withProfile(cfg); p != nil || got.Identity["bookmarks"][0] != "metadata" {
		t.Fatalf("app: none still uses %v", p)
	}
	cfg.App = "calibre"
	got, _, err = withProfile(cfg)
	if err != nil || !slices.Equal(got.Exclude, nil) || got.StandIns["title_sort"] != "title_sort" {
		t.Fatalf("a forced profile: %+v, %v (its excludes missing here are dropped)", got, err)
	}
	cfg.App = "nosuch"
	if _, _, err := withProfile(cfg); err == nil {
		t.Fatal("an unknown app: accepted")
	}
}
