package main

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/rowdrop/rowdrop"
)

// collected is one pair's collection report, with its database, so that
// the JSON of several databases stays one array.
type collected struct {
	Database string `json:"database"`
	*rowdrop.CollectReport
}

// newGCCmd is `rowdrop gc`: it deletes this device's own files that no
// device needs any more (every active device has applied them and the
// newest whole snapshot includes them). --dry-run lists what would go and
// why the rest stays.
func newGCCmd(a *app) *cobra.Command {
	var dry, asJSON bool
	cmd := &cobra.Command{
		Use:   "gc [pair flags] [--dry-run] [--json]",
		Short: "delete this device's old files that every device has applied",
		Long: `Delete this device's own old files in the shared folder that every active device
has applied and the newest snapshot includes (watch does this daily). It never
touches another device's files. --dry-run lists what would go and which device
holds the rest back.`,
		Example: `  rowdrop gc --db ~/notes/notes.db --folder ~/Sync/notes --dry-run
  rowdrop gc --db ~/notes/notes.db --folder ~/Sync/notes`,
		Args: noArgs,
		RunE: a.action(func(ctx context.Context, _ []string) error {
			return a.gcAll(ctx, dry, asJSON)
		}),
	}
	addSettingFlags(cmd.Flags(), pairFlags)
	cmd.Flags().BoolVar(&dry, "dry-run", false, "list what would be deleted and what holds the rest back; delete nothing")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON on stdout (an object; an array when several databases are configured)")
	return cmd
}

// gcAll collects every pair's old files.
func (a *app) gcAll(ctx context.Context, dry, asJSON bool) error {
	pairs, err := a.pairs()
	if err != nil {
		return err
	}
	var all []collected
	for _, p := range pairs {
		s, err := a.open(ctx, p, lockWait, nil)
		if err != nil {
			return pairErr(pairs, p, err)
		}
		r, err := s.Collect(ctx, dry)
		s.Close()
		if r != nil {
			all = append(all, collected{Database: p.DB, CollectReport: r})
		}
		if err != nil {
			return pairErr(pairs, p, err)
		}
	}
	if asJSON {
		if len(all) == 1 {
			return writeJSON(a.stdout, all[0])
		}
		return writeJSON(a.stdout, all)
	}
	for i, c := range all {
		if i > 0 {
			fmt.Fprintln(a.stdout)
		}
		printCollect(a.stdout, c)
	}
	return nil
}

func printCollect(w io.Writer, c collected) {
	p := c.Plan
	fmt.Fprintf(w, "database   %s\n", c.Database)
	fmt.Fprintf(w, "device     %s (published up to %d)\n", p.Self, p.Published)
	snap := "none"
	if p.Snapshot != "" {
		snap = fmt.Sprintf("%s (includes this device's files up to %d)", p.Snapshot, p.SnapshotBound)
	}
	fmt.Fprintf(w, "snapshot   %s\n", snap)
	fmt.Fprintf(w, "acked      up to %d by every active device (%d active: %s)\n", p.AckBound, len(p.Active), orNone(p.Active))
	if len(p.Retired) > 0 {
		fmt.Fprintf(w, "retired    %s (not waited for)\n", strings.Join(p.Retired, ", "))
	}
	switch {
	case c.DryRun && len(p.Delete) > 0:
		fmt.Fprintf(w, "\nwould delete %d file(s), %d bytes:\n", len(p.Delete), p.Bytes())
		for _, it := range p.Delete {
			fmt.Fprintf(w, "  %s  (%s)\n", it.Rel, it.Reason)
		}
	case !c.DryRun && len(c.Deleted) > 0:
		fmt.Fprintf(w, "\ndeleted %d file(s), %d bytes\n", len(c.Deleted), c.Bytes)
	default:
		fmt.Fprintf(w, "\nnothing to delete\n")
	}
	if p.Kept > 0 {
		fmt.Fprintf(w, "\nkept %d changeset(s) of this device, because:\n", p.Kept)
		for _, why := range p.Why {
			fmt.Fprintf(w, "  - %s\n", why)
		}
	}
	for _, pr := range p.Problems {
		fmt.Fprintf(w, "  problem: %s\n", pr)
	}
}

func orNone(l []string) string {
	if len(l) == 0 {
		return "none"
	}
	return strings.Join(l, ", ")
}
