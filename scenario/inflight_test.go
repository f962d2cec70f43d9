package scenario_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/rowdrop/rowdrop"
	"github.com/rowdrop/rowdrop/scenario"
)

const itemsSchema = `CREATE TABLE items(id INTEGER PRIMARY KEY, title TEXT, body TEXT);`

// An import into an INTEGER-keyed table cut short after live committed
// and before base did (here: the state directory's disk fills; a crash
// leaves the same), then the app edits a row the import had written.
// The re-run must take that row for the import's own (plus an edit made
// here), not for a row created here that collides with the insert: no
// re-keyed copy, one row with the edit on every device.
func TestInterruptedIntegerImportNoDuplicate(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	folder := filepath.Join(root, "folder")
	os.MkdirAll(folder, 0o755)
	small := filepath.Join(root, "small")
	resize := smallDisk(t, small, "4m")
	aDB, bDB := filepath.Join(root, "a.db"), filepath.Join(root, "b.db")
	newDB(t, aDB, itemsSchema)
	newDB(t, bDB, itemsSchema)
	a := openSyncer(t, rowdrop.Config{DB: aDB, Folder: folder, State: filepath.Join(root, "a-state"), DeviceName: "a"})
	bState := filepath.Join(small, "state")
	b := openSyncer(t, rowdrop.Config{DB: bDB, Folder: folder, State: bState, DeviceName: "b", MergeBatch: 100})
	for _, s := range []*rowdrop.Syncer{b, a, b} {
		if _, err := s.Sync(ctx); err != nil {
			t.Fatal(err)
		}
	}
	scenario.ExecFile(t, aDB, `WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM n WHERE i < 3000)
		INSERT INTO items(id,title,body) SELECT i, 'from a', hex(randomblob(800)) FROM n`)
	if _, err := a.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Sync(ctx); err == nil {
		t.Fatal("the import should have failed on the full disk")
	}
	live := scenario.ValueFile(t, bDB, "SELECT count(*) FROM items")
	base := scenario.ValueFile(t, filepath.Join(bState, "base.db"), "SELECT count(*) FROM items")
	if live == base {
		t.Fatalf("the merge should have been cut short between live's commits and base's: live %s rows, base %s", live, base)
	}
	// The app edits a row the interrupted import wrote.
	scenario.ExecFile(t, bDB, "UPDATE items SET title='edited on b' WHERE id=5")
	resize("64m")
	for _, s := range []*rowdrop.Syncer{b, b, a, b} {
		if _, err := s.Sync(ctx); err != nil {
			t.Fatal(err)
		}
	}
	for name, path := range map[string]string{"A": aDB, "B": bDB} {
		if n := scenario.ValueFile(t, path, "SELECT count(*) FROM items"); n != "3000" {
			t.Errorf("%s holds %s items, want 3000 (re-keyed copies: %s)", name, n,
				scenario.ValueFile(t, path, "SELECT group_concat(id || ':' || title) FROM items WHERE id < 0 OR id > 3000"))
		}
		if got := scenario.ValueFile(t, path, "SELECT title FROM items WHERE id=5"); got != "edited on b" {
			t.Errorf("%s: item 5 is %q, want B's edit", name, got)
		}
	}
	if da, db := scenario.RowsFile(t, aDB, "SELECT id, title FROM items ORDER BY id"), scenario.RowsFile(t, bDB, "SELECT id, title FROM items ORDER BY id"); da != db {
		t.Error("A and B differ")
	}
}
