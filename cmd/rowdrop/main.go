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
// that lists several databases. See `rowdrop help`.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime/debug"
	"strings"
)

const usageText = `rowdrop syncs a SQLite app database between devices that share only a folder
(Syncthing, Dropbox, a USB stick). It never copies the live database file.

Usage:
  rowdrop sync      [pair flags] [--json] [--confirm-mass-change]
                                            export this device's changes, import everyone else's;
                                            --confirm-mass-change publishes an export the mass-change
                                            guard held (it deletes or overwrites most of a table)
  rowdrop watch     [pair flags] [watch flags]  sync whenever the database or the folder changes,
                                            until SIGINT/SIGTERM; serves every configured database
  rowdrop adopt     [pair flags] [--dry-run] [--json]
                                            take the live database as the truth: print how many rows
                                            that inserts, changes and deletes on every device, then sync
                                            with its content winning as new edits (after a restore or a
                                            reset that was meant, or to confirm a mass change)
  rowdrop revert    [pair flags] [--dry-run] [--json] FILE
                                            undo a published changeset (a path in the shared folder, or
                                            <device>/<seq>) on every device: print what it deletes,
                                            re-inserts and writes back, then apply it as a new edit and
                                            sync; rows and cells changed since the file are skipped
  rowdrop status    [pair flags] [--json]   this device, the other devices, files pending/held/broken,
                                            synced and skipped tables, conflicts
  rowdrop conflicts [pair flags] [--json]   list the conflict log (values that lost a merge)
  rowdrop conflicts show ID [--json]        one entry with both values
  rowdrop conflicts restore ID              write the losing value back as a new local edit
  rowdrop snapshot  [pair flags] [--json]   export, then publish a snapshot of this device's merged
                                            state: new devices join from it, devices whose old files
                                            were collected re-base on it
  rowdrop gc        [pair flags] [--dry-run] [--json]
                                            delete this device's own old files that every active device
                                            has applied and the newest snapshot includes (watch does it daily);
                                            --dry-run lists what would go and which device holds the rest back
  rowdrop restore   --db PATH --folder DIR [--device NAME] [--force] [--if-folder-has-data]
                                            on a new machine: build the database from the shared folder
                                            (the app's schema and rows from the newest usable snapshot, then
                                            every later file) as a new device; never overwrites a database
                                            that holds tables unless --force; --if-folder-has-data exits 0
                                            when there is nothing to restore
  rowdrop devices   [pair flags] [--json]   the devices seen: name, last file, last acknowledgement,
                                            what they applied, status (active, silent, retired)
  rowdrop devices forget ID                 retire a device that is gone for good: collection stops
                                            waiting for it (its files stay)
  rowdrop check     --folder DIR [--read-data] [--json]
                                            verify every file in the shared folder (needs no database,
                                            writes nothing); exit 3 when it finds problems
  rowdrop demo      [--keep] [--touch always|when]
                                            three simulated devices sync a notes database (needs nothing else)
  rowdrop help                              this text
  rowdrop --version                         the module version and VCS revision this binary was built from

Pair flags (sync, watch, adopt, revert, status, conflicts, snapshot, restore, gc, devices; flags may come before or after arguments):
  --db PATH              the app's SQLite database
  --folder DIR           the shared folder (one per database; never put the database inside it)
  --state DIR            private state directory (default: $XDG_STATE_HOME/rowdrop/<db>-<hash>)
  --device NAME          this device's human name (default: the hostname); used on first run
  --include T1,T2        sync only these tables (default: every table with a primary key)
  --exclude T1,T2        never sync these tables
  --local-columns T.C,.. columns that stay on this device (never exported, never overwritten)
  --hints                opt into the fast capture path (small triggers record changed keys)
  --create-folder        create the shared folder on the first run if it does not exist
                         (without it a missing folder is refused before anything is written)
  --config FILE          YAML config; may list several databases (default:
                         $XDG_CONFIG_HOME/rowdrop/rowdrop.yaml when it exists)
  --max-changeset BYTES  largest decompressed file read from the folder (default 4 GiB)
  --max-header BYTES     largest file header read from the folder (default 1 MiB, at most 16 MiB)
  --max-value BYTES      largest TEXT or BLOB value read from the folder (default 256 MiB);
                         a file beyond a limit is refused (status says which limit)
  --log-json             logs as JSON lines on stderr (default: readable text)
  -v                     debug logs

Watch flags:
  --debounce 300ms       quiet period that ends a burst of changes
  --max-delay 3s         longest a continuous burst can postpone a sync
  --poll 1s              PRAGMA data_version poll and folder presence checks
  --rescan 30s           periodic folder rescan for filesystems without events (negative: off)
  --snapshot-every 168h  publish a snapshot this often (if anything changed; 0: never by time)
  --snapshot-every-files 500
                         publish a snapshot after this many files exported or applied (0: never)

Configuration: flags beat ROWDROP_* environment variables (ROWDROP_DB, ROWDROP_FOLDER,
ROWDROP_STATE, ROWDROP_DEVICE, ROWDROP_CONFIG, ROWDROP_LOG_JSON, ...), which beat the
config file. In the file, an entry of "databases:" beats the top-level keys.
Config keys besides the flags: sweep_every, stand_ins, identity (table: [columns]:
rows matched across devices by those UNIQUE NOT NULL columns, not by their id),
device_horizon (default 30d): how long another device may be silent before
status warns that it holds back the collection of old files, and
mass_change_percent (default 50), mass_change_min_rows (default 20): an export
that deletes or overwrites more than that share of a table of at least that
many rows is held until ` + "`rowdrop sync --confirm-mass-change`" + ` (a negative percent: off).
The config is checked before anything runs: an unknown key, a bad value (debounce: fast,
a negative duration or count) or two databases sharing one folder is refused (exit 2),
naming the file, the line and the key.

Output: --json prints JSON on stdout only (pipe it into jq); logs always go to stderr.
Exit status:
  0  success: everything was applied
  1  failure (one line on stderr says what failed and what to do)
  2  bad usage: an unknown command or flag, a mistake in the config file or a bad value
  3  sync, status: done, but files are held or broken ("rowdrop status" says which
     and why); check: problems found. Scripts and systemd can alert on it
`

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

