package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"text/tabwriter"

	"github.com/rowdrop/rowdrop/internal/db"
	"github.com/rowdrop/rowdrop/internal/inspect"
	"github.com/rowdrop/rowdrop/internal/profile"
)

// cmdInspect reads an app's database (read-only; no folder, no state
// directory) and prints what rowdrop would do with each table and why,
// warnings, and a config snippet (internal/inspect).
func cmdInspect(ctx context.Context, a *app, args []string) error {
	fs := a.newFlags("--db PATH [--app NAME|none] [--json]", 0)
	fs.String("db", "", "the app's SQLite `database` (or ROWDROP_DB)")
	appName := fs.String("app", "", "use this app `profile` (joplin, calibre, buku) or none, instead of recognising the app")
	asJSON := fs.Bool("json", false, "print the report as JSON on stdout")
	pos, err := a.parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usagef("unexpected argument %q (inspect takes only flags; see `rowdrop inspect -h`)", pos[0])
	}
	path := a.opts.v.GetString("db")
	if path == "" {
		return usagef("--db is required: the app's SQLite database to inspect (see `rowdrop inspect -h`)")
	}
	path = expandPath(path, "")
	if _, err := os.Stat(path); err != nil {
		return fmt.Errorf("database %s: %w (give the path of the app's SQLite file)", path, err)
	}
	profiles, err := profile.Builtin()
	if err != nil {
		return err
	}
	conn, err := db.OpenLive(path, true)
	if err != nil {
		return err
	}
	defer conn.Close()
	r, err := inspect.Run(conn, path, profiles, *appName)
	if err != nil {
		return fmt.Errorf("inspect %s: %w", path, err)
	}
	if *asJSON {
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
