package scenario_test

import (
	"context"
	"testing"

	"github.com/rowdrop/rowdrop"
	"github.com/rowdrop/rowdrop/scenario"
)

// A notes app's schema: an FTS5 external-content index kept by triggers and
// an updated_at trigger without a WHEN guard (the echo-prone kind).
const appSchema = `
CREATE TABLE notes(id TEXT PRIMARY KEY, title TEXT, body TEXT, updated_at INTEGER NOT NULL DEFAULT 0);
CREATE VIRTUAL TABLE notes_fts USING fts5(title, body, content='notes', content_rowid='rowid');
CREATE TRIGGER notes_ai AFTER INSERT ON notes BEGIN
  INSERT INTO notes_fts(rowid, title, body) VALUES (new.rowid, new.title, new.body);
END;
CREATE TRIGGER notes_ad AFTER DELETE ON notes BEGIN
  INSERT INTO notes_fts(notes_fts, rowid, title, body) VALUES('delete', old.rowid, old.title, old.body);
END;
CREATE TRIGGER notes_au AFTER UPDATE OF title, body ON notes BEGIN
  INSERT INTO notes_fts(notes_fts, rowid, title, body) VALUES('delete', old.rowid, old.title, old.body);
  INSERT INTO notes_fts(rowid, title, body) VALUES (new.rowid, new.title, new.body);
END;
CREATE TRIGGER notes_touch AFTER UPDATE OF title, body ON notes BEGIN
  UPDATE notes SET updated_at = CAST(unixepoch('subsec')*1000 AS INTEGER) WHERE id = new.id;
END;
`

func TestAppTriggersNoEchoAndFTSStaysRight(t *testing.T) {
	ctx := context.Background()
	folder := t.TempDir()
	a := scenario.NewSharedDevice(t, folder, "a", scenario.SharedOptions{Schema: appSchema})
	b := scenario.NewSharedDevice(t, folder, "b", scenario.SharedOptions{Schema: appSchema})
	pa, pb := a.DB, b.DB
	scenario.ExecFile(t, pa, "INSERT INTO notes(id,title,body) VALUES('u1','groceries','apples and pears')")
	for _, s := range []*rowdrop.Syncer{a.S, b.S, a.S, b.S} {
		if _, err := s.Sync(ctx); err != nil {
			t.Fatal(err)
		}
	}
	scenario.ExecFile(t, pb, "UPDATE notes SET body='apples, pears and plums' WHERE id='u1'")
	before := scenario.CountChangesets(t, folder)
	for i := 0; i < 4; i++ {
		for _, s := range []*rowdrop.Syncer{b.S, a.S} {
			if _, err := s.Sync(ctx); err != nil {
				t.Fatal(err)
			}
		}
	}
	// One edit, one file: applying it on A must not produce a file back.
	if got := scenario.CountChangesets(t, folder) - before; got != 1 {
		t.Fatalf("one edit produced %d files (echo between devices)", got)
	}
	dump := "SELECT id,title,body,updated_at FROM notes ORDER BY id"
	if da, db := scenario.RowsFile(t, pa, dump), scenario.RowsFile(t, pb, dump); da != db {
		t.Fatalf("diverged:\nA %s\nB %s", da, db)
	}
	for _, p := range []string{pa, pb} {
		if got := scenario.RowsFile(t, p, "SELECT id FROM notes WHERE rowid IN (SELECT rowid FROM notes_fts WHERE notes_fts MATCH 'plums')"); got != "u1|\n" {
			t.Fatalf("%s: FTS search for the merged word returned %q", p, got)
		}
		if got := scenario.RowsFile(t, p, "SELECT count(*) FROM notes_fts WHERE notes_fts MATCH 'plums OR apples'"); got != "1|\n" {
			t.Fatalf("%s: FTS index holds stale entries: %q", p, got)
		}
		if got := scenario.RowsFile(t, p, "PRAGMA integrity_check"); got != "ok|\n" {
			t.Fatalf("%s: integrity_check: %s", p, got)
		}
		// FTS5's own consistency check of the index against its content table.
		scenario.ExecFile(t, p, "INSERT INTO notes_fts(notes_fts, rank) VALUES('integrity-check', 1)")
	}
}
