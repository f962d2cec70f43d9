package main

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/spf13/cobra"

	"github.com/rowdrop/rowdrop"
)

// newDevicesCmd is `rowdrop devices`: it lists the devices seen in the
// folder (and applied here), with their status; `devices forget ID`
// retires one for good.
func newDevicesCmd(a *app) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "devices [pair flags] [--json]",
		Short: "the devices seen: name, last file, last acknowledgement, status",
		Long: `List the devices seen in the shared folder: name, last file, last
acknowledgement, what each applied, and status (active, silent, retired). A
silent device holds back the deletion of old files; ` + "`devices forget ID`" + ` retires a
device that is gone for good.`,
		Example: `  rowdrop devices --db ~/notes/notes.db --folder ~/Sync/notes
  rowdrop devices forget 3f9c2a1b --db ~/notes/notes.db --folder ~/Sync/notes`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 {
				return usagef("unknown devices subcommand %q: use `devices`, `devices forget ID`, `devices approve ID`, `devices revoke ID` or `devices pending`", args[0])
			}
			return nil
		},
		RunE: a.action(func(ctx context.Context, _ []string) error {
			return a.listDevices(ctx, asJSON)
		}),
	}
	// Persistent: the subcommands take the pair flags and --json too.
	addSettingFlags(cmd.PersistentFlags(), pairFlags)
	cmd.PersistentFlags().BoolVar(&asJSON, "json", false, "print JSON on stdout (an array of devices)")
	list := &cobra.Command{
		Use:     "list [pair flags] [--json]",
		Short:   "list the devices (the same as plain `devices`)",
		Long:    "List the devices seen, as plain `rowdrop devices` does.",
		Example: "  rowdrop devices list --db ~/notes/notes.db --folder ~/Sync/notes --json",
		Args:    noArgs,
		RunE:    cmd.RunE,
	}
	forget := &cobra.Command{
		Use:   "forget ID [pair flags]",
		Short: "retire a device that is gone for good",
		Long: `Retire a device that is gone for good: the deletion of old files stops waiting
for it, on every device once they see this device's acknowledgement. Its files
stay; if it comes back, it rejoins from a snapshot.`,
		Example: "  rowdrop devices forget 3f9c2a1b --db ~/notes/notes.db --folder ~/Sync/notes",
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) != 1 {
				return usagef("devices forget needs exactly one device ID (list them with `rowdrop devices`)")
			}
			return nil
		},
		RunE: a.action(func(ctx context.Context, args []string) error {
			return a.forgetDevice(ctx, args[0])
		}),
	}
	cmd.AddCommand(list, forget)
	cmd.AddCommand(newEnrollCmds(a)...)
	return cmd
}

// forgetDevice retires the device id in the one pair.
func (a *app) forgetDevice(ctx context.Context, id string) error {
	pairs, err := a.pairs()
	if err != nil {
		return err
	}
	if len(pairs) > 1 {
		return usagef("the config lists %d databases: add --db to pick the one whose device to forget", len(pairs))
	}
	s, err := a.open(ctx, pairs[0], lockWait, nil)
	if err != nil {
		return err
	}
	defer s.Close()
	if err := s.Forget(ctx, id); err != nil {
		return err
	}
	fmt.Fprintf(a.stdout, "device %s retired: collection no longer waits for it (on every device, once they see this device's ack.json). Its files stay; if it comes back it rejoins from a snapshot.\n", id)
	return nil
}

// listDevices prints the devices of every pair.
func (a *app) listDevices(ctx context.Context, asJSON bool) error {
	pairs, err := a.pairs()
	if err != nil {
		return err
	}
	type listed struct {
		Database string `json:"database"`
		rowdrop.DeviceInfo
	}
	out := []listed{}
	for _, p := range pairs {
		s, err := a.open(ctx, p, lockWait, nil)
		if err != nil {
			return pairErr(pairs, p, err)
		}
		devs, err := s.Devices(ctx)
		s.Close()
		if err != nil {
			return pairErr(pairs, p, err)
		}
		for _, d := range devs {
			out = append(out, listed{Database: p.DB, DeviceInfo: d})
		}
	}
	if asJSON {
		return writeJSON(a.stdout, out)
	}
	db := ""
	for _, d := range out {
		if d.Database != db {
			if db != "" {
				fmt.Fprintln(a.stdout)
			}
			db = d.Database
			fmt.Fprintf(a.stdout, "database %s\n", db)
		}
		printDevice(a.stdout, d.DeviceInfo)
	}
	return nil
}

func printDevice(w io.Writer, d rowdrop.DeviceInfo) {
	name := d.Name
	if name == "" {
		name = "?"
	}
	status := strings.ToUpper(d.Status)
	if len(d.RetiredBy) > 0 {
		status += " by " + strings.Join(d.RetiredBy, ", ")
	}
	fmt.Fprintf(w, "  %s  %s  %s\n", d.ID, name, status)
	line := func(label, format string, a ...any) {
		fmt.Fprintf(w, "      %-13s %s\n", label, fmt.Sprintf(format, a...))
	}
	last := "no changeset"
	if d.LastFile > 0 {
		last = fmt.Sprintf("last %d, written %s", d.LastFile, orNever(d.LastFileT))
	}
	line("files", "%d changeset(s), %d snapshot(s), %d bytes; %s", d.Files, d.Snapshots, d.Bytes, last)
	line("last ack", "%s", orNever(d.LastAck))
	if d.Status != rowdrop.DeviceSelf {
		line("applied here", "its files up to %d", d.AppliedHere)
	}
	if len(d.Applied) > 0 {
		ids := make([]string, 0, len(d.Applied))
		for id := range d.Applied {
			ids = append(ids, id)
		}
		sort.Strings(ids)
		parts := make([]string, len(ids))
		for i, id := range ids {
			parts[i] = fmt.Sprintf("%s:%d", id, d.Applied[id])
		}
		line("it applied", "%s", strings.Join(parts, " "))
	}
	if d.Problem != "" {
		line("problem", "%s", d.Problem)
	}
	if d.Status == rowdrop.DeviceSilent {
		line("", "holds back collection; if it is gone for good: rowdrop devices forget %s", d.ID)
	}
}
