package scenario_test

import (
	"strings"
	"testing"

	"github.com/rowdrop/rowdrop/scenario"
)

func TestTwoDevicesConverge(t *testing.T) {
	folder := t.TempDir()
	a := scenario.NewSharedDevice(t, folder, "a", scenario.SharedOptions{Journal: "wal"})
	b := scenario.NewSharedDevice(t, folder, "b", scenario.SharedOptions{Journal: "wal", Hints: true})
	a.Exec("INSERT INTO notes VALUES('n1','hello','body one',1,1.5,x'00ff')")
	a.Exec("INSERT INTO tags VALUES('n1','x')")
	b.Exec("INSERT INTO notes VALUES('n2','from b','b body',NULL,2.5,NULL)")
	a.Sync()
	b.Sync()
	a.Sync()
	if da, db := scenario.DumpNotes(t, a.DB), scenario.DumpNotes(t, b.DB); da != db {
		t.Fatalf("not converged:\nA:\n%s\nB:\n%s", da, db)
	}
	// Different columns of one row on both sides: both survive.
	a.Exec("UPDATE notes SET title='A title' WHERE id='n1'")
	b.Exec("UPDATE notes SET body='B body' WHERE id='n1'")
	a.Sync()
	b.Sync()
	a.Sync()
	da, db := scenario.DumpNotes(t, a.DB), scenario.DumpNotes(t, b.DB)
	if da != db || !strings.Contains(da, `"A title"|"B body"`) {
		t.Fatalf("column merge failed:\nA:\n%s\nB:\n%s", da, db)
	}
	// Same cell on both sides: the later export wins, the other is logged.
	a.Exec("UPDATE notes SET title='from A' WHERE id='n2'")
	b.Exec("UPDATE notes SET title='from B' WHERE id='n2'")
	a.Sync()
	b.Sync() // b merges A's title, keeps its own unexported edit, exports it
	a.Sync()
	da, db = scenario.DumpNotes(t, a.DB), scenario.DumpNotes(t, b.DB)
	if da != db || !strings.Contains(da, `"from B"`) {
		t.Fatalf("same-cell conflict:\nA:\n%s\nB:\n%s", da, db)
	}
	cs, err := b.S.Conflicts()
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, c := range cs {
		if c.Loser["title"] == "'from A'" {
			found = true
		}
	}
	if !found {
		t.Fatalf("losing value 'from A' not in conflict log: %+v", cs)
	}
	// Delete on one side.
	b.Exec("DELETE FROM notes WHERE id='n1'")
	b.Sync()
	a.Sync()
	if da, db := scenario.DumpNotes(t, a.DB), scenario.DumpNotes(t, b.DB); da != db || strings.Contains(da, `"n1"|"A title"`) {
		t.Fatalf("delete:\nA:\n%s\nB:\n%s", da, db)
	}
}
