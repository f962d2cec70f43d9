package main

// The flag layer: the only code that knows the flag package. It defines a
// command's flags (the shared ones from the settings table, the command's
// own through cmdFlags), parses the command line and hands the flags that
// were given, by setting key, to the layering in config.go. A move to
// cobra replaces this file.

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"time"
)

// errHelp is returned by parse after -h printed the usage: exit 0.
var errHelp = flag.ErrHelp

// flagGroup names a set of shared flags a command has.
type flagGroup int

const (
	logFlags   flagGroup = 1 << iota // every command: --log-json, -v
	pairFlags                        // commands that speak of (database, folder) pairs
	watchFlags                       // watch's pacing and snapshots
)

// cmdFlags is one command's flags. Its Bool and String define the
// command's own flags, as the flag package's do.
type cmdFlags struct {
	fs     *flag.FlagSet
	groups flagGroup
}

// Bool defines a flag of the command's own.
func (f *cmdFlags) Bool(name string, value bool, usage string) *bool {
	return f.fs.Bool(name, value, usage)
}

// String defines a flag of the command's own.
func (f *cmdFlags) String(name, value, usage string) *string {
	return f.fs.String(name, value, usage)
}

// newFlags returns the flags of a.name: the log flags, the given groups of
// shared flags, and what the caller adds. usage is the synopsis -h prints.
func (a *app) newFlags(usage string, groups flagGroup) *cmdFlags {
	groups |= logFlags
	fs := flag.NewFlagSet("rowdrop "+a.name, flag.ContinueOnError)
	for _, s := range settings {
		if s.flag == "" || groups&s.group == 0 {
			continue
		}
		switch s.kind {
		case kindBool:
			fs.Bool(s.flag, false, s.help)
		case kindDuration:
			def, _ := s.def.(time.Duration)
			fs.Duration(s.flag, def, s.help)
		case kindInt:
			def, _ := s.def.(int)
			fs.Int(s.flag, def, s.help)
		default:
			fs.String(s.flag, "", s.help)
		}
	}
	// The flag package would print the whole usage on any mistake; a
	// mistake gets one line instead (see parse), and -h the full text on
	// stdout.
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	a.usage = func() {
		fmt.Fprintf(a.stdout, "Usage: rowdrop %s %s\n\nFlags:\n", a.name, usage)
		fs.SetOutput(a.stdout)
		fs.PrintDefaults()
		fs.SetOutput(io.Discard)
	}
	return &cmdFlags{fs: fs, groups: groups}
}

// parse parses args, letting flags and positional arguments interleave
// (`rowdrop conflicts show 3 --json`), then layers the configuration and
// sets up logging. It returns the positional arguments.
func (a *app) parse(f *cmdFlags, args []string) ([]string, error) {
	pos, given, err := a.parseArgs(f.fs, args)
	if err != nil {
		return nil, err
	}
	o, err := newOptions(given, f.groups&pairFlags != 0)
	if err != nil {
		return nil, err
	}
	a.opts = o
	a.startLogging()
	return pos, nil
}

// parseArgs parses the command line. It returns the positional arguments
// and the shared flags given, as setting key to value.
func (a *app) parseArgs(fs *flag.FlagSet, args []string) ([]string, map[string]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				a.usage()
				return nil, nil, err
			}
			return nil, nil, &usageError{msg: oneLine(err.Error()) + " (see `rowdrop " + a.name + " -h`)"}
		}
		rest := fs.Args()
		if len(rest) == 0 {
			break
		}
		if consumed := len(args) - len(rest); consumed > 0 && args[consumed-1] == "--" {
			pos = append(pos, rest...)
			break
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
	keys := map[string]string{}
	for _, s := range settings {
		if s.flag != "" {
			keys[s.flag] = s.key
		}
	}
	given := map[string]string{}
	fs.Visit(func(f *flag.Flag) {
		if key, ok := keys[f.Name]; ok {
			given[key] = f.Value.String()
		}
	})
	return pos, given, nil
}
