package importer

import (
	"context"
	"fmt"
	"strconv"

	"github.com/rowdrop/rowdrop/internal/changeset"
	"github.com/rowdrop/rowdrop/internal/folder"
	"github.com/rowdrop/rowdrop/internal/hlc"
	"github.com/rowdrop/rowdrop/internal/rdfile"
	"github.com/rowdrop/rowdrop/internal/state"
	"github.com/rowdrop/rowdrop/merge"
)

// A split identity (a cloned state directory whose two installations both
// published file N of one device while apart): some devices applied one
// content as file N, some the other, and the sync tool then keeps one
// under the name and the other as a conflict copy. The way back to one
// state: every device merges both contents, the one under the name and
// the conflict copy's, once it has applied the device's files up to N.
// Merging a content twice changes nothing (its cells already carry its
// clock), and the merge is a function of the set of changes, so every
// device ends with both. The installation that is the newer copy is told
// to take a new identity (export.checkIdentity), and its later edits go
// out under it. docs/MERGE.md, "A split identity".

// mergeSplits merges both contents of every split file whose device this
// device has applied up to the file.
func (im *Importer) mergeSplits(ctx context.Context, scan *folder.Scan, applied map[string]uint64, res *Result) error {
	for _, c := range scan.Conflicts {
		f, err := im.Folder.Open(c)
		if err != nil {
			continue // recorded as it is (ImportScanned)
		}
		h := f.Header
		_, dev, _ := rdfile.Classify(c)
		if h.Kind != rdfile.KindChangeset || dev != h.Device || h.Device == im.Self.Device || applied[h.Device] < h.Seq {
			continue
		}
		named := rdfile.RelPath(h.Device, h.Seq)
		merged := 0
		for _, rel := range []string{named, c} {
			ok, err := im.mergeContent(ctx, rel, res)
			if err != nil {
				return err
			}
			if ok {
				merged++
			}
		}
		if merged < 2 {
			continue // retried by the next import
		}
		if err := im.record(c, h.Device, h.Seq, StatusBroken, fmt.Sprintf(
			"split identity: two installations of device %s (%s) published file %d with different contents (a cloned state directory); both contents are merged on this device, nothing to do here. The installation that is the newer copy must take a new identity: its next sync says so (move its state directory aside and sync)",
			h.Device, h.DeviceName, h.Seq)); err != nil {
			return err
		}
	}
	return nil
}

// mergeContent merges the changeset at rel once per content; it reports
// whether the content is merged (now or before).
func (im *Importer) mergeContent(ctx context.Context, rel string, res *Result) (bool, error) {
	f, err := im.Folder.Open(rel)
	if err != nil {
		return false, nil
	}
	h := f.Header
	key := fmt.Sprintf("%s/%d/%s", h.Device, h.Seq, h.PayloadSHA256)
	if done, err := im.State.SplitMerged(key); err != nil || done {
		return done, err
	}
	if far, _ := im.Clock.TooFarAhead(hlc.Timestamp(h.HLC)); far {
		return false, nil
	}
	for _, t := range h.Tables {
		if kind, _ := im.checkTable(t, h); kind != "" && kind != state.PartExcluded {
			return false, nil
		}
	}
	if err := f.Verify(); err != nil {
		return false, nil
	}
	cs, err := f.Changeset()
	if err != nil {
		return false, nil
	}
	defer cs.Close()
	if err := im.State.BeginInflight(state.Inflight{Kind: state.InflightChangeset, Name: rel}); err != nil {
		return false, err
	}
	src := merge.Source{Device: h.Device, Clock: state.Clock{HLC: hlc.Timestamp(h.HLC), Dev: h.Device}, File: rel, Seq: h.Seq, Seen: h.Seen}
	changes := &filterReader{r: changeset.NewReader(cs, changeset.Limits{}), skip: im.Excluded}
	finish := func() error {
		im.Clock.Observe(hlc.Timestamp(h.HLC))
		if err := im.State.AddSplitMerged(key); err != nil {
			return err
		}
		if err := im.State.Set(state.KeyHLC, strconv.FormatUint(uint64(im.Clock.Last()), 10)); err != nil {
			return err
		}
		return im.State.EndInflight()
	}
	st, err := im.Engine.Apply(ctx, src, changes, finish)
	res.Changes += st.Changes
	res.Conflicts += st.Conflicts
	res.AddLocks(st)
	if err != nil {
		return false, fmt.Errorf("merge %s (one content of a split file): %w", rel, err)
	}
	return true, nil
}
