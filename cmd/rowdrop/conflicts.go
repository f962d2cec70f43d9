package main

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/rowdrop/rowdrop"
)

// kindText says in words what each conflict kind means.
var kindText = map[string]string{
	"cell":         "both devices edited this value; the later edit won",
	"local-kept":   "an incoming value lost to a local edit made before it was merged",
	"key":          "two different rows were inserted under one key; the later row won",
	"deleted":      "the row was deleted by a device that had not seen these edits",
	"edit-deleted": "this edit lost to a later delete of the row",
	"delete-lost":  "a delete lost to a later edit; the row stays",
}

// listedConflict is a conflict-log entry with the database it belongs to,
// so that the JSON of several databases stays one flat array.
type listedConflict struct {
	Database string `json:"database"`
	*rowdrop.Conflict
}

// newConflictsCmd is `rowdrop conflicts`: it lists the conflict log; its
// subcommands show one entry, or restore an entry's losing value as a new
// local edit.
func newConflictsCmd(a *app) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "conflicts [pair flags] [--json]",
		Short: "list the conflict log: values that lost a merge",
		Long: `List the conflict log: every value that lost a merge (two devices edited the same
cell, a row was deleted on one device and edited on another, two rows were
inserted under one key). Nothing is lost: ` + "`conflicts show ID`" + ` prints both values,
` + "`conflicts restore ID`" + ` writes the losing value back as a new edit.`,
		Example: `  rowdrop conflicts --db ~/notes/notes.db --folder ~/Sync/notes
  rowdrop conflicts show 3 --db ~/notes/notes.db --folder ~/Sync/notes
  rowdrop conflicts restore 3 --db ~/notes/notes.db --folder ~/Sync/notes`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 {
				return usagef("unknown conflicts subcommand %q: use `conflicts`, `conflicts show ID` or `conflicts restore ID`", args[0])
			}
			return nil
		},
		RunE: a.action(func(ctx context.Context, _ []string) error {
			pairs, err := a.pairs()
			if err != nil {
				return err
			}
			return a.listConflicts(ctx, pairs, asJSON)
		}),
	}
	// Persistent: the subcommands take the pair flags and --json too.
	addSettingFlags(cmd.PersistentFlags(), pairFlags)
	cmd.PersistentFlags().BoolVar(&asJSON, "json", false, "print JSON on stdout (list: an array; show: an object)")
	list := &cobra.Command{
		Use:     "list [pair flags] [--json]",
		Short:   "list the conflict log (the same as plain `conflicts`)",
		Long:    "List the conflict log, as plain `rowdrop conflicts` does.",
		Example: "  rowdrop conflicts list --db ~/notes/notes.db --folder ~/Sync/notes --json",
		Args:    noArgs,
		RunE:    cmd.RunE,
	}
	show := &cobra.Command{
		Use:   "show ID [pair flags] [--json]",
		Short: "one entry of the conflict log, with both values",
		Long: `Print one entry of the conflict log: what kind of conflict it was, the value kept
and the value lost with the devices that wrote them, their clocks, and the file
the losing value came from.`,
		Example: "  rowdrop conflicts show 3 --db ~/notes/notes.db --folder ~/Sync/notes",
		Args:    conflictIDArg("show"),
		RunE: a.action(func(ctx context.Context, args []string) error {
			s, p, c, err := a.openConflict(ctx, args[0])
			if err != nil {
				return err
			}
			defer s.Close()
			if asJSON {
				return writeJSON(a.stdout, listedConflict{Database: p.DB, Conflict: c})
			}
			printConflict(a.stdout, c, deviceNames(ctx, s), true)
			return nil
		}),
	}
	restore := &cobra.Command{
		Use:   "restore ID [pair flags]",
		Short: "write an entry's losing value back as a new local edit",
		Long: `Write the losing value of one conflict-log entry back into the database as a new
edit of this device; the next sync (or a running watch) shares it with every
device.`,
		Example: "  rowdrop conflicts restore 3 --db ~/notes/notes.db --folder ~/Sync/notes",
		Args:    conflictIDArg("restore"),
		RunE: a.action(func(ctx context.Context, args []string) error {
			s, _, c, err := a.openConflict(ctx, args[0])
			if err != nil {
				return err
			}
			defer s.Close()
			return a.restoreConflict(ctx, s, c)
		}),
	}
	cmd.AddCommand(list, show, restore)
	return cmd
}

// conflictIDArg checks that a conflicts subcommand got one positive ID.
func conflictIDArg(verb string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) != 1 {
			return usagef("conflicts %s needs exactly one ID (list them with `rowdrop conflicts`)", verb)
		}
		if id, err := strconv.ParseInt(args[0], 10, 64); err != nil || id <= 0 {
			return usagef("conflict ID %q is not a positive number (list them with `rowdrop conflicts`)", args[0])
		}
		return nil
	}
}

