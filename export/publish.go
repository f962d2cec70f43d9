package export

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/rowdrop/rowdrop/internal/fsx"
	"github.com/rowdrop/rowdrop/internal/rdfile"
	"github.com/rowdrop/rowdrop/internal/state"
)

// recoverOutbox finishes or discards what an interrupted export left in
// the outbox. Files below next_seq are accounted for by the base copy and
// must be published; files at or above it never committed and are dropped
// (the changes they held are still in live - base and are captured again).
func (e *Exporter) recoverOutbox() error {
	n, err := e.State.Int(state.KeyNextSeq)
	if err != nil {
		return err
	}
	next := uint64(n)
	ents, err := os.ReadDir(e.State.Outbox())
	if err != nil {
		return fmt.Errorf("read outbox %s: %w", e.State.Outbox(), err)
	}
	for _, ent := range ents {
		name := ent.Name()
		p := filepath.Join(e.State.Outbox(), name)
		if fsx.IsTemp(name) {
			os.Remove(p)
			continue
		}
		seq, ok := rdfile.ParseSeq(name)
		if ok && seq >= next {
			if err := os.Remove(p); err != nil {
				return fmt.Errorf("discard uncommitted %s: %w", p, err)
			}
		}
	}
	return nil
}

// removeStaleTemps removes what a crashed export left in the state
// directory (capture files, the rollback-journal snapshot) and, in this
// device's directory of the shared folder, temporary files of an
// interrupted publish. Only this process writes there (the state directory
// is locked, and the device directory belongs to this device alone).
func (e *Exporter) removeStaleTemps() {
	ents, _ := os.ReadDir(e.State.Path)
	for _, ent := range ents {
		n := ent.Name()
		if strings.HasPrefix(n, ".capture-") || strings.HasPrefix(n, ".export-") || fsx.IsTemp(n) {
			os.Remove(filepath.Join(e.State.Path, n))
		}
	}
	removeDB(filepath.Join(e.State.Path, "snapshot.db"))
	e.Folder.RemoveTemps(e.ID.Device)
}

// Publish copies every committed file waiting in the outbox into the
// shared folder (atomically) and removes it from the outbox. It returns the
// published paths. If the folder is missing (a pulled USB stick) the files
// stay in the outbox and an error says so.
func (e *Exporter) Publish() ([]string, error) {
	n, err := e.State.Int(state.KeyNextSeq)
	if err != nil {
		return nil, err
	}
	next := uint64(n)
	if err := e.checkPublished(); err != nil {
		e.logger().Warn("could not check this device's published files against its records (retried next sync)", "err", err)
	}
	ents, err := os.ReadDir(e.State.Outbox())
	if err != nil {
		return nil, fmt.Errorf("read outbox %s: %w", e.State.Outbox(), err)
	}
	var seqs []uint64
	for _, ent := range ents {
		if s, ok := rdfile.ParseSeq(ent.Name()); ok && s < next {
			seqs = append(seqs, s)
		}
	}
	if len(seqs) == 0 {
		return nil, nil
	}
	sort.Slice(seqs, func(i, j int) bool { return seqs[i] < seqs[j] })
	if err := e.Folder.Available(); err != nil {
		return nil, fmt.Errorf("shared folder %s is not available (%d file(s) wait in %s; they are published when it is back): %w", e.Folder.Dir(), len(seqs), e.State.Outbox(), err)
	}
	// Temp files of ours left by an interrupted publish (a pulled stick)
	// are garbage: only this device writes in its directory.
	e.Folder.RemoveTemps(e.ID.Device)
	var out []string
	for _, s := range seqs {
		src := filepath.Join(e.State.Outbox(), rdfile.FileName(s))
		rel := rdfile.RelPath(e.ID.Device, s)
		dst := e.Folder.Path(rel)
		if err := e.Folder.Publish(rel, src); err != nil {
			if errors.Is(err, os.ErrExist) {
				return out, fmt.Errorf("%s exists with different content: another installation is publishing as device %s (a cloned state directory?); give this one a new identity: %w", dst, e.ID.Device, err)
			}
			return out, fmt.Errorf("publish %s: %w (check free space and permissions of %s; the file waits in %s and is published by the next sync)", dst, err, e.Folder.Dir(), e.State.Outbox())
		}
		if err := os.Remove(src); err != nil {
			return out, err
		}
		out = append(out, dst)
	}
	return out, nil
}

// statusBroken is the file status (state.RecordFileStatus) of a file that
// is not what it should be; the importer uses the same word.
const statusBroken = "broken"

// checkPublished compares this device's files in the folder with what it
// recorded when it built them (the hash chain, docs/FORMAT.md §5.1): size
// and modification time first, the file sum when those changed. A file
// replaced under its name is reported (status broken, with what to do):
// this device cannot rebuild it, because a published file leaves the
// outbox; one put back as it was clears the report.
func (e *Exporter) checkPublished() error {
	dir, err := e.Folder.ScanDevice(e.ID.Device)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		return err
	}
	if len(dir.Changesets) == 0 {
		return nil
	}
	sums, err := e.State.Sums(e.ID.Device, dir.Changesets[0].Seq)
	if err != nil {
		return err
	}
	for _, ent := range dir.Changesets {
		rec, ok := sums[ent.Seq]
		if !ok || rec.Size == ent.Bytes && rec.MtimeNS == ent.ModNS {
			continue
		}
		f, err := e.Folder.Open(ent.Rel)
		if err == nil && f.Sum() == rec.Sum {
			rec.Size, rec.MtimeNS = ent.Bytes, ent.ModNS
			if err := e.State.RecordSum(rec); err != nil {
				return err
			}
			if err := e.State.ClearFileStatus(ent.Rel); err != nil {
				return err
			}
			continue
		}
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		now := "does not open as a rowdrop file"
		if err == nil {
			now = "has sum " + shortSum(f.Sum())
		}
		reason := fmt.Sprintf("%s: replaced in the shared folder after this device published it: this device wrote sum %s, the file there now %s. "+
			"Devices that applied the original report it and keep it; devices that have not refuse it, and this device's later files wait behind it there. "+
			"This device cannot write it again (a published file leaves its outbox): put the original back from a backup or the sync tool's old versions of the file (Syncthing: .stversions), and find what wrote into %s",
			ent.Rel, shortSum(rec.Sum), now, e.Folder.Path(e.ID.Device))
		e.logger().Error("a file this device published was replaced in the shared folder", "file", ent.Rel, "reason", reason)
		if err := e.State.RecordFileStatus(ent.Rel, e.ID.Device, ent.Seq, statusBroken, reason, e.now().UnixMilli()); err != nil {
			return err
		}
	}
	return nil
}

func shortSum(s string) string {
	if len(s) > 12 {
		return s[:12] + "…"
	}
	return s
}
