package rowdrop

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// newAppDB creates a database with one table in dir.
func newAppDB(t *testing.T, dir string) string {
	t.Helper()
	p := filepath.Join(dir, "app.db")
	execFile(t, p, "CREATE TABLE notes(id INTEGER PRIMARY KEY, body TEXT);")
	return p
}

// The guards compare paths after resolving symbolic links: a folder that
// is a link to the database's directory, or a state directory reached
// through a link into the folder, is refused, and nothing is created.
func TestGuardsResolveSymlinks(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	dbDir := filepath.Join(dir, "data")
	if err := os.Mkdir(dbDir, 0o755); err != nil {
		t.Fatal(err)
	}
	dbPath := newAppDB(t, dbDir)
	link := filepath.Join(dir, "Dropbox")
	if err := os.Symlink(dbDir, link); err != nil {
		t.Fatal(err)
	}
	state := filepath.Join(dir, "state")
	_, err := Open(ctx, Config{DB: dbPath, Folder: link, State: state})
	if err == nil || !strings.Contains(err.Error(), "inside the shared folder") || !strings.Contains(err.Error(), dbDir) {
		t.Fatalf("a folder linking to the database's directory: got %v, want a refusal naming %s", err, dbDir)
	}
	// The state directory, not there yet, under a link into the folder.
	folder := filepath.Join(dir, "shared")
	if err := os.Mkdir(folder, 0o755); err != nil {
		t.Fatal(err)
	}
	stLink := filepath.Join(dir, "st")
	if err := os.Symlink(folder, stLink); err != nil {
		t.Fatal(err)
	}
	_, err = Open(ctx, Config{DB: dbPath, Folder: folder, State: filepath.Join(stLink, "a", "b")})
	if err == nil || !strings.Contains(err.Error(), "state directory") {
		t.Fatalf("a state directory reached through a link into the folder: got %v", err)
	}
	// The database reached through a link, its file inside the folder.
	inFolder := newAppDB(t, folder)
	dbLink := filepath.Join(dir, "notes.db")
	if err := os.Symlink(inFolder, dbLink); err != nil {
		t.Fatal(err)
	}
	if _, err = Open(ctx, Config{DB: dbLink, Folder: folder, State: state}); err == nil || !strings.Contains(err.Error(), "inside the shared folder") {
		t.Fatalf("a database linking into the folder: got %v", err)
	}
	for _, p := range []string{state, filepath.Join(folder, "a")} {
		if _, err := os.Stat(p); err == nil {
			t.Errorf("%s was created by a refused Open", p)
		}
	}
}

// A shared folder that does not exist is refused on the first run before
// anything is written, unless CreateFolder; once the pair is initialised a
// missing folder is an unmounted stick and Open goes ahead.
func TestMissingFolderRefusedUnlessCreate(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	dbPath := newAppDB(t, dir)
	folder, state := filepath.Join(dir, "typo"), filepath.Join(dir, "state")
	_, err := Open(ctx, Config{DB: dbPath, Folder: folder, State: state})
	if err == nil || !strings.Contains(err.Error(), "does not exist") || !strings.Contains(err.Error(), "--create-folder") {
		t.Fatalf("missing folder on a first run: got %v", err)
	}
	if _, err := os.Stat(state); err == nil {
		t.Fatalf("a refused Open created the state directory %s", state)
	}
	s, err := Open(ctx, Config{DB: dbPath, Folder: folder, State: state, CreateFolder: true})
	if err != nil {
		t.Fatalf("CreateFolder: %v", err)
	}
	s.Close()
	if st, err := os.Stat(folder); err != nil || !st.IsDir() {
		t.Fatalf("CreateFolder did not create %s: %v", folder, err)
	}
	if err := os.Remove(folder); err != nil {
		t.Fatal(err)
	}
	s, err = Open(ctx, Config{DB: dbPath, Folder: folder, State: state})
	if err != nil {
		t.Fatalf("an initialised pair whose folder is gone (a stick not mounted) must open: %v", err)
	}
	s.Close()
	file := filepath.Join(dir, "file")
	os.WriteFile(file, nil, 0o644)
	if _, err := Open(ctx, Config{DB: dbPath, Folder: file, State: filepath.Join(dir, "s2")}); err == nil || !strings.Contains(err.Error(), "not a directory") {
		t.Fatalf("a folder that is a file: got %v", err)
	}
}

// A pair that cannot work (the database is not SQLite, a stand-in has an
// unknown kind) fails before the state directory is created.
func TestInvalidPairCreatesNoState(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	folder := filepath.Join(dir, "folder")
	os.Mkdir(folder, 0o755)
	notDB := filepath.Join(dir, "notes.txt")
	os.WriteFile(notDB, []byte("not a database, just some text that is long enough to be read as a header......"), 0o644)
	for _, c := range []Config{
		{DB: notDB, Folder: folder, State: filepath.Join(dir, "s1")},
		{DB: newAppDB(t, dir), Folder: folder, State: filepath.Join(dir, "s2"), StandIns: map[string]string{"title_sort": "reverse"}},
	} {
		if s, err := Open(ctx, c); err == nil {
			s.Close()
			t.Fatalf("Open(%s) succeeded", c.DB)
		}
		if _, err := os.Stat(c.State); err == nil {
			t.Errorf("a refused Open of %s created the state directory", c.DB)
		}
	}
}
