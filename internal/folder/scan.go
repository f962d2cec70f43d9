package folder

import (
	"fmt"
	"io/fs"
	"os"
	"sort"

	"github.com/rowdrop/rowdrop/internal/rdfile"
)

// Entry is a rowdrop file found in the folder (a changeset or a snapshot).
type Entry struct {
	Device string
	Seq    uint64 // sequence number (changeset) or snapshot number
	Rel    string // slash-separated path relative to the folder
	Bytes  int64
	// ModNS is the file's modification time (Unix ns): with Bytes, what
	// tells cheaply that a file already checked may have been replaced.
	ModNS int64
}

// Dir is what one device directory holds.
type Dir struct {
	ID         string
	Changesets []Entry // ascending by sequence
	Snapshots  []Entry // ascending by number
	Ack        bool    // an ack.json is there (read it with ReadAck)
	Bytes      int64   // every regular file in it, whatever its name
}

// Scan is what one listing of the folder found. Only regular files count
// as changesets, snapshots and acks; nothing is opened.
type Scan struct {
	// Dirs are the device directories, by device id (also those that
	// hold nothing yet, or could not be listed).
	Dirs map[string]*Dir
	// Files are the changesets, by device (only devices that have
	// some), sorted by sequence: what an import applies.
	Files map[string][]Entry
	// Snapshots are every device's snapshots, sorted by path.
	Snapshots []Entry
	// Conflicts are sync-tool conflict copies of rowdrop files.
	Conflicts []string
	// Unknown are other names inside device directories, and changeset
	// names that are not regular files (marked so).
	Unknown []string
}

// Scan lists the folder: the top level, then every directory named like
// a device id. Everything else (files at the top, other directories,
// artefacts and temporary files) is skipped; symbolic links and anything
// outside the <device>/<name> layout are never followed or opened.
func (f *Folder) Scan() (*Scan, error) {
	top, err := os.ReadDir(f.dir)
	if err != nil {
		return nil, fmt.Errorf("read shared folder %s: %w (is it mounted?)", f.dir, err)
	}
	s := &Scan{Dirs: map[string]*Dir{}, Files: map[string][]Entry{}}
	if f.ring != nil {
		// Approvals and revocations are read once per listing.
		if _, err := f.ring.Reload(); err != nil {
			return nil, err
		}
	}
	for _, d := range top {
		if !d.IsDir() || !rdfile.ValidDeviceID(d.Name()) {
			continue
		}
		dir := &Dir{ID: d.Name()}
		s.Dirs[dir.ID] = dir
		ents, err := os.ReadDir(f.Path(dir.ID))
		if err != nil {
			continue // vanished between listings; the next scan sees it
		}
		for _, e := range ents {
			s.add(dir, e)
		}
		sort.Slice(dir.Changesets, func(i, j int) bool { return dir.Changesets[i].Seq < dir.Changesets[j].Seq })
		sort.Slice(dir.Snapshots, func(i, j int) bool { return dir.Snapshots[i].Seq < dir.Snapshots[j].Seq })
		if len(dir.Changesets) > 0 {
			s.Files[dir.ID] = dir.Changesets
		}
		s.Snapshots = append(s.Snapshots, dir.Snapshots...)
	}
	sort.Slice(s.Snapshots, func(i, j int) bool { return s.Snapshots[i].Rel < s.Snapshots[j].Rel })
	return s, nil
}

// add sorts one directory entry into the scan.
func (s *Scan) add(dir *Dir, e fs.DirEntry) {
	rel := dir.ID + "/" + e.Name()
	kind, _, seq := rdfile.Classify(rel)
	regular := e.Type()&fs.ModeType == 0
	var size, mod int64
	if regular {
		info, err := e.Info()
		if err != nil {
			regular = false // vanished since the listing
		} else {
			size, mod = info.Size(), info.ModTime().UnixNano()
			dir.Bytes += size
		}
	}
	switch kind {
	case rdfile.NameChangeset:
		if e.Type()&fs.ModeType != 0 {
			s.Unknown = append(s.Unknown, rel+" (not a regular file)")
		} else if regular {
			dir.Changesets = append(dir.Changesets, Entry{Device: dir.ID, Seq: seq, Rel: rel, Bytes: size, ModNS: mod})
		}
	case rdfile.NameSnapshot:
		if regular {
			dir.Snapshots = append(dir.Snapshots, Entry{Device: dir.ID, Seq: seq, Rel: rel, Bytes: size, ModNS: mod})
		}
	case rdfile.NameAck:
		dir.Ack = dir.Ack || regular
	case rdfile.NameConflictCopy:
		s.Conflicts = append(s.Conflicts, rel)
	case rdfile.NameUnknown:
		s.Unknown = append(s.Unknown, rel)
	}
}

// ScanDevice lists device dev's directory alone, as Scan would: what a
// device checks of its own files.
func (f *Folder) ScanDevice(dev string) (*Dir, error) {
	dir := &Dir{ID: dev}
	ents, err := os.ReadDir(f.Path(dev))
	if err != nil {
		return dir, err
	}
	s := &Scan{Dirs: map[string]*Dir{}, Files: map[string][]Entry{}}
	for _, e := range ents {
		s.add(dir, e)
	}
	sort.Slice(dir.Changesets, func(i, j int) bool { return dir.Changesets[i].Seq < dir.Changesets[j].Seq })
	return dir, nil
}
