package main

import (
	"context"
	"fmt"
	"io"
	"path/filepath"

	"github.com/spf13/cobra"

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

// newCheckCmd is `rowdrop check`: it verifies the shared folder alone (no
// database, no state directory) and writes nothing: every file, per
// device, as internal/check describes. Exit 0 when clean, 3 when it found
// problems, 1 when the folder cannot be read.
func newCheckCmd(a *app) *cobra.Command {
	var readData, asJSON bool
	var passFile string
	cmd := &cobra.Command{
		Use:   "check --folder DIR [--read-data] [--json]",
		Short: "verify every file in the shared folder",
		Long: `Verify every file in the shared folder: headers, checksums, each device's
sequence without gaps, snapshots, acknowledgements; report what is damaged,
missing or foreign. It needs no database and writes nothing. --read-data also
decodes every changeset and opens every snapshot. Exit status 3 when it finds
problems.`,
		Example: `  rowdrop check --folder ~/Sync/notes
  rowdrop check --folder ~/Sync/notes --read-data --json`,
		Args: noArgs,
		RunE: a.action(func(ctx context.Context, _ []string) error {
			return a.check(ctx, readData, asJSON, passFile)
		}),
	}
	// The setting's key, so ROWDROP_FOLDER works too; no config file is
	// read (check needs a folder alone).
	cmd.Flags().String("folder", "", "the shared `folder` to check (or ROWDROP_FOLDER)")
	_ = cmd.MarkFlagDirname("folder")
	cmd.Flags().BoolVar(&readData, "read-data", false, "also decode every changeset and open every snapshot's database (PRAGMA integrity_check)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the report as JSON on stdout")
	cmd.Flags().StringVar(&passFile, "passphrase-file", "", "an encrypted folder's passphrase, first line of this file (or ROWDROP_PASSPHRASE, or asked)")
	return cmd
}

// check verifies the folder the flag or ROWDROP_FOLDER names.
func (a *app) check(ctx context.Context, readData, asJSON bool, passFile string) error {
	path := a.opts.v.GetString("folder")
	if path == "" {
		return usagef("--folder is required: the shared folder to check (see `rowdrop check --help`)")
	}
	path = expandPath(path, "")
	opt := check.Options{ReadData: readData}
	prog := a.newProgress(filepath.Base(path))
	opt.Progress = func(done, total int, rel string) {
		prog.set(fmt.Sprintf("checking %d/%d %s", done, total, rel))
	}
	shared := folder.New(path, rdfile.Limits{})
	if shared.Keyed() {
		pass, err := readPassphrase(a, passFile, "folder passphrase: ")
		if err != nil {
			prog.done()
			return err
		}
		if shared, err = shared.Unlock(pass); err != nil {
			prog.done()
			return err
		}
	}
	r, err := check.Run(ctx, shared, opt)
	prog.done()
	if err != nil {
		return err
	}
	if asJSON {
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
