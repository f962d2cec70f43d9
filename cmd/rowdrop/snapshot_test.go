package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestSnapshotCommand: `rowdrop snapshot --json` publishes a snapshot; a
// new device joins from it with `rowdrop sync` although the changeset
// files it covers are gone.
func TestSnapshotCommand(t *testing.T) {
	folder := t.TempDir()
	a := newDevice(t, folder, "alpha")
	a.exec(t, "INSERT INTO notes(id,title,body) VALUES('n1','hello','world'),('n2','second','note')")
	a.exec(t, "INSERT INTO note_tags VALUES('n1','x')")
	a.sync(t)
	a.exec(t, "UPDATE notes SET title='hello again' WHERE id='n1'")
	r := ok(t, append([]string{"snapshot", "--json"}, a.flags()...)...)
	var res struct {
		File string            `json:"file"`
		Seq  uint64            `json:"seq"`
		Rows int64             `json:"rows"`
		Seen map[string]uint64 `json:"seen"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &res); err != nil {
		t.Fatalf("snapshot --json: %v\n%s", err, r.stdout)
	}
	if res.Seq != 1 || res.Rows != 3 || len(res.Seen) != 1 || !strings.HasSuffix(res.File, "snap-0000000001.rds") {
		t.Fatalf("snapshot --json: %+v", res)
	}
	if _, err := os.Stat(res.File); err != nil {
		t.Fatal(err)
	}
	// The snapshot included the edit made just before it (export first),
	// so the changeset files can go.
	files, _ := filepath.Glob(filepath.Join(filepath.Dir(res.File), "*.rdc"))
	if len(files) != 2 {
		t.Fatalf("want 2 changeset files before collecting, got %v", files)
	}
	for _, f := range files {
		os.Remove(f)
	}
	b := newDevice(t, folder, "beta")
	b.sync(t)
	sameDB(t, a, b)
	if got := b.dump(t); !strings.Contains(got, "'hello again'") {
		t.Fatalf("b did not join from the snapshot:\n%s", got)
	}
	// Human output names the file.
	r = ok(t, append([]string{"snapshot"}, b.flags()...)...)
	if !strings.Contains(r.stdout, "snapshot 1 published") {
		t.Fatalf("snapshot output: %q", r.stdout)
	}
}
