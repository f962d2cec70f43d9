package main

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/rowdrop/rowdrop"
	"github.com/rowdrop/rowdrop/export"
)

// defaultPath measures what a user who never opted into hints gets from
// `rowdrop sync` (issue 18): the first sync of an existing database, a
// sync after a one-row edit and one with nothing changed, each as a fresh
// open, sync and close (the command's work, in process). The anchors are
// measured on the same database in the same run: `.backup` of it (the
// online backup API, what `sqlite3 .backup` does), and the same one-row
// sync with hints (the same device, reopened with Hints once the default
// figures are taken).
func (b *bench) defaultPath(ctx context.Context) error {
	for _, n := range b.sz.textRows {
		if err := b.defaultAt(ctx, n); err != nil {
			return fmt.Errorf("TEXT %s rows: %w", rowsLabel(n), err)
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
	return nil
}

func (b *bench) defaultAt(ctx context.Context, n int) error {
	label := fmt.Sprintf("TEXT keys, %s rows", rowsLabel(n))
	b.logf("default path %s: generating", label)
	d, err := b.newDevice("default-"+rowsLabel(n), false, n, "")
	if err != nil {
		return err
	}
	defer d.remove()

	copyPath := filepath.Join(d.dir, "backup.db")
	t0 := time.Now()
	if err := backup(d.db, copyPath); err != nil {
		return fmt.Errorf("backup of %s: %w", d.db, err)
	}
	bk := time.Since(t0)
	for _, p := range []string{copyPath, copyPath + "-wal", copyPath + "-shm"} {
		os.Remove(p)
	}

	b.logf("default path %s: first sync", label)
	stop := b.profile("d3-first-sync-" + rowsLabel(n))
	first, r, err := b.syncFresh(ctx, d, false)
	stop()
	if err != nil {
		return fmt.Errorf("first sync: %w", err)
	}
	if r.Export.Changes != int64(n) {
		return fmt.Errorf("first sync published %d changes, want %d", r.Export.Changes, n)
	}
	published, state := treeSize(d.folder), treeSize(d.state)
	b.rep.add(Figure{
		ID:       "D3 first sync of an existing database, " + label,
		Measured: fmt.Sprintf("%s, %s published, state directory %s, vs `.backup` %s", ms(first), mb(published), mb(state), ms(bk)),
		Ratio:    fmt.Sprintf("%.1f× .backup", first.Seconds()/bk.Seconds()),
		Target:   "≤ 5× .backup",
		Met:      yesNo(first <= 5*bk),
		Values:   map[string]float64{"first_s": first.Seconds(), "backup_s": bk.Seconds(), "published_bytes": float64(published), "state_bytes": float64(state)},
	})

	reps := 5
	if n >= 1_000_000 || b.o.Quick {
		reps = 3
	}
	// timed runs reps syncs, each after prepare, and checks what each
	// published.
	timed := func(hints bool, prepare func() error, want int64) ([]time.Duration, error) {
		var out []time.Duration
		for range reps {
			if err := prepare(); err != nil {
				return nil, err
			}
			t, r, err := b.syncFresh(ctx, d, hints)
			if err != nil {
				return nil, err
			}
			if r.Export.Changes != want {
				return nil, fmt.Errorf("sync published %d changes (mode %s), want %d", r.Export.Changes, r.Export.Mode, want)
			}
			out = append(out, t)
		}
		return out, nil
	}
	edit := func() error { return b.editOne(d) }
	nothing := func() error { return nil }
	b.logf("default path %s: %d one-row syncs, %d with nothing changed", label, reps, reps)
	one, err := timed(false, edit, 1)
	if err != nil {
		return fmt.Errorf("one-row sync: %w", err)
	}
	idle, err := timed(false, nothing, 0)
	if err != nil {
		return fmt.Errorf("no-change sync: %w", err)
	}
	// The hints anchor: the first sync with hints installs the triggers
	// (a full capture); the timed ones take the fast path.
	b.logf("default path %s: the same with hints", label)
	if _, _, err := b.syncFresh(ctx, d, true); err != nil {
		return fmt.Errorf("sync installing hints: %w", err)
	}
	hinted, err := timed(true, edit, 1)
	if err != nil {
		return fmt.Errorf("one-row sync with hints: %w", err)
	}
	hintedIdle, err := timed(true, nothing, 0)
	if err != nil {
		return fmt.Errorf("no-change sync with hints: %w", err)
	}
	o, i, h, hi := median(one), median(idle), median(hinted), median(hintedIdle)
	b.rep.add(Figure{
		ID:       "D1 default sync after a one-row edit, " + label,
		Measured: fmt.Sprintf("p50 %s (n=%d) vs with hints %s, vs `.backup` %s", ms(o), reps, ms(h), ms(bk)),
		Ratio:    fmt.Sprintf("%.0f× hints, %.2f× .backup", o.Seconds()/h.Seconds(), o.Seconds()/bk.Seconds()),
		Target:   "≤ 2× the hints path (fast by default)",
		Met:      yesNo(o <= 2*h),
		Values:   map[string]float64{"default_p50_s": o.Seconds(), "hints_p50_s": h.Seconds(), "backup_s": bk.Seconds()},
	})
	b.rep.add(Figure{
		ID:       "D2 default sync with nothing changed, " + label,
		Measured: fmt.Sprintf("p50 %s (n=%d) vs with hints %s", ms(i), reps, ms(hi)),
		Ratio:    fmt.Sprintf("%.0f× hints", i.Seconds()/hi.Seconds()),
		Target:   "≤ 20 ms",
		Met:      yesNo(i <= 20*time.Millisecond),
		Values:   map[string]float64{"default_p50_s": i.Seconds(), "hints_p50_s": hi.Seconds()},
	})
	return nil
}

// syncFresh opens rowdrop on d, syncs once and closes it, as `rowdrop
// sync` does.
func (b *bench) syncFresh(ctx context.Context, d *device, hints bool) (time.Duration, rowdrop.Report, error) {
	t0 := time.Now()
	s, err := rowdrop.Open(ctx, rowdrop.Config{DB: d.db, Folder: d.folder, State: d.state, DeviceName: d.name, Hints: hints, Logger: b.o.Logger})
	if err != nil {
		return 0, rowdrop.Report{}, err
	}
	r, err := s.Sync(ctx)
	if cerr := s.Close(); err == nil {
		err = cerr
	}
	if err == nil && hints && r.Export.Changes == 1 && r.Export.Mode != export.ModeFast {
		err = fmt.Errorf("a one-row sync with hints took mode %q, want fast", r.Export.Mode)
	}
	return time.Since(t0), r, err
}

// treeSize is the total size of the regular files below dir.
func treeSize(dir string) int64 {
	var n int64
	_ = filepath.WalkDir(dir, func(_ string, e fs.DirEntry, err error) error {
		if err == nil && e.Type().IsRegular() {
			if fi, err := e.Info(); err == nil {
				n += fi.Size()
			}
		}
		return nil
	})
	return n
}
