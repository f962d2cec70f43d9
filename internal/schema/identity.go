package schema

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"zombiezen.com/go/sqlite"
	"zombiezen.com/go/sqlite/sqlitex"

	"github.com/rowdrop/rowdrop/internal/db"
)

// Identity by natural key (config `identity: {table: [columns]}`): the
// rows of such a table are matched across devices by those columns, not
// by the primary key, which stays on this device. Everything that works
// by key (files, merge, row clocks) sees the identity columns as the key:
// the Table's PKCols and its Columns' PK marks name them, and the stored
// primary key is a device-local column. Only capture, which SQLite's
// session extension keys by the stored key, works on Storage().

// Storage returns the table as SQLite keys it: t itself, or for a table
// with an identity, the same table with its own primary key.
func (t *Table) Storage() *Table {
	if t.storage != nil {
		return t.storage
	}
	return t
}

// HasIdentity reports whether the table is matched by a natural key.
func (t *Table) HasIdentity() bool { return t.storage != nil }

// IdentityColumns returns the names of the identity columns, in key
// order (nil without an identity).
func (t *Table) IdentityColumns() []string {
	if t.storage == nil {
		return nil
	}
	var out []string
	for _, i := range t.pkCols {
		out = append(out, t.Columns[i].Name)
	}
	return out
}

// StorageKey returns the index of the stored primary-key column of a table
// with an identity (a single INTEGER PRIMARY KEY), or -1.
func (t *Table) StorageKey() int {
	if t.storage == nil {
		return -1
	}
	return t.storage.pkCols[0]
}

// withIdentity checks that cols can identify t's rows and returns t keyed
// by them. They must be NOT NULL and exactly the columns of a UNIQUE index
// (or constraint), so that each device finds at most one row for a key;
// the primary key must be a single INTEGER PRIMARY KEY (the rowid), so that
// a row merged from another device can take a fresh local id; and no other
// table may reference that id through a declared foreign key (its values
// would mean different rows on different devices).
func withIdentity(conn *sqlite.Conn, dbName string, t *Table, cols []string) (*Table, error) {
	what := fmt.Sprintf("identity of table %s (%s)", t.Name, strings.Join(cols, ", "))
	if len(cols) == 0 {
		return nil, fmt.Errorf("%s: name at least one column (fix the config's identity)", what)
	}
	var idx []int
	for _, c := range cols {
		i := t.ColIndex(c)
		switch {
		case i < 0:
			return nil, fmt.Errorf("%s: table %s has no column %s (fix the config's identity)", what, t.Name, c)
		case slices.Contains(idx, i):
			return nil, fmt.Errorf("%s: column %s is named twice (fix the config's identity)", what, c)
		case t.Local[t.Columns[i].Name]:
			return nil, fmt.Errorf("%s: column %s is also a local column; an identity column must be synced (fix the config)", what, c)
		case !t.Columns[i].NotNull && t.Columns[i].PK == 0:
			return nil, fmt.Errorf("%s: column %s may be NULL, so it cannot identify a row; declare it NOT NULL in the app's schema or choose other columns", what, c)
		}
		idx = append(idx, i)
	}
	pk := t.pkCols
	if len(pk) != 1 || !strings.EqualFold(t.Columns[pk[0]].Type, "INTEGER") {
		return nil, fmt.Errorf("%s: its primary key is not a single INTEGER PRIMARY KEY, so a row merged from another device cannot take a fresh local id (identity is for tables keyed by a rowid the app may renumber)", what)
	}
	if slices.Contains(idx, pk[0]) {
		return nil, fmt.Errorf("%s: the primary key %s is already the identity; remove the table from the config's identity", what, t.Columns[pk[0]].Name)
	}
	ok, err := uniqueOn(conn, dbName, t.Name, cols)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, fmt.Errorf("%s: no UNIQUE index or constraint of table %s covers exactly these columns, so two rows could share them; add one in the app's schema or choose the columns of one", what, t.Name)
	}
	if ref, err := referencedBy(conn, dbName, t); err != nil {
		return nil, err
	} else if ref != "" {
		return nil, fmt.Errorf("%s: table %s references its primary key %s through a foreign key, and those references are not translated to the identity yet; exclude one of the tables or leave %s without an identity", what, ref, t.Columns[pk[0]].Name, t.Name)
	}
	st := *t
	st.Local = maps.Clone(t.Local)
	nt := *t
	nt.storage = &st
	nt.Columns = slices.Clone(t.Columns)
	for i := range nt.Columns {
		nt.Columns[i].PK = 0
	}
	for j, i := range idx {
		nt.Columns[i].PK = j + 1
	}
	nt.pkCols = idx
	nt.Local = maps.Clone(t.Local)
	if nt.Local == nil {
		nt.Local = map[string]bool{}
	}
	nt.Local[t.Columns[pk[0]].Name] = true
	return &nt, nil
}

