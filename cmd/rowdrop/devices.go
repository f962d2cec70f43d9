package main

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/rowdrop/rowdrop"
)

// cmdDevices lists the devices seen in the folder (and applied here), with
// their status; `devices forget ID` retires one for good.
func cmdDevices(ctx context.Context, a *app, args []string) error {
	fs := a.newFlags("[pair flags] [--json] | forget ID", pairFlags)
	asJSON := fs.Bool("json", false, "print JSON on stdout (an array of devices)")
	pos, err := a.parse(fs, args)
	if err != nil {
		return err
	}
	pairs, err := a.pairs()
	if err != nil {
		return err
	}
	if len(pos) > 0 && pos[0] != "list" {
		if pos[0] != "forget" {
			return usagef("unknown devices subcommand %q: use `devices` or `devices forget ID`", pos[0])
		}
		if len(pos) != 2 {
			return usagef("devices forget needs exactly one device ID (list them with `rowdrop devices`)")
		}
		if len(pairs) > 1 {
			return usagef("the config lists %d databases: add --db to pick the one whose device to forget", len(pairs))
		}
		s, err := a.open(ctx, pairs[0], lockWait, nil)
		if err != nil {
			return err
		}
		defer s.Close()
		if err := s.Forget(ctx, pos[1]); err != nil {
			return err
		}
		fmt.Fprintf(a.stdout, "device %s retired: collection no longer waits for it (on every device, once they see this device's ack.json). Its files stay; if it comes back it rejoins from a snapshot.\n", pos[1])
		return nil
	}
	if len(pos) > 1 {
		return usagef("unexpected argument %q (see `rowdrop devices -h`)", pos[1])
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
	if *asJSON {
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
