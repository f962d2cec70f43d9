package main

import (
	"reflect"
	"time"

	"github.com/rowdrop/rowdrop"
	"github.com/rowdrop/rowdrop/watcher"
)

// setting is one configuration key, defined once: its flag, its key in the
// YAML file (upper-cased behind ROWDROP_, also its environment variable),
// its default, its help, and where its value lands. A new setting is one
// row of settings: the command tree (commands.go)
// defines its flag, the layering (config.go) resolves it.
type setting struct {
	key   string    // viper and YAML key; the environment variable is ROWDROP_<KEY>
	flag  string    // flag name; "" when only the file and the environment set it
	short string    // one-letter shorthand (-v), if any
	group flagGroup // which commands have the flag
	kind  kind
	def   any    // default (a time.Duration or an int); nil: the kind's zero value
	help  string // flag help; a `word` in backquotes names the flag's argument
	// perDB: a `databases:` entry may set it for its database.
	perDB bool
	// negOK: a negative duration means something (rescan: off); without
	// it a negative value is refused.
	negOK bool
	// field points at the library Config field the resolved value fills;
	// nil for keys read where they are used (db, config, logging, watch).
	field func(*rowdrop.Config) any
}

// kind is how a setting is written and layered.
type kind int

const (
	kindString kind = iota
	// kindPath: ~ and $VARS expanded, made absolute relative to the config
	// file's directory (from a flag or the environment: the working one).
	kindPath
	// kindList: comma-separated in a flag or variable, a YAML sequence (or
	// a comma-separated string) in the file.
	kindList
	kindBool
	kindDuration // Go durations: 300ms, 5m, 168h
	kindInt
	// kindMap: a YAML mapping. It has no flag, so an entry's map beats the
	// top level and the environment alike.
	kindMap
	kindDays // a positive duration in days (30d) or Go form (720h)
	// kindNegatedBool: a key that is true unless given as false; the
	// library holds its negation (rekey_integer_ids -> NoRekey).
	kindNegatedBool
)

// entryType is the Go type a `databases:` entry decodes the kind into
// (mapstructure: weakly typed, strings to durations and slices).
func (k kind) entryType() reflect.Type {
	switch k {
	case kindList:
		return reflect.TypeFor[[]string]()
	case kindBool:
		return reflect.TypeFor[*bool]() // nil: the entry does not say
	case kindDuration:
		return reflect.TypeFor[time.Duration]()
	case kindInt:
		return reflect.TypeFor[int64]()
	case kindMap:
		return reflect.TypeFor[map[string]string]()
	}
	return reflect.TypeFor[string]()
}