// uniqueOn reports whether table has a full (not partial) UNIQUE index
// whose columns are exactly cols, in any order.
func uniqueOn(conn *sqlite.Conn, dbName, table string, cols []string) (bool, error) {
	want := map[string]bool{}
	for _, c := range cols {
		want[strings.ToLower(c)] = true
	}
	var names []string
	q := fmt.Sprintf("PRAGMA %s.index_list(%s)", db.Quote(dbName), db.Quote(table))
	err := sqlitex.ExecuteTransient(conn, q, &sqlitex.ExecOptions{ResultFunc: func(s *sqlite.Stmt) error {
		if s.GetInt64("unique") != 0 && s.GetInt64("partial") == 0 {
			names = append(names, s.GetText("name"))
		}
		return nil
	}})
	if err != nil {
		return false, fmt.Errorf("read indexes of table %s: %w", table, err)
	}
	for _, n := range names {
		got := map[string]bool{}
		q := fmt.Sprintf("PRAGMA %s.index_info(%s)", db.Quote(dbName), db.Quote(n))
		err := sqlitex.ExecuteTransient(conn, q, &sqlitex.ExecOptions{ResultFunc: func(s *sqlite.Stmt) error {
			got[strings.ToLower(s.GetText("name"))] = true
			return nil
		}})
		if err != nil {
			return false, fmt.Errorf("read index %s of table %s: %w", n, table, err)
		}
		if maps.Equal(got, want) {
			return true, nil
		}
	}
	return false, nil
}

// referencedBy names a table of the database whose declared foreign key
// points at t's primary key (or at t without naming columns), or "".
func referencedBy(conn *sqlite.Conn, dbName string, t *Table) (string, error) {
	pkName := t.Columns[t.pkCols[0]].Name
	var tables []string
	q := fmt.Sprintf("SELECT name FROM %s.sqlite_master WHERE type='table' ORDER BY name", db.Quote(dbName))
	if err := sqlitex.ExecuteTransient(conn, q, &sqlitex.ExecOptions{ResultFunc: func(s *sqlite.Stmt) error {
		tables = append(tables, s.ColumnText(0))
		return nil
	}}); err != nil {
		return "", fmt.Errorf("list tables: %w", err)
	}
	for _, other := range tables {
		found := ""
		q := fmt.Sprintf("PRAGMA %s.foreign_key_list(%s)", db.Quote(dbName), db.Quote(other))
		err := sqlitex.ExecuteTransient(conn, q, &sqlitex.ExecOptions{ResultFunc: func(s *sqlite.Stmt) error {
			to := s.GetText("to")
			if strings.EqualFold(s.GetText("table"), t.Name) && (to == "" || strings.EqualFold(to, pkName)) {
				found = other
			}
			return nil
		}})
		if err != nil {
			return "", fmt.Errorf("read foreign keys of table %s: %w", other, err)
		}
		if found != "" {
			return found, nil
		}
	}
	return "", nil
}

// identityTablesKnown refuses an identity for a table that is not synced:
// a typo must not pass silently.
func identityTablesKnown(identity map[string][]string, synced []*Table, skipped []Skipped) error {
	for name := range identity {
		if slices.ContainsFunc(synced, func(t *Table) bool { return t.Name == name }) {
			continue
		}
		if i := slices.IndexFunc(skipped, func(s Skipped) bool { return s.Name == name }); i >= 0 {
			if skipped[i].Kind == "excluded" {
				continue // excluded on purpose: its identity does not matter
			}
			return fmt.Errorf("identity of table %s: the table is not synced (%s); fix the table or remove it from the config's identity", name, skipped[i].Reason)
		}
		return fmt.Errorf("identity of table %s: the database has no such table (fix the config's identity)", name)
	}
	return nil
}
