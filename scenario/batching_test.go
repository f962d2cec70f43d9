package scenario_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/rowdrop/rowdrop"
	"github.com/rowdrop/rowdrop/internal/changeset"
	"github.com/rowdrop/rowdrop/internal/rdfile"
	"github.com/rowdrop/rowdrop/scenario"
)

// A file that repeats a key (rowdrop never writes one, a foreign writer
// might) applies as if its changes were merged one by one, whatever the
// batch size: the merge pipeline splits batches at a repeated key.
func TestRepeatedKeyInOneFileSameForAnyBatch(t *testing.T) {
	ctx := context.Background()
	const foreign = "ffffffffffffffff"
	var dumps []string
	for _, batch := range []int{1, 2, 3, 0} {
		folder := t.TempDir()
		d := scenario.NewSharedDevice(t, folder, "d", scenario.SharedOptions{Journal: "wal"})
		d.S.Close()
		upd := &changeset.Change{Table: insertNote("n1", "").Table, Op: changeset.OpUpdate,
			Old: []changeset.Value{changeset.Text("n1"), changeset.Text("first"), {}, {}, {}, {}},
			New: []changeset.Value{{}, changeset.Text("second"), {}, {}, {}, {}}}
		del := &changeset.Change{Table: insertNote("n2", "").Table, Op: changeset.OpDelete, Old: insertNote("n2", "x").New}
		plant(t, folder, foreign, 1, rdfile.Header{Tables: []rdfile.Table{notesTable()}},
			[]*changeset.Change{insertNote("n1", "first"), insertNote("n2", "x"), upd, del, insertNote("n3", "third"), insertNote("n1", "again")})
		s, err := rowdrop.Open(ctx, rowdrop.Config{DB: d.DB, Folder: folder, State: d.State, DeviceName: "d", MergeBatch: batch})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.Sync(ctx); err != nil {
			t.Fatalf("batch %d: %v", batch, err)
		}
		s.Close()
		got := scenario.DumpNotes(t, d.DB)
		t.Logf("batch %d:\n%s", batch, got)
		// One clock for the whole file: the repeated insert and the update
		// are replays of an already-applied clock; the delete wins over
		// the insert it follows (equal clocks: a row lives only if its
		// latest write is later than its latest delete).
		for _, want := range []string{`"n1"|"first"|`, `"n3"|"third"|`} {
			if !strings.Contains(got, want) {
				t.Errorf("batch %d: want %s in\n%s", batch, want, got)
			}
		}
		if strings.Contains(got, `"n2"`) {
			t.Errorf("batch %d: n2 was deleted later in the file:\n%s", batch, got)
		}
		dumps = append(dumps, got)
	}
	for i := range dumps {
		if dumps[i] != dumps[0] {
			t.Fatalf("batch sizes disagree:\n%s\nvs\n%s", dumps[0], dumps[i])
		}
	}
}

// An import counts its live write transactions: one per batch, so the
// benchmark can say how many of them held the lock longer than
// merge.LongLock.
func TestImportCountsLiveTransactions(t *testing.T) {
	ctx := context.Background()
	const foreign = "ffffffffffffffff"
	folder := t.TempDir()
	d := scenario.NewSharedDevice(t, folder, "d", scenario.SharedOptions{Journal: "wal"})
	d.S.Close()
	var cs []*changeset.Change
	for i := 0; i < 25; i++ {
		cs = append(cs, insertNote(fmt.Sprintf("n%02d", i), "body"))
	}
	plant(t, folder, foreign, 1, rdfile.Header{Tables: []rdfile.Table{notesTable()}}, cs)
	s, err := rowdrop.Open(ctx, rowdrop.Config{DB: d.DB, Folder: folder, State: d.State, DeviceName: "d", MergeBatch: 10})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	r, err := s.Sync(ctx)
	if err != nil {
		t.Fatal(err)
	}
	im := r.Import
	if im.Changes != 25 || im.Locks != 3 || im.LongLocks > im.Locks || im.MaxLock <= 0 {
		t.Fatalf("25 changes in batches of 10: %d changes, %d live transactions (%d long), longest %v; want 25, 3", im.Changes, im.Locks, im.LongLocks, im.MaxLock)
	}
}
