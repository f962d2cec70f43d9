package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/spf13/viper"

	"rowdrop"
	"rowdrop/internal/rdfile"
	"rowdrop/internal/state"
)

// options is the layered configuration of one invocation: flags on top of
// ROWDROP_* environment variables on top of the YAML file.
type options struct {
	v          *viper.Viper
	flagSet    map[string]bool // viper keys given as flags
	configFile string          // "" when no file was read
	logJSON    bool
	verbose    bool
}

// flagKeys maps flag names to viper keys (which are also the YAML keys and,
// upper-cased behind ROWDROP_, the environment variables).
var flagKeys = map[string]string{
	"db": "db", "folder": "folder", "state": "state", "device": "device",
	"include": "include", "exclude": "exclude", "local-columns": "local_columns",
	"hints": "hints", "config": "config", "log-json": "log_json", "v": "verbose",
	"debounce": "debounce", "max-delay": "max_delay", "poll": "poll", "rescan": "rescan",
	"snapshot-every": "snapshot_every", "snapshot-every-files": "snapshot_every_files",
}

// newFlags returns a flag set for a subcommand. pair adds the flags that
// name a (database, folder) pair; the log flags are always there.
func (a *app) newFlags(usage string, pair bool) *flag.FlagSet {
	fs := flag.NewFlagSet("rowdrop "+a.name, flag.ContinueOnError)
	if pair {
		fs.String("db", "", "the app's SQLite `database`")
		fs.String("folder", "", "the shared `folder`")
		fs.String("state", "", "private state `directory` (default: under $XDG_STATE_HOME/rowdrop)")
		fs.String("device", "", "this device's human `name` (default: the hostname)")
		fs.String("include", "", "comma-separated `tables` to sync (default: all with a primary key)")
		fs.String("exclude", "", "comma-separated `tables` never to sync")
		fs.String("local-columns", "", "comma-separated `table.column`s that stay on this device")
		fs.Bool("hints", false, "opt into the fast capture path (trigger-recorded keys)")
		fs.String("config", "", "YAML config `file`, may list several databases")
	}
	fs.Bool("log-json", false, "logs as JSON lines on stderr")
	fs.Bool("v", false, "debug logs")
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
	return fs
}

// parse parses args, letting flags and positional arguments interleave
// (`rowdrop conflicts show 3 --json`), then layers the configuration and
// sets up logging. It returns the positional arguments.
func (a *app) parse(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				a.usage()
				return nil, err
			}
			return nil, &usageError{msg: oneLine(err.Error()) + " (see `rowdrop " + a.name + " -h`)"}
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
	o := &options{v: viper.New(), flagSet: map[string]bool{}}
	v := o.v
	v.SetEnvPrefix("ROWDROP")
	v.SetEnvKeyReplacer(strings.NewReplacer("-", "_"))
	v.AutomaticEnv()
	fs.Visit(func(f *flag.Flag) {
		if key, ok := flagKeys[f.Name]; ok {
			v.Set(key, f.Value.String())
			o.flagSet[key] = true
		}
	})
	if fs.Lookup("config") != nil {
		o.configFile = v.GetString("config")
		explicit := o.configFile != ""
		if !explicit {
			if p := defaultConfigFile(); p != "" {
				if _, err := os.Stat(p); err == nil {
					o.configFile = p
				}
			}
		}
		if o.configFile != "" {
			o.configFile = expandPath(o.configFile, "")
			v.SetConfigFile(o.configFile)
			v.SetConfigType("yaml")
			if err := v.ReadInConfig(); err != nil {
				return nil, usagef("config file %s: %s (fix the file, or pass --config with another one)", o.configFile, oneLine(err.Error()))
			}
		}
	}
	o.logJSON = v.GetBool("log_json")
	o.verbose = v.GetBool("verbose")
	a.opts = o
	logOut := a.stderr
	if isTerminal(a.stderr) {
		a.term = &termWriter{w: a.stderr}
		logOut = a.term
	}
	a.log = newLogger(logOut, o.logJSON, o.verbose)
	if o.configFile != "" {
		a.log.Debug("config file read", "file", o.configFile)
	}
	return pos, nil
}

// defaultConfigFile is $XDG_CONFIG_HOME/rowdrop/rowdrop.yaml.
func defaultConfigFile() string {
	base := os.Getenv("XDG_CONFIG_HOME")
	if base == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return ""
		}
		base = filepath.Join(home, ".config")
	}
	return filepath.Join(base, "rowdrop", "rowdrop.yaml")
}

