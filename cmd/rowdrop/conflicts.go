package main

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"

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

// cmdConflicts lists the conflict log, shows one entry, or restores an
// entry's losing value as a new local edit.
func cmdConflicts(ctx context.Context, a *app, args []string) error {
	fs := a.newFlags("[pair flags] [--json] | show ID [--json] | restore ID", pairFlags)
	asJSON := fs.Bool("json", false, "print JSON on stdout (list: an array; show: an object)")
	pos, err := a.parse(fs, args)
	if err != nil {
		return err
	}
	pairs, err := a.pairs()
	if err != nil {
		return err
	}
	if len(pos) == 0 || pos[0] == "list" {
		if len(pos) > 1 {
			return usagef("unexpected argument %q (see `rowdrop conflicts -h`)", pos[1])
		}
		return a.listConflicts(ctx, pairs, *asJSON)
	}
	verb := pos[0]
	if verb != "show" && verb != "restore" {
		return usagef("unknown conflicts subcommand %q: use `conflicts`, `conflicts show ID` or `conflicts restore ID`", verb)
	}
	if len(pos) != 2 {
		return usagef("conflicts %s needs exactly one ID (list them with `rowdrop conflicts`)", verb)
	}
	id, err := strconv.ParseInt(pos[1], 10, 64)
	if err != nil || id <= 0 {
		return usagef("conflict ID %q is not a positive number (list them with `rowdrop conflicts`)", pos[1])
	}
	if len(pairs) > 1 {
		return usagef("conflict IDs are per database and the config lists %d: add --db to pick one", len(pairs))
	}
	p := pairs[0]
	s, err := a.open(ctx, p, lockWait, nil)
	if err != nil {
		return err
	}
	defer s.Close()
	c, err := s.Conflict(id)
	if err != nil {
		return err
	}
	if verb == "show" {
		if *asJSON {
			return writeJSON(a.stdout, listedConflict{Database: p.DB, Conflict: c})
		}
		printConflict(a.stdout, c, deviceNames(ctx, s), true)
		return nil
	}
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
