package importer_test

import (
	"os"
	"path/filepath"
	"testing"

	importer "rowdrop/import"
	"rowdrop/internal/rdfile"
)

// Acknowledgements and snapshots live in device directories next to the
// changesets: the scan must neither report them as unknown nor hand them
// to the importer as changesets.
func TestScanKnowsAckAndSnapshots(t *testing.T) {
	folder := t.TempDir()
	dev := "abcdefghijklmnop"
	dir := filepath.Join(folder, dev)
	os.MkdirAll(dir, 0o755)
	for _, n := range []string{rdfile.FileName(1), rdfile.AckName, rdfile.SnapshotName(1), "notes.txt"} {
		if err := os.WriteFile(filepath.Join(dir, n), []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	s, err := importer.ScanFolder(folder)
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Unknown) != 1 || s.Unknown[0] != dev+"/notes.txt" {
		t.Errorf("unknown: %v, want only %s/notes.txt", s.Unknown, dev)
	}
	if l := s.Files[dev]; len(l) != 1 || l[0].Seq != 1 {
		t.Errorf("changesets: %+v", l)
	}
}