// newLogger builds the stderr logger: readable text with a short clock by
// default, JSON lines with --log-json.
func newLogger(w io.Writer, jsonLogs, verbose bool) *slog.Logger {
	level := slog.LevelInfo
	if verbose {
		level = slog.LevelDebug
	}
	if jsonLogs {
		return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: level}))
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: level, ReplaceAttr: func(groups []string, at slog.Attr) slog.Attr {
		if len(groups) == 0 && at.Key == slog.TimeKey && at.Value.Kind() == slog.KindTime {
			return slog.String(slog.TimeKey, at.Value.Time().Format("15:04:05.000"))
		}
		return at
	}}))
}

// pairConfig is one (database, folder) pair after layering.
type pairConfig struct {
	DB           string
	Folder       string
	State        string
	Device       string
	Include      []string
	Exclude      []string
	LocalColumns []string
	Hints        bool
	SweepEvery   time.Duration
	MaxChangeset int64
	StandIns     map[string]string
	NoRekey      bool // rekey_integer_ids: false (see README)
	// DeviceHorizon: how long another device may be silent before status
	// warns (device_horizon: "30d", "720h"; 0: the library's default).
	DeviceHorizon time.Duration
	horizonRaw    string
}

// entry is one item of the config file's `databases:` list.
type entry struct {
	DB           string        `mapstructure:"db"`
	Folder       string        `mapstructure:"folder"`
	State        string        `mapstructure:"state"`
	Device       string        `mapstructure:"device"`
	Include      []string      `mapstructure:"include"`
	Exclude      []string      `mapstructure:"exclude"`
	LocalColumns []string      `mapstructure:"local_columns"`
	Hints        *bool         `mapstructure:"hints"`
	SweepEvery   time.Duration `mapstructure:"sweep_every"`
	MaxChangeset int64         `mapstructure:"max_changeset"`
	// StandIns: SQL functions the app's triggers call that only the app
	// defines, with a substitute (identity, null, lower, upper; uuid for
	// a function called without arguments, like uuid4()).
	StandIns map[string]string `mapstructure:"stand_ins"`
	// DeviceHorizon: "30d", "720h".
	DeviceHorizon string `mapstructure:"device_horizon"`
}

// overridden reports whether key was given as a flag or a ROWDROP_*
// environment variable: those beat a `databases:` entry.
func (o *options) overridden(key string) bool {
	if o.flagSet[key] {
		return true
	}
	val, ok := os.LookupEnv("ROWDROP_" + strings.ToUpper(key))
	return ok && val != ""
}

// pairs resolves which pairs this invocation speaks of.
//
// With --db (flag, ROWDROP_DB or a top-level `db:` key): that one database,
// taking the fields of the `databases:` entry with the same path, if any.
// Without it: every entry of `databases:`. Per field, flags beat the
// environment, which beats the entry, which beats the file's top level.
func (a *app) pairs() ([]pairConfig, error) {
	o := a.opts
	v := o.v
	var entries []entry
	if v.IsSet("databases") {
		if err := v.UnmarshalKey("databases", &entries); err != nil {
			return nil, usagef("config file %s: databases: %s (each entry needs db: and folder:, see configs/rowdrop.yaml)", o.configFile, oneLine(err.Error()))
		}
	}
	cfgDir := ""
	if o.configFile != "" {
		cfgDir = filepath.Dir(o.configFile)
	}
	for i := range entries {
		if entries[i].DB == "" {
			return nil, usagef("config file %s: entry %d of databases: has no db: (the path of the app's SQLite file)", o.configFile, i+1)
		}
		entries[i].DB = expandPath(entries[i].DB, cfgDir)
	}
	var out []pairConfig
	if sel := v.GetString("db"); sel != "" {
		base := "" // relative --db/ROWDROP_DB are relative to the working directory
		if !o.overridden("db") {
			base = cfgDir
		}
		sel = expandPath(sel, base)
		e := entry{DB: sel}
		for _, x := range entries {
			if x.DB == sel {
				e = x
			}
		}
		out = append(out, a.layer(e, cfgDir))
	} else {
		if len(entries) == 0 {
			return nil, usagef("no database given: pass --db PATH (the app's SQLite file) and --folder DIR (the shared folder), or --config FILE listing databases")
		}
		for _, k := range []string{"folder", "state"} {
			if o.overridden(k) && len(entries) > 1 {
				return nil, usagef("--%s names one pair but the config lists %d databases: add --db to pick one", k, len(entries))
			}
		}
		for _, e := range entries {
			out = append(out, a.layer(e, cfgDir))
		}
	}
	seen := map[string]bool{}
	for i := range out {
		h, err := parseHorizon(out[i].horizonRaw)
		if err != nil {
			return nil, usagef("device_horizon %q for database %s: %v (write it like 30d or 720h)", out[i].horizonRaw, out[i].DB, err)
		}
		out[i].DeviceHorizon = h
	}
	for _, p := range out {
		if p.Folder == "" {
			return nil, usagef("no shared folder for database %s: pass --folder DIR, or set folder: for it in the config", p.DB)
		}
		if seen[p.DB] {
			return nil, usagef("database %s is listed twice in the config: one folder per database", p.DB)
		}
		seen[p.DB] = true
	}
	return out, nil
}

