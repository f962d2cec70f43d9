package changeset

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

var updateCorpus = flag.Bool("update-corpus", false, "rewrite testdata/fuzz/FuzzReader seeds from real SQLite changesets")

// FuzzReader checks that arbitrary input never panics, that errors are
// ErrCorrupt or ErrPatchset, that anything decoded re-encodes to a canonical
// changeset that decodes to the same changes, and that SQLite's own
// iterator agrees with every changeset we accept.
func FuzzReader(f *testing.F) {
	f.Add([]byte{})
	f.Add(cat(header("t", 1, 0), []byte{18, 0}, AppendValue(nil, Int(1)), AppendValue(nil, Text("x"))))
	f.Add(cat(header("t", 2, 1), []byte{23, 1}, AppendValue(nil, Int(1)), AppendValue(nil, Int(2)), []byte{0, 0}))
	f.Fuzz(func(t *testing.T, data []byte) {
		checkDecodeProperties(t, data, true)
	})
}

// TestWriteFuzzCorpus regenerates the checked-in seed corpus when run with
// -update-corpus; otherwise it checks the seeds still decode.
func TestWriteFuzzCorpus(t *testing.T) {
	dir := filepath.Join("testdata", "fuzz", "FuzzReader")
	if !*updateCorpus {
		entries, err := os.ReadDir(dir)
		if err != nil || len(entries) == 0 {
			t.Fatalf("seed corpus missing (%v); run with -update-corpus", err)
		}
		return
	}
	seeds := map[string][]byte{}
	fx := newFixture(t, false)
	seeds["diff"] = fx.data
	conn := openDB(t, filepath.Join(t.TempDir(), "db"), testSchema+baseData+`
CREATE TABLE log(id INTEGER PRIMARY KEY, what TEXT);
CREATE TRIGGER kinds_ins AFTER INSERT ON kinds BEGIN INSERT INTO log(what) VALUES('ins ' || new.id); END;
`)
	cs, ps := recordChangeset(t, conn, newData)
	seeds["session-indirect"] = cs
	seeds["patchset"] = ps
	one := openDB(t, filepath.Join(t.TempDir(), "one"), "CREATE TABLE t(a, b, PRIMARY KEY(b, a));")
	small, _ := recordChangeset(t, one, `INSERT INTO t VALUES(1, 'x'); INSERT INTO t VALUES(2.5, x'00');`)
	seeds["small-composite"] = small
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, data := range seeds {
		content := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", data)
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("wrote %s (%d bytes of changeset)", name, len(data))
		if name != "patchset" {
			if _, err := decodeAll(data, Limits{}); err != nil {
				t.Errorf("seed %s: %v", name, err)
			}
		}
	}
}
