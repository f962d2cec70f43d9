package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/rowdrop/rowdrop"
	importer "github.com/rowdrop/rowdrop/import"
)

// newStatusCmd is `rowdrop status`: for every pair, this device, the other
// devices seen, files not applied and why, the tables synced and skipped,
// and conflicts. It reads; it does not sync.
//
// With --json and one pair, stdout is one JSON object; with several pairs,
// a JSON array of them.
func newStatusCmd(a *app) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "status [pair flags] [--json]",
		Short: "what this device knows: other devices, files waiting, held or broken, conflicts",
		Long: `Print what this device knows, without syncing: a verdict line first ("up to
date", files waiting, files held, folder unavailable), then this device, the
other devices and how far it applied their files, every file not applied and
why, the tables synced and skipped, and the number of conflicts.

Exit status 3 when files are held or broken, so a script or a systemd timer can
alert on it.`,
		Example: `  rowdrop status --db ~/notes/notes.db --folder ~/Sync/notes
  rowdrop status --config ~/.config/rowdrop/rowdrop.yaml --json | jq '.files'`,
		Args: noArgs,
		RunE: a.action(func(ctx context.Context, _ []string) error {
			return a.statusAll(ctx, asJSON)
		}),
	}
	addSettingFlags(cmd.Flags(), pairFlags)
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON on stdout (an object; an array when several databases are configured)")
	return cmd
}

// statusAll prints the status of every pair.
func (a *app) statusAll(ctx context.Context, asJSON bool) error {
	pairs, err := a.pairs()
	if err != nil {
		return err
	}
	var all []*rowdrop.Status
	for _, p := range pairs {
		st, err := a.status(ctx, p)
		if err != nil {
			return pairErr(pairs, p, err)
		}
		all = append(all, st)
	}
	if asJSON {
		var err error
		if len(all) == 1 {
			err = writeJSON(a.stdout, all[0])
		} else {
			err = writeJSON(a.stdout, all)
		}
		if err != nil {
			return err
		}
	} else {
		for i, st := range all {
			if i > 0 {
				fmt.Fprintln(a.stdout)
			}
			printStatus(a.stdout, st)
		}
	}
	return notAllApplied(all)
}

// notAllApplied returns the exit-status-3 error when any status lists a
// file held or broken, else nil.
func notAllApplied(all []*rowdrop.Status) error {
	var e notAllAppliedError
	for _, st := range all {
		e.held += len(st.TablesHeld)
		for _, f := range st.Files {
			switch f.Status {
			case importer.StatusHeld:
				e.held++
			case importer.StatusBroken:
				e.broken++
			}
		}
	}
	if e.held+e.broken > 0 {
		return &e
	}
	return nil
}

func (a *app) status(ctx context.Context, p pairConfig) (*rowdrop.Status, error) {
	s, err := a.open(ctx, p, lockWait, nil)
	if err != nil {
		return nil, err
	}
	defer s.Close()
	st, err := s.Status(ctx)
	if err != nil {
		return nil, err
	}
	// Stable output: the library lists devices and files in map order.
	sort.Slice(st.Devices, func(i, j int) bool { return st.Devices[i].ID < st.Devices[j].ID })
	sort.SliceStable(st.Files, func(i, j int) bool { return st.Files[i].Path < st.Files[j].Path })
	// Empty lists print as [] rather than null: friendlier to jq.
	if st.Devices == nil {
		st.Devices = []rowdrop.DeviceStatus{}
	}
	if st.Files == nil {
		st.Files = []rowdrop.FileStatus{}
	}
	if st.Synced == nil {
		st.Synced = []string{}
	}
	return st, nil
}

// writeJSON prints v as indented JSON on stdout.
func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func orNever(s string) string {
	if s == "" {
		return "never"
	}
	return s
}

