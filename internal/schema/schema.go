// Package schema decides which of the app's tables rowdrop syncs and
// describes them: columns, primary key, fingerprint. It reads only
// sqlite_master and PRAGMA table_info of ordinary tables, so virtual tables
// whose module this engine lacks (FTS3/FTS4) are never touched.
package schema

import (
	"fmt"
	"slices"
	"sort"
	"strings"

	"zombiezen.com/go/sqlite"
	"zombiezen.com/go/sqlite/sqlitex"

	"github.com/rowdrop/rowdrop/internal/db"
	"github.com/rowdrop/rowdrop/internal/rdfile"
)

// Table is a synced table.
type Table struct {
	Name      string
	Columns   []rdfile.Column
	CreateSQL string
	pkCols    []int
	// Local columns stay on this device: never exported, never overwritten.
	Local map[string]bool
	// UniqueIndexes are the table's UNIQUE indexes created by CREATE
	// UNIQUE INDEX (constraints in CREATE TABLE come with CreateSQL). The
	// base copy mirrors them, so merges meet the same constraints there.
	UniqueIndexes []Index
	// storage is the table as SQLite keys it, set when the config gives
	// the table an identity (identity.go): then pkCols and the Columns'
	// PK marks name the identity columns, and the stored key is Local.
	storage *Table
}

// Index is a separately created index.
type Index struct {
	Name, SQL string
}

// CreateIn returns the index's CREATE statement aimed at database dbName
// (IF NOT EXISTS).
func (ix Index) CreateIn(dbName string) (string, error) {
	sql := strings.TrimSpace(ix.SQL)
	i, ok := skipWords(sql, 0, "CREATE", "UNIQUE", "INDEX")
	if !ok {
		return "", fmt.Errorf("index %s: unexpected definition %.40q", ix.Name, sql)
	}
	if j, ok := skipWords(sql, i, "IF", "NOT", "EXISTS"); ok {
		i = j
	}
	end := nameEnd(sql, i)
	if end <= i {
		return "", fmt.Errorf("index %s: cannot find the name in its definition", ix.Name)
	}
	return "CREATE UNIQUE INDEX IF NOT EXISTS " + db.Quote(dbName) + "." + db.Quote(ix.Name) + sql[end:], nil
}

// PKCols returns the indices of the primary-key columns, in key order.
func (t *Table) PKCols() []int { return t.pkCols }

// ColIndex returns the index of a column by name, or -1.
func (t *Table) ColIndex(name string) int {
	for i, c := range t.Columns {
		if strings.EqualFold(c.Name, name) {
			return i
		}
	}
	return -1
}

// Fingerprint identifies the table's shape: names, order, declared types
// and primary key. Two devices with equal fingerprints can exchange rows.
func (t *Table) Fingerprint() string { return Fingerprint(t.Name, t.Columns) }

// Fingerprint computes the fingerprint of a table shape; the algorithm is
// part of the file format (rdfile.Fingerprint).
func Fingerprint(name string, cols []rdfile.Column) string { return rdfile.Fingerprint(name, cols) }

// Skipped is a table rowdrop does not sync, with the reason.
type Skipped struct {
	Name   string `json:"name"`
	Kind   string `json:"kind"` // "excluded" (by rule or config) or "unsyncable"
	Reason string `json:"reason"`
}

// Filter is the user's partial-sync configuration.
type Filter struct {
	Include      []string // if non-empty, only these tables
	Exclude      []string
	LocalColumns []string // "table.column"
	// ExcludeWhy replaces the reason given for an excluded table (an app
	// profile's: "excluded by the joplin profile: ...").
	ExcludeWhy map[string]string
	// Identity gives tables a natural key: table -> columns (UNIQUE and
	// NOT NULL) that identify its rows across devices (identity.go).
	Identity map[string][]string
}

