package scenario_test

import (
	"os"
	"path/filepath"
	"testing"

	"zombiezen.com/go/sqlite"
	"zombiezen.com/go/sqlite/sqlitex"

	"rowdrop/internal/changeset"
	"rowdrop/internal/rdfile"
	"rowdrop/scenario"
)

// A snapshot whose rowdrop_rekeys holds an invented record (checksummed, so
// whole) is refused: the record never reaches the joiner's base copy, so
// it cannot redirect a's later update of notebook 1.
func TestSnapshotWithForgedRekeyRefused(t *testing.T) {
	w := scenario.NewWorld(t, kbIntSchema)
	a := w.AddDevice(scenario.Options{Name: "a", Initialised: true})
	a.Exec(`INSERT INTO notebooks VALUES(1, 'A-book')`)
	a.Export()
	good := a.Snapshot()
	c := w.AddDevice(scenario.Options{Name: "c"})
	w.DeliverAll(a, c)
	rel := craftSnapshot(t, good.File, c, a.ID, 7, func(conn *sqlite.Conn, h *rdfile.Header) {
		err := sqlitex.Execute(conn, "INSERT INTO rowdrop_rekeys(tbl,old_pk,new_pk,keeper_hlc,keeper_dev,mover_hlc,mover_dev) VALUES('notebooks',?,x'00',1,'aaaaaaaaaaaaaaaa',2,?)",
			&sqlitex.ExecOptions{Args: []any{changeset.EncodeKey([]changeset.Value{changeset.Int(1)}), a.ID}})
		if err != nil {
			t.Fatal(err)
		}
	})
	t.Logf("crafted %s", rel)
	c.Import()
	t.Logf("c files: %+v", c.Status().Files)
	t.Logf("c: %v", c.Query("SELECT * FROM notebooks"))
	w.Tick(1000)
	a.Exec(`UPDATE notebooks SET name='A-book renamed' WHERE id=1`)
	a.Export()
	w.DeliverAll(a, c)
	c.Import()
	if got := c.Value("SELECT name FROM notebooks WHERE id=1"); got != "A-book renamed" {
		t.Fatalf("c: notebook 1 is %q after a renamed it (hostile snapshot redirected the update): %v", got, c.Query("SELECT * FROM notebooks"))
	}
	_ = os.Remove
	_ = filepath.Join
}

// A snapshot whose device vector (header and content agreeing) claims
// files of a that a never wrote is not used, so the joiner does not skip
// a's real later files.
func TestSnapshotClaimingUnpublishedFilesNotUsed(t *testing.T) {
	w := scenario.NewWorld(t, snapSchema)
	a := w.AddDevice(scenario.Options{Name: "a", Initialised: true})
	a.Exec(`INSERT INTO notes(id,title) VALUES('n1','one')`)
	a.Export()
	good := a.Snapshot()
	c := w.AddDevice(scenario.Options{Name: "c"})
	w.DeliverAll(a, c)
	craftSnapshot(t, good.File, c, a.ID, 7, func(conn *sqlite.Conn, h *rdfile.Header) {
		mustExecT(t, conn, "UPDATE rowdrop_devices SET applied=50")
		h.Seen = map[string]uint64{a.ID: 50}
	})
	c.Import()
	w.Tick(1000)
	a.Exec(`INSERT INTO notes(id,title) VALUES('n2','two')`)
	a.Export()
	w.DeliverAll(a, c)
	c.Import()
	t.Logf("c files: %+v", c.Status().Files)
	if got := c.Value("SELECT count(*) FROM notes"); got != "2" {
		t.Fatalf("c has %s notes, a has 2: a's later file was skipped", got)
	}
}
