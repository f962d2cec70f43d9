package scenario_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/rowdrop/rowdrop"
	"github.com/rowdrop/rowdrop/scenario"
)

// A device away while another wrote hundreds of files catches up in one
// sync, reporting progress file by file.
func TestCatchUpHundredsOfFilesWithProgress(t *testing.T) {
	files := 200
	if testing.Short() {
		files = 40
	}
	folder := t.TempDir()
	a := scenario.NewSharedDevice(t, folder, "a", scenario.SharedOptions{Journal: "wal", Hints: true})
	for i := 0; i < files; i++ {
		a.Exec("INSERT INTO notes(id,title,n) VALUES(?,?,?) ON CONFLICT(id) DO UPDATE SET title=excluded.title, n=excluded.n",
			fmt.Sprintf("k%d", i%40), fmt.Sprintf("v%d", i), i)
		if r := a.Sync(); r.Export.Seq != uint64(i+1) {
			t.Fatalf("edit %d published seq %d", i, r.Export.Seq)
		}
	}
	b := scenario.NewSharedDevice(t, folder, "b", scenario.SharedOptions{Journal: "wal"})
	b.S.Close()
	var calls, lastDone, lastTotal int
	s, err := rowdrop.Open(context.Background(), rowdrop.Config{DB: b.DB, Folder: folder, State: b.State,
		Progress: func(done, total int, file string) { calls++; lastDone, lastTotal = done, total }})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	r, err := s.Sync(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if r.Import.Applied != files || calls != files || lastDone != files || lastTotal != files {
		t.Fatalf("applied %d files, progress called %d times, last %d/%d; want %d", r.Import.Applied, calls, lastDone, lastTotal, files)
	}
	if scenario.DumpNotes(t, a.DB) != scenario.DumpNotes(t, b.DB) {
		t.Fatal("not caught up")
	}
}
