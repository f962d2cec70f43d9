package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/rowdrop/rowdrop/internal/revert"
)

// newRevertCmd is `rowdrop revert FILE`: it undoes one published changeset:
// it prints what the inverse does (per table: rows deleted, re-inserted,
// cells written back, what was changed since and is skipped), then (unless
// --dry-run) applies it as a local edit and syncs, so the undo reaches
// every device.
func newRevertCmd(a *app) *cobra.Command {
	var dry, asJSON bool
	cmd := &cobra.Command{
		Use:   "revert [pair flags] [--dry-run] [--json] FILE",
		Short: "undo a published changeset on every device",
		Long: `Undo a published changeset (a path in the shared folder, or <device>/<seq>) on
every device: print what it deletes, re-inserts and writes back, then apply it
as a new edit of this device and sync. Rows and cells changed since the file
are skipped and listed. --dry-run only prints.`,
		Example: `  rowdrop revert --db ~/notes/notes.db --folder ~/Sync/notes --dry-run 3f9c2a1b/12
  rowdrop revert --db ~/notes/notes.db --folder ~/Sync/notes ~/Sync/notes/3f9c2a1b/0000000012.rdc`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) != 1 {
				return usagef("revert needs exactly one FILE: a changeset in the shared folder, as a path or <device>/<seq> (see `rowdrop revert --help`)")
			}
			return nil
		},
		RunE: a.action(func(ctx context.Context, args []string) error {
			return a.revert(ctx, args[0], dry, asJSON)
		}),
	}
	addSettingFlags(cmd.Flags(), pairFlags)
	cmd.Flags().BoolVar(&dry, "dry-run", false, "only print what reverting the file would do")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the plan as JSON on stdout")
	return cmd
}

// revert undoes file (a path or <device>/<seq>) in the one pair.
func (a *app) revert(ctx context.Context, file string, dry, asJSON bool) error {
	pairs, err := a.pairs()
	if err != nil {
		return err
	}
	if len(pairs) > 1 {
		return usagef("a changeset belongs to one shared folder and the config lists %d databases: add --db to pick one", len(pairs))
	}
	p := pairs[0]
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	prog := a.newProgress(p.label())
	defer prog.done()
	s, err := a.open(ctx, p, lockWait, prog.callback())
	if err != nil {
		return err
	}
	defer s.Close()
	plan, err := s.RevertPlan(ctx, file)
	if err != nil {
		return err
	}
	if asJSON {
		if err := writeJSON(a.stdout, plan); err != nil {
			return err
		}
	} else {
		printRevertPlan(a, plan, dry)
	}
	if dry {
		return nil
	}
	r, err := s.Revert(ctx, plan)
	if err != nil {
		return err
	}
	a.report(p, s, r, false)
	return nil
}

func printRevertPlan(a *app, plan *revert.Plan, dry bool) {
	verb := "reverts"
	if dry {
		verb = "would revert"
	}
	if plan.Empty() {
		fmt.Fprintf(a.stdout, "%s: nothing to revert (everything it changed was changed since)\n", plan.File)
	} else {
		fmt.Fprintf(a.stdout, "%s (file %d of device %s): this %s, as a new edit of this device, on every device:\n", plan.File, plan.Seq, plan.Device, verb)
	}
	for _, t := range plan.Tables {
		fmt.Fprintf(a.stdout, "  %s: %d row(s) deleted, %d re-inserted, %d cell(s) written back, %d skipped\n",
			t.Table, t.Delete, t.Reinsert, t.Cells, len(t.Skipped))
		for _, sk := range t.Skipped {
			col := ""
			if sk.Column != "" {
				col = " column " + sk.Column
			}
			fmt.Fprintf(a.stdout, "    skipped: key %s%s: %s\n", sk.Key, col, sk.Reason)
		}
	}
}
