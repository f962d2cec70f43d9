package export

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rowdrop/rowdrop/internal/state"
)

// An app upgrade that adds columns (ALTER TABLE ... ADD COLUMN, with
// defaults, NOT NULL, a collation, a CHECK with commas inside) and a new
// table: the base copy follows, the migration itself exports nothing for
// the old rows (they read the defaults in live and base alike), the new
// table's rows go out as inserts, and later edits of the new columns are
// exported with the new column count.
func TestExportFollowsAddColumn(t *testing.T) {
	for _, hints := range []bool{false, true} {
		t.Run(fmt.Sprintf("hints=%t", hints), func(t *testing.T) {
			e := newEnv(t, envOpts{hints: hints, wal: true, schema: `
				CREATE TABLE notes(id TEXT PRIMARY KEY, title TEXT, /* a comment, with a comma */ body TEXT,
					CONSTRAINT t_ok CHECK (length(title) < 1000));`})
			e.exec(`INSERT INTO notes VALUES('a', 'A', 'x'), ('b', 'B', 'y')`)
			if r := e.export(); r.Seq != 1 || r.Changes != 2 {
				t.Fatalf("first export: %+v", r)
			}
			e.exec(`ALTER TABLE notes ADD COLUMN pinned INTEGER NOT NULL DEFAULT 0 CHECK (pinned IN (0, 1));
				ALTER TABLE notes ADD COLUMN "folder name" TEXT COLLATE NOCASE DEFAULT 'inbox';
				ALTER TABLE notes ADD COLUMN rev;
				CREATE TABLE tags(id INTEGER PRIMARY KEY, name TEXT UNIQUE);
				INSERT INTO tags VALUES(1, 'work');`)
			r := e.export()
			if r.Seq != 2 || r.Changes != 1 || len(r.SchemaProblems) != 0 {
				t.Fatalf("export after the migration: want only the new table's row, got %+v", r)
			}
			if got := dumpTables(t, filepath.Join(e.dir, "state", "base.db"), e.tables()); got != dumpTables(t, e.live, e.tables()) {
				t.Fatalf("base differs from live after the migration:\nbase:\n%s\nlive:\n%s", got, dumpTables(t, e.live, e.tables()))
			}
			e.exec(`UPDATE notes SET pinned=1, "folder name"='Work' WHERE id='a'; INSERT INTO notes(id, title, body) VALUES('c', 'C', 'z')`)
			r = e.export()
			if r.Seq != 3 || r.Changes != 2 {
				t.Fatalf("export of edits of the new columns: %+v", r)
			}
			h, changes, _ := readFile(t, filepath.Join(e.folder, e.exp.ID.Device, "0000000003.rdc"))
			if len(h.Tables) != 1 || len(h.Tables[0].Columns) != 6 {
				t.Fatalf("header tables: %+v", h.Tables)
			}
			joined := strings.Join(changes, "\n")
			if !strings.Contains(joined, "INSERT") || !strings.Contains(joined, "UPDATE") {
				t.Fatalf("changes: %s", joined)
			}
			// The folder column kept its collation in base: a case-only
			// edit is still seen (exact compare) and nothing is missed.
			e.exec(`UPDATE notes SET "folder name"='WORK' WHERE id='a'`)
			if r := e.export(); r.Changes != 1 {
				t.Fatalf("case-only edit of a NOCASE added column: %+v", r)
			}
			if got := dumpTables(t, filepath.Join(e.dir, "state", "base.db"), e.tables()); got != dumpTables(t, e.live, e.tables()) {
				t.Fatalf("base differs from live:\nbase:\n%s\nlive:\n%s", got, dumpTables(t, e.live, e.tables()))
			}
		})
	}
}

// Migrations rowdrop cannot follow (key changed, column removed, column
// retyped by a table rebuild) leave that table out with a reason naming it
// and what changed, recorded for Status; the other tables keep exporting.
func TestExportSchemaProblemKeepsOtherTables(t *testing.T) {
	e := newEnv(t, envOpts{schema: `
		CREATE TABLE a(id INTEGER PRIMARY KEY, v TEXT);
		CREATE TABLE b(id INTEGER PRIMARY KEY, v TEXT, gone TEXT);
		CREATE TABLE c(id INTEGER PRIMARY KEY, n INTEGER);
		CREATE TABLE ok(id INTEGER PRIMARY KEY, v TEXT);`})
	e.exec(`INSERT INTO a VALUES(1,'x'); INSERT INTO b VALUES(1,'x','g'); INSERT INTO c VALUES(1, 2); INSERT INTO ok VALUES(1,'x')`)
	e.export()
	e.exec(`CREATE TABLE a2(id INTEGER, v TEXT, PRIMARY KEY(id, v)); INSERT INTO a2 SELECT * FROM a; DROP TABLE a; ALTER TABLE a2 RENAME TO a;
		ALTER TABLE b DROP COLUMN gone;
		CREATE TABLE c2(id INTEGER PRIMARY KEY, n TEXT); INSERT INTO c2 SELECT * FROM c; DROP TABLE c; ALTER TABLE c2 RENAME TO c;
		UPDATE a SET v='edited'; UPDATE ok SET v='edited'`)
	r := e.export()
	if r.Seq != 2 || r.Changes != 1 || len(r.Tables) != 1 || r.Tables[0] != "ok" {
		t.Fatalf("export: want only table ok's edit, got %+v", r)
	}
	want := map[string]string{
		"a": "table a: primary key changed from (id) to (id, v)",
		"b": "table b: column(s) gone removed",
		"c": `table c: column n changed type from "INTEGER" to "TEXT"`,
	}
	if len(r.SchemaProblems) != len(want) {
		t.Fatalf("problems: %+v", r.SchemaProblems)
	}
	for _, p := range r.SchemaProblems {
		if !strings.HasPrefix(p.Reason, want[p.Table]) || !strings.Contains(p.Reason, "move this device's state directory aside") {
			t.Errorf("problem of %s: %q, want it to start with %q and say what to do", p.Table, p.Reason, want[p.Table])
		}
	}
	var recorded []SchemaProblem
	if err := json.Unmarshal([]byte(stateValue(t, e.st, state.KeySchemaProblems)), &recorded); err != nil || len(recorded) != 3 {
		t.Fatalf("recorded problems: %q %v", stateValue(t, e.st, state.KeySchemaProblems), err)
	}
	if ps, err := CheckBase(e.st, e.tables()); err != nil || len(ps) != 3 {
		t.Fatalf("CheckBase: %+v %v", ps, err)
	}
	// Putting the table back the way it was resumes it: the edit made
	// meanwhile is exported then.
	e.exec(`CREATE TABLE a3(id INTEGER PRIMARY KEY, v TEXT); INSERT INTO a3 SELECT * FROM a; DROP TABLE a; ALTER TABLE a3 RENAME TO a`)
	r = e.export()
	if len(r.SchemaProblems) != 2 || r.Changes != 1 || r.Tables[0] != "a" {
		t.Fatalf("export after undoing the key change: %+v", r)
	}
}
