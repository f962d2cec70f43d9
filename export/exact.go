package export

import (
	"fmt"
	"io"
	"sort"
	"strings"

	"zombiezen.com/go/sqlite"
	"zombiezen.com/go/sqlite/sqlitex"

	"github.com/rowdrop/rowdrop/internal/changeset"
	"github.com/rowdrop/rowdrop/internal/db"
	"github.com/rowdrop/rowdrop/internal/schema"
)

// sqlite3session_diff finds modified rows with SQL's IS NOT, under each
// column's own collation. So it does not report an edit between values
// that SQL calls equal: a case-only edit of a COLLATE NOCASE column
// ("rust" -> "Rust"), a trailing-space edit of an RTRIM column, or an
// integer replaced by the equal real (4 -> 4.0) in a column without type
// affinity. Left alone, such an edit would never be exported and base
// would differ from live forever. For the columns where this can happen,
// capture runs one more comparison that is exact (BINARY collation and
// storage class) and merges what it finds into the captured changeset as
// the UPDATE columns SQLite would have written.
//
// Not covered: primary-key columns. The diff pairs a base row and a live
// row whose keys are equal under the key's collation (a key renamed only in
// case under COLLATE NOCASE) as one row, and so does everything downstream
// (SQL lookups by key on every device), so the row keeps the key it had in
// base: the devices agree with each other, and the originating device's
// live row differs from them only in the case of a case-insensitive key.

// inexactCols returns the non-key columns of t whose edits the session diff
// can miss: every such column if the table's definition mentions a collation
// (conservative: a false positive costs a comparison, not correctness),
// else the columns whose declared type gives no affinity (they can hold 4
// and 4.0 alike).
func inexactCols(t *schema.Table) []int {
	collate := strings.Contains(strings.ToUpper(t.CreateSQL), "COLLATE")
	var out []int
	for i, c := range t.Columns {
		if c.PK == 0 && (collate || noAffinity(c.Type)) {
			out = append(out, i)
		}
	}
	return out
}

// noAffinity applies SQLite's affinity rules to a declared type: BLOB
// affinity (stores values as given) for an empty type or one containing
// BLOB and none of INT, CHAR, CLOB, TEXT. ANY is included: in a STRICT
// table it stores values as given too.
func noAffinity(typ string) bool {
	u := strings.ToUpper(typ)
	switch {
	case strings.Contains(u, "INT"), strings.Contains(u, "CHAR"), strings.Contains(u, "CLOB"), strings.Contains(u, "TEXT"):
		return false
	case u == "" || strings.Contains(u, "BLOB") || u == "ANY":
		return true
	}
	return false
}

// fixRow is one row's edits that the session diff missed.
type fixRow struct {
	enc      string            // encoded key (as the diff reports it: the base row's)
	key      []changeset.Value // that key's values, in key order
	cols     []int
	old, new []changeset.Value // one per entry of cols
}

// fixups holds, per table, the rows with missed edits by encoded key.
type fixups map[string]map[string]*fixRow

func (fx fixups) empty() bool {
	for _, m := range fx {
		if len(m) > 0 {
			return false
		}
	}
	return true
}

// findFixups compares table t exactly between databases liveDB and baseDB
// of conn, for the columns the session diff may miss, and adds to fx. Run
// it in the same read transaction as the diff. Only rows with a missed
// edit are returned by SQLite, so its cost is one join of the two tables.
func findFixups(conn *sqlite.Conn, liveDB, baseDB string, t *schema.Table, fx fixups) error {
	inexact := inexactCols(t)
	if len(inexact) == 0 {
		return nil
	}
	n := len(t.Columns)
	var sel, on, where []string
	for _, side := range []string{"l", "b"} {
		for _, c := range t.Columns {
			sel = append(sel, side+"."+db.Quote(c.Name))
		}
	}
	for _, i := range t.PKCols() {
		c := db.Quote(t.Columns[i].Name)
		on = append(on, "l."+c+" = b."+c)
	}
	for _, i := range inexact {
		where = append(where, missedExpr(db.Quote(t.Columns[i].Name)))
	}
	q := fmt.Sprintf("SELECT %s FROM %s.%s AS l JOIN %s.%s AS b ON %s WHERE %s",
		strings.Join(sel, ", "), db.Quote(liveDB), db.Quote(t.Name), db.Quote(baseDB), db.Quote(t.Name),
		strings.Join(on, " AND "), strings.Join(where, " OR "))
	return sqlitex.ExecuteTransient(conn, q, &sqlitex.ExecOptions{ResultFunc: func(s *sqlite.Stmt) error {
		l := make([]changeset.Value, n)
		b := make([]changeset.Value, n)
		for i := range n {
			l[i], b[i] = db.Column(s, i), db.Column(s, n+i)
		}
		r := &fixRow{}
		for _, i := range t.PKCols() {
			r.key = append(r.key, b[i])
		}
		for _, i := range inexact {
			if !l[i].Equal(b[i]) {
				r.cols = append(r.cols, i)
				r.old = append(r.old, b[i])
				r.new = append(r.new, l[i])
			}
		}
		if len(r.cols) == 0 {
			return nil // only -0.0 vs 0.0, which SQLite does not keep apart either
		}
		r.enc = string(changeset.EncodeKey(r.key))
		if fx[t.Name] == nil {
			fx[t.Name] = map[string]*fixRow{}
		}
		fx[t.Name][r.enc] = r
		return nil
	}})
}