// command is one subcommand: it parses its own flags from args.
type command func(ctx context.Context, a *app, args []string) error

var commands = map[string]command{
	"sync":      cmdSync,
	"watch":     cmdWatch,
	"status":    cmdStatus,
	"conflicts": cmdConflicts,
	"gc":        cmdGC,
	"devices":   cmdDevices,
	"demo":      cmdDemo,
	"snapshot":  cmdSnapshot,
	"adopt":     cmdAdopt,
	"revert":    cmdRevert,
	"restore":   cmdRestore,
	"check":     cmdCheck,
}

// run is main without the process: it returns the exit status.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usageText)
		return exitUsage
	}
	name := args[0]
	switch name {
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, usageText)
		return exitOK
	case "version", "-version", "--version":
		fmt.Fprint(stdout, versionText(debug.ReadBuildInfo()))
		return exitOK
	}
	cmd, ok := commands[name]
	if !ok {
		fmt.Fprintf(stderr, "rowdrop: unknown command %q: run `rowdrop help` for the list\n", name)
		return exitUsage
	}
	a := &app{name: name, stdout: stdout, stderr: stderr}
	err := cmd(ctx, a, args[1:])
	if err == nil || errors.Is(err, errHelp) {
		return exitOK
	}
	// A command that finished and reported its problems itself.
	var coded interface{ ExitCode() int }
	if errors.As(err, &coded) {
		return coded.ExitCode()
	}
	a.fail(err)
	var ue *usageError
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
	usage  func()      // prints the subcommand's usage on stdout
	term   *termWriter // stderr, when it is a terminal
}

// fail prints err as the single line a failing command leaves on stderr.
func (a *app) fail(err error) {
	msg := oneLine(err.Error())
	if a.opts != nil && a.opts.logJSON && a.log != nil {
		a.log.Error(msg)
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
