package main

// The command tree, on cobra. Help, shell completion and man pages are
// generated from these definitions, so each command says what it does once.
//
// Adding a command (every command follows this pattern):
//
//  1. Write a constructor newFooCmd(a *app) *cobra.Command in foo.go with
//     Use (the synopsis: "foo [pair flags] [--json] ID"), Short (one line
//     for the command list), Long (what it does, in words a user knows),
//     Example (real command lines, indented two spaces), Args (noArgs, or
//     a func returning usagef(...) naming what is expected), and
//     RunE: a.action(func(ctx context.Context, args []string) error {...}).
//     a.action layers the configuration (flags over ROWDROP_* over the
//     config file) and starts logging before the body runs: the body uses
//     a.pairs(), a.open(...), a.log, a.stdout.
//  2. Shared flags come from the settings table (settings.go):
//     addSettingFlags(cmd.Flags(), pairFlags) gives --db, --folder, --state,
//     --device, --config and the rest; the log flags (--log-json, -v) are
//     on the root for every command. A command's own flags are plain pflag
//     calls on cmd.Flags(), bound to variables the constructor declares:
//     cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON on stdout").
//     A command with subcommands (conflicts show, devices forget) puts the
//     shared flags on cmd.PersistentFlags() so its subcommands have them,
//     and adds its subcommands with cmd.AddCommand(newFooBarCmd(a, ...)).
//  3. List a top-level command in commandList, in the order help shows.
//  4. Exit statuses: return usagef(...) for a mistake in the command line
//     or config (exit 2), any other error for a failure (exit 1, its
//     message printed as one line on stderr), a *notAllAppliedError when the
//     work was done but files are held or broken (exit 3); an error with an
//     ExitCode() int method ends with that status and prints nothing more.
//
// TestEveryCommandHasHelp checks that every command has a Short, a Long
// and an Example, and answers --help.

import (
	"context"
	"fmt"
	"os"
	"runtime/debug"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/cobra/doc"
	"github.com/spf13/pflag"
)

// commandList is every top-level command, in the order `rowdrop help`
// lists them.
func commandList(a *app) []*cobra.Command {
	return []*cobra.Command{
		newSyncCmd(a),
		newWatchCmd(a),
		newStatusCmd(a),
		newConflictsCmd(a),
		newRestoreCmd(a),
		newSnapshotCmd(a),
		newDevicesCmd(a),
		newKeyCmd(a),
		newGCCmd(a),
		newCheckCmd(a),
		newInspectCmd(a),
		newAdoptCmd(a),
		newRevertCmd(a),
		newUninstallCmd(a),
		newDemoCmd(a),
		newVersionCmd(a),
		newManCmd(a),
	}
}

const rootLong = `rowdrop syncs a SQLite app database between devices that share only a folder
(Syncthing, Dropbox, a USB stick). It never copies the live database file: it
writes this device's changes as files into the shared folder and merges the
other devices' files into the database, row by row and column by column.

Every command that speaks of a database takes the pair flags --db PATH and
--folder DIR (and --state, --device, --include, --exclude, ...), or --config
FILE naming a YAML file that lists several databases; ` + "`rowdrop CMD --help`" + ` lists
them with the command's own flags.

Configuration: flags beat ROWDROP_* environment variables (ROWDROP_DB,
ROWDROP_FOLDER, ROWDROP_STATE, ROWDROP_DEVICE, ROWDROP_CONFIG, ROWDROP_LOG_JSON,
...), which beat the config file (default: $XDG_CONFIG_HOME/rowdrop/rowdrop.yaml
when it exists). In the file, an entry of "databases:" beats the top-level keys.
Config keys besides the flags: sweep_every, stand_ins, app (a profile of
configs/apps: joplin, calibre, buku; default: recognised from the schema; none:
off), after_apply (table: SQL run after each merged row), device_horizon (default
30d): how long another device may be silent before status warns that it holds
back the collection of old files, and mass_change_percent (default 50),
mass_change_min_rows (default 20): an export that deletes or overwrites more
than that share of a table of at least that many rows is held until
` + "`rowdrop sync --confirm-mass-change`" + ` (a negative percent: off). The config is checked
before anything runs: an unknown key, a bad value (debounce: fast, a negative
duration or count) or two databases sharing one folder is refused (exit 2),
naming the file, the line and the key.

Output: --json prints JSON on stdout only (pipe it into jq); logs always go to
stderr. When stderr is not a terminal (systemd, a log file), long work logs a
progress line every few seconds.

Exit status:
  0  success: everything was applied
  1  failure (one line on stderr says what failed and what to do)
  2  bad usage: an unknown command or flag, a mistake in the config file or a bad value
  3  sync, status: done, but files are held or broken ("rowdrop status" says which
     and why); check: problems found. Scripts and systemd can alert on it`

