package importer

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/rowdrop/rowdrop/internal/folder"
	"github.com/rowdrop/rowdrop/internal/hlc"
	"github.com/rowdrop/rowdrop/internal/rdfile"
	"github.com/rowdrop/rowdrop/internal/state"
	"github.com/rowdrop/rowdrop/merge"
)

// Snapshots, joining and rejoining.
//
// A snapshot (export/snapshot.go) is a device's whole merged state: its
// base copy of the synced tables with their row and cell clocks, and the
// vector of files it includes (Header.Seen). A device merges one instead
// of replaying files when
//
//   - it is new (never exported, never imported): it joins from the newest
//     usable snapshot, then applies the later files. Rows its database
//     already holds stay and are exported as its first changes; rows of
//     the snapshot it lacks are added; where both hold a row with other
//     values, its own values stay (exported with a newer clock) and the
//     snapshot's go to the conflict log;
//   - it needs file a+1 of a device whose lowest file in the folder is
//     later (the files between were collected): it re-bases on a snapshot
//     that covers the gap. Sync exports its own edits first; the merge
//     keeps anything still unexported in live.
//
// A snapshot is usable when, for every device with files in the folder,
// what this device has applied or the snapshot includes reaches up to the
// device's lowest file still there: after the merge, nothing is missing.
// Among usable ones, the one including most files wins.

// RebaseResult is what Rebase did.
type RebaseResult struct {
	Used  string      // the snapshot merged ("" if none)
	Stats merge.Stats // its merge
	// Gaps are the devices whose next file is missing from the folder and
	// that no merged snapshot covered (NoteGaps explains them).
	Gaps map[string]bool
}

// IsNew reports a device that has never exported nor imported anything.
func IsNew(st *state.Dir) (bool, error) {
	next, err := st.Int(state.KeyNextSeq)
	if err != nil || next > 1 {
		return false, err
	}
	imported, err := st.Imported()
	return !imported, err
}

// Rebase merges a usable snapshot when this device is new, misses files
// that are no longer in the folder, or was interrupted in a rebase. scan
// is the folder's listing (nil: unreadable, nothing to do; the import
// reports it); applied is how far each device's files are applied, and is
// advanced by what a merged snapshot includes.
func (im *Importer) Rebase(ctx context.Context, scan *folder.Scan, applied map[string]uint64) (RebaseResult, error) {
	var rr RebaseResult
	if scan == nil {
		return rr, nil
	}
	fb := boundsOf(scan, im.Self.Device)
	rr.Gaps = fb.gaps(applied)
	if len(scan.Snapshots) == 0 {
		return rr, nil
	}
	cands, err := im.candidates(scan.Snapshots, fb, applied)
	if err != nil {
		return rr, err
	}
	sortCandidates(cands)
	return im.mergeFirstUsable(ctx, cands, fb, applied, rr)
}

// folderBounds is what the folder holds of the other devices' files.
type folderBounds struct {
	low, high map[string]uint64 // per device, its lowest and highest file
	present   map[string]bool   // paths of the changesets
}

func boundsOf(scan *folder.Scan, self string) folderBounds {
	fb := folderBounds{low: map[string]uint64{}, high: map[string]uint64{}, present: map[string]bool{}}
	for d, l := range scan.Files {
		if d != self && len(l) > 0 {
			fb.low[d] = l[0].Seq
			fb.high[d] = l[len(l)-1].Seq
			for _, e := range l {
				fb.present[e.Rel] = true
			}
		}
	}
	return fb
}

// gaps are the devices whose next file to apply is below their lowest one
// in the folder.
func (fb folderBounds) gaps(applied map[string]uint64) map[string]bool {
	out := map[string]bool{}
	for d, lo := range fb.low {
		if lo > applied[d]+1 {
			out[d] = true
		}
	}
	return out
}

// candidate is a snapshot worth merging.
type candidate struct {
	e     folder.Entry
	h     rdfile.Header
	cover uint64 // how many files it includes in all
}

