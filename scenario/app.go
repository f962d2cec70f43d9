package scenario

import (
	"fmt"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"zombiezen.com/go/sqlite"
	"zombiezen.com/go/sqlite/sqlitex"
)

// Exec runs one statement on the app connection.
func (d *Device) Exec(q string, args ...any) {
	d.W.T.Helper()
	if err := sqlitex.Execute(d.App, q, &sqlitex.ExecOptions{Args: args}); err != nil {
		d.W.T.Fatalf("%s: %s: %v", d.Name, q, err)
	}
}

// Script runs several statements on the app connection.
func (d *Device) Script(sql string) {
	d.W.T.Helper()
	if err := sqlitex.ExecuteScript(d.App, sql, nil); err != nil {
		d.W.T.Fatalf("%s: %v", d.Name, err)
	}
}

// Query returns the rows of q, each column rendered with quote().
func (d *Device) Query(q string, args ...any) [][]string {
	d.W.T.Helper()
	return query(d.W.T, d.App, q, args...)
}

// Value returns the one value q yields rendered like SQL's quote() ("" if
// no row).
func (d *Device) Value(q string, args ...any) string {
	d.W.T.Helper()
	rows := d.Query(q, args...)
	if len(rows) == 0 {
		return ""
	}
	return rows[0][0]
}

func query(t testing.TB, conn *sqlite.Conn, q string, args ...any) [][]string {
	t.Helper()
	var out [][]string
	err := sqlitex.Execute(conn, q, &sqlitex.ExecOptions{Args: args, ResultFunc: func(s *sqlite.Stmt) error {
		row := make([]string, s.ColumnCount())
		for i := range row {
			row[i] = s.ColumnText(i)
		}
		out = append(out, row)
		return nil
	}})
	if err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return out
}

// SyncedTables lists the app's tables that have a primary key (what
// rowdrop syncs by default), by name.
func (d *Device) SyncedTables() []string {
	d.W.T.Helper()
	var out []string
	// Qualified names: inside the subquery a bare "name" is
	// pragma_table_info's own column, which made this list empty (and
	// every dump compared equal) until it was qualified.
	for _, r := range query(d.W.T, d.App, `SELECT m.name FROM sqlite_master m WHERE m.type='table' AND m.name NOT LIKE 'sqlite%' AND m.name NOT LIKE 'rowdrop%'
		AND EXISTS (SELECT 1 FROM pragma_table_info(m.name) WHERE pk>0) ORDER BY m.name`) {
		out = append(out, r[0])
	}
	return out
}

// Dump renders every synced table of the live database in primary-key
// order, each value with quote() (so types show: 1 vs '1').
func (d *Device) Dump() string {
	d.W.T.Helper()
	return dump(d.W.T, d.App, d.SyncedTables())
}

// DumpBase renders the same tables from the device's base copy.
func (d *Device) DumpBase() string {
	d.W.T.Helper()
	conn, err := sqlite.OpenConn(filepath.Join(d.State, "base.db"), sqlite.OpenReadOnly)
	if err != nil {
		d.W.T.Fatal(err)
	}
	defer conn.Close()
	return dump(d.W.T, conn, d.SyncedTables())
}

func dump(t testing.TB, conn *sqlite.Conn, tables []string) string {
	t.Helper()
	var b strings.Builder
	for _, tbl := range tables {
		var cols, pk []string
		for _, r := range query(t, conn, "SELECT name, pk FROM pragma_table_info(?) ORDER BY cid", tbl) {
			cols = append(cols, "quote("+quoteIdent(r[0])+")")
			if r[1] != "0" {
				pk = append(pk, r[1]+"\x00"+quoteIdent(r[0]))
			}
		}
		sort.Strings(pk)
		for i := range pk {
			pk[i] = pk[i][strings.IndexByte(pk[i], 0)+1:]
		}
		fmt.Fprintf(&b, "%s:\n", tbl)
		for _, r := range query(t, conn, fmt.Sprintf("SELECT %s FROM %s ORDER BY %s", strings.Join(cols, ","), quoteIdent(tbl), strings.Join(pk, ","))) {
			fmt.Fprintf(&b, "  %s\n", strings.Join(r, "|"))
		}
	}
	return b.String()
}

func quoteIdent(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }
