package rowdrop

import (
	"context"
	"fmt"
	"time"

	"github.com/rowdrop/rowdrop/export"
	importer "github.com/rowdrop/rowdrop/import"
	"github.com/rowdrop/rowdrop/internal/schema"
	"github.com/rowdrop/rowdrop/merge"
)

// Snapshots: publishing one, and joining from one (the choice and the
// merge are import's: import/rebase.go).

// Snapshot exports this device's edits, then publishes a snapshot of its
// merged state into the shared folder.
func (s *Syncer) Snapshot(ctx context.Context) (export.SnapshotResult, error) {
	c, err := s.newCycle()
	if err != nil {
		return export.SnapshotResult{}, err
	}
	if _, err := s.joinIfNew(ctx, c); err != nil {
		return export.SnapshotResult{}, err
	}
	var r export.Result
	if err := retryBusy(ctx, 8, 25*time.Millisecond, func() (e error) { r, e = s.export(ctx, c); return e }); err != nil {
		return export.SnapshotResult{}, err
	}
	if r.PublishErr != nil {
		return export.SnapshotResult{}, fmt.Errorf("no snapshot: exported changes wait in the outbox: %w", r.PublishErr)
	}
	// The snapshot carries the app's whole schema, for `rowdrop restore`.
	app, err := schema.ReadFull(s.live)
	if err != nil {
		return export.SnapshotResult{}, err
	}
	// The export brought the base copy in line (EnsureBase).
	res, err := export.MakeSnapshot(ctx, s.st, s.id, s.clock, s.shared, synced(c.schema.tables, r.SchemaProblems), app, s.cfg.Now())
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
func (s *Syncer) joinIfNew(ctx context.Context, c *cycle) (merge.Stats, error) {
	if isNew, err := importer.IsNew(s.st); err != nil || !isNew {
		return merge.Stats{}, err
	}
	fv, err := s.folder(c)
	if err != nil {
		return merge.Stats{}, err
	}
	if fv.err != nil {
		return merge.Stats{}, nil // Export says what is wrong with the folder
	}
	im, err := s.importer(c.schema)
	if err != nil {
		return merge.Stats{}, err
	}
	rr, err := im.Rebase(ctx, fv.scan, fv.applied)
	return rr.Stats, err
}