// Inspect lists the tables of database dbName ("main" or an attached name)
// on conn and classifies them.
func Inspect(conn *sqlite.Conn, dbName string, f Filter) ([]*Table, []Skipped, error) {
	type ent struct{ name, sql string }
	var all []ent
	var virtual []string
	q := fmt.Sprintf("SELECT name, coalesce(sql,'') FROM %s.sqlite_master WHERE type='table' ORDER BY name", db.Quote(dbName))
	err := sqlitex.ExecuteTransient(conn, q, &sqlitex.ExecOptions{ResultFunc: func(s *sqlite.Stmt) error {
		e := ent{s.ColumnText(0), s.ColumnText(1)}
		if isVirtual(e.sql) {
			virtual = append(virtual, e.name)
		}
		all = append(all, e)
		return nil
	}})
	if err != nil {
		return nil, nil, fmt.Errorf("list tables: %w", err)
	}
	local := map[string]map[string]bool{}
	for _, lc := range f.LocalColumns {
		t, c, ok := strings.Cut(lc, ".")
		if !ok {
			return nil, nil, fmt.Errorf("local column %q: write it as table.column", lc)
		}
		if local[t] == nil {
			local[t] = map[string]bool{}
		}
		local[t][c] = true
	}
	var synced []*Table
	var skipped []Skipped
	for _, e := range all {
		lower := strings.ToLower(e.name)
		switch {
		case strings.HasPrefix(lower, "sqlite_"):
			skipped = append(skipped, Skipped{e.name, "excluded", "SQLite internal table"})
			continue
		case strings.HasPrefix(lower, "rowdrop_"):
			skipped = append(skipped, Skipped{e.name, "excluded", "rowdrop's own table"})
			continue
		case isVirtual(e.sql):
			skipped = append(skipped, Skipped{e.name, "excluded", "virtual table (derived index, rebuilt by the app's triggers)"})
			continue
		}
		if v := shadowOf(e.name, virtual); v != "" {
			skipped = append(skipped, Skipped{e.name, "excluded", fmt.Sprintf("shadow table of virtual table %s (derived data)", v)})
			continue
		}
		if len(f.Include) > 0 && !slices.Contains(f.Include, e.name) {
			skipped = append(skipped, Skipped{e.name, "excluded", "not in the config's include list"})
			continue
		}
		if slices.Contains(f.Exclude, e.name) {
			why := f.ExcludeWhy[e.name]
			if why == "" {
				why = "in the config's exclude list"
			}
			skipped = append(skipped, Skipped{e.name, "excluded", why})
			continue
		}
		t, why, err := describe(conn, dbName, e.name, e.sql)
		if err != nil {
			return nil, nil, err
		}
		if why != "" {
			skipped = append(skipped, Skipped{e.name, "unsyncable", why})
			continue
		}
		t.Local = local[e.name]
		for c := range t.Local {
			if i := t.ColIndex(c); i < 0 {
				return nil, nil, fmt.Errorf("local column %s.%s: table %s has no such column (fix the config's local_columns)", e.name, c, e.name)
			} else if t.Columns[i].PK > 0 {
				return nil, nil, fmt.Errorf("local column %s.%s is part of the primary key and must be synced (remove it from local_columns)", e.name, c)
			}
		}
		if cols, ok := f.Identity[e.name]; ok {
			if t, err = withIdentity(conn, dbName, t, cols); err != nil {
				return nil, nil, err
			}
		}
		synced = append(synced, t)
	}
	if err := identityTablesKnown(f.Identity, synced, skipped); err != nil {
		return nil, nil, err
	}
	return synced, skipped, nil
}

func isVirtual(sql string) bool {
	f := strings.Fields(strings.ToUpper(sql))
	return len(f) >= 2 && f[0] == "CREATE" && f[1] == "VIRTUAL"
}

// Shadow-table suffixes of FTS3/4/5 and R*Tree.
var shadowSuffixes = []string{"_data", "_idx", "_docsize", "_config", "_content", "_segments", "_segdir", "_stat", "_node", "_rowid", "_parent"}

func shadowOf(name string, virtual []string) string {
	for _, v := range virtual {
		if !strings.HasPrefix(strings.ToLower(name), strings.ToLower(v)+"_") {
			continue
		}
		rest := strings.ToLower(name[len(v):])
		if slices.Contains(shadowSuffixes, rest) {
			return v
		}
	}
	return ""
}

