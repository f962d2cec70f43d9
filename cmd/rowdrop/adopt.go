package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/rowdrop/rowdrop/export"
)

// newAdoptCmd is `rowdrop adopt`: it takes each pair's live database as
// the truth: it prints how many rows that inserts, changes and deletes on
// every device, then (unless --dry-run) syncs with the live content winning
// as new edits, bypassing the recognition of a restored or reset file and
// the mass-change guard.
func newAdoptCmd(a *app) *cobra.Command {
	var dry, asJSON bool
	cmd := &cobra.Command{
		Use:   "adopt [pair flags] [--dry-run] [--json]",
		Short: "take the live database as the truth on every device",
		Long: `Take the live database as the truth: print how many rows that inserts, changes
and deletes on every device, then sync with its content winning as new edits.
For a database restored from a backup or reset on purpose, or to confirm a mass
change the guard held. --dry-run only prints the counts.`,
		Example: `  rowdrop adopt --db ~/notes/notes.db --folder ~/Sync/notes --dry-run
  rowdrop adopt --db ~/notes/notes.db --folder ~/Sync/notes`,
		Args: noArgs,
		RunE: a.action(func(ctx context.Context, _ []string) error {
			return a.adoptAll(ctx, dry, asJSON)
		}),
	}
	addSettingFlags(cmd.Flags(), pairFlags)
	cmd.Flags().BoolVar(&dry, "dry-run", false, "only print what adopting would change on every device")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the counts as JSON on stdout (an array per database)")
	return cmd
}

// adoptAll adopts every pair's live database.
func (a *app) adoptAll(ctx context.Context, dry, asJSON bool) error {
	pairs, err := a.pairs()
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	plans := map[string][]export.TableChanges{}
	for _, p := range pairs {
		if err := a.adoptOnce(ctx, p, dry, asJSON, plans); err != nil {
			return pairErr(pairs, p, err)
		}
	}
	if asJSON {
		return writeJSON(a.stdout, plans)
	}
	return nil
}

func (a *app) adoptOnce(ctx context.Context, p pairConfig, dry, asJSON bool, plans map[string][]export.TableChanges) error {
	prog := a.newProgress(p.label())
	defer prog.done()
	s, err := a.open(ctx, p, lockWait, prog.callback())
	if err != nil {
		return err
	}
	defer s.Close()
	plan, err := s.AdoptPlan(ctx)
	if err != nil {
		return err
	}
	plans[p.label()] = plan
	if !asJSON {
		verb := "changes"
		if dry {
			verb = "would change"
		}
		if len(plan) == 0 {
			fmt.Fprintf(a.stdout, "%s: the live database holds nothing the other devices lack: adopting it %s nothing\n", p.label(), verb)
		} else {
			fmt.Fprintf(a.stdout, "%s: adopting the live database as the truth %s, on every device:\n", p.label(), verb)
		}
		for _, tc := range plan {
			fmt.Fprintf(a.stdout, "  %s: %d row(s) inserted, %d changed, %d deleted\n", tc.Table, tc.Insert, tc.Change, tc.Delete)
		}
	}
	if dry {
		return nil
	}
	r, err := s.Adopt(ctx)
	if err != nil {
		return err
	}
	a.report(p, s, r, false)
	return nil
}
