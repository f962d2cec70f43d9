package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/rowdrop/rowdrop/internal/db"
	"github.com/rowdrop/rowdrop/internal/inspect"
	"github.com/rowdrop/rowdrop/internal/profile"
)

// newInspectCmd is `rowdrop inspect`: it reads an app's database
// (read-only; no folder, no state directory) and prints what rowdrop would
// do with each table and why, warnings, and a config snippet
// (internal/inspect).
func newInspectCmd(a *app) *cobra.Command {
	var appName string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "inspect --db PATH [--app NAME|none] [--json]",
		Short: "what rowdrop would do with each table of an app's database, and why",
		Long: `Read an app's database (only read: no folder, no state directory) and list
every table with what rowdrop would do and why: synced, excluded (SQLite's own,
virtual and shadow tables, the app profile's device-local tables) or skipped (no
primary key). It names the app profile it recognises (Joplin, calibre, buku),
warns of tables that look device-local (one-row tables with an id, names like
settings, *_state, sync_*, key_value*, absolute paths, counters), INTEGER keys
that apps reuse or renumber, and functions the app's triggers call that only
the app defines, and ends with a config snippet to paste into rowdrop.yaml.`,
		Example: `  rowdrop inspect --db ~/.config/joplin-desktop/database.sqlite
  rowdrop inspect --db "$HOME/Calibre Library/metadata.db" --app none --json`,
		Args: noArgs,
		RunE: a.action(func(_ context.Context, _ []string) error {
			return a.inspect(appName, asJSON)
		}),
	}
	cmd.Flags().String("db", "", "the app's SQLite `database` (or ROWDROP_DB)")
	_ = cmd.MarkFlagFilename("db")
	cmd.Flags().StringVar(&appName, "app", "", "use this app `profile` (joplin, calibre, buku) or none, instead of recognising the app")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the report as JSON on stdout")
	return cmd
}

// inspect reports on the database the flag or ROWDROP_DB names.
func (a *app) inspect(appName string, asJSON bool) error {
	path := a.opts.v.GetString("db")
	if path == "" {
		return usagef("--db is required: the app's SQLite database to inspect (see `rowdrop inspect --help`)")
	}
	path = expandPath(path, "")
	if _, err := os.Stat(path); err != nil {
		return fmt.Errorf("database %s: %w (give the path of the app's SQLite file)", path, err)
	}
	profiles, err := profile.Builtin()
	if err != nil {
		return err
	}
	if appName != "" && appName != profile.None {
		if _, err := profile.Find(profiles, appName); err != nil {
			return usagef("--app: %v", err)
		}
	}
	conn, err := db.OpenLive(path, true)
	if err != nil {
		return err
	}
	defer conn.Close()
	r, err := inspect.Run(conn, path, profiles, appName)
	if err != nil {
		return fmt.Errorf("inspect %s: %w", path, err)
	}
	if asJSON {
		return writeJSON(a.stdout, r)
	}
	printInspect(a.stdout, r)
	return nil
}

// printInspect renders a report for people.
func printInspect(w io.Writer, r *inspect.Report) {
	fmt.Fprintf(w, "database  %s\n", r.Database)
	if r.App != "" {
		fmt.Fprintf(w, "app       %s (its profile is used unless the config says app: none)\n", r.App)
	} else {
		fmt.Fprintf(w, "app       not recognised (no profile: the warnings below are guesses)\n")
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TABLE\tROWS\tACTION\tWHY")
	for _, t := range r.Tables {
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\n", t.Name, t.Rows, t.Action, t.Reason)
	}
	tw.Flush()
	if len(r.Warnings) > 0 {
		fmt.Fprintf(w, "\nwarnings:\n")
		for _, x := range r.Warnings {
			fmt.Fprintf(w, "  - %s\n", x.Message)
		}
	}
	fmt.Fprintf(w, "\nconfig snippet (paste into the database's entry of rowdrop.yaml):\n%s", r.Snippet)
}
