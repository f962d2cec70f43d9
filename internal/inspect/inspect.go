// Package inspect reads an app's database and says what rowdrop would do
// with each table and why (`rowdrop inspect`): the app profile it
// recognises, the tables synced and skipped, warnings for what looks
// device-local or unsafe to merge by key, and a config snippet. It only
// reads.
package inspect

import (
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strings"

	"go.yaml.in/yaml/v3"
	"zombiezen.com/go/sqlite"
	"zombiezen.com/go/sqlite/sqlitex"

	"github.com/rowdrop/rowdrop/internal/db"
	"github.com/rowdrop/rowdrop/internal/profile"
	"github.com/rowdrop/rowdrop/internal/rdfile"
	"github.com/rowdrop/rowdrop/internal/schema"
)

// Report is what inspect found.
type Report struct {
	Database string    `json:"database"`
	App      string    `json:"app,omitempty"` // the profile recognised ("": none)
	Tables   []Table   `json:"tables"`
	Warnings []Warning `json:"warnings,omitempty"`
	// Snippet is YAML for the database's entry in rowdrop.yaml.
	Snippet string `json:"config_snippet"`
}

// Table is one table and what rowdrop would do with it.
type Table struct {
	Name string `json:"name"`
	// Action is "sync", "exclude" (by the profile or rowdrop's rules) or
	// "skip" (cannot be synced: no key, generated columns).
	Action string `json:"action"`
	Reason string `json:"reason,omitempty"`
	Rows   int64  `json:"rows"`
	// Identity names the columns rows are matched by, when not the key.
	Identity []string `json:"identity,omitempty"`
}

// Warning is something a person should look at.
type Warning struct {
	Table string `json:"table,omitempty"`
	// Kind: device-local-name, one-row, absolute-path, counter,
	// renumbered-key, missing-function.
	Kind    string `json:"kind"`
	Message string `json:"message"`
}

