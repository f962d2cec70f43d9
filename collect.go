package rowdrop

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/rowdrop/rowdrop/internal/folder"
	"github.com/rowdrop/rowdrop/internal/gc"
	"github.com/rowdrop/rowdrop/internal/rdfile"
	"github.com/rowdrop/rowdrop/internal/state"
)

// Collection of this device's old files (internal/gc does the planning
// and the deleting).

// CollectReport is the outcome of Collect.
type CollectReport struct {
	DryRun  bool          `json:"dry_run"`
	Plan    *CollectPlan  `json:"plan"`
	Deleted []CollectItem `json:"deleted"`
	Bytes   int64         `json:"bytes_freed"`
}

// CollectItem is a file a collection deletes, or would (path relative to
// the shared folder, kind "changeset" or "snapshot", its sequence number,
// size and why it may go).
type CollectItem = gc.Item

// CollectPlan is what a collection would do, and why it stops where it
// does: the acknowledgement and snapshot bounds, the files that go, and
// what holds the rest back. internal/gc owns the rules; this is the name
// an embedder uses.
type CollectPlan = gc.Plan

// Collect deletes this device's own files that no device needs any more:
// changesets every active device has acknowledged and the newest whole
// snapshot includes, and its own snapshots older than its newest whole
// one. With dryRun it only reports what would go and what holds the rest
// back. It never touches another device's files.
func (s *Syncer) Collect(ctx context.Context, dryRun bool) (*CollectReport, error) {
	if _, err := os.Stat(s.cfg.Folder); err != nil {
		return nil, fmt.Errorf("shared folder %s is not available: %w (mount it, or check the --folder path)", s.cfg.Folder, err)
	}
	forgotten, err := s.forgotten()
	if err != nil {
		return nil, err
	}
	names, err := s.deviceNames()
	if err != nil {
		return nil, err
	}
	dirs, err := gc.Survey(s.shared, nil)
	if err == nil {
		for id, d := range dirs {
			if d.Ack != nil && d.Ack.DeviceName != "" && names[id] == "" {
				names[id] = d.Ack.DeviceName
			}
		}
	}
	ls, err := s.readSchema()
	if err != nil {
		return nil, err
	}
	im, err := s.importer(ls)
	if err != nil {
		return nil, err
	}
	// A snapshot covers collected files only if a joiner could use it.
	usable := func(rel string) error {
		kind, dev, seq := rdfile.Classify(rel)
		if kind != rdfile.NameSnapshot {
			return fmt.Errorf("not a snapshot name")
		}
		snap, status, reason, err := im.OpenSnapshot(ctx, folder.Entry{Device: dev, Seq: seq, Rel: rel})
		if err != nil {
			return err
		}
		if status != "" {
			return fmt.Errorf("%s (%s)", reason, status)
		}
		snap.Close()
		return nil
	}
	published, err := s.published()
	if err != nil {
		return nil, err
	}
	plan, err := gc.Make(gc.Input{Folder: s.shared, Dirs: dirs, Self: s.id.Device, Published: published, Forgotten: forgotten, Names: names, Usable: usable})
	if err != nil {
		return nil, err
	}
	r := &CollectReport{DryRun: dryRun, Plan: plan, Deleted: []CollectItem{}}
	for _, p := range plan.Problems {
		s.log.Warn("collection: " + p)
	}
	if dryRun {
		return r, nil
	}
	deleted, err := gc.Execute(ctx, s.shared, plan, s.log)
	r.Deleted = deleted
	for _, it := range r.Deleted {
		r.Bytes += it.Bytes
	}
	if err != nil {
		return r, err
	}
	if len(r.Deleted) > 0 {
		s.log.Info("collection done", "files", len(r.Deleted), "bytes", r.Bytes, "kept", plan.Kept)
	}
	return r, s.st.Set(state.KeyLastGCMS, s.cfg.Now().UnixMilli())
}

// MaybeCollect runs Collect when the last one is older than every (watch
// calls it after each step). It returns nil, nil when it is not time yet.
func (s *Syncer) MaybeCollect(ctx context.Context, every time.Duration) (*CollectReport, error) {
	last, err := s.st.Int(state.KeyLastGCMS)
	if err != nil {
		return nil, err
	}
	if last > 0 && s.cfg.Now().Sub(time.UnixMilli(last)) < every {
		return nil, nil
	}
	// Recorded first: a collection that fails is retried at the next
	// period, not at every step.
	if err := s.st.Set(state.KeyLastGCMS, s.cfg.Now().UnixMilli()); err != nil {
		return nil, err
	}
	return s.Collect(ctx, false)
}
