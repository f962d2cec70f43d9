package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/rowdrop/rowdrop"
	"github.com/rowdrop/rowdrop/internal/folder"
	"github.com/rowdrop/rowdrop/internal/rdfile"
)

// newRestoreCmd is `rowdrop restore`: it builds a pair's database from the
// shared folder on a new machine: the app's schema and the rows of the
// snapshot a new device joins from, then every later file, as a new device.
func newRestoreCmd(a *app) *cobra.Command {
	var force, ifData bool
	var passFile string
	cmd := &cobra.Command{
		Use:   "restore --db PATH --folder DIR [--device NAME] [--force] [--if-folder-has-data]",
		Short: "on a new machine: build the database from the shared folder",
		Long: `On a new machine: build the database from the shared folder (the app's schema and
rows from the newest usable snapshot, then every later file), as a new device.
It never overwrites a database that holds tables unless --force (stop the app
first); --if-folder-has-data exits 0 when there is nothing to restore, for
setup scripts. Interrupted, it resumes where it stopped.`,
		Example: `  rowdrop restore --db ~/notes/notes.db --folder ~/Sync/notes --device desktop
  rowdrop restore --db ~/notes/notes.db --folder ~/Sync/notes --if-folder-has-data`,
		Args: noArgs,
		RunE: a.action(func(ctx context.Context, _ []string) error {
			return a.restoreAll(ctx, force, ifData, passFile)
		}),
	}
	addSettingFlags(cmd.Flags(), pairFlags)
	cmd.Flags().BoolVar(&force, "force", false, "replace a database that already holds tables (stop the app first); its state directory is moved aside")
	cmd.Flags().StringVar(&passFile, "passphrase-file", "", "an encrypted folder's passphrase, first line of this file (or ROWDROP_PASSPHRASE, or asked)")
	cmd.Flags().BoolVar(&ifData, "if-folder-has-data", false, "exit 0 with a message when the shared folder holds nothing to restore (for scripts)")
	return cmd
}

// restoreAll restores every pair.
func (a *app) restoreAll(ctx context.Context, force, ifData bool, passFile string) error {
	pairs, err := a.pairs()
	if err != nil {
		return err
	}
	// Ctrl-C cancels through the context: the database under construction
	// stays under its temporary name, and restore resumes it.
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	for _, p := range pairs {
		if folder.New(p.Folder, rdfile.Limits{}).Keyed() {
			if p.Config.Passphrase, err = readPassphrase(a, passFile, "folder passphrase: "); err != nil {
				return err
			}
		}
		if err := a.restoreOnce(ctx, p, force, ifData); err != nil {
			return pairErr(pairs, p, err)
		}
	}
	return nil
}

func (a *app) restoreOnce(ctx context.Context, p pairConfig, force, ifData bool) error {
	prog := a.newProgress(p.label())
	defer prog.done()
	cfg := p.config(a.log, prog.callback())
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
	reportResult(a.log.With("db", p.label()), r.Report, nil, false)
	fmt.Fprintf(a.stdout, "%s: restored %s from snapshot %s and %d later file(s), as new device %s (state %s); the app can open it now, and `rowdrop sync`/`watch` keeps it in sync\n",
		p.label(), r.DB, r.Snapshot, r.Report.Import.Applied, r.Device, r.State)
	return nil
}
