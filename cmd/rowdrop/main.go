// Command rowdrop syncs a SQLite app database between devices that share
// only a folder (Syncthing, Dropbox, a USB stick).
//
//	rowdrop sync      --db PATH --folder DIR [--state DIR] [--device NAME]
//	rowdrop watch     (same flags)            sync whenever something changes
//	rowdrop status    [--json]                what this device knows
//	rowdrop conflicts [--json] | show ID | restore ID
//	rowdrop snapshot  [--json]                publish a snapshot for joining devices
//	rowdrop restore   [--force]               build the database from the folder (new machine)
//	rowdrop gc        [--dry-run] [--json]    delete this device's files nobody needs
//	rowdrop devices   [--json] | forget ID
//	rowdrop demo      [--keep]                three simulated devices
//	rowdrop --version                         module version and VCS revision
//
// Every subcommand takes the same pair flags, or --config naming a YAML file
// that lists several databases. See `rowdrop help`. The command tree is
// cobra's, built in commands.go (one constructor per command, listed in
// commandList); help, shell completion and man pages come from it.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"
)

func main() {
	os.Exit(run(context.Background(), os.Args[1:], os.Stdout, os.Stderr))
}

// usageError is a mistake in the command line or configuration: exit 2.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, a ...any) error { return &usageError{msg: fmt.Sprintf(format, a...)} }

// Exit statuses. exitNotAllApplied lets scripts and systemd (a unit's
// SuccessExitStatus, or OnFailure) alert on files that need a person.
const (
	exitOK            = 0
	exitFailure       = 1
	exitUsage         = 2
	exitNotAllApplied = 3 // sync, status: done, but files are held or broken
)

// notAllAppliedError is the outcome of a sync or status that did its work
// but found files held or broken: exit status 3.
type notAllAppliedError struct{ held, broken int }

func (e *notAllAppliedError) Error() string {
	return fmt.Sprintf("done, but not every file is applied: %d held, %d broken (`rowdrop status` says which and why; exit status 3)", e.held, e.broken)
}

// run is main without the process: it returns the exit status.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	a := &app{stdout: stdout, stderr: stderr}
	root := newRootCmd(a)
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	cmd, err := root.ExecuteContextC(ctx)
	if err == nil {
		return exitOK
	}
	// A command that finished and reported its problems itself.
	var coded interface{ ExitCode() int }
	if errors.As(err, &coded) {
		return coded.ExitCode()
	}
	var ue *usageError
	if !a.started && !errors.As(err, &ue) {
		// cobra refused the command line before the command ran.
		err = &usageError{msg: oneLine(err.Error())}
	}
	if a.name == "" && cmd != nil {
		a.name = commandName(cmd)
	}
	a.fail(err)
	var na *notAllAppliedError
	switch {
	case errors.As(err, &ue):
		return exitUsage
	case errors.As(err, &na):
		return exitNotAllApplied
	}
	return exitFailure
}

// app carries what every subcommand shares: output streams, the logger and
// the layered configuration.
type app struct {
	name   string
	stdout io.Writer
	stderr io.Writer
	log    *slog.Logger
	opts   *options
	term   *termWriter // stderr, when it is a terminal
	// progressEvery, if set, replaces progressLogEvery (tests).
	progressEvery time.Duration
	// started: the command's body began (a.action); an error before it
	// is cobra refusing the command line.
	started bool
}

// fail prints err as the single line a failing command leaves on stderr.
func (a *app) fail(err error) {
	msg := oneLine(err.Error())
	if a.opts != nil && a.opts.logJSON && a.log != nil {
		a.log.Error(msg)
		return
	}
	if a.name == "" {
		fmt.Fprintf(a.stderr, "rowdrop: %s\n", msg)
		return
	}
	fmt.Fprintf(a.stderr, "rowdrop %s: %s\n", a.name, msg)
}

// oneLine folds a (possibly joined) error message into one line: scripts
// and humans both expect one line per failure.
func oneLine(s string) string {
	s = strings.TrimSpace(s)
	s = strings.ReplaceAll(s, "\r", "")
	return strings.ReplaceAll(s, "\n", "; ")
}