// layer fills one pair from an entry and the layered keys.
func (a *app) layer(e entry, cfgDir string) pairConfig {
	o := a.opts
	v := o.v
	// str picks a field: override, else the entry's, else the file's top level.
	str := func(key, fromEntry string, path bool) string {
		if o.overridden(key) {
			if path {
				return expandPath(v.GetString(key), "")
			}
			return v.GetString(key)
		}
		val := fromEntry
		if val == "" {
			val = v.GetString(key)
		}
		if path && val != "" {
			return expandPath(val, cfgDir)
		}
		return val
	}
	list := func(key string, fromEntry []string) []string {
		if !o.overridden(key) && len(fromEntry) > 0 {
			return cleanList(fromEntry)
		}
		return toList(v.Get(key))
	}
	p := pairConfig{
		DB:           e.DB,
		Folder:       str("folder", e.Folder, true),
		State:        str("state", e.State, true),
		Device:       str("device", e.Device, false),
		Include:      list("include", e.Include),
		Exclude:      list("exclude", e.Exclude),
		LocalColumns: list("local_columns", e.LocalColumns),
		Hints:        v.GetBool("hints"),
		SweepEvery:   v.GetDuration("sweep_every"),
		MaxChangeset: v.GetInt64("max_changeset"),
		NoRekey:      v.IsSet("rekey_integer_ids") && !v.GetBool("rekey_integer_ids"),
	}
	if e.Hints != nil && !o.overridden("hints") {
		p.Hints = *e.Hints
	}
	p.StandIns = v.GetStringMapString("stand_ins")
	if len(e.StandIns) > 0 {
		p.StandIns = e.StandIns
	}
	if e.SweepEvery != 0 && !o.overridden("sweep_every") {
		p.SweepEvery = e.SweepEvery
	}
	if e.MaxChangeset != 0 && !o.overridden("max_changeset") {
		p.MaxChangeset = e.MaxChangeset
	}
	p.horizonRaw = v.GetString("device_horizon")
	if e.DeviceHorizon != "" && !o.overridden("device_horizon") {
		p.horizonRaw = e.DeviceHorizon
	}
	return p
}

// parseHorizon reads a duration in days ("30d") or as Go writes durations
// ("720h"); "" is 0 (the default).
func parseHorizon(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, nil
	}
	if days, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.ParseFloat(days, 64)
		if err != nil || n <= 0 {
			return 0, errors.New("not a positive number of days")
		}
		return time.Duration(n * float64(24*time.Hour)), nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, err
	}
	if d <= 0 {
		return 0, errors.New("not positive")
	}
	return d, nil
}

// toList reads a list from YAML (a sequence) or from a flag or environment
// variable (comma-separated).
func toList(x any) []string {
	switch t := x.(type) {
	case nil:
		return nil
	case string:
		return cleanList(strings.Split(t, ","))
	case []string:
		return cleanList(t)
	case []any:
		var out []string
		for _, e := range t {
			out = append(out, fmt.Sprint(e))
		}
		return cleanList(out)
	}
	return cleanList([]string{fmt.Sprint(x)})
}

func cleanList(in []string) []string {
	var out []string
	for _, s := range in {
		for _, part := range strings.Split(s, ",") {
			if part = strings.TrimSpace(part); part != "" {
				out = append(out, part)
			}
		}
	}
	return out
}

// expandPath expands ~ and $VARS and makes p absolute, relative to base
// (the config file's directory) or else to the working directory.
func expandPath(p, base string) string {
	if p == "" {
		return ""
	}
	p = os.ExpandEnv(p)
	if p == "~" || strings.HasPrefix(p, "~/") {
		if home, err := os.UserHomeDir(); err == nil {
			p = filepath.Join(home, p[1:])
		}
	}
	if !filepath.IsAbs(p) && base != "" {
		p = filepath.Join(base, p)
	}
	if abs, err := filepath.Abs(p); err == nil {
		p = abs
	}
	return p
}

// label is the short name of a pair in logs and messages.
func (p pairConfig) label() string { return filepath.Base(p.DB) }

// config turns a pair into the library's Config.
func (p pairConfig) config(log *slog.Logger, progress func(done, total int, file string)) rowdrop.Config {
	return rowdrop.Config{
		DB: p.DB, Folder: p.Folder, State: p.State, DeviceName: p.Device,
		Include: p.Include, Exclude: p.Exclude, LocalColumns: p.LocalColumns,
		Hints: p.Hints, SweepEvery: p.SweepEvery, MaxChangeset: p.MaxChangeset, StandIns: p.StandIns, NoRekey: p.NoRekey,
		DeviceHorizon: p.DeviceHorizon,
		Logger:        log.With("db", p.label()), Progress: progress,
	}
}

