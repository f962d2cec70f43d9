package main

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

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
// subcommands show one entry, restore an entry's losing value as a new
// local edit, dismiss an entry, or prune old ones. The work is the
// library's (conflicts.go of package rowdrop); this is the command line.
func newConflictsCmd(a *app) *cobra.Command {
	var asJSON, all bool
	var table, since, before string
	cmd := &cobra.Command{
		Use:   "conflicts [pair flags] [--table T] [--since WHEN] [--all] [--json]",
		Short: "list the conflict log: values that lost a merge",
		Long: `List the conflict log: every value that lost a merge (two devices edited the same
cell, a row was deleted on one device and edited on another, two rows were
inserted under one key). One entry is one row and one pair of edits, with every
cell where they met; a cell the app's triggers set (an updated_at) is no
conflict of its own. An entry's ID is the same on every device. Nothing is lost:
` + "`conflicts show ID`" + ` prints both values, ` + "`conflicts restore ID`" + ` writes the losing
value back as a new edit, ` + "`conflicts dismiss ID`" + ` hides an entry you have dealt
with, ` + "`conflicts prune --before WHEN`" + ` deletes old entries.

WHEN is a date or time (2026-01-02, 2026-01-02 15:04, 2026-01-02T15:04:05Z;
local time unless a zone is given) or a span back from now (90m, 36h, 7d, 2w).
With --json, values are typed: numbers, strings, null, a BLOB as
{"blob": "<hex>"}.`,
		Example: `  rowdrop conflicts --db ~/notes/notes.db --folder ~/Sync/notes
  rowdrop conflicts --table notes --since 7d --db ~/notes/notes.db --folder ~/Sync/notes
  rowdrop conflicts show 3fa81c09be27 --db ~/notes/notes.db --folder ~/Sync/notes
  rowdrop conflicts restore 3fa81c09be27 --db ~/notes/notes.db --folder ~/Sync/notes
  rowdrop conflicts dismiss 3fa81c09be27 --db ~/notes/notes.db --folder ~/Sync/notes
  rowdrop conflicts prune --before 90d --db ~/notes/notes.db --folder ~/Sync/notes`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 {
				return usagef("unknown conflicts subcommand %q: use `conflicts`, `conflicts show|restore|dismiss ID` or `conflicts prune --before WHEN`", args[0])
			}
			return nil
		},
		RunE: a.action(func(ctx context.Context, _ []string) error {
			f := rowdrop.ConflictFilter{Table: table, Dismissed: all}
			if since != "" {
				t, err := parseWhen(since, time.Now())
				if err != nil {
					return usagef("--since: %v", err)
				}
				f.Since = t
			}
			pairs, err := a.pairs()
			if err != nil {
				return err
			}
			return a.listConflicts(ctx, pairs, f, asJSON)
		}),
	}
	// Persistent: the subcommands take the pair flags and --json too.
	addSettingFlags(cmd.PersistentFlags(), pairFlags)
	cmd.PersistentFlags().BoolVar(&asJSON, "json", false, "print JSON on stdout (list: an array; show: an object); values typed: numbers, strings, null, a BLOB as {\"blob\": \"<hex>\"}")
	listFlags := func(c *cobra.Command) {
		c.Flags().StringVar(&table, "table", "", "list only the entries of this `table`")
		c.Flags().StringVar(&since, "since", "", "list only the entries logged since `WHEN`: a time (2026-01-02, 2026-01-02T15:04:05Z) or a span back from now (36h, 7d, 2w)")
		c.Flags().BoolVar(&all, "all", false, "list dismissed entries too")
	}
	listFlags(cmd)
	list := &cobra.Command{
		Use:     "list [pair flags] [--table T] [--since WHEN] [--all] [--json]",
		Short:   "list the conflict log (the same as plain `conflicts`)",
		Long:    "List the conflict log, as plain `rowdrop conflicts` does.",
		Example: "  rowdrop conflicts list --db ~/notes/notes.db --folder ~/Sync/notes --json",
		Args:    noArgs,
		RunE:    cmd.RunE,
	}
	listFlags(list)
	show := &cobra.Command{
		Use:   "show ID [pair flags] [--json]",
		Short: "one entry of the conflict log, with both values",
		Long: `Print one entry of the conflict log (dismissed or not): what kind of conflict it
was, the values kept and the values lost with the devices that wrote them,
their clocks, and the file the losing values came from. ID is the entry's id,
at least its first 4 characters, or the number older versions printed.`,
		Example: "  rowdrop conflicts show 3fa81c09be27 --db ~/notes/notes.db --folder ~/Sync/notes",
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
		Short: "write an entry's losing values back as a new local edit",
		Long: `Write the losing values of one conflict-log entry back into the database as a new
edit of this device; the next sync (or a running watch) shares it with every
device.`,
		Example: "  rowdrop conflicts restore 3fa81c09be27 --db ~/notes/notes.db --folder ~/Sync/notes",
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
	dismiss := &cobra.Command{
		Use:   "dismiss ID [pair flags]",
		Short: "hide an entry you have dealt with from the list",
		Long: `Hide one entry from ` + "`rowdrop conflicts`" + ` and from the count in status: its values
are not touched, ` + "`conflicts show ID`" + ` and ` + "`conflicts --all`" + ` still find it. Only this
device's log changes.`,
		Example: "  rowdrop conflicts dismiss 3fa81c09be27 --db ~/notes/notes.db --folder ~/Sync/notes",
		Args:    conflictIDArg("dismiss"),
		RunE: a.action(func(ctx context.Context, args []string) error {
			s, _, c, err := a.openConflict(ctx, args[0])
			if err != nil {
				return err
			}
			defer s.Close()
			if _, err := s.DismissConflict(c.ID); err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "dismissed conflict %s (%s %s): `rowdrop conflicts` no longer lists it; `conflicts show %s` still does\n", c.ID, c.Table, c.Key, c.ID)
			return nil
		}),
	}
	prune := &cobra.Command{
		Use:   "prune --before WHEN [pair flags]",
		Short: "delete the entries logged before a time",
		Long: `Delete the conflict-log entries logged before WHEN: a date or time (2026-01-02,
2026-01-02 15:04, 2026-01-02T15:04:05Z) or a span back from now (90d, 2w).
Their losing values can no longer be restored. Only this device's log changes.`,
		Example: "  rowdrop conflicts prune --before 90d --db ~/notes/notes.db --folder ~/Sync/notes",
		Args:    noArgs,
		RunE: a.action(func(ctx context.Context, _ []string) error {
			if before == "" {
				return usagef("conflicts prune needs --before WHEN, e.g. --before 30d (entries logged before it are deleted)")
			}
			t, err := parseWhen(before, time.Now())
			if err != nil {
				return usagef("--before: %v", err)
			}
			return a.pruneConflicts(ctx, t)
		}),
	}
	prune.Flags().StringVar(&before, "before", "", "delete the entries logged before `WHEN`")
	cmd.AddCommand(list, show, restore, dismiss, prune)
	return cmd
}

