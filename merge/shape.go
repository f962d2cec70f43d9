package merge

import (
	"fmt"

	"zombiezen.com/go/sqlite"
	"zombiezen.com/go/sqlite/sqlitex"

	"github.com/rowdrop/rowdrop/internal/changeset"
	"github.com/rowdrop/rowdrop/internal/db"
	"github.com/rowdrop/rowdrop/internal/schema"
)

// Files from a device whose app has not run a migration yet carry fewer
// columns for a table than the local one has (ALTER TABLE ... ADD COLUMN
// adds columns at the end). Such a change is widened to the local shape
// before it is decided:
//
//   - UPDATE: the missing columns are undefined in old and new (the writer
//     did not change them), so they keep their local values;
//   - INSERT: the missing columns take the column's declared default (NULL
//     if none), exactly what the writer's own row will read once its app
//     adds the column;
//   - DELETE: the old record's missing columns take the default too (they
//     are only compared, to tell whether the deleter had seen every edit).
//
// Every device widens the same change the same way, so merging stays a
// function of the set of changes.

// checkNarrowShape verifies that a change's table layout is the local
// table's, or the local table's minus trailing non-key columns.
func checkNarrowShape(t *schema.Table, ct *changeset.Table) error {
	n := ct.NumCols()
	if n > len(t.Columns) {
		return fmt.Errorf("table %s: change has %d columns, local table has %d (this device's app has not added the newer columns yet)", t.Name, n, len(t.Columns))
	}
	for i, col := range t.Columns {
		if i >= n {
			if col.PK > 0 {
				return fmt.Errorf("table %s: change lacks primary-key column %s", t.Name, col.Name)
			}
			continue
		}
		if (ct.PK[i] != 0) != (col.PK > 0) {
			return fmt.Errorf("table %s: primary key differs from the local table's (column %s)", t.Name, col.Name)
		}
	}
	return nil
}

// widen extends c's records to the local column count (see above).
func widen(t *schema.Table, c *changeset.Change, defaults []changeset.Value) {
	n := len(t.Columns)
	grow := func(vals []changeset.Value, fill bool) []changeset.Value {
		if vals == nil || len(vals) >= n {
			return vals
		}
		out := make([]changeset.Value, n)
		copy(out, vals)
		if fill {
			for i := len(vals); i < n; i++ {
				out[i] = defaults[i]
			}
		}
		return out
	}
	switch c.Op {
	case changeset.OpInsert:
		c.New = grow(c.New, true)
	case changeset.OpDelete:
		c.Old = grow(c.Old, true)
	case changeset.OpUpdate:
		c.Old = grow(c.Old, false)
		c.New = grow(c.New, false)
	}
}

// columnDefaults evaluates each column's declared default on conn (the
// base copy, whose tables carry the app's declarations): a literal or
// constant expression. Columns without one get NULL.
func columnDefaults(conn *sqlite.Conn, t *schema.Table) ([]changeset.Value, error) {
	out := make([]changeset.Value, len(t.Columns))
	for i := range out {
		out[i] = changeset.Null()
	}
	var exprs []struct {
		i    int
		expr string
	}
	err := sqlitex.ExecuteTransient(conn, fmt.Sprintf("SELECT cid, dflt_value FROM pragma_table_info(%s) WHERE dflt_value IS NOT NULL ORDER BY cid", sqlQuoteString(t.Name)),
		&sqlitex.ExecOptions{ResultFunc: func(s *sqlite.Stmt) error {
			exprs = append(exprs, struct {
				i    int
				expr string
			}{int(s.ColumnInt64(0)), s.ColumnText(1)})
			return nil
		}})
	if err != nil {
		return nil, fmt.Errorf("read column defaults of %s: %w", t.Name, err)
	}
	for _, e := range exprs {
		if e.i < 0 || e.i >= len(out) {
			continue
		}
		err := sqlitex.ExecuteTransient(conn, "SELECT "+e.expr, &sqlitex.ExecOptions{ResultFunc: func(s *sqlite.Stmt) error {
			out[e.i] = db.Column(s, 0)
			return nil
		}})
		if err != nil {
			return nil, fmt.Errorf("evaluate the default of %s.%s (%s): %w", t.Name, t.Columns[e.i].Name, e.expr, err)
		}
	}
	return out, nil
}

func sqlQuoteString(s string) string {
	out := []byte{'\''}
	for i := 0; i < len(s); i++ {
		if s[i] == '\'' {
			out = append(out, '\'')
		}
		out = append(out, s[i])
	}
	return string(append(out, '\''))
}