// candidates reads the headers of the snapshots in the folder and keeps
// the usable ones that bring something (see above), recording why the
// others are not used.
func (im *Importer) candidates(snaps []folder.Entry, fb folderBounds, applied map[string]uint64) ([]candidate, error) {
	inflight, err := im.State.CurrentInflight()
	if err != nil {
		return nil, err
	}
	isNew, err := IsNew(im.State)
	if err != nil {
		return nil, err
	}
	own, err := im.State.Int(state.KeyNextSeq)
	if err != nil {
		return nil, err
	}
	recorded, err := im.recordedSnapshots()
	if err != nil {
		return nil, err
	}
	var cands []candidate
	for _, e := range snaps {
		if recorded[e.Rel] == StatusBroken {
			continue // files never change: a broken one stays broken
		}
		h, status, reason := im.SnapshotHeader(e)
		if status != "" {
			if err := im.record(e.Rel, e.Device, e.Seq, status, reason); err != nil {
				return nil, err
			}
			continue
		}
		if recorded[e.Rel] != "" {
			// A damaged payload stays reported (docs/FORMAT.md §14.3:
			// "reports and skips") even once another snapshot was used
			// and this one is no longer tried.
			if reason := im.damagedSnapshot(e); reason != "" {
				if err := im.record(e.Rel, e.Device, e.Seq, StatusWaiting, reason); err != nil {
					return nil, err
				}
				continue
			}
			// It arrived whole since, or is no longer needed; if it is
			// tried below and fails, it is reported again.
			if err := im.State.ClearFileStatus(e.Rel); err != nil {
				return nil, err
			}
		}
		usable, err := im.usable(e, h, fb, applied, uint64(own))
		if err != nil {
			return nil, err
		}
		// Worth it: it is the way in for a new device, or it includes a
		// file this device needs next and the folder does not have
		// (collected, or all files of that device are gone).
		gain := inflight.Kind == state.InflightSnapshot && e.Rel == inflight.Name
		var cover uint64
		for d, n := range h.Seen {
			cover += n
			if d != im.Self.Device && n > applied[d] && (isNew || !fb.present[rdfile.RelPath(d, applied[d]+1)]) {
				gain = true
			}
		}
		if usable && gain {
			cands = append(cands, candidate{e, h, cover})
		}
	}
	return cands, nil
}

// damagedSnapshot says why snapshot e's payload is not the one its header
// announces, or "".
func (im *Importer) damagedSnapshot(e folder.Entry) string {
	f, err := im.Folder.Open(e.Rel)
	if err == nil {
		err = f.Verify()
	}
	if err == nil {
		return ""
	}
	return fmt.Sprintf("%s: %s (damaged, or still being written): skipped, reported until it is whole or gone", e.Rel, strings.TrimPrefix(err.Error(), im.Folder.Path(e.Rel)+": "))
}

// usable reports whether nothing is missing after merging the snapshot,
// and whether it includes only files that were published (recording it
// as waiting otherwise); own is this device's next sequence number.
func (im *Importer) usable(e folder.Entry, h rdfile.Header, fb folderBounds, applied map[string]uint64, own uint64) (bool, error) {
	usable := true
	for d, lo := range fb.low {
		if max(applied[d], h.Seen[d])+1 < lo {
			usable = false
		}
	}
	// A snapshot cannot include files its devices have not published
	// (every device keeps its newest file in the folder): one that claims
	// more is early (still syncing) or lying; using it would skip files
	// for good. (A device none of whose files are here yet cannot be
	// checked.)
	for d, n := range h.Seen {
		if (d == im.Self.Device && own > 0 && n >= own) || (d != im.Self.Device && fb.high[d] > 0 && n > fb.high[d]) {
			usable = false
			if err := im.record(e.Rel, e.Device, e.Seq, StatusWaiting, fmt.Sprintf("%s: it includes file %d of device %s, which is not in the folder (yet); not used until it is", e.Rel, n, d)); err != nil {
				return false, err
			}
		}
	}
	return usable, nil
}

// recordedSnapshots returns the snapshots reported earlier: path -> status.
func (im *Importer) recordedSnapshots() (map[string]string, error) {
	files, err := im.State.FileStatuses()
	if err != nil {
		return nil, err
	}
	recorded := map[string]string{}
	for _, f := range files {
		if strings.HasSuffix(f.Path, rdfile.SnapshotExt) {
			recorded[f.Path] = f.Status
		}
	}
	return recorded, nil
}

// sortCandidates puts the snapshot including most files first, then the
// newest, then by path.
func sortCandidates(cands []candidate) {
	sort.Slice(cands, func(i, j int) bool {
		if cands[i].cover != cands[j].cover {
			return cands[i].cover > cands[j].cover
		}
		if cands[i].h.CreatedMS != cands[j].h.CreatedMS {
			return cands[i].h.CreatedMS > cands[j].h.CreatedMS
		}
		return cands[i].e.Rel < cands[j].e.Rel
	})
}