// printStatus renders a status for people.
func printStatus(w io.Writer, st *rowdrop.Status) {
	fmt.Fprintf(w, "%s\n\n", st.Verdict)
	fmt.Fprintf(w, "database   %s\n", st.Database)
	fmt.Fprintf(w, "device     %s (id %s)\n", st.Name, st.Device)
	avail := "available"
	if !st.FolderOK {
		avail = "NOT AVAILABLE (mounted? right path?)"
	}
	fmt.Fprintf(w, "folder     %s (%s)\n", st.Folder, avail)
	fmt.Fprintf(w, "state      %s\n", st.StateDir)
	if st.App != "" {
		fmt.Fprintf(w, "app        %s (profile; app: none in the config turns it off)\n", st.App)
	}
	if st.NextSeq > 1 {
		fmt.Fprintf(w, "exported   %d file(s), last %s\n", st.NextSeq-1, orNever(st.LastExport))
	} else {
		fmt.Fprintf(w, "exported   nothing yet\n")
	}
	if st.Outbox > 0 {
		fmt.Fprintf(w, "outbox     %d file(s) wait for the folder\n", st.Outbox)
	}
	fmt.Fprintf(w, "imported   last %s\n", orNever(st.LastImport))
	if st.Held != "" {
		fmt.Fprintf(w, "HELD       this device's changes are not published: %s\n", st.Held)
	}
	if r := st.Recognised; r != nil {
		fmt.Fprintf(w, "recognised %s: the database was %s (%s); %d row(s) brought back, %d reverted (in the conflict log), %d kept as new edits\n",
			r.At, r.Kind, r.Reason, r.Restored, r.Reverted, r.Kept)
	}

	fmt.Fprintf(w, "\nother devices: %d\n", len(st.Devices))
	if len(st.Devices) > 0 {
		tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "  ID\tNAME\tPUBLISHED\tAPPLIED\tPENDING\tUNACKED")
		for _, d := range st.Devices {
			name := d.Name
			if name == "" {
				name = "?"
			}
			fmt.Fprintf(tw, "  %s\t%s\t%d\t%d\t%d\t%d\n", d.ID, name, d.Published, d.Applied, d.Pending, d.Unacked)
		}
		tw.Flush()
	}
	if len(st.Files) > 0 {
		fmt.Fprintf(w, "\nfiles not applied: %d\n", len(st.Files))
		for _, f := range st.Files {
			since := ""
			if f.Since != "" {
				since = " since " + f.Since
			}
			fmt.Fprintf(w, "  %s  %s%s\n      %s\n", f.Path, strings.ToUpper(f.Status), since, f.Reason)
			if f.BlocksLater > 0 {
				fmt.Fprintf(w, "      %d later file(s) of the same device wait behind it\n", f.BlocksLater)
			}
		}
	}
	if len(st.Warnings) > 0 {
		fmt.Fprintf(w, "\nwarnings:\n")
		for _, m := range st.Warnings {
			fmt.Fprintf(w, "  %s\n", m)
		}
	}
	for _, u := range st.Unknown {
		fmt.Fprintf(w, "  unknown file in a device directory (ignored): %s\n", u)
	}
	fmt.Fprintf(w, "\ntables synced: %s\n", strings.Join(st.Synced, ", "))
	for _, group := range []struct {
		title string
		list  []rowdrop.TableHeld
	}{{"tables held", st.TablesHeld}, {"tables catching up", st.CatchingUp}} {
		if len(group.list) > 0 {
			fmt.Fprintf(w, "%s (every other table keeps syncing):\n", group.title)
		}
		for _, t := range group.list {
			fmt.Fprintf(w, "  %s: %d file(s) of device %s from %s, since %s\n      %s\n", t.Table, t.Files, t.Device, t.First, t.Since, t.Reason)
		}
	}
	if c := st.HeldCopies; c != nil {
		fmt.Fprintf(w, "held copies: %d file(s), %.1f MB in %s (other devices' files with a held table part, kept until the part applies; a table excluded here for good keeps them)\n", c.Files, float64(c.Bytes)/1e6, c.Dir)
	}
	if len(st.Skipped) > 0 {
		fmt.Fprintf(w, "tables not synced:\n")
		for _, s := range st.Skipped {
			fmt.Fprintf(w, "  %s (%s): %s\n", s.Name, s.Kind, s.Reason)
		}
	}
	fmt.Fprintf(w, "\nconflicts: %d", st.Conflicts)
	if st.Conflicts > 0 {
		fmt.Fprint(w, " (see `rowdrop conflicts`)")
	}
	fmt.Fprintln(w)
}
