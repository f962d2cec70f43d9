package scenario_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"rowdrop/scenario"
)

// Child table name sorts before the parent's ("issues" < "projects").
const sortSchema = `
CREATE TABLE projects(id INTEGER PRIMARY KEY, name TEXT NOT NULL);
CREATE TABLE issues(id TEXT PRIMARY KEY, project_id INTEGER REFERENCES projects(id), title TEXT);
`

func joinedIssues(d *scenario.Device) string {
	var b strings.Builder
	for _, r := range d.Query(`SELECT i.title, coalesce(p.name, '<dangling>') FROM issues i LEFT JOIN projects p ON p.id = i.project_id ORDER BY i.title`) {
		fmt.Fprintf(&b, "%s in %s\n", r[0], r[1])
	}
	return b.String()
}

// b has an unexported project 1 with an unexported issue; a's file brings
// project 1 and an issue of it. The local row moves; a's issue must stay
// with a's project.
func TestLocalRowMoveLeavesRemoteChildren(t *testing.T) {
	w := scenario.NewWorld(t, sortSchema)
	a := w.AddDevice(scenario.Options{Name: "a", Initialised: true})
	b := w.AddDevice(scenario.Options{Name: "b", Initialised: true})
	a.Exec(`INSERT INTO projects VALUES(1, 'A-proj')`)
	a.Exec(`INSERT INTO issues VALUES('a-issue', 1, 'a-issue')`)
	a.Export()
	w.Tick(1000)
	b.Exec(`INSERT INTO projects VALUES(1, 'B-proj')`)
	b.Exec(`INSERT INTO issues VALUES('b-issue', 1, 'b-issue')`)
	w.DeliverAll(a, b)
	b.Import()
	t.Logf("b after import:\n%s", joinedIssues(b))
	w.Tick(1000)
	w.Quiesce(8)
	w.AssertConverged()
	want := "a-issue in A-proj\nb-issue in B-proj\n"
	wantEverywhere(t, w, joinedIssues, want)
}

// A new device whose database already holds project 1 and an issue of it
// joins from a snapshot holding another project 1 with its issue.
func TestJoinNonEmptyIntegerIDsChildTableFirst(t *testing.T) {
	w := scenario.NewWorld(t, sortSchema)
	a := w.AddDevice(scenario.Options{Name: "a", Initialised: true})
	a.Exec(`INSERT INTO projects VALUES(1, 'A-proj')`)
	a.Exec(`INSERT INTO issues VALUES('a-issue', 1, 'a-issue')`)
	a.Export()
	a.Snapshot()
	c := w.AddDevice(scenario.Options{Name: "c"})
	c.Exec(`INSERT INTO projects VALUES(1, 'C-proj')`)
	c.Exec(`INSERT INTO issues VALUES('c-issue', 1, 'c-issue')`)
	w.DeliverSnapshots(a, c)
	w.DeliverAll(a, c)
	w.Tick(1000)
	if _, err := c.S.Sync(context.Background()); err != nil { // the real Syncer.Sync: join first
		t.Fatal(err)
	}
	t.Logf("c after join:\n%s\n%v", joinedIssues(c), c.Query("SELECT * FROM projects"))
	w.Tick(1000)
	w.Quiesce(8)
	w.AssertConverged()
	want := "a-issue in A-proj\nc-issue in C-proj\n"
	wantEverywhere(t, w, joinedIssues, want)
}