// mergeFirstUsable validates the candidates in order and merges the first
// that passes; the others stay recorded with the reason.
func (im *Importer) mergeFirstUsable(ctx context.Context, cands []candidate, fb folderBounds, applied map[string]uint64, rr RebaseResult) (RebaseResult, error) {
	log := im.log()
	for _, c := range cands {
		snap, status, reason, err := im.OpenSnapshot(ctx, c.e)
		if err != nil {
			return rr, err
		}
		if status != "" {
			log.Warn("snapshot not used", "file", c.e.Rel, "status", status, "reason", reason)
			if err := im.record(c.e.Rel, c.e.Device, c.e.Seq, status, reason); err != nil {
				return rr, err
			}
			continue
		}
		rr.Stats, err = im.mergeSnapshot(ctx, snap)
		snap.Close()
		if err != nil {
			if ctx.Err() != nil {
				return rr, ctx.Err()
			}
			reason := fmt.Sprintf("%s: could not be merged: %v; held and retried", c.e.Rel, err)
			log.Warn("snapshot not used", "file", c.e.Rel, "status", StatusHeld, "reason", reason)
			if err := im.record(c.e.Rel, c.e.Device, c.e.Seq, StatusHeld, reason); err != nil {
				return rr, err
			}
			continue
		}
		if err := im.State.ClearFileStatus(c.e.Rel); err != nil {
			return rr, err
		}
		rr.Used = c.e.Rel
		for d, n := range c.h.Seen {
			if d != im.Self.Device {
				applied[d] = max(applied[d], n)
			}
		}
		for d := range rr.Gaps {
			if c.h.Seen[d]+1 >= fb.low[d] {
				delete(rr.Gaps, d)
			}
		}
		log.Info("merged a snapshot", "file", c.e.Rel, "rows", rr.Stats.Changes, "conflicts", rr.Stats.Conflicts)
		return rr, nil
	}
	return rr, nil
}

// mergeSnapshot merges a validated snapshot into live and base, and
// advances how far every device's files count as applied.
func (im *Importer) mergeSnapshot(ctx context.Context, snap *Snapshot) (merge.Stats, error) {
	h := snap.Header
	rel := snap.Entry.Rel
	localKnows, err := im.State.LastClocks()
	if err != nil {
		return merge.Stats{}, err
	}
	// Like a changeset, a snapshot whose merge was interrupted between its
	// live and base steps is merged again before any export (Export
	// imports first while "inflight" is set).
	if err := im.State.BeginInflight(state.Inflight{Kind: state.InflightSnapshot, Name: rel}); err != nil {
		return merge.Stats{}, err
	}
	src := merge.Source{Device: h.Device, Clock: state.Clock{HLC: hlc.Timestamp(h.HLC), Dev: h.Device}, File: rel}
	in := merge.RebaseInput{Conn: snap.Conn, Tables: snap.Tables, Self: im.Self.Device, LocalKnows: localKnows, RemoteKnows: snap.Knows, Path: snap.path}
	var progress func(done, total int)
	if im.Progress != nil {
		progress = func(done, total int) { im.Progress(done, total, rel) }
	}
	return im.Engine.Rebase(ctx, src, in, func() error { return im.finishSnapshot(snap) }, progress)
}

// finishSnapshot records, in the base transaction of a snapshot's merge,
// how far it advanced every device.
func (im *Importer) finishSnapshot(snap *Snapshot) error {
	h := snap.Header
	rel := snap.Entry.Rel
	now := im.now().UnixMilli()
	im.Clock.Observe(max(snap.MaxClock, hlc.Timestamp(h.HLC)))
	if err := im.inheritHeld(snap); err != nil {
		return err
	}
	for d, n := range h.Seen {
		if d == im.Self.Device {
			continue
		}
		// (Waiting records of files the snapshot includes go: moot.)
		if err := im.State.MarkApplied(state.AppliedFiles{Dev: d, Name: snap.Names[d], Seq: n, HLC: snap.Knows[d], AtMS: now, FromSnapshot: true}); err != nil {
			return err
		}
		if err := im.recordHead(d, n, h.Heads[d]); err != nil {
			return err
		}
	}
	if err := im.State.Set(state.KeyHLC, strconv.FormatUint(uint64(im.Clock.Last()), 10)); err != nil {
		return err
	}
	if err := im.State.Set(state.KeyLastImport, now); err != nil {
		return err
	}
	if err := im.State.Set(state.KeyRebasedFrom, rel); err != nil {
		return err
	}
	return im.State.EndInflight()
}

// NoteGaps rewrites the waiting reason of a device's missing file when no
// usable snapshot covered it: the files may have been collected, and then
// only a snapshot helps. applied is how far each device's files are
// applied after the import.
func (im *Importer) NoteGaps(gaps map[string]bool, applied map[string]uint64) error {
	for d := range gaps {
		next := applied[d] + 1
		rel := rdfile.RelPath(d, next)
		reason := fmt.Sprintf("file %d of device %s is not in the folder and its later files wait for it. If it is still on its way, this resolves by itself; if it was collected (removed by its device once every device had applied it), this device can only catch up from a snapshot that includes it: run `rowdrop snapshot` on a device that is up to date, let the folder sync, then sync here", next, d)
		if err := im.State.RewordFileStatus(rel, StatusWaiting, reason); err != nil {
			return err
		}
	}
	return nil
}