// lockWait is how long a command waits for a state directory another
// rowdrop process (typically `watch`, in the middle of a step) holds.
const lockWait = 2 * time.Minute

// open opens a pair, checking the paths first so the message names the
// flag to fix, and waiting (up to wait) while another rowdrop process holds
// the state directory: `watch` holds it only for the length of one step.
func (a *app) open(ctx context.Context, p pairConfig, wait time.Duration, progress func(int, int, string)) (*rowdrop.Syncer, error) {
	if st, err := os.Stat(p.DB); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("database %s does not exist: give the path of the app's SQLite file (--db, or db: in the config)", p.DB)
		}
		return nil, fmt.Errorf("database %s: %w (check the --db path and its permissions)", p.DB, err)
	} else if st.IsDir() {
		return nil, fmt.Errorf("database %s is a directory: give the path of the app's SQLite file (--db, or db: in the config)", p.DB)
	}
	start := time.Now()
	logged := false
	for {
		s, err := rowdrop.Open(ctx, p.config(a.log, progress))
		if err == nil {
			return s, nil
		}
		if !errors.Is(err, state.ErrLocked) {
			return nil, err
		}
		if time.Since(start) >= wait {
			return nil, fmt.Errorf("%w (waited %s)", err, wait.Round(time.Second))
		}
		if !logged && time.Since(start) > time.Second {
			a.log.Info("waiting: another rowdrop process is using this pair's state directory (a sync step in progress)", "db", p.label())
			logged = true
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("%w (gave up waiting: %w)", err, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// termWriter is stderr on a terminal: it carries the log records and one
// status line that is redrawn in place. A log record first clears the
// status line, so the two never run into each other.
type termWriter struct {
	mu    sync.Mutex
	w     io.Writer
	dirty bool // a status line is on screen
}

func (t *termWriter) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.dirty {
		io.WriteString(t.w, "\r\033[K")
		t.dirty = false
	}
	return t.w.Write(p)
}

// status (re)draws the status line.
func (t *termWriter) status(line string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	io.WriteString(t.w, "\r\033[K"+line)
	t.dirty = true
}

// clear removes the status line, if any.
func (t *termWriter) clear() {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.dirty {
		io.WriteString(t.w, "\r\033[K")
		t.dirty = false
	}
}

// progress shows long work on a terminal: a line that says what is being
// done and for how long, updated in place. It stays silent when stderr is
// not a terminal or logs are JSON: there it would only be noise.
type progress struct {
	term    *termWriter
	label   string
	start   time.Time
	mu      sync.Mutex
	msg     string
	stop    chan struct{}
	stopped sync.WaitGroup
}

// newProgress starts a progress display for one step of one pair.
func (a *app) newProgress(label string) *progress {
	p := &progress{label: label, start: time.Now(), stop: make(chan struct{})}
	if a.term != nil && !a.opts.logJSON {
		p.term = a.term
		p.stopped.Add(1)
		go p.tick()
	}
	return p
}

// tick redraws the line once a second after the first two seconds: short
// steps print nothing.
func (p *progress) tick() {
	defer p.stopped.Done()
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-p.stop:
			return
		case <-t.C:
			p.draw()
		}
	}
}

func (p *progress) draw() {
	elapsed := time.Since(p.start)
	if elapsed < 2*time.Second {
		return
	}
	p.mu.Lock()
	msg := p.msg
	p.mu.Unlock()
	if msg == "" {
		msg = "syncing"
	}
	p.term.status(fmt.Sprintf("%s: %s (%s)", p.label, msg, elapsed.Round(time.Second)))
}

// files is the library's Config.Progress callback (import, per file).
func (p *progress) files(done, total int, file string) {
	p.mu.Lock()
	if strings.HasSuffix(file, rdfile.SnapshotExt) {
		// Joining or re-basing: done and total count the snapshot's rows.
		p.msg = fmt.Sprintf("merging snapshot %s: %d/%d rows", file, done, total)
	} else {
		p.msg = fmt.Sprintf("imported %d/%d files, last %s", done, total, file)
	}
	p.mu.Unlock()
	p.draw()
}

// callback returns the Config.Progress function, nil when off.
func (p *progress) callback() func(int, int, string) {
	if p.term == nil {
		return nil
	}
	return p.files
}

// done stops the display and clears its line.
func (p *progress) done() {
	if p.term == nil {
		return
	}
	close(p.stop)
	p.stopped.Wait()
	p.term.clear()
}