// missedExpr is true for a row whose column c (quoted) holds an edit the
// session diff cannot see: equal under the diff's own comparison (live's
// column IS base's, under the column's collation) but not the same value
// (bytes or storage class). Only such rows are read: a row the diff
// reports in full needs no fixup, and reading it would copy its values,
// a big BLOB's too, into memory for nothing. BLOBs are never missed (they
// compare bytewise), and the CASE tests their type first, which SQLite
// answers without loading the value, so a big BLOB is not loaded for the
// comparison either.
func missedExpr(c string) string {
	return fmt.Sprintf("CASE WHEN typeof(l.%[1]s) = 'blob' OR typeof(b.%[1]s) = 'blob' THEN 0 "+
		"ELSE l.%[1]s IS b.%[1]s AND (l.%[1]s IS NOT b.%[1]s COLLATE BINARY OR typeof(l.%[1]s) IS NOT typeof(b.%[1]s)) END", c)
}

// merge copies the changeset from r to w, adding the fixups: missed
// columns are filled into the row's UPDATE where the diff wrote one, and
// the other rows get UPDATEs of their own at the end, in key order.
func (fx fixups) merge(r io.Reader, tables []*schema.Table, w io.Writer, pool *changeset.Pool) error {
	left := fixups{}
	for t, m := range fx {
		left[t] = map[string]*fixRow{}
		for k, v := range m {
			left[t][k] = v
		}
	}
	cw := changeset.NewWriter(w)
	rd := capturedReader(r, pool)
	for {
		c, err := rd.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("decode captured changeset: %w", err)
		}
		if m := left[c.Table.Name]; m != nil && c.Op == changeset.OpUpdate {
			enc := string(changeset.EncodeKey(c.Key()))
			if f := m[enc]; f != nil {
				for j, i := range f.cols {
					if c.New[i].Kind == changeset.KindUndefined {
						c.Old[i], c.New[i] = f.old[j], f.new[j]
					}
				}
				delete(m, enc)
			}
		}
		if err := cw.Write(c); err != nil {
			return fmt.Errorf("rewrite captured changeset: %w", err)
		}
	}
	for _, t := range tables {
		m := left[t.Name]
		if len(m) == 0 {
			continue
		}
		tab := &changeset.Table{Name: t.Name, PK: make([]byte, len(t.Columns))}
		for i, c := range t.Columns {
			tab.PK[i] = byte(c.PK)
		}
		rs := make([]*fixRow, 0, len(m))
		for _, f := range m {
			rs = append(rs, f)
		}
		sort.Slice(rs, func(i, j int) bool { return rs[i].enc < rs[j].enc })
		for _, f := range rs {
			c := &changeset.Change{Table: tab, Op: changeset.OpUpdate,
				Old: make([]changeset.Value, len(t.Columns)), New: make([]changeset.Value, len(t.Columns))}
			for j, i := range t.PKCols() {
				c.Old[i] = f.key[j]
			}
			for j, i := range f.cols {
				c.Old[i], c.New[i] = f.old[j], f.new[j]
			}
			if err := cw.Write(c); err != nil {
				return fmt.Errorf("write missed edit of %s: %w", t.Name, err)
			}
		}
	}
	return cw.Flush()
}
