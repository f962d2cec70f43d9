package rowdrop

import (
	"context"
	"fmt"
	"time"

	"rowdrop/export"
	importer "rowdrop/import"
	"rowdrop/merge"
)

// Snapshots: publishing one, and joining from one (the choice and the
// merge are import's: import/rebase.go).

// Snapshot exports this device's edits, then publishes a snapshot of its
// merged state into the shared folder.
func (s *Syncer) Snapshot(ctx context.Context) (export.SnapshotResult, error) {
	ls, err := s.readSchema()
	if err != nil {
		return export.SnapshotResult{}, err
	}
	if _, _, err := s.joinIfNew(ctx, ls); err != nil {
		return export.SnapshotResult{}, err
	}
	var r export.Result
	if err := retryBusy(ctx, 8, 25*time.Millisecond, func() (e error) { r, e = s.export(ctx, ls); return e }); err != nil {
		return export.SnapshotResult{}, err
	}
	if r.PublishErr != nil {
		return export.SnapshotResult{}, fmt.Errorf("no snapshot: exported changes wait in the outbox: %w", r.PublishErr)
	}
	// The export brought the base copy in line (EnsureBase).
	res, err := export.MakeSnapshot(ctx, s.st, s.id, s.clock, s.shared, synced(ls.tables, r.SchemaProblems), s.cfg.Now())
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

// joinIfNew merges a usable snapshot into a new device (import/rebase.go).
// It returns the folder view it took, for the import that follows (nil if
// none).
func (s *Syncer) joinIfNew(ctx context.Context, ls liveSchema) (merge.Stats, *folderView, error) {
	if isNew, err := importer.IsNew(s.st); err != nil || !isNew {
		return merge.Stats{}, nil, err
	}
	fv, err := s.viewFolder()
	if err != nil {
		return merge.Stats{}, nil, err
	}
	if fv.err != nil {
		return merge.Stats{}, fv, nil // Export says what is wrong with the folder
	}
	im, err := s.importer(ls)
	if err != nil {
		return merge.Stats{}, nil, err
	}
	rr, err := im.Rebase(ctx, fv.scan, fv.applied)
	return rr.Stats, fv, err
}
