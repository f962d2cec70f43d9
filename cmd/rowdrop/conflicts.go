package main

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

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

// cmdConflicts lists the conflict log, shows, restores or dismisses one
// entry, or prunes old entries. The work is the library's; this is the
// command line around it.
func cmdConflicts(ctx context.Context, a *app, args []string) error {
	fs := a.newFlags("[pair flags] [--table T] [--since WHEN] [--all] [--json] | show ID [--json] | restore ID | dismiss ID | prune --before WHEN", pairFlags)
	asJSON := fs.Bool("json", false, "print JSON on stdout (list: an array; show: an object); values are typed: numbers, strings, null, a BLOB as {\"blob\": \"<hex>\"}")
	table := fs.String("table", "", "list only the entries of this table")
	since := fs.String("since", "", "list only the entries logged since `WHEN`: a time (2026-01-02, 2026-01-02T15:04:05Z) or a span back from now (36h, 7d, 2w)")
	all := fs.Bool("all", false, "list dismissed entries too")
	before := fs.String("before", "", "prune: delete the entries logged before `WHEN` (as --since)")
	pos, err := a.parse(fs, args)
	if err != nil {
		return err
	}
	verb := "list"
	if len(pos) > 0 {
		verb = pos[0]
	}
	f := rowdrop.ConflictFilter{Table: *table, Dismissed: *all}
	if *since != "" {
		if f.Since, err = parseWhen(*since, time.Now()); err != nil {
			return usagef("--since: %v", err)
		}
	}
	switch verb {
	case "list":
		if len(pos) > 1 {
			return usagef("unexpected argument %q (see `rowdrop conflicts -h`)", pos[1])
		}
		pairs, err := a.pairs()
		if err != nil {
			return err
		}
		return a.listConflicts(ctx, pairs, f, *asJSON)
	case "prune":
		if len(pos) > 1 {
			return usagef("conflicts prune takes no argument but --before WHEN (got %q)", pos[1])
		}
		if *before == "" {
			return usagef("conflicts prune needs --before WHEN, e.g. --before 30d (entries logged before it are deleted)")
		}
		t, err := parseWhen(*before, time.Now())
		if err != nil {
			return usagef("--before: %v", err)
		}
		return a.pruneConflicts(ctx, t)
	case "show", "restore", "dismiss":
	default:
		return usagef("unknown conflicts subcommand %q: use `conflicts`, `conflicts show|restore|dismiss ID` or `conflicts prune --before WHEN`", verb)
	}
	if len(pos) != 2 {
		return usagef("conflicts %s needs exactly one ID (list them with `rowdrop conflicts`)", verb)
	}
	s, p, err := a.onePair(ctx, "conflict IDs")
	if err != nil {
		return err
	}
	defer s.Close()
	c, err := s.Conflict(pos[1])
	if err != nil {
		return err
	}
	switch verb {
	case "show":
		if *asJSON {
			return writeJSON(a.stdout, listedConflict{Database: p.DB, Conflict: c})
		}
		printConflict(a.stdout, c, deviceNames(ctx, s), true)
		return nil
	case "dismiss":
		if _, err := s.DismissConflict(c.ID); err != nil {
			return err
		}
		fmt.Fprintf(a.stdout, "dismissed conflict %s (%s %s): `rowdrop conflicts` no longer lists it; `conflicts show %s` still does\n", c.ID, c.Table, c.Key, c.ID)
		return nil
	}
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

// onePair opens the one pair a command about an entry of one database's
// log needs (what names "conflict IDs" for the message).
func (a *app) onePair(ctx context.Context, what string) (*rowdrop.Syncer, pairConfig, error) {
	pairs, err := a.pairs()
	if err != nil {
		return nil, pairConfig{}, err
	}
	if len(pairs) > 1 {
		return nil, pairConfig{}, usagef("%s are per database and the config lists %d: add --db to pick one", what, len(pairs))
	}
	s, err := a.open(ctx, pairs[0], lockWait, nil)
	return s, pairs[0], err
}

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
	fmt.Fprintln(a.stdout, "\n`rowdrop conflicts show ID` for details; `conflicts restore ID` writes the losing value back; `conflicts dismiss ID` hides an entry.")
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
