package export

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"

	"rowdrop/internal/fsx"
	"rowdrop/internal/rdfile"
)

// recoverOutbox finishes or discards what an interrupted export left in
// the outbox. Files below next_seq are accounted for by the base copy and
// must be published; files at or above it never committed and are dropped
// (the changes they held are still in live - base and are captured again).
func (e *Exporter) recoverOutbox() error {
	next := uint64(e.State.GetInt("next_seq"))
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

// Publish copies every committed file waiting in the outbox into the
// shared folder (atomically) and removes it from the outbox. It returns the
// published paths. If the folder is missing (a pulled USB stick) the files
// stay in the outbox and an error says so.
func (e *Exporter) Publish() ([]string, error) {
	next := uint64(e.State.GetInt("next_seq"))
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
	if st, err := os.Stat(e.Folder); err != nil || !st.IsDir() {
		return nil, fmt.Errorf("shared folder %s is not available (%d file(s) wait in %s; they are published when it is back): %w", e.Folder, len(seqs), e.State.Outbox(), errFolderGone(err))
	}
	var out []string
	for _, s := range seqs {
		src := filepath.Join(e.State.Outbox(), rdfile.FileName(s))
		dst := filepath.Join(e.Folder, e.ID.Device, rdfile.FileName(s))
		if err := fsx.Publish(src, dst); err != nil {
			if errors.Is(err, os.ErrExist) {
				return out, fmt.Errorf("%s exists with different content: another installation is publishing as device %s (a cloned state directory?); give this one a new identity: %w", dst, e.ID.Device, err)
			}
			return out, fmt.Errorf("publish %s: %w (check free space and permissions of %s)", dst, err, e.Folder)
		}
		if err := os.Remove(src); err != nil {
			return out, err
		}
		out = append(out, dst)
	}
	return out, nil
}

func errFolderGone(err error) error {
	if err == nil {
		return errors.New("not a directory")
	}
	return err
}