func describe(conn *sqlite.Conn, dbName, name, sql string) (*Table, string, error) {
	t := &Table{Name: name, CreateSQL: sql}
	type pkc struct{ pos, idx int }
	var pks []pkc
	q := fmt.Sprintf("PRAGMA %s.table_xinfo(%s)", db.Quote(dbName), db.Quote(name))
	hidden := false
	err := sqlitex.ExecuteTransient(conn, q, &sqlitex.ExecOptions{ResultFunc: func(s *sqlite.Stmt) error {
		if s.GetInt64("hidden") != 0 {
			hidden = true
			return nil
		}
		c := rdfile.Column{Name: s.GetText("name"), Type: s.GetText("type"), PK: int(s.GetInt64("pk")), NotNull: s.GetInt64("notnull") != 0}
		if c.PK > 0 {
			pks = append(pks, pkc{c.PK, len(t.Columns)})
		}
		t.Columns = append(t.Columns, c)
		return nil
	}})
	if err != nil {
		return nil, "", fmt.Errorf("read columns of table %s: %w", name, err)
	}
	if hidden {
		return nil, "has generated columns, which SQLite's session extension cannot capture", nil
	}
	if len(pks) == 0 {
		return nil, "no declared PRIMARY KEY: rowids are not stable identities across devices (add a primary key, or exclude the table)", nil
	}
	sort.Slice(pks, func(i, j int) bool { return pks[i].pos < pks[j].pos })
	for _, p := range pks {
		t.pkCols = append(t.pkCols, p.idx)
	}
	q = fmt.Sprintf("SELECT name, sql FROM %s.sqlite_master WHERE type='index' AND tbl_name=? AND sql IS NOT NULL ORDER BY name", db.Quote(dbName))
	err = sqlitex.ExecuteTransient(conn, q, &sqlitex.ExecOptions{Args: []any{name}, ResultFunc: func(s *sqlite.Stmt) error {
		ix := Index{Name: s.ColumnText(0), SQL: s.ColumnText(1)}
		if _, ok := skipWords(strings.TrimSpace(ix.SQL), 0, "CREATE", "UNIQUE", "INDEX"); ok {
			t.UniqueIndexes = append(t.UniqueIndexes, ix)
		}
		return nil
	}})
	if err != nil {
		return nil, "", fmt.Errorf("read indexes of table %s: %w", name, err)
	}
	return t, "", nil
}

// CreateIn returns the table's CREATE TABLE statement aimed at database
// dbName (the app's own DDL, so the copy has the same columns, types and
// primary key, which the session extension requires).
func (t *Table) CreateIn(dbName string) (string, error) {
	sql := strings.TrimSpace(t.CreateSQL)
	i, ok := skipWords(sql, 0, "CREATE", "TABLE")
	if !ok {
		return "", fmt.Errorf("table %s: unexpected definition %.40q", t.Name, sql)
	}
	if j, ok := skipWords(sql, i, "IF", "NOT", "EXISTS"); ok {
		i = j
	}
	end := nameEnd(sql, i)
	if end <= i {
		return "", fmt.Errorf("table %s: cannot find the name in its definition", t.Name)
	}
	return "CREATE TABLE " + db.Quote(dbName) + "." + db.Quote(t.Name) + sql[end:], nil
}

func skipWords(s string, i int, words ...string) (int, bool) {
	for _, w := range words {
		for i < len(s) && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r') {
			i++
		}
		if len(s) < i+len(w) || !strings.EqualFold(s[i:i+len(w)], w) {
			return 0, false
		}
		i += len(w)
	}
	for i < len(s) && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r') {
		i++
	}
	return i, true
}

// nameEnd returns the index just past a (possibly schema-qualified, quoted)
// table name starting at i.
func nameEnd(s string, i int) int {
	for {
		if i >= len(s) {
			return i
		}
		switch s[i] {
		case '"', '`', '\'', '[':
			closer := s[i]
			if closer == '[' {
				closer = ']'
			}
			j := i + 1
			for j < len(s) {
				if s[j] == closer {
					if closer != ']' && j+1 < len(s) && s[j+1] == closer {
						j += 2
						continue
					}
					break
				}
				j++
			}
			i = j + 1
		default:
			for i < len(s) && s[i] != '(' && s[i] != '.' && s[i] != ' ' && s[i] != '\t' && s[i] != '\n' && s[i] != '\r' {
				i++
			}
		}
		if i < len(s) && s[i] == '.' {
			i++
			continue
		}
		return i
	}
}

// ColumnDef returns the text that declares column name in the table's
// CREATE TABLE statement ("body TEXT NOT NULL DEFAULT 'x'"), exactly as the
// app wrote it, so that the base copy can repeat an app's
// ALTER TABLE ... ADD COLUMN with the same type, default, collation and
// constraints. SQLite stores an added column's declaration verbatim in
// sqlite_master, after the other columns.
func (t *Table) ColumnDef(name string) (string, error) {
	defs, err := columnDefs(t.CreateSQL)
	if err != nil {
		return "", fmt.Errorf("table %s: %w", t.Name, err)
	}
	for _, d := range defs {
		if n, _ := firstToken(d); strings.EqualFold(n, name) {
			return d, nil
		}
	}
	return "", fmt.Errorf("table %s: cannot find the declaration of column %s in its definition", t.Name, name)
}

