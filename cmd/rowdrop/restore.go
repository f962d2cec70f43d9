package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/rowdrop/rowdrop"
)

// cmdRestore builds a pair's database from the shared folder on a new
// machine: the app's schema and the rows of the snapshot a new device
// joins from, then every later file, as a new device.
func cmdRestore(ctx context.Context, a *app, args []string) error {
	fs := a.newFlags("--db PATH --folder DIR [--device NAME] [--force] [--if-folder-has-data]", pairFlags)
	force := fs.Bool("force", false, "replace a database that already holds tables (stop the app first); its state directory is moved aside")
	ifData := fs.Bool("if-folder-has-data", false, "exit 0 with a message when the shared folder holds nothing to restore (for scripts)")
	pos, err := a.parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usagef("unexpected argument %q (restore takes only flags; see `rowdrop restore -h`)", pos[0])
	}
	pairs, err := a.pairs()
	if err != nil {
		return err
	}
	// Ctrl-C cancels through the context: the database under construction
	// stays under its temporary name, and restore resumes it.
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	for _, p := range pairs {
		if err := a.restoreOnce(ctx, p, *force, *ifData); err != nil {
			return pairErr(pairs, p, err)
		}
	}
	return nil
}

func (a *app) restoreOnce(ctx context.Context, p pairConfig, force, ifData bool) error {
	prog := a.newProgress(p.label())
	defer prog.done()
	// Periodic log lines for logs and services; the terminal line is
	// the progress's.
	cb := prog.callback()
	var last time.Time
	cfg := p.config(a.log, func(done, total int, file string) {
		if cb != nil {
			cb(done, total, file)
		}
		if time.Since(last) >= 10*time.Second || done == total {
			last = time.Now()
			a.log.Info("restoring", "db", p.label(), "done", done, "of", total, "file", file)
		}
	})
	a.log.Info("restoring from the shared folder", "db", p.DB, "folder", p.Folder)
	r, err := rowdrop.Restore(ctx, cfg, force)
	if errors.Is(err, rowdrop.ErrNothingToRestore) && ifData {
		fmt.Fprintf(a.stdout, "%s: nothing to restore: %v\n", p.label(), err)
		return nil
	}
	if err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("interrupted (%w): nothing is under the database's name yet; run `rowdrop restore` again to resume", err)
		}
		return err
	}
	reportResult(a.log.With("db", p.label()), r.Report, nil)
	fmt.Fprintf(a.stdout, "%s: restored %s from snapshot %s and %d later file(s), as new device %s (state %s); the app can open it now, and `rowdrop sync`/`watch` keeps it in sync\n",
		p.label(), r.DB, r.Snapshot, r.Report.Import.Applied, r.Device, r.State)
	return nil
}