const rootExample = `  rowdrop demo                # three simulated devices, needs nothing else
  rowdrop sync    --db ~/notes/notes.db --folder ~/Sync/notes --device laptop
  rowdrop watch   --db ~/notes/notes.db --folder ~/Sync/notes
  rowdrop status  --db ~/notes/notes.db --folder ~/Sync/notes
  rowdrop restore --db ~/notes/notes.db --folder ~/Sync/notes --device desktop  # a second machine`

// newRootCmd builds the whole command tree for one invocation.
func newRootCmd(a *app) *cobra.Command {
	root := &cobra.Command{
		Use:     "rowdrop",
		Short:   "sync a SQLite app database between devices that share a folder",
		Long:    rootLong,
		Example: rootExample,
		Version: versionText(debug.ReadBuildInfo()),
		// Errors are printed once, as one line, by run; a mistake does not
		// print the whole usage.
		SilenceErrors: true,
		SilenceUsage:  true,
		// The man pages carry no generation date: the same binary makes
		// the same pages.
		DisableAutoGenTag: true,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				return nil
			}
			hint := ""
			if s := cmd.SuggestionsFor(args[0]); len(s) > 0 {
				hint = fmt.Sprintf(" (did you mean %q?)", s[0])
			}
			return usagef("unknown command %q%s: run `rowdrop help` for the list", args[0], hint)
		},
		// Bare `rowdrop`: the help, on stderr, exit 2 (it is a mistake in
		// a script).
		RunE: func(cmd *cobra.Command, args []string) error {
			cmd.SetOut(a.stderr)
			_ = cmd.Help()
			return exitStatus(exitUsage)
		},
	}
	root.SetVersionTemplate("{{.Version}}")
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		msg := oneLine(err.Error())
		// The flag package took -json for --json; pflag reads it as -j -s
		// -o -n. Say what to type instead.
		if _, arg, ok := strings.Cut(msg, "unknown shorthand flag: "); ok {
			if _, word, ok := strings.Cut(arg, " in -"); ok && len(word) > 1 {
				return usagef("%s: long flags take two dashes: --%s (see `%s --help`)", msg, word, c.CommandPath())
			}
		}
		return usagef("%s (see `%s --help`)", msg, c.CommandPath())
	})
	// --v is the flag package's spelling of -v: keep it working.
	root.SetGlobalNormalizationFunc(func(_ *pflag.FlagSet, name string) pflag.NormalizedName {
		if name == "v" {
			name = "verbose"
		}
		return pflag.NormalizedName(name)
	})
	root.SuggestionsMinimumDistance = 2
	addSettingFlags(root.PersistentFlags(), logFlags)
	// Help lists the commands in commandList's order, everyday ones first.
	cobra.EnableCommandSorting = false
	root.AddCommand(commandList(a)...)
	// Made now rather than at Execute, so that the man pages list them.
	root.InitDefaultHelpCmd()
	root.InitDefaultCompletionCmd()
	// Each Use is the full synopsis: cobra adds no "[flags]" to it.
	var walk func(*cobra.Command)
	walk = func(c *cobra.Command) {
		c.DisableFlagsInUseLine = true
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(root)
	return root
}

// exitStatus ends a command with the status, printing nothing more.
type exitStatus int

func (e exitStatus) Error() string { return fmt.Sprintf("exit status %d", int(e)) }

// ExitCode is the process's exit status.
func (e exitStatus) ExitCode() int { return int(e) }

// flagGroup names a set of shared flags a command has.
type flagGroup int

const (
	logFlags   flagGroup = 1 << iota // every command: --log-json, -v (on the root)
	pairFlags                        // commands that speak of (database, folder) pairs
	watchFlags                       // watch's pacing and snapshots
)