// Run inspects the main database on conn (opened read-only), recognising
// its app among profiles unless app says which ("none": no profile).
func Run(conn *sqlite.Conn, path string, profiles []*profile.Profile, app string) (*Report, error) {
	cols, err := profile.ReadColumns(conn)
	if err != nil {
		return nil, err
	}
	var p *profile.Profile
	switch app {
	case profile.None:
	case "":
		p = profile.Detect(profiles, cols)
	default:
		if p, err = profile.Find(profiles, app); err != nil {
			return nil, err
		}
	}
	r := &Report{Database: path}
	var u profile.User
	why := map[string]string{}
	if p != nil {
		r.App = p.Name
		u = p.Under(profile.User{}, cols)
		for _, t := range p.Exclude {
			why[t] = "excluded by the " + p.Name + " profile: " + orDefault(p.Notes[t], "device-local")
		}
	}
	// The profile's stand-ins, so the missing-function check sees them.
	if err := db.RegisterStandIns(conn, u.StandIns); err != nil {
		return nil, err
	}
	synced, skipped, err := schema.Inspect(conn, "main", schema.Filter{Exclude: u.Exclude, LocalColumns: u.LocalColumns, ExcludeWhy: why})
	if err != nil {
		return nil, err
	}
	// A recognised app's tables were classified by its profile, verified
	// against the app: no guessing there (only missing functions).
	guess := &guesser{conn: conn}
	for _, t := range synced {
		n, err := count(conn, t.Name)
		if err != nil {
			return nil, err
		}
		row := Table{Name: t.Name, Action: "sync", Rows: n, Identity: u.Identity[t.Name]}
		switch {
		case len(row.Identity) > 0:
			row.Reason = "matched across devices by " + strings.Join(row.Identity, ", ") + " (identity), not by its key"
		case len(t.Local) > 0:
			row.Reason = "local columns: " + strings.Join(sortedKeys(t.Local), ", ")
		}
		if note := profileNote(p, t.Name); note != "" && row.Reason == "" {
			row.Reason = note
		}
		r.Tables = append(r.Tables, row)
		if p == nil {
			if err := guess.table(t, n, u.Identity); err != nil {
				return nil, err
			}
		}
	}
	for _, s := range skipped {
		n, _ := count(conn, s.Name) // a virtual table whose module is missing cannot be counted
		action := "exclude"
		if s.Kind == "unsyncable" {
			action = "skip"
		}
		r.Tables = append(r.Tables, Table{Name: s.Name, Action: action, Reason: s.Reason, Rows: n})
	}
	sort.Slice(r.Tables, func(i, j int) bool { return r.Tables[i].Name < r.Tables[j].Name })
	missing, err := missingFunctions(conn, cols)
	if err != nil {
		return nil, err
	}
	for _, f := range missing {
		guess.warn("", "missing-function", fmt.Sprintf("the app's triggers call %s(), which only the app defines: give it a stand-in (stand_ins: {%s: identity|null|lower|upper|title_sort|uuid}), or files that need it are held", f, f))
		guess.standIns = append(guess.standIns, f)
	}
	r.Warnings = guess.warnings
	r.Snippet = snippet(p, guess)
	return r, nil
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func profileNote(p *profile.Profile, table string) string {
	if p == nil {
		return ""
	}
	return p.Notes[table]
}

func sortedKeys(m map[string]bool) []string {
	var out []string
	for k, on := range m {
		if on {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}

func count(conn *sqlite.Conn, table string) (int64, error) {
	var n int64
	err := sqlitex.ExecuteTransient(conn, "SELECT count(*) FROM "+db.Quote(table), &sqlitex.ExecOptions{ResultFunc: func(s *sqlite.Stmt) error {
		n = s.ColumnInt64(0)
		return nil
	}})
	if err != nil {
		return 0, fmt.Errorf("count the rows of %s: %w", table, err)
	}
	return n, nil
}

// guesser collects the warnings of tables no profile speaks of, and what
// the snippet should say about them.
type guesser struct {
	conn     *sqlite.Conn
	warnings []Warning
	exclude  []string
	identity map[string][]string
	standIns []string
}

func (g *guesser) warn(table, kind, msg string) {
	g.warnings = append(g.warnings, Warning{Table: table, Kind: kind, Message: msg})
}

func (g *guesser) local(table string) {
	if !slices.Contains(g.exclude, table) {
		g.exclude = append(g.exclude, table)
	}
}

// localName matches names apps give their device-local tables.
var localName = regexp.MustCompile(`(?i)^(settings?|preferences?|prefs|config(uration)?|key_?values?.*|kv|.*_state|state|sync_.*|.*_sync_state|cache|.*_cache|session|sessions|ui_.*|window.*|local_.*)$`)

// idCol matches columns that name a device, a client or an install.
var idCol = regexp.MustCompile(`(?i)^(uuid|guid|client_?id|device_?id|install(ation)?_?id|machine_?id|host(name)?|library_?id)$`)

// counterCol matches columns of a sqlite_sequence-like counter table.
var counterCol = regexp.MustCompile(`(?i)^(seq|sequence|counter|next_?id|last_?id|last_?insert_?id)$`)

func (g *guesser) table(t *schema.Table, rows int64, identity map[string][]string) error {
	if localName.MatchString(t.Name) {
		g.warn(t.Name, "device-local-name", fmt.Sprintf("table %s is named like device-local state (settings, *_state, sync_*, key_value*): if each device keeps its own, exclude it", t.Name))
		g.local(t.Name)
	}
	if rows == 1 && slices.ContainsFunc(t.Columns, func(c rdfile.Column) bool { return idCol.MatchString(c.Name) }) {
		g.warn(t.Name, "one-row", fmt.Sprintf("table %s holds one row: often this device's settings or identity (a uuid, a client id), which must not be merged with another device's; exclude it if so", t.Name))
		g.local(t.Name)
	}
	for _, c := range t.Columns {
		if counterCol.MatchString(c.Name) && c.PK == 0 {
			g.warn(t.Name, "counter", fmt.Sprintf("table %s has a counter column %s, like sqlite_sequence: two devices counting on their own clash; exclude the table or make the column local", t.Name, c.Name))
			break
		}
	}
	if err := g.paths(t); err != nil {
		return err
	}
	return g.renumbered(t, identity)
}

// paths warns of TEXT columns holding absolute paths (per-device values).
func (g *guesser) paths(t *schema.Table) error {
	for _, c := range t.Columns {
		if c.PK > 0 {
			continue
		}
		q := fmt.Sprintf(`SELECT 1 FROM %s WHERE typeof(%[2]s)='text' AND (%[2]s GLOB '/[a-zA-Z]*/*' OR %[2]s GLOB '[A-Za-z]:[\/]*' OR %[2]s GLOB '~/*') LIMIT 1`, db.Quote(t.Name), db.Quote(c.Name))
		found := false
		err := sqlitex.ExecuteTransient(g.conn, q, &sqlitex.ExecOptions{ResultFunc: func(*sqlite.Stmt) error { found = true; return nil }})
		if err != nil {
			return fmt.Errorf("read %s.%s: %w", t.Name, c.Name, err)
		}
		if found {
			g.warn(t.Name, "absolute-path", fmt.Sprintf("column %s.%s holds absolute paths, which differ per machine: make it a local column (local_columns: [%s.%s]) unless every device has the same layout", t.Name, c.Name, t.Name, c.Name))
		}
	}
	return nil
}

// renumbered warns of an INTEGER key without AUTOINCREMENT beside a
// UNIQUE NOT NULL column: SQLite reuses a deleted last id, and apps that
// compact their ids (buku) move rows to other ids, so the key is no
// identity across devices while the UNIQUE column may be.
func (g *guesser) renumbered(t *schema.Table, identity map[string][]string) error {
	pk := t.PKCols()
	if len(pk) != 1 || !strings.EqualFold(t.Columns[pk[0]].Type, "INTEGER") || len(identity[t.Name]) > 0 {
		return nil
	}
	if strings.Contains(strings.ToUpper(t.CreateSQL), "AUTOINCREMENT") {
		return nil
	}
	cands, err := naturalKeys(g.conn, t)
	if err != nil || len(cands) == 0 {
		return err
	}
	g.warn(t.Name, "renumbered-key", fmt.Sprintf("table %s has an INTEGER key without AUTOINCREMENT, so ids of deleted rows are reused (and some apps renumber rows); if the app's real identity is the UNIQUE %s, match rows by it (identity: {%s: [%s]})",
		t.Name, strings.Join(cands[0], ", "), t.Name, strings.Join(cands[0], ", ")))
	if g.identity == nil {
		g.identity = map[string][]string{}
	}
	if !slices.Contains(g.exclude, t.Name) {
		g.identity[t.Name] = cands[0]
	}
	return nil
}

// naturalKeys returns the table's UNIQUE indexes of one NOT NULL,
// non-integer column other than the primary key.
func naturalKeys(conn *sqlite.Conn, t *schema.Table) ([][]string, error) {
	var out [][]string
	var names []string
	err := sqlitex.ExecuteTransient(conn, "SELECT name FROM pragma_index_list(?) WHERE \"unique\" AND origin != 'pk'", &sqlitex.ExecOptions{Args: []any{t.Name},
		ResultFunc: func(s *sqlite.Stmt) error { names = append(names, s.ColumnText(0)); return nil }})
	if err != nil {
		return nil, fmt.Errorf("read the indexes of %s: %w", t.Name, err)
	}
	for _, ix := range names {
		var cols []string
		ok := true
		err := sqlitex.ExecuteTransient(conn, "SELECT name FROM pragma_index_info(?)", &sqlitex.ExecOptions{Args: []any{ix},
			ResultFunc: func(s *sqlite.Stmt) error {
				i := t.ColIndex(s.ColumnText(0))
				if i < 0 || !t.Columns[i].NotNull {
					ok = false
				} else {
					cols = append(cols, t.Columns[i].Name)
				}
				return nil
			}})
		if err != nil {
			return nil, fmt.Errorf("read index %s: %w", ix, err)
		}
		// One column that is not a number: a URL, a name (link tables'
		// composite UNIQUE keys are rekeyed well enough).
		if ok && len(cols) == 1 && !strings.Contains(strings.ToUpper(t.Columns[t.ColIndex(cols[0])].Type), "INT") {
			out = append(out, cols)
		}
	}
	return out, nil
}

// callRE finds function calls in a trigger's SQL.
var callRE = regexp.MustCompile(`([A-Za-z_][A-Za-z0-9_]*)\s*\(`)

// notFunctions are SQL words followed by a parenthesis that call nothing.
var notFunctions = map[string]bool{"in": true, "values": true, "exists": true, "select": true, "where": true, "and": true, "or": true,
	"not": true, "on": true, "as": true, "into": true, "table": true, "when": true, "then": true, "else": true, "case": true,
	"raise": true, "cast": true, "over": true, "filter": true, "using": true, "join": true, "from": true, "set": true, "is": true,
	"like": true, "glob": true, "between": true, "check": true, "key": true, "references": true, "unique": true, "primary": true,
	"default": true, "collate": true, "begin": true, "end": true, "if": true, "with": true, "return": true}

// missingFunctions lists functions the schema's triggers call that conn
// does not define (views are never run by a merge).
func missingFunctions(conn *sqlite.Conn, cols profile.Columns) ([]string, error) {
	var sqls []string
	err := sqlitex.ExecuteTransient(conn, "SELECT sql FROM sqlite_master WHERE type = 'trigger' AND sql IS NOT NULL", &sqlitex.ExecOptions{
		ResultFunc: func(s *sqlite.Stmt) error { sqls = append(sqls, s.ColumnText(0)); return nil }})
	if err != nil {
		return nil, fmt.Errorf("read the triggers: %w", err)
	}
	seen := map[string]bool{} // and the names of tables: INSERT INTO t(...) calls nothing
	err = sqlitex.ExecuteTransient(conn, "SELECT lower(name) FROM sqlite_master", &sqlitex.ExecOptions{
		ResultFunc: func(s *sqlite.Stmt) error { seen[s.ColumnText(0)] = true; return nil }})
	if err != nil {
		return nil, fmt.Errorf("read the schema: %w", err)
	}
	var out []string
	for _, sql := range sqls {
		for _, m := range callRE.FindAllStringSubmatch(stripStrings(sql), -1) {
			name := strings.ToLower(m[1])
			if seen[name] || notFunctions[name] || cols[name] != nil {
				continue
			}
			seen[name] = true
			defined := false
			err := sqlitex.ExecuteTransient(conn, "SELECT 1 FROM pragma_function_list WHERE name = ?", &sqlitex.ExecOptions{Args: []any{name},
				ResultFunc: func(*sqlite.Stmt) error { defined = true; return nil }})
			if err != nil {
				return nil, fmt.Errorf("list SQL functions: %w", err)
			}
			if !defined {
				out = append(out, name)
			}
		}
	}
	sort.Strings(out)
	return out, nil
}

// stripStrings blanks out string literals, so text in them is not read
// as a call.
func stripStrings(sql string) string {
	var b strings.Builder
	in := false
	for _, r := range sql {
		if r == '\'' {
			in = !in
			b.WriteRune(' ')
			continue
		}
		if in {
			b.WriteRune(' ')
		} else {
			b.WriteRune(r)
		}
	}
	return b.String()
}

// snippet is the YAML to paste into the database's entry of rowdrop.yaml.
func snippet(p *profile.Profile, g *guesser) string {
	var b strings.Builder
	if p != nil {
		fmt.Fprintf(&b, "# rowdrop recognises %s and uses its profile: nothing to add.\n", p.Name)
		fmt.Fprintf(&b, "app: %s\n", p.Name)
		fmt.Fprintf(&b, "# To change its rules, write app: none and start from them:\n")
		for _, line := range strings.Split(strings.TrimRight(p.Snippet(), "\n"), "\n") {
			b.WriteString("# " + line + "\n")
		}
	}
	extra := map[string]any{}
	if len(g.exclude) > 0 {
		extra["exclude"] = g.exclude
	}
	if len(g.identity) > 0 {
		extra["identity"] = g.identity
	}
	if len(g.standIns) > 0 {
		m := map[string]string{}
		for _, f := range g.standIns {
			m[f] = "identity"
			if strings.Contains(f, "uuid") || strings.Contains(f, "guid") {
				m[f] = "uuid"
			}
		}
		extra["stand_ins"] = m
	}
	if len(extra) > 0 {
		b.WriteString("# Check each of these against the warnings above:\n")
		out, err := yaml.Marshal(extra)
		if err == nil {
			b.Write(out)
		}
	}
	if b.Len() == 0 {
		b.WriteString("# Nothing looked device-local: the defaults sync every table with a primary key.\n")
	}
	return b.String()
}
