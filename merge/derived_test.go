package merge

import (
	"slices"
	"testing"
)

func TestSetCols(t *testing.T) {
	for _, c := range []struct {
		sql, tbl string
		want     []string
	}{
		{`CREATE TRIGGER t AFTER UPDATE ON notes BEGIN UPDATE notes SET updated_at = CAST(unixepoch('subsec') * 1000 AS INTEGER) WHERE id = new.id; END`, "notes", []string{"updated_at"}},
		{`CREATE TRIGGER t AFTER UPDATE OF title ON "notes" WHEN new.updated_at IS old.updated_at BEGIN UPDATE "notes" SET "updated_at"=1, rev = rev + (SELECT 1 FROM x WHERE a = b) WHERE rowid = new.rowid; END`, "notes", []string{"updated_at", "rev"}},
		{`CREATE TRIGGER t AFTER UPDATE ON notes BEGIN UPDATE OR IGNORE main.notes SET (a) = 1; END`, "notes", nil},                                                       // row-value form: not recognised
		{`CREATE TRIGGER t AFTER UPDATE ON notes BEGIN UPDATE notes SET title = trim(NEW.title), updated_at = 5 WHERE id = new.id; END`, "notes", []string{"updated_at"}}, // title reshaped, not derived
		{`CREATE TRIGGER t AFTER UPDATE ON notes BEGIN UPDATE other SET n = n + 1 WHERE id = new.id; END`, "notes", nil},
		{`CREATE TRIGGER t AFTER INSERT ON notes BEGIN INSERT INTO log VALUES(new.id); END`, "notes", nil},
	} {
		if got := setCols(c.sql, c.tbl); !slices.Equal(got, c.want) {
			t.Errorf("setCols(%q) = %v, want %v", c.sql, got, c.want)
		}
	}
}
