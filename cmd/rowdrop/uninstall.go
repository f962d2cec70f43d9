package main

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/rowdrop/rowdrop"
)

// newUninstallCmd is `rowdrop uninstall`: it removes what rowdrop put
// into the app's database and says what stays. The work is the library's
// (rowdrop.Uninstall).
func newUninstallCmd(a *app) *cobra.Command {
	var dryRun, asJSON bool
	cmd := &cobra.Command{
		Use:   "uninstall [pair flags] [--dry-run] [--json]",
		Short: "remove everything rowdrop put into the app's database",
		Long: `Remove everything rowdrop ever put into the app's database, in one transaction:
the capture triggers and their table rowdrop_dirty (the hints setting) and the
table rowdrop_marker (how rowdrop recognises a restored copy of the file). The
app's tables and rows are not touched. What stays, and is named: the pair's
state directory (base copy, conflict log, device identity) and this device's
files in the shared folder, which other devices may still need; delete them by
hand once sure. Stop ` + "`rowdrop watch`" + ` first: it holds the state directory, and a
later sync or watch installs the objects again. --dry-run lists what would be
removed and changes nothing.`,
		Example: `  rowdrop uninstall --db ~/notes/notes.db --folder ~/Sync/notes --dry-run
  rowdrop uninstall --db ~/notes/notes.db --folder ~/Sync/notes`,
		Args: noArgs,
		RunE: a.action(func(ctx context.Context, _ []string) error {
			return a.uninstall(ctx, dryRun, asJSON)
		}),
	}
	addSettingFlags(cmd.Flags(), pairFlags)
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "list what would be removed; change nothing")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the report as JSON on stdout (an array, one object per database)")
	return cmd
}

// uninstall runs rowdrop.Uninstall on every pair and prints the reports.
func (a *app) uninstall(ctx context.Context, dryRun, asJSON bool) error {
	pairs, err := a.pairs()
	if err != nil {
		return err
	}
	reports := []*rowdrop.UninstallReport{}
	for _, p := range pairs {
		r, err := rowdrop.Uninstall(ctx, p.config(a.log, nil), dryRun)
		if err != nil {
			return pairErr(pairs, p, err)
		}
		reports = append(reports, r)
	}
	if asJSON {
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
