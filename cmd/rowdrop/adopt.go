package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/rowdrop/rowdrop/export"
)

// cmdAdopt takes each pair's live database as the truth: it prints how
// many rows that inserts, changes and deletes on every device, then (unless
// --dry-run) syncs with the live content winning as new edits, bypassing
// the recognition of a restored or reset file and the mass-change guard.
func cmdAdopt(ctx context.Context, a *app, args []string) error {
	fs := a.newFlags("[pair flags] [--dry-run] [--json]", pairFlags)
	dry := fs.Bool("dry-run", false, "only print what adopting would change on every device")
	asJSON := fs.Bool("json", false, "print the counts as JSON on stdout (an array per database)")
	pos, err := a.parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usagef("unexpected argument %q (adopt takes only flags; see `rowdrop adopt -h`)", pos[0])
	}
	pairs, err := a.pairs()
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	plans := map[string][]export.TableChanges{}
	for _, p := range pairs {
		if err := a.adoptOnce(ctx, p, *dry, *asJSON, plans); err != nil {
			return pairErr(pairs, p, err)
		}
	}
	if *asJSON {
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
	a.report(p, s, r)
	return nil
}