// settings is every configuration key of rowdrop.
var settings = []setting{
	// The pair: which database, which folder, and how to sync it.
	{key: "db", flag: "db", group: pairFlags, kind: kindPath, help: "the app's SQLite `database`"},
	{key: "folder", flag: "folder", group: pairFlags, kind: kindPath, perDB: true, help: "the shared `folder`",
		field: func(c *rowdrop.Config) any { return &c.Folder }},
	{key: "state", flag: "state", group: pairFlags, kind: kindPath, perDB: true, help: "private state `directory` (default: under $XDG_STATE_HOME/rowdrop)",
		field: func(c *rowdrop.Config) any { return &c.State }},
	{key: "device", flag: "device", group: pairFlags, kind: kindString, perDB: true, help: "this device's human `name` (default: the hostname)",
		field: func(c *rowdrop.Config) any { return &c.DeviceName }},
	{key: "include", flag: "include", group: pairFlags, kind: kindList, perDB: true, help: "comma-separated `tables` to sync (default: all with a primary key)",
		field: func(c *rowdrop.Config) any { return &c.Include }},
	{key: "exclude", flag: "exclude", group: pairFlags, kind: kindList, perDB: true, help: "comma-separated `tables` never to sync",
		field: func(c *rowdrop.Config) any { return &c.Exclude }},
	{key: "local_columns", flag: "local-columns", group: pairFlags, kind: kindList, perDB: true, help: "comma-separated `table.column`s that stay on this device",
		field: func(c *rowdrop.Config) any { return &c.LocalColumns }},
	{key: "hints", flag: "hints", group: pairFlags, kind: kindBool, perDB: true, help: "opt into the fast capture path (trigger-recorded keys)",
		field: func(c *rowdrop.Config) any { return &c.Hints }},
	{key: "create_folder", flag: "create-folder", group: pairFlags, kind: kindBool, help: "create the shared folder if it does not exist (first run only; without it a missing folder is refused)",
		field: func(c *rowdrop.Config) any { return &c.CreateFolder }},
	{key: "config", flag: "config", group: pairFlags, kind: kindPath, help: "YAML config `file`, may list several databases"},
	// Limits on what is read from the folder (docs/FORMAT.md §11): a
	// file beyond one is refused with the limit named.
	{key: "max_changeset", flag: "max-changeset", group: pairFlags, kind: kindInt, perDB: true,
		help:  "largest decompressed file read from the folder, in `bytes` (default 4 GiB)",
		field: func(c *rowdrop.Config) any { return &c.MaxChangeset }},
	{key: "max_header", flag: "max-header", group: pairFlags, kind: kindInt, perDB: true,
		help:  "largest file header read from the folder, in `bytes` (default 1 MiB, at most 16 MiB)",
		field: func(c *rowdrop.Config) any { return &c.MaxHeader }},
	{key: "max_value", flag: "max-value", group: pairFlags, kind: kindInt, perDB: true,
		help:  "largest TEXT or BLOB value read from the folder, in `bytes` (default 256 MiB)",
		field: func(c *rowdrop.Config) any { return &c.MaxValue }},

	// File and environment only.
	{key: "sweep_every", kind: kindDuration, perDB: true,
		field: func(c *rowdrop.Config) any { return &c.SweepEvery }},
	// stand_ins: SQL functions the app's triggers call that only the app
	// defines, with a substitute (identity, null, lower, upper; uuid for
	// a function called without arguments, like uuid4()).
	{key: "stand_ins", kind: kindMap, perDB: true,
		field: func(c *rowdrop.Config) any { return &c.StandIns }},
	// app: the app profile (configs/apps: joplin, calibre, buku); unset:
	// recognised from the schema; none: no profile.
	{key: "app", kind: kindString, perDB: true,
		field: func(c *rowdrop.Config) any { return &c.App }},
	// after_apply: per table, SQL run in live after each merged row, in
	// the same transaction (:key, :op bound).
	{key: "after_apply", kind: kindMap, perDB: true,
		field: func(c *rowdrop.Config) any { return &c.AfterApply }},
	// device_horizon: how long another device may be silent before status
	// warns ("30d", "720h"; unset: the library's default).
	{key: "device_horizon", kind: kindDays, perDB: true,
		field: func(c *rowdrop.Config) any { return &c.DeviceHorizon }},
	// mass_change_percent, mass_change_min_rows: the mass-change guard
	// holds an export that deletes or overwrites more than this percent
	// of a table of at least this many rows (0: 50 and 20; a negative
	// percent turns it off); `rowdrop sync --confirm-mass-change` lets it through.
	{key: "mass_change_percent", kind: kindInt, perDB: true,
		field: func(c *rowdrop.Config) any { return &c.MassChangePercent }},
	{key: "mass_change_min_rows", kind: kindInt, perDB: true,
		field: func(c *rowdrop.Config) any { return &c.MassChangeMinRows }},
	// rekey_integer_ids: false (see docs/INTERNALS.md, Limits).
	{key: "rekey_integer_ids", kind: kindNegatedBool,
		field: func(c *rowdrop.Config) any { return &c.NoRekey }},

	// Logging, for every command.
	{key: "log_json", flag: "log-json", group: logFlags, kind: kindBool, help: "logs as JSON lines on stderr"},
	{key: "verbose", flag: "verbose", short: "v", group: logFlags, kind: kindBool, help: "debug logs"},

	// watch's pacing and snapshots.
	{key: "debounce", flag: "debounce", group: watchFlags, kind: kindDuration, def: watcher.DefaultDebounce,
		help: "quiet period that ends a burst of changes"},
	{key: "max_delay", flag: "max-delay", group: watchFlags, kind: kindDuration, def: watcher.DefaultMaxDelay,
		help: "longest a continuous burst can postpone a sync"},
	{key: "poll", flag: "poll", group: watchFlags, kind: kindDuration, def: watcher.DefaultPollInterval,
		help: "interval of the PRAGMA data_version poll and folder checks"},
	{key: "rescan", flag: "rescan", group: watchFlags, kind: kindDuration, def: watcher.DefaultRescanInterval, negOK: true,
		help: "periodic folder rescan for filesystems without events (negative: off)"},
	{key: "snapshot_every", flag: "snapshot-every", group: watchFlags, kind: kindDuration, def: defaultSnapshotEvery,
		help: "publish a snapshot this often, if anything changed (0: never by time)"},
	{key: "snapshot_every_files", flag: "snapshot-every-files", group: watchFlags, kind: kindInt, def: defaultSnapshotEveryFiles,
		help: "publish a snapshot after this many files exported or applied (0: never)"},
}