// conflictIDArg checks that a conflicts subcommand got one ID.
func conflictIDArg(verb string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) != 1 || strings.TrimSpace(args[0]) == "" {
			return usagef("conflicts %s needs exactly one ID (list them with `rowdrop conflicts`)", verb)
		}
		return nil
	}
}

// openConflict opens the one pair and reads the conflict-log entry arg
// names. The caller closes the Syncer.
func (a *app) openConflict(ctx context.Context, arg string) (*rowdrop.Syncer, pairConfig, *rowdrop.Conflict, error) {
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
	c, err := s.Conflict(arg)
	if err != nil {
		s.Close()
		return nil, p, nil, err
	}
	return s, p, c, nil
}

// restoreConflict writes c's losing values back as a local edit.
func (a *app) restoreConflict(ctx context.Context, s *rowdrop.Syncer, c *rowdrop.Conflict) error {
	if c.Restored != "" {
		a.log.Warn("this conflict was restored before; writing its losing value again", "id", c.ID, "restored", c.Restored)
	}
	if err := s.RestoreConflict(ctx, c.ID); err != nil {
		return err
	}
	cols := make([]string, 0, len(c.Loser))
	for _, col := range c.Columns {
		if v, ok := c.Loser[col]; ok {
			cols = append(cols, col+"="+v)
		}
	}
	fmt.Fprintf(a.stdout, "restored conflict %s: %s %s now has %s as a local edit; the next sync (or a running watch) shares it\n",
		c.ID, c.Table, c.Key, strings.Join(cols, ", "))
	return nil
}

// pruneConflicts deletes every pair's entries logged before t.
func (a *app) pruneConflicts(ctx context.Context, before time.Time) error {
	pairs, err := a.pairs()
	if err != nil {
		return err
	}
	for _, p := range pairs {
		s, err := a.open(ctx, p, lockWait, nil)
		if err != nil {
			return pairErr(pairs, p, err)
		}
		n, err := s.PruneConflicts(before)
		s.Close()
		if err != nil {
			return pairErr(pairs, p, err)
		}
		fmt.Fprintf(a.stdout, "%s: deleted %d conflict-log entr%s logged before %s\n", p.DB, n, plural(n, "y", "ies"), before.Format(time.RFC3339))
	}
	return nil
}

func (a *app) listConflicts(ctx context.Context, pairs []pairConfig, f rowdrop.ConflictFilter, asJSON bool) error {
	out := []listedConflict{}
	names := map[string]string{}
	for _, p := range pairs {
		s, err := a.open(ctx, p, lockWait, nil)
		if err != nil {
			return pairErr(pairs, p, err)
		}
		cs, err := s.ConflictLog(f)
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
	fmt.Fprintln(a.stdout, "\n`rowdrop conflicts show ID` for details; `conflicts restore ID` writes the losing values back; `conflicts dismiss ID` hides an entry.")
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
	if c.Dismissed != "" {
		restored += "  (dismissed " + c.Dismissed + ")"
	}
	fmt.Fprintf(w, "%s  %s  %s  table %s, key %s, %s%s\n", c.ID, c.At, c.Kind, c.Table, c.Key, strings.Join(c.Columns, ", "), restored)
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
