package main

// The layering: flags on top of ROWDROP_* environment variables on top of
// the YAML config file, whose `databases:` entries beat its top level.
// Every key is a row of settings (settings.go); this file resolves them.

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/viper"

	"github.com/rowdrop/rowdrop"
	"github.com/rowdrop/rowdrop/internal/fsx"
)

// options is the layered configuration of one invocation.
type options struct {
	v          *viper.Viper
	flagSet    map[string]bool // keys given as flags
	configFile string          // "" when no file was read
	file       fileSettings    // what checkConfigFile read of it
	logJSON    bool
	verbose    bool
}

// newOptions layers the flags given (setting key to value) over the
// environment and, when withConfig, the config file: --config, or the
// default file when it exists.
func newOptions(given map[string]string, withConfig bool) (*options, error) {
	o := &options{v: viper.New(), flagSet: map[string]bool{}}
	v := o.v
	v.SetEnvPrefix("ROWDROP")
	v.SetEnvKeyReplacer(strings.NewReplacer("-", "_"))
	v.AutomaticEnv()
	for _, s := range settings {
		if s.def != nil {
			v.SetDefault(s.key, s.def)
		}
	}
	if err := checkGiven(given); err != nil {
		return nil, err
	}
	for key, val := range given {
		v.Set(key, val)
		o.flagSet[key] = true
	}
	if withConfig {
		o.configFile = v.GetString("config")
		if o.configFile == "" {
			if p := defaultConfigFile(); p != "" {
				if _, err := os.Stat(p); err == nil {
					o.configFile = p
				}
			}
		}
		if o.configFile != "" {
			o.configFile = expandPath(o.configFile, "")
			info, err := checkConfigFile(o.configFile)
			if err != nil {
				return nil, err
			}
			o.file = info
			v.SetConfigFile(o.configFile)
			v.SetConfigType("yaml")
			if err := v.ReadInConfig(); err != nil {
				return nil, usagef("config file %s: %s (fix the file, or pass --config with another one)", o.configFile, oneLine(err.Error()))
			}
		}
	}
	o.logJSON = v.GetBool("log_json")
	o.verbose = v.GetBool("verbose")
	return o, nil
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

// pairConfig is one (database, folder) pair after layering: the library's
// Config without its logger and progress callback (see config).
type pairConfig struct {
	rowdrop.Config
}

// entry is one item of the config file's `databases:` list.
type entry struct {
	db string
	// vals holds the per-database settings the entry gives, by key: a
	// value the entry leaves empty (or a bool it leaves out) is absent.
	vals map[string]any
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

// entries decodes the `databases:` list. Its entries decode into a struct
// built from the settings table, so a per-database setting needs no field
// of its own here and mapstructure's weak typing and messages apply.
func (o *options) entries() ([]entry, error) {
	if !o.v.IsSet("databases") {
		return nil, nil
	}
	fields := []reflect.StructField{{Name: "DB", Type: reflect.TypeFor[string](), Tag: `mapstructure:"db"`}}
	var keys []string // keys[i] is field i+1
	for _, s := range settings {
		if s.perDB {
			fields = append(fields, reflect.StructField{Name: fmt.Sprintf("S%d", len(keys)), Type: s.kind.entryType(),
				Tag: reflect.StructTag(fmt.Sprintf("mapstructure:%q", s.key))})
			keys = append(keys, s.key)
		}
	}
	list := reflect.New(reflect.SliceOf(reflect.StructOf(fields)))
	if err := o.v.UnmarshalKey("databases", list.Interface()); err != nil {
		return nil, usagef("config file %s: databases: %s (each entry needs db: and folder:, see configs/rowdrop.yaml)", o.configFile, oneLine(err.Error()))
	}
	var out []entry
	for i := range list.Elem().Len() {
		ev := list.Elem().Index(i)
		e := entry{db: ev.Field(0).String(), vals: map[string]any{}}
		for j, key := range keys {
			f := ev.Field(j + 1)
			switch {
			case f.Kind() == reflect.Slice || f.Kind() == reflect.Map:
				if f.Len() > 0 {
					e.vals[key] = f.Interface()
				}
			case f.Kind() == reflect.Pointer:
				if !f.IsNil() {
					e.vals[key] = f.Elem().Interface()
				}
			case !f.IsZero():
				e.vals[key] = f.Interface()
			}
		}
		out = append(out, e)
	}
	return out, nil
}

// pairs resolves which pairs this invocation speaks of.
//
// With --db (flag, ROWDROP_DB or a top-level `db:` key): that one database,
// taking the fields of the `databases:` entry with the same path, if any.
// Without it: every entry of `databases:`. Per field, flags beat the
// environment, which beats the entry, which beats the file's top level.
func (a *app) pairs() ([]pairConfig, error) {
	o := a.opts
	entries, err := o.entries()
	if err != nil {
		return nil, err
	}
	cfgDir := ""
	if o.configFile != "" {
		cfgDir = filepath.Dir(o.configFile)
	}
	for i := range entries {
		if entries[i].db == "" {
			return nil, usagef("config file %s: entry %d of databases: has no db: (the path of the app's SQLite file)", o.configFile, i+1)
		}
		entries[i].db = expandPath(entries[i].db, cfgDir)
	}
	var chosen []entry
	if sel := o.v.GetString("db"); sel != "" {
		base := "" // relative --db/ROWDROP_DB are relative to the working directory
		if !o.overridden("db") {
			base = cfgDir
		}
		sel = expandPath(sel, base)
		e := entry{db: sel}
		for _, x := range entries {
			if x.db == sel {
				e = x
			}
		}
		chosen = append(chosen, e)
	} else {
		if len(entries) == 0 {
			return nil, usagef("no database given: pass --db PATH (the app's SQLite file) and --folder DIR (the shared folder), or --config FILE listing databases")
		}
		for _, k := range []string{"folder", "state"} {
			if o.overridden(k) && len(entries) > 1 {
				return nil, usagef("--%s names one pair but the config lists %d databases: add --db to pick one", k, len(entries))
			}
		}
		chosen = entries
	}
	var out []pairConfig
	for _, e := range chosen {
		p, err := o.layer(e, cfgDir)
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	seen := map[string]bool{}
	for _, p := range out {
		if p.Folder == "" {
			return nil, usagef("no shared folder for database %s: pass --folder DIR, or set folder: for it in the config", p.DB)
		}
		if seen[fsx.RealPath(p.DB)] {
			return nil, usagef("database %s is listed twice in the config: one folder per database", p.DB)
		}
		seen[fsx.RealPath(p.DB)] = true
	}
	if err := o.checkSharedFolders(out, entries, cfgDir); err != nil {
		return nil, err
	}
	return out, nil
}

// checkSharedFolders refuses two databases with one shared folder (or one
// inside the other's), compared after resolving symbolic links: each
// device directory in a folder belongs to one database, and a second one
// would read the first's files as its own devices'. The databases are the
// pairs chosen and the config's other entries, whose folders are what the
// file says (flags and variables speak of the chosen pair only).
func (o *options) checkSharedFolders(chosen []pairConfig, entries []entry, cfgDir string) error {
	type pair struct{ db, folder string }
	var all []pair
	picked := map[string]bool{}
	for _, p := range chosen {
		all = append(all, pair{p.DB, p.Folder})
		picked[p.DB] = true
	}
	for _, e := range entries {
		if picked[e.db] {
			continue
		}
		f, _ := e.vals["folder"].(string)
		if f == "" {
			f = o.file.folder
		}
		if f = expandPath(f, cfgDir); f != "" {
			all = append(all, pair{e.db, f})
		}
	}
	for i := range all {
		for j := i + 1; j < len(all); j++ {
			a, b := all[i], all[j]
			switch {
			case fsx.Inside(a.folder, b.folder) && fsx.Inside(b.folder, a.folder):
				where := "the folder " + a.folder
				if a.folder != b.folder {
					where = fmt.Sprintf("one folder (%s and %s are the same directory)", a.folder, b.folder)
				}
				return usagef("databases %s and %s share %s: each database needs a shared folder of its own (set folder: per entry in the config)", a.db, b.db, where)
			case fsx.Inside(a.folder, b.folder), fsx.Inside(b.folder, a.folder):
				return usagef("the shared folders of databases %s (%s) and %s (%s) are one inside the other: each database needs a shared folder of its own, side by side", a.db, a.folder, b.db, b.folder)
			}
		}
	}
	return nil
}

// layer fills one pair from an entry and the layered keys.
func (o *options) layer(e entry, cfgDir string) (pairConfig, error) {
	p := pairConfig{rowdrop.Config{DB: e.db}}
	for _, s := range settings {
		if s.field == nil {
			continue
		}
		val, err := o.resolve(s, e, cfgDir)
		if err != nil {
			return pairConfig{}, err
		}
		reflect.ValueOf(s.field(&p.Config)).Elem().Set(reflect.ValueOf(val))
	}
	return p, nil
}

// resolve picks one setting's value for the entry's database: a flag or
// variable, else the entry's, else the file's top level (else the default).
func (o *options) resolve(s setting, e entry, cfgDir string) (any, error) {
	v := o.v
	fromEntry, inEntry := e.vals[s.key]
	// A map has no flag or variable form that could beat an entry's.
	entryWins := inEntry && (s.kind == kindMap || s.kind == kindMapList || !o.overridden(s.key))
	switch s.kind {
	case kindPath:
		if o.overridden(s.key) {
			return expandPath(v.GetString(s.key), ""), nil
		}
		val := v.GetString(s.key)
		if entryWins {
			val = fromEntry.(string)
		}
		return expandPath(val, cfgDir), nil
	case kindList:
		if entryWins {
			return cleanList(fromEntry.([]string)), nil
		}
		return toList(v.Get(s.key)), nil
	case kindBool:
		if entryWins {
			return fromEntry, nil
		}
		return v.GetBool(s.key), nil
	case kindDuration:
		if entryWins {
			return fromEntry, nil
		}
		return v.GetDuration(s.key), nil
	case kindInt:
		if entryWins {
			return fromEntry, nil
		}
		return v.GetInt64(s.key), nil
	case kindMap:
		if entryWins {
			return fromEntry, nil
		}
		return v.GetStringMapString(s.key), nil
	case kindMapList:
		if entryWins {
			return fromEntry, nil
		}
		var out map[string][]string
		for name, cols := range v.GetStringMap(s.key) {
			if out == nil {
				out = map[string][]string{}
			}
			out[name] = toList(cols)
		}
		return out, nil
	case kindDays:
		raw := v.GetString(s.key)
		if entryWins {
			raw = fromEntry.(string)
		}
		d, err := parseHorizon(raw)
		if err != nil {
			return nil, usagef("%s %q for database %s: %v (write it like 30d or 720h)", s.key, raw, e.db, err)
		}
		return d, nil
	case kindNegatedBool:
		return v.IsSet(s.key) && !v.GetBool(s.key), nil
	}
	if entryWins {
		return fromEntry, nil
	}
	return v.GetString(s.key), nil
}

// watchTimings resolves watch's pacing and snapshot keys (defaults: the
// settings table; the watcher takes 0 as its own default too).
func (o *options) watchTimings() watchTimings {
	v := o.v
	return watchTimings{debounce: v.GetDuration("debounce"), maxDelay: v.GetDuration("max_delay"), poll: v.GetDuration("poll"), rescan: v.GetDuration("rescan"),
		snapEvery: v.GetDuration("snapshot_every"), snapEveryFiles: v.GetInt("snapshot_every_files")}
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
