package main

import (
	"context"
	"fmt"

	"github.com/rowdrop/rowdrop"
)

// cmdUninstall removes what rowdrop put into the app's database and says
// what stays. The work is the library's (rowdrop.Uninstall).
func cmdUninstall(ctx context.Context, a *app, args []string) error {
	fs := a.newFlags("[pair flags] [--dry-run] [--json]", pairFlags)
	dryRun := fs.Bool("dry-run", false, "list what would be removed; change nothing")
	asJSON := fs.Bool("json", false, "print the report as JSON on stdout (an array, one object per database)")
	pos, err := a.parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usagef("unexpected argument %q (uninstall takes only flags; see `rowdrop uninstall -h`)", pos[0])
	}
	pairs, err := a.pairs()
	if err != nil {
		return err
	}
	reports := []*rowdrop.UninstallReport{}
	for _, p := range pairs {
		r, err := rowdrop.Uninstall(ctx, p.config(a.log, nil), *dryRun)
		if err != nil {
			return pairErr(pairs, p, err)
		}
		reports = append(reports, r)
	}
	if *asJSON {
		return writeJSON(a.stdout, reports)
	}
	for _, r := range reports {
		printUninstall(a, r)
	}
	return nil
}

func printUninstall(a *app, r *rowdrop.UninstallReport) {
	w := a.stdout
	verb := "removed from"
	if r.DryRun {
		verb = "would remove from"
	}
	if len(r.Removed) == 0 {
		fmt.Fprintf(w, "%s: nothing of rowdrop's is in it\n", r.DB)
	} else {
		fmt.Fprintf(w, "%s %s (in one transaction):\n", verb, r.DB)
		for _, o := range r.Removed {
			fmt.Fprintf(w, "  %s\n", o)
		}
	}
	fmt.Fprintln(w, "stays (delete by hand once sure):")
	if r.State != "" {
		fmt.Fprintf(w, "  state directory %s (base copy, conflict log, this device's identity)\n", r.State)
	} else {
		fmt.Fprintln(w, "  no state directory found for this pair")
	}
	switch {
	case r.DeviceFiles != "":
		fmt.Fprintf(w, "  this device's files in the shared folder: %s (other devices may still need them)\n", r.DeviceFiles)
	case r.Folder != "":
		fmt.Fprintf(w, "  the shared folder %s and every file in it\n", r.Folder)
	}
	if !r.DryRun && len(r.Removed) > 0 {
		fmt.Fprintln(w, "a later `rowdrop sync` or `watch` on this database installs them again")
	}
}