// columnDefs splits the parenthesised body of a CREATE TABLE statement at
// its top-level commas and returns the column definitions (table
// constraints — CONSTRAINT, PRIMARY KEY, UNIQUE, CHECK, FOREIGN KEY — left
// out). Quotes, brackets, nested parentheses and comments are respected.
func columnDefs(sql string) ([]string, error) {
	i, ok := skipWords(sql, 0, "CREATE", "TABLE")
	if !ok {
		return nil, fmt.Errorf("unexpected definition %.40q", sql)
	}
	if j, ok := skipWords(sql, i, "IF", "NOT", "EXISTS"); ok {
		i = j
	}
	i = nameEnd(sql, i)
	for i < len(sql) && sql[i] != '(' {
		i++
	}
	if i >= len(sql) {
		return nil, fmt.Errorf("no column list in %.40q", sql)
	}
	var parts []string
	depth, start := 0, i+1
	for i++; i < len(sql); i++ {
		switch c := sql[i]; c {
		case '\'', '"', '`', '[':
			closer := c
			if c == '[' {
				closer = ']'
			}
			for i++; i < len(sql); i++ {
				if sql[i] == closer {
					if closer != ']' && i+1 < len(sql) && sql[i+1] == closer {
						i++
						continue
					}
					break
				}
			}
		case '-':
			if i+1 < len(sql) && sql[i+1] == '-' {
				for i < len(sql) && sql[i] != '\n' {
					i++
				}
			}
		case '/':
			if i+1 < len(sql) && sql[i+1] == '*' {
				end := strings.Index(sql[i+2:], "*/")
				if end < 0 {
					i = len(sql)
				} else {
					i += 2 + end + 1
				}
			}
		case '(':
			depth++
		case ')':
			if depth == 0 {
				parts = append(parts, sql[start:i])
				return keepColumns(parts), nil
			}
			depth--
		case ',':
			if depth == 0 {
				parts = append(parts, sql[start:i])
				start = i + 1
			}
		}
	}
	return nil, fmt.Errorf("unterminated column list in %.40q", sql)
}

func keepColumns(parts []string) []string {
	var out []string
	for _, p := range parts {
		p = trimLeadingComments(p)
		tok, quoted := firstToken(p)
		if !quoted {
			switch strings.ToUpper(tok) {
			case "CONSTRAINT", "PRIMARY", "UNIQUE", "CHECK", "FOREIGN":
				continue
			}
		}
		if tok != "" {
			out = append(out, p)
		}
	}
	return out
}

// firstToken returns the first identifier of s, unquoted, and whether it
// was quoted.
func firstToken(s string) (string, bool) {
	s = strings.TrimSpace(s)
	if s == "" {
		return "", false
	}
	switch s[0] {
	case '"', '`', '\'', '[':
		closer := s[0]
		if closer == '[' {
			closer = ']'
		}
		var b strings.Builder
		for i := 1; i < len(s); i++ {
			if s[i] == closer {
				if closer != ']' && i+1 < len(s) && s[i+1] == closer {
					b.WriteByte(closer)
					i++
					continue
				}
				break
			}
			b.WriteByte(s[i])
		}
		return b.String(), true
	}
	end := strings.IndexAny(s, " \t\r\n(,")
	if end < 0 {
		end = len(s)
	}
	return s[:end], false
}

// trimLeadingComments drops whitespace and comments before a definition.
func trimLeadingComments(s string) string {
	for {
		s = strings.TrimSpace(s)
		switch {
		case strings.HasPrefix(s, "--"):
			if i := strings.IndexByte(s, '\n'); i >= 0 {
				s = s[i+1:]
			} else {
				return ""
			}
		case strings.HasPrefix(s, "/*"):
			if i := strings.Index(s, "*/"); i >= 0 {
				s = s[i+2:]
			} else {
				return ""
			}
		default:
			return s
		}
	}
}

// CompareShapes compares an old and a new shape of one table. If the new
// shape is the old one plus trailing columns (ALTER TABLE ... ADD COLUMN),
// it returns the added columns; if it is anything else it says why not, in
// words naming the columns, the key and what happened to them.
func CompareShapes(table string, old, cur []rdfile.Column) (added []rdfile.Column, why string) {
	if k1, k2 := keyOf(old), keyOf(cur); k1 != k2 {
		return nil, fmt.Sprintf("table %s: primary key changed from (%s) to (%s)", table, k1, k2)
	}
	n := min(len(old), len(cur))
	for i := 0; i < n; i++ {
		o, c := old[i], cur[i]
		switch {
		case o.Name != c.Name:
			return nil, fmt.Sprintf("table %s: column %d is %s, was %s (a column was removed, renamed or moved; rowdrop only follows columns added at the end)", table, i+1, c.Name, o.Name)
		case !strings.EqualFold(o.Type, c.Type):
			return nil, fmt.Sprintf("table %s: column %s changed type from %q to %q", table, c.Name, o.Type, c.Type)
		case o.NotNull != c.NotNull:
			return nil, fmt.Sprintf("table %s: column %s changed its NOT NULL constraint", table, c.Name)
		}
	}
	if len(cur) < len(old) {
		var gone []string
		for _, c := range old[len(cur):] {
			gone = append(gone, c.Name)
		}
		return nil, fmt.Sprintf("table %s: column(s) %s removed", table, strings.Join(gone, ", "))
	}
	return cur[len(old):], ""
}

