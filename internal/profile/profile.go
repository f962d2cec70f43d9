// Package profile reads the app profiles shipped in configs/apps (one YAML
// file per app, embedded in the binary), recognises an app from its schema
// and lays a profile under the user's configuration: a profile is a
// default, never a lock.
package profile

import (
	"fmt"
	"io/fs"
	"maps"
	"path"
	"slices"
	"sort"
	"strings"

	"go.yaml.in/yaml/v3"
	"zombiezen.com/go/sqlite"
	"zombiezen.com/go/sqlite/sqlitex"

	"github.com/rowdrop/rowdrop/configs"
)

// None is the `app:` value that turns profiles off.
const None = "none"

// Profile is what rowdrop knows of one app's database.
type Profile struct {
	Name        string `yaml:"name"`
	Description string `yaml:"description"`
	// Detect names the tables, each with some of its columns, that a
	// database must have to be this app's. Only what every version of the
	// app has belongs here: other tables and columns may come and go.
	Detect map[string][]string `yaml:"detect"`
	// Exclude lists the app's device-local tables.
	Exclude []string `yaml:"exclude"`
	// LocalColumns lists "table.column"s that stay on each device.
	LocalColumns []string `yaml:"local_columns"`
	// StandIns maps SQL functions the app's triggers call to a stand-in
	// kind (db.RegisterStandIn).
	StandIns map[string]string `yaml:"stand_ins"`
	// Identity maps a table to the UNIQUE NOT NULL columns its rows are
	// matched by across devices, instead of the primary key.
	Identity map[string][]string `yaml:"identity"`
	// AfterApply maps a table to SQL run in live after merged changes to
	// it, in the same transaction (merge.AfterApply).
	AfterApply map[string]string `yaml:"after_apply"`
	// Notes say why, per table, for `rowdrop inspect`.
	Notes map[string]string `yaml:"notes"`
}

// Builtin reads the profiles embedded in the binary, sorted by name.
func Builtin() ([]*Profile, error) { return Load(configs.Apps, "apps") }

// Load reads every *.yaml file of dir in fsys as a profile.
func Load(fsys fs.FS, dir string) ([]*Profile, error) {
	names, err := fs.Glob(fsys, path.Join(dir, "*.yaml"))
	if err != nil {
		return nil, err
	}
	var out []*Profile
	for _, name := range names {
		raw, err := fs.ReadFile(fsys, name)
		if err != nil {
			return nil, fmt.Errorf("app profile %s: %w", name, err)
		}
		p, err := Parse(raw)
		if err != nil {
			return nil, fmt.Errorf("app profile %s: %w", name, err)
		}
		out = append(out, p)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// Parse reads one profile and checks it.
func Parse(raw []byte) (*Profile, error) {
	var p Profile
	dec := yaml.NewDecoder(strings.NewReader(string(raw)))
	dec.KnownFields(true)
	if err := dec.Decode(&p); err != nil {
		return nil, err
	}
	if p.Name == "" || p.Name == None {
		return nil, fmt.Errorf("profile needs a name (not %q)", None)
	}
	if len(p.Detect) == 0 {
		return nil, fmt.Errorf("profile %s has no detect: tables", p.Name)
	}
	for _, lc := range p.LocalColumns {
		if _, _, ok := strings.Cut(lc, "."); !ok {
			return nil, fmt.Errorf("profile %s: local column %q is not table.column", p.Name, lc)
		}
	}
	return &p, nil
}

// Find returns the profile named name.
func Find(all []*Profile, name string) (*Profile, error) {
	for _, p := range all {
		if strings.EqualFold(p.Name, name) {
			return p, nil
		}
	}
	var names []string
	for _, p := range all {
		names = append(names, p.Name)
	}
	return nil, fmt.Errorf("app %q: no such profile (known: %s; or none)", name, strings.Join(names, ", "))
}

// Columns is a database's tables and their columns, lower-cased.
type Columns map[string]map[string]bool

// ReadColumns reads the tables and columns of the main database on conn.
func ReadColumns(conn *sqlite.Conn) (Columns, error) {
	out := Columns{}
	err := sqlitex.ExecuteTransient(conn, "SELECT m.name, p.name FROM sqlite_master m, pragma_table_info(m.name) p WHERE m.type='table' AND upper(coalesce(m.sql,'')) NOT LIKE 'CREATE VIRTUAL%'",
		&sqlitex.ExecOptions{ResultFunc: func(s *sqlite.Stmt) error {
			t := strings.ToLower(s.ColumnText(0))
			if out[t] == nil {
				out[t] = map[string]bool{}
			}
			out[t][strings.ToLower(s.ColumnText(1))] = true
			return nil
		}})
	if err != nil {
		return nil, fmt.Errorf("read the tables and columns: %w", err)
	}
	return out, nil
}

// Matches reports whether a database with these tables and columns is the
// profile's app.
func (p *Profile) Matches(cols Columns) bool {
	for t, want := range p.Detect {
		have := cols[strings.ToLower(t)]
		if have == nil {
			return false
		}
		for _, c := range want {
			if !have[strings.ToLower(c)] {
				return false
			}
		}
	}
	return true
}

// Detect returns the profile whose fingerprint the database matches (the
// one naming the most tables when several do), or nil.
func Detect(all []*Profile, cols Columns) *Profile {
	var best *Profile
	for _, p := range all {
		if p.Matches(cols) && (best == nil || len(p.Detect) > len(best.Detect)) {
			best = p
		}
	}
	return best
}

// User is the part of the user's configuration a profile lies under.
type User struct {
	Include, Exclude, LocalColumns []string
	StandIns                       map[string]string
	Identity                       map[string][]string
	AfterApply                     map[string]string
}

// Under lays the profile under the user's configuration for a database
// with these columns: the user's include list brings back a table the
// profile excludes, the user's exclude list and local columns add to the
// profile's, and the user's stand-ins, identities and after-apply actions
// replace the profile's of the same name. What the profile names but this
// version of the app lacks is dropped, so a profile fits older and newer
// versions of its app.
func (p *Profile) Under(u User, cols Columns) User {
	out := User{Include: slices.Clone(u.Include)}
	for _, t := range p.Exclude {
		if cols[strings.ToLower(t)] != nil && !slices.Contains(u.Include, t) && !slices.Contains(out.Exclude, t) {
			out.Exclude = append(out.Exclude, t)
		}
	}
	for _, t := range u.Exclude {
		if !slices.Contains(out.Exclude, t) {
			out.Exclude = append(out.Exclude, t)
		}
	}
	for _, lc := range p.LocalColumns {
		t, c, _ := strings.Cut(lc, ".")
		if cols[strings.ToLower(t)][strings.ToLower(c)] {
			out.LocalColumns = append(out.LocalColumns, lc)
		}
	}
	for _, lc := range u.LocalColumns {
		if !slices.Contains(out.LocalColumns, lc) {
			out.LocalColumns = append(out.LocalColumns, lc)
		}
	}
	out.StandIns = under(p.StandIns, u.StandIns, nil)
	out.Identity = under(p.Identity, u.Identity, cols)
	out.AfterApply = under(p.AfterApply, u.AfterApply, cols)
	return out
}

// under returns the profile's map (its tables present in cols, when cols
// is given) with the user's on top.
func under[V any](prof, user map[string]V, cols Columns) map[string]V {
	if len(prof) == 0 && len(user) == 0 {
		return user
	}
	out := map[string]V{}
	for k, v := range prof {
		if cols == nil || cols[strings.ToLower(k)] != nil {
			out[k] = v
		}
	}
	maps.Copy(out, user)
	return out
}

// Snippet is the profile written as the keys of a `databases:` entry of
// rowdrop.yaml, for a user who turns the profile off (`app: none`) and
// edits its rules.
func (p *Profile) Snippet() string {
	var b strings.Builder
	write := func(key string, v any) {
		if v == nil {
			return
		}
		out, err := yaml.Marshal(map[string]any{key: v})
		if err == nil {
			b.Write(out)
		}
	}
	if len(p.Exclude) > 0 {
		write("exclude", p.Exclude)
	}
	if len(p.LocalColumns) > 0 {
		write("local_columns", p.LocalColumns)
	}
	if len(p.StandIns) > 0 {
		write("stand_ins", p.StandIns)
	}
	if len(p.Identity) > 0 {
		write("identity", p.Identity)
	}
	if len(p.AfterApply) > 0 {
		write("after_apply", p.AfterApply)
	}
	return b.String()
}
