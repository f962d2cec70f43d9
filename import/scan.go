// Package importer finds other devices' changeset files in the shared
// folder, validates them, and hands them to the merge engine in each
// device's sequence order, exactly once. (The directory is "import", a Go
// keyword, hence the package name.)
package importer

import (
	"io/fs"
	"os"
	"path/filepath"
	"sort"

	"rowdrop/internal/rdfile"
)

// Entry is a changeset file found in the folder.
type Entry struct {
	Device string
	Seq    uint64
	Rel    string // slash-separated path relative to the folder
}

// Scan is what a folder listing found.
type Scan struct {
	Files     map[string][]Entry // by device, sorted by sequence
	Snapshots []SnapshotEntry    // sorted by path
	Conflicts []string           // sync-tool conflict copies of rowdrop files
	Unknown   []string           // other names inside device directories
}

// ScanFolder lists the folder. Only regular files count; symlinks and
// anything outside the <device>/<seq>.rdc and <device>/snap-<n>.rds layout
// are never opened.
func ScanFolder(folder string) (*Scan, error) {
	s := &Scan{Files: map[string][]Entry{}}
	top, err := os.ReadDir(folder)
	if err != nil {
		return nil, err
	}
	for _, d := range top {
		if !d.IsDir() || !rdfile.ValidDeviceID(d.Name()) {
			continue
		}
		ents, err := os.ReadDir(filepath.Join(folder, d.Name()))
		if err != nil {
			continue // vanished between listings; next scan sees it
		}
		for _, f := range ents {
			rel := d.Name() + "/" + f.Name()
			kind, dev, seq := rdfile.Classify(rel)
			switch kind {
			case rdfile.NameChangeset:
				if f.Type()&fs.ModeType != 0 {
					s.Unknown = append(s.Unknown, rel+" (not a regular file)")
					continue
				}
				s.Files[dev] = append(s.Files[dev], Entry{Device: dev, Seq: seq, Rel: rel})
			case rdfile.NameSnapshot:
				if f.Type()&fs.ModeType == 0 {
					s.Snapshots = append(s.Snapshots, SnapshotEntry{Device: dev, Seq: seq, Rel: rel})
				}
			case rdfile.NameConflictCopy:
				s.Conflicts = append(s.Conflicts, rel)
			case rdfile.NameUnknown:
				s.Unknown = append(s.Unknown, rel)
			}
		}
	}
	sort.Slice(s.Snapshots, func(i, j int) bool { return s.Snapshots[i].Rel < s.Snapshots[j].Rel })
	for dev := range s.Files {
		l := s.Files[dev]
		sort.Slice(l, func(i, j int) bool { return l[i].Seq < l[j].Seq })
	}
	return s, nil
}
