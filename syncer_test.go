package rowdrop

import (
	"context"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"zombiezen.com/go/sqlite"
	"zombiezen.com/go/sqlite/sqlitex"
)

// execFile runs sql on the database at path, as the app would.
func execFile(t *testing.T, path, sql string) {
	t.Helper()
	conn, err := sqlite.OpenConn(path, sqlite.OpenReadWrite|sqlite.OpenCreate)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if err := sqlitex.ExecuteScript(conn, sql, nil); err != nil {
		t.Fatal(err)
	}
}

// The importer is built once and prepared for the live schema only when
// its fingerprint changes: syncs without a migration reuse its tables.
func TestImporterPreparedOncePerSchema(t *testing.T) {
	dir := t.TempDir()
	dbPath, folder := filepath.Join(dir, "app.db"), filepath.Join(dir, "folder")
	if err := os.Mkdir(folder, 0o755); err != nil {
		t.Fatal(err)
	}
	execFile(t, dbPath, "CREATE TABLE notes(id INTEGER PRIMARY KEY, body TEXT); INSERT INTO notes(body) VALUES('a');")
	ctx := context.Background()
	s, err := Open(ctx, Config{DB: dbPath, Folder: folder, State: filepath.Join(dir, "state"), DeviceName: "one"})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	im := s.im
	if _, err := s.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	key, tables := s.imKey, reflect.ValueOf(s.im.Tables).Pointer()
	if key == "" || s.im.Tables["notes"] == nil {
		t.Fatalf("after a sync the importer is not prepared: key %q, tables %v", key, s.im.Tables)
	}
	execFile(t, dbPath, "INSERT INTO notes(body) VALUES('b');")
	if _, err := s.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if s.im != im || s.imKey != key || reflect.ValueOf(s.im.Tables).Pointer() != tables {
		t.Fatal("a sync without a schema change prepared the importer again")
	}
	execFile(t, dbPath, "ALTER TABLE notes ADD COLUMN tag TEXT;")
	if _, err := s.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if s.im != im || s.imKey == key || s.im.Tables["notes"].ColIndex("tag") < 0 {
		t.Fatalf("after a migration the importer does not follow the new schema (key changed: %v)", s.imKey != key)
	}
}
