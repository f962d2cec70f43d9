package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/rowdrop/rowdrop/internal/revert"
)

// cmdRevert undoes one published changeset: it prints what the inverse
// does (per table: rows deleted, re-inserted, cells written back, what was
// changed since and is skipped), then (unless --dry-run) applies it as a
// local edit and syncs, so the undo reaches every device.
func cmdRevert(ctx context.Context, a *app, args []string) error {
	fs := a.newFlags("[pair flags] [--dry-run] [--json] FILE", pairFlags)
	dry := fs.Bool("dry-run", false, "only print what reverting the file would do")
	asJSON := fs.Bool("json", false, "print the plan as JSON on stdout")
	pos, err := a.parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usagef("revert needs exactly one FILE: a changeset in the shared folder, as a path or <device>/<seq> (see `rowdrop revert -h`)")
	}
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
	plan, err := s.RevertPlan(ctx, pos[0])
	if err != nil {
		return err
	}
	if *asJSON {
		if err := writeJSON(a.stdout, plan); err != nil {
			return err
		}
	} else {
		printRevertPlan(a, plan, *dry)
	}
	if *dry {
		return nil
	}
	r, err := s.Revert(ctx, plan)
	if err != nil {
		return err
	}
	a.report(p, s, r)
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