// addSettingFlags defines the flags of the settings in groups on fs.
func addSettingFlags(fs *pflag.FlagSet, groups flagGroup) {
	for _, s := range settings {
		if s.flag == "" || groups&s.group == 0 {
			continue
		}
		switch s.kind {
		case kindBool:
			fs.BoolP(s.flag, s.short, false, s.help)
		case kindDuration:
			def, _ := s.def.(time.Duration)
			fs.DurationP(s.flag, s.short, def, s.help)
		case kindInt:
			def, _ := s.def.(int)
			fs.Int64P(s.flag, s.short, int64(def), s.help)
		default:
			fs.StringP(s.flag, s.short, "", s.help)
		}
		if s.kind == kindPath {
			// Shell completion offers directories for a folder, files for
			// the rest.
			if s.key == "folder" || s.key == "state" {
				_ = cobra.MarkFlagDirname(fs, s.flag)
			} else {
				_ = cobra.MarkFlagFilename(fs, s.flag)
			}
		}
	}
}

// action wraps a command's body: it layers the configuration (the shared
// flags given, over the environment, over the config file when the
// command has --config), starts logging, and runs fn with the positional
// arguments.
func (a *app) action(fn func(ctx context.Context, args []string) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		a.name = commandName(cmd)
		a.started = true
		keys := map[string]string{}
		for _, s := range settings {
			if s.flag != "" {
				keys[s.flag] = s.key
			}
		}
		given := map[string]string{}
		cmd.Flags().Visit(func(f *pflag.Flag) {
			if key, ok := keys[f.Name]; ok {
				given[key] = f.Value.String()
			}
		})
		o, err := newOptions(given, cmd.Flags().Lookup("config") != nil)
		if err != nil {
			return err
		}
		a.opts = o
		a.startLogging()
		return fn(cmd.Context(), args)
	}
}

// commandName is the top-level command cmd belongs to ("conflicts" for
// `conflicts show`): the name in "rowdrop conflicts: ..." messages.
func commandName(cmd *cobra.Command) string {
	for cmd.HasParent() && cmd.Parent().HasParent() {
		cmd = cmd.Parent()
	}
	if !cmd.HasParent() {
		return ""
	}
	return cmd.Name()
}

// noArgs refuses positional arguments, naming the first.
func noArgs(cmd *cobra.Command, args []string) error {
	if len(args) > 0 {
		return usagef("unexpected argument %q (%s takes only flags; see `%s --help`)", args[0], cmd.Name(), cmd.CommandPath())
	}
	return nil
}

// newVersionCmd is `rowdrop version`, the same as --version.
func newVersionCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:     "version",
		Short:   "print the module version and VCS revision this binary was built from",
		Long:    "Print the module version and the VCS revision this binary was built from, as --version does.",
		Example: "  rowdrop version\n  rowdrop --version",
		Args:    noArgs,
		Hidden:  true,
		RunE: func(cmd *cobra.Command, args []string) error {
			fmt.Fprint(a.stdout, cmd.Root().Version)
			return nil
		},
	}
}

// newManCmd writes the man pages, generated from the command definitions:
// rowdrop.1 and one page per command (rowdrop-sync.1, ...).
func newManCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "man DIR",
		Short: "write the man pages into DIR",
		Long: "Write the man pages (section 1) into DIR: rowdrop.1 and one page per command, " +
			"generated from the same definitions as --help. For packagers: install them under share/man/man1.",
		Example: "  rowdrop man /usr/local/share/man/man1",
		Hidden:  true,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) != 1 {
				return usagef("man needs exactly one DIR to write the pages into (see `rowdrop man --help`)")
			}
			return nil
		},
		RunE: a.action(func(ctx context.Context, args []string) error {
			return writeManPages(args[0], a)
		}),
	}
}

// writeManPages generates the pages of a fresh command tree into dir.
func writeManPages(dir string, a *app) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("man pages: %w (pass a directory you can write)", err)
	}
	root := newRootCmd(&app{stdout: a.stdout, stderr: a.stderr})
	version := strings.Fields(root.Version)
	source := "rowdrop"
	if len(version) > 1 {
		source += " " + version[1]
	}
	hdr := &doc.GenManHeader{Title: "ROWDROP", Section: "1", Source: source, Manual: "rowdrop manual"}
	if err := doc.GenManTree(root, hdr, dir); err != nil {
		return fmt.Errorf("man pages into %s: %w", dir, err)
	}
	fmt.Fprintf(a.stdout, "man pages written to %s\n", dir)
	return nil
}