// openConflict opens the one pair and reads the conflict-log entry arg
// names. The caller closes the Syncer.
func (a *app) openConflict(ctx context.Context, arg string) (*rowdrop.Syncer, pairConfig, *rowdrop.Conflict, error) {
	id, _ := strconv.ParseInt(arg, 10, 64) // checked by conflictIDArg
	pairs, err := a.pairs()
	if err != nil {
		return nil, pairConfig{}, nil, err
	}
	if len(pairs) > 1 {
		return nil, pairConfig{}, nil, usagef("conflict IDs are per database and the config lists %d: add --db to pick one", len(pairs))
	}
	p := pairs[0]
	s, err := a.open(ctx, p, lockWait, nil)
	if err != nil {
		return nil, p, nil, err
	}
	c, err := s.Conflict(id)
	if err != nil {
		s.Close()
		return nil, p, nil, err
	}
	return s, p, c, nil
}

// restoreConflict writes c's losing value back as a local edit.
func (a *app) restoreConflict(ctx context.Context, s *rowdrop.Syncer, c *rowdrop.Conflict) error {
	id := c.ID
	if c.Restored != "" {
		a.log.Warn("this conflict was restored before; writing its losing value again", "id", id, "restored", c.Restored)
	}
	if err := s.RestoreConflict(ctx, id); err != nil {
		return err
	}
	cols := make([]string, 0, len(c.Loser))
	for _, col := range c.Columns {
		if v, ok := c.Loser[col]; ok {
			cols = append(cols, col+"="+v)
		}
	}
	fmt.Fprintf(a.stdout, "restored conflict %d: %s %s now has %s as a local edit; the next sync (or a running watch) shares it\n",
		id, c.Table, c.Key, strings.Join(cols, ", "))
	return nil
}

func (a *app) listConflicts(ctx context.Context, pairs []pairConfig, asJSON bool) error {
	out := []listedConflict{}
	names := map[string]string{}
	for _, p := range pairs {
		s, err := a.open(ctx, p, lockWait, nil)
		if err != nil {
			return pairErr(pairs, p, err)
		}
		cs, err := s.Conflicts()
		if err == nil && !asJSON {
			for k, v := range deviceNames(ctx, s) {
				names[k] = v
			}
		}
		s.Close()
		if err != nil {
			return pairErr(pairs, p, err)
		}
		for _, c := range cs {
			out = append(out, listedConflict{Database: p.DB, Conflict: c})
		}
	}
	if asJSON {
		return writeJSON(a.stdout, out)
	}
	if len(out) == 0 {
		fmt.Fprintln(a.stdout, "no conflicts")
		return nil
	}
	last := ""
	for _, c := range out {
		if len(pairs) > 1 && c.Database != last {
			fmt.Fprintf(a.stdout, "== %s\n", c.Database)
			last = c.Database
		}
		printConflict(a.stdout, c.Conflict, names, false)
	}
	fmt.Fprintln(a.stdout, "\n`rowdrop conflicts show ID` for details; `rowdrop conflicts restore ID` writes the losing value back.")
	return nil
}

// deviceNames maps device ids to names: this device and the ones seen.
func deviceNames(ctx context.Context, s *rowdrop.Syncer) map[string]string {
	id := s.Identity()
	m := map[string]string{id.Device: id.Name + " (this device)"}
	if st, err := s.Status(ctx); err == nil {
		for _, d := range st.Devices {
			if d.Name != "" {
				m[d.ID] = d.Name
			}
		}
	}
	return m
}

func who(names map[string]string, id string) string {
	if id == "" {
		return "?"
	}
	if n, ok := names[id]; ok {
		return n + " [" + id + "]"
	}
	return id
}

// printConflict renders one entry; full adds clocks, file and note.
func printConflict(w io.Writer, c *rowdrop.Conflict, names map[string]string, full bool) {
	restored := ""
	if c.Restored != "" {
		restored = "  (restored " + c.Restored + ")"
	}
	fmt.Fprintf(w, "#%d  %s  %s  table %s, key %s, %s%s\n", c.ID, c.At, c.Kind, c.Table, c.Key, strings.Join(c.Columns, ", "), restored)
	if full {
		if t, ok := kindText[c.Kind]; ok {
			fmt.Fprintf(w, "    %s\n", t)
		}
	}
	fmt.Fprintf(w, "    kept: %s  by %s\n", values(c.Columns, c.Winner), who(names, c.WinnerBy))
	fmt.Fprintf(w, "    lost: %s  by %s\n", values(c.Columns, c.Loser), who(names, c.LoserBy))
	if full {
		if c.WinnerAt != "" || c.LoserAt != "" {
			fmt.Fprintf(w, "    clocks: kept %s, lost %s\n", c.WinnerAt, c.LoserAt)
		}
		if c.File != "" {
			fmt.Fprintf(w, "    from file: %s\n", c.File)
		}
		if c.Note != "" {
			fmt.Fprintf(w, "    note: %s\n", c.Note)
		}
	}
}

// values renders column=value pairs in column order.
func values(cols []string, m map[string]string) string {
	if m == nil {
		return "(no row)"
	}
	parts := make([]string, 0, len(m))
	for _, col := range cols {
		if v, ok := m[col]; ok {
			parts = append(parts, col+"="+shorten(v, 60))
		}
	}
	if len(parts) == 0 {
		keys := make([]string, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			parts = append(parts, k+"="+shorten(m[k], 60))
		}
	}
	return strings.Join(parts, ", ")
}

// shorten cuts long values for the list view.
func shorten(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}
