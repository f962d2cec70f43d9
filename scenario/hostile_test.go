package scenario_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rowdrop/rowdrop/internal/changeset"
	"github.com/rowdrop/rowdrop/internal/rdfile"
	"github.com/rowdrop/rowdrop/internal/schema"
	"github.com/rowdrop/rowdrop/scenario"
)

// plant builds a well-formed rowdrop file (valid checksums) around an
// arbitrary changeset and header, as a hostile device could.
func plant(t *testing.T, folder, dev string, seq uint64, h rdfile.Header, changes []*changeset.Change) string {
	t.Helper()
	var cs bytes.Buffer
	w := changeset.NewWriter(&cs)
	for _, c := range changes {
		if err := w.Write(c); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	if h.Device == "" {
		h.Device = dev
	}
	if h.Seq == 0 {
		h.Seq = seq
	}
	h.HLC = 1 << 16
	h.Changes = int64(len(changes))
	dir := filepath.Join(folder, dev)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, rdfile.FileName(seq))
	if _, err := rdfile.Build(p, h, &cs); err != nil {
		t.Fatal(err)
	}
	return p
}

var notesCols = []rdfile.Column{{Name: "id", Type: "TEXT", PK: 1}, {Name: "title", Type: "TEXT"}, {Name: "body", Type: "TEXT"}, {Name: "n", Type: "INTEGER"}, {Name: "score", Type: "REAL"}, {Name: "data", Type: "BLOB"}}

func notesTable() rdfile.Table {
	return rdfile.Table{Name: "notes", Columns: notesCols, Fingerprint: schema.Fingerprint("notes", notesCols)}
}

func insertNote(id, title string) *changeset.Change {
	return &changeset.Change{Table: &changeset.Table{Name: "notes", PK: []byte{1, 0, 0, 0, 0, 0}}, Op: changeset.OpInsert,
		New: []changeset.Value{changeset.Text(id), changeset.Text(title), changeset.Null(), changeset.Int(1), changeset.Null(), changeset.Null()}}
}

