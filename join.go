package rowdrop

import (
	"context"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"zombiezen.com/go/sqlite"
	"zombiezen.com/go/sqlite/sqlitex"

	"rowdrop/export"
	importer "rowdrop/import"
	"rowdrop/internal/hlc"
	"rowdrop/internal/rdfile"
	"rowdrop/internal/state"
	"rowdrop/merge"
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

// Snapshot exports this device's edits, then publishes a snapshot of its
// merged state into the shared folder.
func (s *Syncer) Snapshot(ctx context.Context) (export.SnapshotResult, error) {
	if _, err := s.joinIfNew(ctx); err != nil {
		return export.SnapshotResult{}, err
	}
	var r export.Result
	if err := retryBusy(ctx, 8, 25*time.Millisecond, func() (e error) { r, e = s.Export(ctx); return e }); err != nil {
		return export.SnapshotResult{}, err
	}
	if r.PublishErr != nil {
		return export.SnapshotResult{}, fmt.Errorf("no snapshot: exported changes wait in the outbox: %w", r.PublishErr)
	}
	tables, _, err := s.tables()
	if err != nil {
		return export.SnapshotResult{}, err
	}
	if tables, _, err = export.EnsureBase(s.st, tables); err != nil {
		return export.SnapshotResult{}, err
	}
	res, err := export.MakeSnapshot(ctx, s.st, s.id, s.clock, s.cfg.Folder, tables, s.cfg.Now())
	if err != nil {
		return res, err
	}
	s.log.Info("snapshot published", "file", res.File, "rows", res.Rows, "bytes", res.Bytes)
	return res, nil
}

// SnapshotIfDue publishes a snapshot when everyFiles files were exported
// or applied since the last one, or every has passed (and something
// changed); a zero knob disables its trigger. It returns nil when none
// was due.
func (s *Syncer) SnapshotIfDue(ctx context.Context, everyFiles int, every time.Duration) (*export.SnapshotResult, error) {
	due, err := export.SnapshotDue(s.st, s.cfg.Now(), everyFiles, every)
	if err != nil || !due {
		return nil, err
	}
	res, err := s.Snapshot(ctx)
	if err != nil {
		return nil, err
	}
	return &res, nil
}

// isNew reports a device that has never exported nor imported anything.
func (s *Syncer) isNew() bool {
	return s.st.GetInt("next_seq") <= 1 && !s.st.HasImported()
}

// joinIfNew merges a usable snapshot into a new device (see above).
func (s *Syncer) joinIfNew(ctx context.Context) (merge.Stats, error) {
	if !s.isNew() {
		return merge.Stats{}, nil
	}
	if _, err := os.Stat(s.cfg.Folder); err != nil {
		return merge.Stats{}, nil // Export says what is wrong with the folder
	}
	im, err := s.importer()
	if err != nil {
		return merge.Stats{}, err
	}
	rr, err := s.rebase(ctx, im)
	return rr.stats, err
}

// rebaseResult is what rebase did.
type rebaseResult struct {
	used  string          // the snapshot merged ("" if none)
	stats merge.Stats     // its merge
	gaps  map[string]bool // devices whose next file is missing and that no usable snapshot covered
}

// rebase merges a usable snapshot when this device is new, misses files
// that are no longer in the folder, or was interrupted in a rebase.
func (s *Syncer) rebase(ctx context.Context, im *importer.Importer) (rebaseResult, error) {
	var rr rebaseResult
	scan, err := importer.ScanFolder(s.cfg.Folder)
	if err != nil {
		return rr, nil // the import reports an unreadable folder
	}
	applied, err := importer.Applied(s.st)
	if err != nil {
		return rr, err
	}
	low, high := map[string]uint64{}, map[string]uint64{}
	present := map[string]bool{}
	for d, l := range scan.Files {
		if d != s.id.Device && len(l) > 0 {
			low[d] = l[0].Seq
			high[d] = l[len(l)-1].Seq
			for _, e := range l {
				present[e.Rel] = true
			}
		}
	}
	rr.gaps = map[string]bool{}
	for d, lo := range low {
		if lo > applied[d]+1 {
			rr.gaps[d] = true
		}
	}
	inflight := s.st.Get("inflight")
	redo := strings.HasSuffix(inflight, rdfile.SnapshotExt)
	isNew := s.isNew()
	snaps, err := importer.ScanSnapshots(s.cfg.Folder)
	if err != nil || len(snaps) == 0 {
		return rr, nil
	}
	type cand struct {
		e     importer.SnapshotEntry
		h     rdfile.Header
		cover uint64
	}
	var cands []cand
	recorded := map[string]string{} // snapshots reported earlier: path -> status
	_ = sqlitex.Execute(s.st.Conn(), "SELECT path, status FROM rowdrop_files WHERE path LIKE '%.rds'", &sqlitex.ExecOptions{
		ResultFunc: func(q *sqlite.Stmt) error { recorded[q.ColumnText(0)] = q.ColumnText(1); return nil }})
	for _, e := range snaps {
		if recorded[e.Rel] == importer.StatusBroken {
			continue // files never change: a broken one stays broken
		}
		h, status, reason := im.SnapshotHeader(e)
		if status != "" {
			im.RecordSnapshot(e, status, reason)
			continue
		}
		if recorded[e.Rel] != "" {
			// It arrived whole since, or is no longer needed; if it is
			// tried below and fails, it is reported again.
			im.ClearRecord(e.Rel)
		}
		// Usable: nothing is missing after merging it. Worth it: it is
		// the way in for a new device, or it includes a file this device
		// needs next and the folder does not have (collected, or all
		// files of that device are gone).
		usable, gain := true, redo && e.Rel == inflight
		var cover uint64
		for d, lo := range low {
			if max(applied[d], h.Seen[d])+1 < lo {
				usable = false
			}
		}
		// A snapshot cannot include files its devices have not published
		// (every device keeps its newest file in the folder): one that
		// claims more is early (still syncing) or lying; using it would
		// skip files for good. (A device none of whose files are here
		// yet cannot be checked.)
		own := uint64(s.st.GetInt("next_seq"))
		for d, n := range h.Seen {
			if (d == s.id.Device && own > 0 && n >= own) || (d != s.id.Device && high[d] > 0 && n > high[d]) {
				usable = false
				im.RecordSnapshot(e, importer.StatusWaiting, fmt.Sprintf("%s: it includes file %d of device %s, which is not in the folder (yet); not used until it is", e.Rel, n, d))
			}
		}
		for d, n := range h.Seen {
			cover += n
			if d != s.id.Device && n > applied[d] && (isNew || !present[rdfile.RelPath(d, applied[d]+1)]) {
				gain = true
			}
		}
		if usable && gain {
			cands = append(cands, cand{e, h, cover})
		}
	}
	sort.Slice(cands, func(i, j int) bool {
		if cands[i].cover != cands[j].cover {
			return cands[i].cover > cands[j].cover
		}
		if cands[i].h.CreatedMS != cands[j].h.CreatedMS {
			return cands[i].h.CreatedMS > cands[j].h.CreatedMS
		}
		return cands[i].e.Rel < cands[j].e.Rel
	})
	for _, c := range cands {
		snap, status, reason, err := im.OpenSnapshot(ctx, c.e)
		if err != nil {
			return rr, err
		}
		if status != "" {
			s.log.Warn("snapshot not used", "file", c.e.Rel, "status", status, "reason", reason)
			im.RecordSnapshot(c.e, status, reason)
			continue
		}
		rr.stats, err = s.mergeSnapshot(ctx, im, snap)
		snap.Close()
		if err != nil {
			if ctx.Err() != nil {
				return rr, ctx.Err()
			}
			reason := fmt.Sprintf("%s: could not be merged: %v; held and retried", c.e.Rel, err)
			s.log.Warn("snapshot not used", "file", c.e.Rel, "status", importer.StatusHeld, "reason", reason)
			im.RecordSnapshot(c.e, importer.StatusHeld, reason)
			continue
		}
		im.ClearRecord(c.e.Rel)
		rr.used = c.e.Rel
		for d := range rr.gaps {
			if c.h.Seen[d]+1 >= low[d] {
				delete(rr.gaps, d)
			}
		}
		s.log.Info("merged a snapshot", "file", c.e.Rel, "rows", rr.stats.Changes, "conflicts", rr.stats.Conflicts)
		return rr, nil
	}
	return rr, nil
}

// mergeSnapshot merges a validated snapshot into live and base, and
// advances how far every device's files count as applied.
func (s *Syncer) mergeSnapshot(ctx context.Context, im *importer.Importer, snap *importer.Snapshot) (merge.Stats, error) {
	h := snap.Header
	rel := snap.Entry.Rel
	localKnows := map[string]hlc.Timestamp{}
	err := sqlitex.Execute(s.st.Conn(), "SELECT id, last_hlc FROM rowdrop_devices", &sqlitex.ExecOptions{ResultFunc: func(q *sqlite.Stmt) error {
		localKnows[q.ColumnText(0)] = hlc.Timestamp(q.ColumnInt64(1))
		return nil
	}})
	if err != nil {
		return merge.Stats{}, err
	}
	// Like a changeset, a snapshot whose merge was interrupted between its
	// live and base steps is merged again before any export (Export
	// imports first while "inflight" is set).
	if err := s.st.Set("inflight", rel); err != nil {
		return merge.Stats{}, err
	}
	src := merge.Source{Device: h.Device, Clock: state.Clock{HLC: hlc.Timestamp(h.HLC), Dev: h.Device}, File: rel}
	in := merge.RebaseInput{Conn: snap.Conn, Tables: snap.Tables, Self: s.id.Device, LocalKnows: localKnows, RemoteKnows: snap.Knows}
	now := s.cfg.Now().UnixMilli()
	finish := func() error {
		s.clock.Observe(max(snap.MaxClock, hlc.Timestamp(h.HLC)))
		for d, n := range h.Seen {
			if d == s.id.Device {
				continue
			}
			if err := sqlitex.Execute(s.st.Conn(), `INSERT INTO rowdrop_devices(id,name,applied,last_hlc,last_applied_ms) VALUES(?,?,?,?,?)
				ON CONFLICT(id) DO UPDATE SET applied=max(applied, excluded.applied), last_hlc=max(last_hlc, excluded.last_hlc),
				name=CASE WHEN name='' THEN excluded.name ELSE name END, last_applied_ms=excluded.last_applied_ms`,
				&sqlitex.ExecOptions{Args: []any{d, snap.Names[d], int64(n), int64(snap.Knows[d]), now}}); err != nil {
				return err
			}
			// Waiting records of files the snapshot includes are moot.
			if err := sqlitex.Execute(s.st.Conn(), `DELETE FROM rowdrop_files WHERE dev=? AND seq<=? AND path NOT LIKE '%.rds'`,
				&sqlitex.ExecOptions{Args: []any{d, int64(n)}}); err != nil {
				return err
			}
		}
		if err := s.st.Set("hlc", strconv.FormatUint(uint64(s.clock.Last()), 10)); err != nil {
			return err
		}
		if err := s.st.Set("last_import_ms", now); err != nil {
			return err
		}
		if err := s.st.Set("rebased_from", rel); err != nil {
			return err
		}
		return s.st.Set("inflight", "")
	}
	var progress func(done, total int)
	if s.cfg.Progress != nil {
		progress = func(done, total int) { s.cfg.Progress(done, total, rel) }
	}
	return im.Engine.Rebase(ctx, src, in, finish, progress)
}

// noteGaps rewrites the waiting reason of a device's missing file when no
// usable snapshot covered it: the files may have been collected, and then
// only a snapshot helps.
func (s *Syncer) noteGaps(im *importer.Importer, rr rebaseResult) {
	if len(rr.gaps) == 0 {
		return
	}
	applied, err := importer.Applied(s.st)
	if err != nil {
		return
	}
	for d := range rr.gaps {
		next := applied[d] + 1
		rel := rdfile.RelPath(d, next)
		reason := fmt.Sprintf("file %d of device %s is not in the folder and its later files wait for it. If it is still on its way, this resolves by itself; if it was collected (removed by its device once every device had applied it), this device can only catch up from a snapshot that includes it: run `rowdrop snapshot` on a device that is up to date, let the folder sync, then sync here", next, d)
		_ = sqlitex.Execute(s.st.Conn(), "UPDATE rowdrop_files SET reason=? WHERE path=? AND status=?",
			&sqlitex.ExecOptions{Args: []any{reason, rel, importer.StatusWaiting}})
	}
}
