package main

import (
	"context"
	"fmt"
	"io"

	"github.com/rowdrop/rowdrop/internal/check"
	"github.com/rowdrop/rowdrop/internal/folder"
	"github.com/rowdrop/rowdrop/internal/rdfile"
)

// exitCheckProblems is check's exit status when it ran to the end and
// found problems: the project's "done, with problems" (0 ok, 1 failure,
// 2 usage, 3 done with problems).
const exitCheckProblems = 3

// checkProblems ends check after it printed its report of problems: run
// exits with its ExitCode and prints nothing more.
type checkProblems struct{ n int }

func (e *checkProblems) Error() string { return fmt.Sprintf("%d problem(s) found", e.n) }

// ExitCode is the process's exit status.
func (e *checkProblems) ExitCode() int { return exitCheckProblems }

// cmdCheck verifies the shared folder alone (no database, no state
// directory) and writes nothing: every file, per device, as internal/check
// describes. Exit 0 when clean, 3 when it found problems, 1 when the
// folder cannot be read.
func cmdCheck(ctx context.Context, a *app, args []string) error {
	fs := a.newFlags("--folder DIR [--read-data] [--json]", 0)
	// The setting's key, so ROWDROP_FOLDER works too; no config file is
	// read (check needs a folder alone).
	fs.String("folder", "", "the shared `folder` to check (or ROWDROP_FOLDER)")
	readData := fs.Bool("read-data", false, "also decode every changeset and open every snapshot's database (PRAGMA integrity_check)")
	asJSON := fs.Bool("json", false, "print the report as JSON on stdout")
	pos, err := a.parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usagef("unexpected argument %q (check takes only flags; see `rowdrop check -h`)", pos[0])
	}
	path := a.opts.v.GetString("folder")
	if path == "" {
		return usagef("--folder is required: the shared folder to check (see `rowdrop check -h`)")
	}
	path = expandPath(path, "")
	opt := check.Options{ReadData: *readData}
	if a.term != nil {
		opt.Progress = func(done, total int, rel string) {
			a.term.status(fmt.Sprintf("checking %d/%d %s", done, total, rel))
		}
	}
	r, err := check.Run(ctx, folder.New(path, rdfile.Limits{}), opt)
	if a.term != nil {
		a.term.clear()
	}
	if err != nil {
		return err
	}
	if *asJSON {
		if err := writeJSON(a.stdout, r); err != nil {
			return err
		}
	} else {
		printCheck(a.stdout, r)
	}
	if !r.OK {
		return &checkProblems{n: len(r.Problems)}
	}
	return nil
}

// printCheck writes the verdict line, then one line per problem, then the
// notes.
func printCheck(w io.Writer, r *check.Report) {
	fmt.Fprintln(w, r.Summary)
	for _, p := range r.Problems {
		fmt.Fprintln(w, p.String())
	}
	for _, n := range r.Notes {
		fmt.Fprintf(w, "note: %s\n", n)
	}
}