func keyOf(cols []rdfile.Column) string {
	var k []string
	for pos := 1; ; pos++ {
		found := false
		for _, c := range cols {
			if c.PK == pos {
				k = append(k, c.Name)
				found = true
			}
		}
		if !found {
			return strings.Join(k, ", ")
		}
	}
}

// ShapeDiff relates the columns a file carries for a table (theirs) to
// the local table's (ours): Same, Fewer (theirs is ours minus trailing
// columns: the writer has not upgraded yet; applies), More (theirs has
// trailing columns ours lacks: this device has not upgraded yet; Missing
// names them) or Other (Why says what differs).
type ShapeDiff struct {
	Kind    string // "same", "fewer", "more", "other"
	Missing []string
	Why     string
}

// CompareRemote compares a file's columns for a table with the local ones.
func CompareRemote(table string, theirs, ours []rdfile.Column) ShapeDiff {
	if len(theirs) <= len(ours) {
		if _, why := CompareShapes(table, theirs, ours); why == "" {
			if len(theirs) == len(ours) {
				return ShapeDiff{Kind: "same"}
			}
			return ShapeDiff{Kind: "fewer"}
		}
	}
	added, why := CompareShapes(table, ours, theirs)
	if why != "" {
		return ShapeDiff{Kind: "other", Why: why}
	}
	d := ShapeDiff{Kind: "more"}
	for _, c := range added {
		d.Missing = append(d.Missing, c.Name)
	}
	return d
}

// Difference says exactly how a table's columns on another device (theirs)
// differ from this device's (ours), naming every column: those only there,
// those only here, those whose type, NOT NULL or key position differs, and
// columns in another order. It is "" when the shapes are the same.
func Difference(theirs, ours []rdfile.Column) string {
	find := func(cols []rdfile.Column, name string) (int, bool) {
		for i, c := range cols {
			if strings.EqualFold(c.Name, name) {
				return i, true
			}
		}
		return -1, false
	}
	describe := func(c rdfile.Column) string {
		s := c.Name
		if c.Type != "" {
			s += " " + c.Type
		}
		if c.NotNull {
			s += " NOT NULL"
		}
		return s
	}
	var onlyThere, onlyHere, changed []string
	var common []string // in their order
	for _, c := range theirs {
		j, ok := find(ours, c.Name)
		if !ok {
			onlyThere = append(onlyThere, describe(c))
			continue
		}
		common = append(common, c.Name)
		o := ours[j]
		switch {
		case !strings.EqualFold(c.Type, o.Type):
			changed = append(changed, fmt.Sprintf("%s is %q there, %q here", c.Name, c.Type, o.Type))
		case c.NotNull != o.NotNull:
			changed = append(changed, fmt.Sprintf("%s is %s there, %s here", c.Name, nullWord(c.NotNull), nullWord(o.NotNull)))
		}
	}
	var ourCommon []string
	for _, c := range ours {
		if _, ok := find(theirs, c.Name); !ok {
			onlyHere = append(onlyHere, describe(c))
		} else {
			ourCommon = append(ourCommon, c.Name)
		}
	}
	var parts []string
	if len(onlyThere) > 0 {
		parts = append(parts, "column(s) only on the writing device: "+strings.Join(onlyThere, ", "))
	}
	if len(onlyHere) > 0 {
		parts = append(parts, "column(s) only here: "+strings.Join(onlyHere, ", "))
	}
	parts = append(parts, changed...)
	if k1, k2 := keyOf(theirs), keyOf(ours); k1 != k2 {
		parts = append(parts, fmt.Sprintf("primary key (%s) there, (%s) here", k1, k2))
	}
	if !slices.EqualFunc(common, ourCommon, strings.EqualFold) {
		parts = append(parts, fmt.Sprintf("columns in another order: (%s) there, (%s) here", strings.Join(common, ", "), strings.Join(ourCommon, ", ")))
	}
	return strings.Join(parts, "; ")
}

func nullWord(notNull bool) string {
	if notNull {
		return "NOT NULL"
	}
	return "nullable"
}
