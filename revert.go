package rowdrop

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/rowdrop/rowdrop/internal/hlc"
	"github.com/rowdrop/rowdrop/internal/rdfile"
	"github.com/rowdrop/rowdrop/internal/revert"
)

// Undoing one published changeset from the folder (`rowdrop revert`): the
// inverse is computed in internal/revert, applied here to live as a local
// edit and published by a normal sync.

// RevertPlan works out what reverting file does: file is a changeset of
// any device in the shared folder, as a path or as <device>/<seq>. It
// refuses a file that is not a changeset of this folder, is damaged, or
// that this device has not applied (its merge clocks would not name it).
func (s *Syncer) RevertPlan(ctx context.Context, file string) (*revert.Plan, error) {
	rel, err := s.revertRel(file)
	if err != nil {
		return nil, err
	}
	kind, dev, seq := rdfile.Classify(rel)
	if kind != rdfile.NameChangeset {
		return nil, fmt.Errorf("%s is not a changeset file (<device>/<seq>%s): only a device's changesets can be reverted, not snapshots, acks or conflict copies", file, rdfile.Ext)
	}
	f, err := s.shared.Open(rel)
	if err != nil {
		return nil, fmt.Errorf("revert %s: %w (is it a rowdrop changeset of the shared folder %s?)", file, err, s.shared.Dir())
	}
	h := f.Header
	if h.Device != dev || h.Seq != seq {
		return nil, fmt.Errorf("revert %s: its header names file %d of device %s, not the file its name says: it was copied from elsewhere, refusing it", file, h.Seq, h.Device)
	}
	known, err := s.st.FileByClock(h.Device, hlc.Timestamp(h.HLC))
	if err != nil {
		return nil, err
	}
	if known == nil || known.Seq != h.Seq {
		return nil, fmt.Errorf("revert %s: this device has not applied that file (run `rowdrop sync` first; a file from another shared folder, or a copy of one, is refused)", file)
	}
	c, err := s.newCycle()
	if err != nil {
		return nil, err
	}
	meta, err := s.st.NewMeta()
	if err != nil {
		return nil, err
	}
	defer meta.Close()
	return revert.Compute(f, rel, c.schema.tables, meta, s.live)
}

// revertRel turns the user's FILE into a name relative to the shared
// folder: <device>/<seq> (with or without the extension) when no such path
// exists here, else a path that must lie inside the folder.
func (s *Syncer) revertRel(file string) (string, error) {
	slash := filepath.ToSlash(file)
	if _, err := os.Stat(file); err != nil {
		if dev, num, found := strings.Cut(slash, "/"); found && rdfile.ValidDeviceID(dev) {
			if seq, err := strconv.ParseUint(strings.TrimSuffix(num, rdfile.Ext), 10, 64); err == nil && seq > 0 {
				return rdfile.RelPath(dev, seq), nil
			}
		}
		return "", fmt.Errorf("revert %s: %w (give a changeset's path in the shared folder, or <device>/<seq>)", file, err)
	}
	abs, err := filepath.Abs(file)
	if err != nil {
		return "", fmt.Errorf("revert %s: %w", file, err)
	}
	dir, err := filepath.Abs(s.shared.Dir())
	if err != nil {
		return "", fmt.Errorf("shared folder %s: %w", s.shared.Dir(), err)
	}
	// Compare resolved directories: the folder may be reached through a link.
	if d, err := filepath.EvalSymlinks(dir); err == nil {
		dir = d
	}
	if d, err := filepath.EvalSymlinks(filepath.Dir(abs)); err == nil {
		abs = filepath.Join(d, filepath.Base(abs))
	}
	rel, err := filepath.Rel(dir, abs)
	if err != nil || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
		return "", fmt.Errorf("revert %s: not a file of the shared folder %s (only its devices' changesets can be reverted)", file, s.shared.Dir())
	}
	return filepath.ToSlash(rel), nil
}

// Revert applies p (from RevertPlan) to the live database in one
// transaction, as an edit of this device (the app's triggers run), then
// syncs so that the export publishes it. An empty plan only syncs.
func (s *Syncer) Revert(ctx context.Context, p *revert.Plan) (Report, error) {
	if !p.Empty() {
		if err := p.Apply(s.live); err != nil {
			return Report{}, err
		}
		s.log.Info("reverted", "file", p.File)
	}
	return s.Sync(ctx)
}