// Hostile and broken files are refused with a report naming the file;
// nothing of them reaches the database; other devices' files still apply.
func TestHostileFilesRefusedOthersStillApply(t *testing.T) {
	ctx := context.Background()
	folder := t.TempDir()
	a := scenario.NewSharedDevice(t, folder, "a", scenario.SharedOptions{Journal: "wal"})
	const (
		devTraversal = "aaaaaaaaaaaaaaaa"
		devMaster    = "bbbbbbbbbbbbbbbb"
		devUndecl    = "cccccccccccccccc"
		devBomb      = "dddddddddddddddd"
		devSymlink   = "eeeeeeeeeeeeeeee"
		devGood      = "ffffffffffffffff"
		devQuote     = "gggggggggggggggg"
		devGarbage   = "hhhhhhhhhhhhhhhh"
		devTrunc     = "iiiiiiiiiiiiiiii"
	)
	// Header claims another device (path traversal attempt in the id is
	// impossible: ids are validated; a mismatch is refused).
	plant(t, folder, devTraversal, 1, rdfile.Header{Device: "zzzzzzzzzzzzzzzz", Tables: []rdfile.Table{notesTable()}}, []*changeset.Change{insertNote("t1", "traversal")})
	// Changes to sqlite_master.
	masterCols := []rdfile.Column{{Name: "type", Type: "TEXT", PK: 1}, {Name: "name", Type: "TEXT"}}
	plant(t, folder, devMaster, 1, rdfile.Header{Tables: []rdfile.Table{{Name: "sqlite_master", Columns: masterCols, Fingerprint: schema.Fingerprint("sqlite_master", masterCols)}}},
		[]*changeset.Change{{Table: &changeset.Table{Name: "sqlite_master", PK: []byte{1, 0}}, Op: changeset.OpInsert, New: []changeset.Value{changeset.Text("table"), changeset.Text("evil")}}})
	// A change to a table the header does not declare.
	plant(t, folder, devUndecl, 1, rdfile.Header{Tables: []rdfile.Table{notesTable()}},
		[]*changeset.Change{insertNote("u1", "ok"), {Table: &changeset.Table{Name: "tags", PK: []byte{2, 1}}, Op: changeset.OpInsert, New: []changeset.Value{changeset.Text("n"), changeset.Text("x")}}})
	// Identifier with quotes and a semicolon.
	qCols := []rdfile.Column{{Name: `id"; DROP TABLE notes; --`, Type: "TEXT", PK: 1}}
	plant(t, folder, devQuote, 1, rdfile.Header{Tables: []rdfile.Table{{Name: `notes"; DROP TABLE notes; --`, Columns: qCols, Fingerprint: schema.Fingerprint(`notes"; DROP TABLE notes; --`, qCols)}}},
		[]*changeset.Change{{Table: &changeset.Table{Name: `notes"; DROP TABLE notes; --`, PK: []byte{1}}, Op: changeset.OpInsert, New: []changeset.Value{changeset.Text("q")}}})
	// Decompression bomb: 64 MiB of zeros compress to almost nothing; the
	// reader's cap (MaxChangeset below) refuses it before inflating.
	bomb := plant(t, folder, devBomb, 1, rdfile.Header{Tables: []rdfile.Table{notesTable()}}, []*changeset.Change{insertNote("b1", strings.Repeat("x", 64<<20))})
	if st, _ := os.Stat(bomb); st.Size() > 1<<20 {
		t.Fatalf("bomb did not compress: %d bytes", st.Size())
	}
	// A symlink named like a changeset, pointing at a valid file elsewhere.
	outside := plant(t, t.TempDir(), devSymlink, 1, rdfile.Header{Tables: []rdfile.Table{notesTable()}}, []*changeset.Change{insertNote("s1", "via symlink")})
	os.MkdirAll(filepath.Join(folder, devSymlink), 0o755)
	if err := os.Symlink(outside, filepath.Join(folder, devSymlink, rdfile.FileName(1))); err != nil {
		t.Fatal(err)
	}
	// Garbage and a truncated file.
	os.MkdirAll(filepath.Join(folder, devGarbage), 0o755)
	os.WriteFile(filepath.Join(folder, devGarbage, rdfile.FileName(1)), []byte("this is not a rowdrop file at all"), 0o644)
	tr := plant(t, folder, devTrunc, 1, rdfile.Header{Tables: []rdfile.Table{notesTable()}}, []*changeset.Change{insertNote("tr", "truncated")})
	data, _ := os.ReadFile(tr)
	os.WriteFile(tr, data[:len(data)-7], 0o644)
	// Path traversal and artefacts in names: never read.
	os.WriteFile(filepath.Join(folder, ".syncthing.0000000001.rdc.tmp"), []byte("x"), 0o644)
	os.WriteFile(filepath.Join(folder, devGood+".rdc"), []byte("x"), 0o644)
	// And one good device.
	plant(t, folder, devGood, 1, rdfile.Header{Tables: []rdfile.Table{notesTable()}}, []*changeset.Change{insertNote("g1", "good")})

	a.S.Close()
	cfg := a.Config()
	cfg.DeviceName, cfg.MaxChangeset = a.Name, 16<<20
	s2 := a.Open(cfg)
	if _, err := s2.Sync(ctx); err != nil {
		t.Fatalf("sync must not fail on bad input: %v", err)
	}
	got := scenario.DumpNotes(t, a.DB)
	if !strings.Contains(got, `"g1"|"good"`) {
		t.Fatalf("the good file was not applied:\n%s", got)
	}
	for _, bad := range []string{"t1", "u1", "b1", "s1", "tr", "evil"} {
		if strings.Contains(got, `"`+bad+`"`) {
			t.Fatalf("row %s from a refused file reached the database:\n%s", bad, got)
		}
	}
	st, err := s2.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	reported := map[string]string{}
	for _, f := range st.Files {
		reported[strings.SplitN(f.Path, "/", 2)[0]] = f.Status + ": " + f.Reason
	}
	// A table unknown here is held apart (only its part of the file).
	for _, h := range st.TablesHeld {
		reported[h.Device] = "held table " + h.Table + " of " + h.First + ": " + h.Reason
	}
	for dev, r := range reported {
		t.Logf("%s -> %s", dev, r)
	}
	for _, dev := range []string{devTraversal, devMaster, devUndecl, devQuote, devBomb, devGarbage, devTrunc} {
		r, ok := reported[dev]
		if !ok {
			t.Errorf("file of %s not reported in status (%v)", dev, reported)
			continue
		}
		if !strings.Contains(r, dev) {
			t.Errorf("report for %s does not name the file: %s", dev, r)
		}
	}
	found := false
	for _, u := range st.Unknown {
		if strings.Contains(u, devSymlink) {
			found = true
		}
	}
	if !found {
		t.Errorf("symlink not reported: %v", st.Unknown)
	}
	// The truncated file completes later: it is then applied.
	os.WriteFile(tr, data, 0o644)
	if _, err := s2.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(scenario.DumpNotes(t, a.DB), `"tr"|"truncated"`) {
		t.Fatal("completed file was not applied")
	}
}
