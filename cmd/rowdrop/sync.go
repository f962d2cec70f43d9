package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"rowdrop"
)

// cmdSync runs one cycle for every pair: export this device's changes,
// then import and merge every applicable file from the other devices.
func cmdSync(ctx context.Context, a *app, args []string) error {
	fs := a.newFlags("[pair flags] [--confirm-mass-change]", pairFlags)
	confirm := fs.Bool("confirm-mass-change", false, "publish an export the mass-change guard held (it deletes or overwrites most of a table)")
	pos, err := a.parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usagef("unexpected argument %q (sync takes only flags; see `rowdrop sync -h`)", pos[0])
	}
	pairs, err := a.pairs()
	if err != nil {
		return err
	}
	for i := range pairs {
		pairs[i].ConfirmMassChange = *confirm
	}
	// Ctrl-C cancels the step through its context: SQLite rolls back what
	// was not committed, and the next sync picks up from there.
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	// One pair failing (a stick not mounted) does not keep the others from
	// syncing; the failures are reported together, on one line.
	var failed []string
	for _, p := range pairs {
		if err := a.syncOnce(ctx, p); err != nil {
			if len(pairs) == 1 {
				return err
			}
			failed = append(failed, p.label()+": "+err.Error())
		}
	}
	switch len(failed) {
	case 0:
		return nil
	case 1:
		return fmt.Errorf("%s", failed[0])
	}
	return fmt.Errorf("%d of %d databases failed: %s", len(failed), len(pairs), strings.Join(failed, "; "))
}

// syncOnce opens a pair, syncs it once and closes it.
func (a *app) syncOnce(ctx context.Context, p pairConfig) error {
	prog := a.newProgress(p.label())
	defer prog.done()
	s, err := a.open(ctx, p, lockWait, prog.callback())
	if err != nil {
		return err
	}
	defer s.Close()
	r, err := s.Sync(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("interrupted (%w): nothing was left half-done; run `rowdrop sync` again to finish", err)
		}
		return err
	}
	a.report(p, s, r)
	return nil
}

// report logs the outcome of one `rowdrop sync` cycle.
func (a *app) report(p pairConfig, s *rowdrop.Syncer, r rowdrop.Report) {
	log := a.log.With("db", p.label())
	if !r.Export.Pending && r.Export.Seq == 0 && r.Import.Applied == 0 {
		log.Info("in sync: nothing to export or import", "device", s.Identity().Name)
	}
	reportResult(log, r, nil)
}

// reportResult logs what a cycle did beyond what the library logs itself:
// an export parked in the outbox, files not applied, new conflicts. With
// last, the files-not-applied warning repeats only when the counts change
// (watch runs a step every rescan; one warning per situation is enough).
func reportResult(log *slog.Logger, r rowdrop.Report, last *[3]int) {
	if r.Export.Pending {
		log.Warn("exported into the outbox: the shared folder is not available; the file is published when it is back", "seq", r.Export.Seq)
	}
	counts := [3]int{r.Import.Waiting, r.Import.Held, r.Import.Broken}
	changed := last == nil || *last != counts
	if last != nil {
		*last = counts
	}
	if n := counts[0] + counts[1] + counts[2]; n > 0 && changed {
		log.Warn("some files were not applied: see `rowdrop status` for which and why",
			"waiting", counts[0], "held", counts[1], "broken", counts[2])
	}
	if r.Import.Conflicts > 0 {
		log.Info("values lost a merge and were kept in the conflict log: see `rowdrop conflicts`", "new_conflicts", r.Import.Conflicts)
	}
}
