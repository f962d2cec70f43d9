package merge

import (
	"fmt"
	"strings"

	"zombiezen.com/go/sqlite"
	"zombiezen.com/go/sqlite/sqlitex"

	"rowdrop/internal/changeset"
	"rowdrop/internal/db"
	"rowdrop/internal/schema"
	"rowdrop/internal/state"
)

// UNIQUE constraints besides the key. Two devices can each add a row with
// the same unique value (the same URL bookmarked twice, under two ids).
// Whichever device applies the other's row finds the value taken. Every
// device resolves the clash the same way: the row inserted first (earlier
// insert clock; the encoded key breaks ties) keeps the value and stays;
// the other row is removed and kept whole in the conflict log (kind
// "unique"), restorable by hand. The decision depends only on the two
// rows' insert clocks, which every device knows, so it is the same
// whatever the arrival order.

// KindUnique: a row lost a UNIQUE constraint to an earlier-inserted row.
const KindUnique = "unique"

// uniqueIndex is a UNIQUE index other than the primary key's.
type uniqueIndex struct {
	name string
	cols []int // table column indices
	coll []string
}

// uniqueIndexes lists t's UNIQUE indexes on plain columns (indexes on
// expressions are skipped: their clashes can't be found by value).
func uniqueIndexes(conn *sqlite.Conn, t *schema.Table) ([]uniqueIndex, error) {
	var names []string
	err := sqlitex.ExecuteTransient(conn, fmt.Sprintf("PRAGMA main.index_list(%s)", db.Quote(t.Name)),
		&sqlitex.ExecOptions{ResultFunc: func(s *sqlite.Stmt) error {
			if s.GetInt64("unique") != 0 && s.GetText("origin") != "pk" {
				names = append(names, s.GetText("name"))
			}
			return nil
		}})
	if err != nil {
		return nil, fmt.Errorf("list indexes of %s: %w", t.Name, err)
	}
	var out []uniqueIndex
	for _, n := range names {
		ix := uniqueIndex{name: n}
		expr := false
		err := sqlitex.ExecuteTransient(conn, fmt.Sprintf("PRAGMA main.index_xinfo(%s)", db.Quote(n)),
			&sqlitex.ExecOptions{ResultFunc: func(s *sqlite.Stmt) error {
				if s.GetInt64("key") == 0 {
					return nil
				}
				ci := t.ColIndex(s.GetText("name"))
				if s.GetInt64("cid") < 0 || ci < 0 {
					expr = true
					return nil
				}
				ix.cols = append(ix.cols, ci)
				ix.coll = append(ix.coll, s.GetText("coll"))
				return nil
			}})
		if err != nil {
			return nil, fmt.Errorf("read index %s of %s: %w", n, t.Name, err)
		}
		if !expr {
			out = append(out, ix)
		}
	}
	return out, nil
}

// clashingKeys returns the keys of rows of t on conn, other than key, that
// hold row's values on some UNIQUE index (NULLs never clash).
func clashingKeys(conn *sqlite.Conn, t *schema.Table, idx []uniqueIndex, key, row []changeset.Value) ([][]changeset.Value, error) {
	var out [][]changeset.Value
	seen := map[string]bool{string(changeset.EncodeKey(key)): true}
	var pkSel []string
	for _, i := range t.PKCols() {
		pkSel = append(pkSel, db.Quote(t.Columns[i].Name))
	}
	for _, ix := range idx {
		var where []string
		var args []changeset.Value
		null := false
		for j, ci := range ix.cols {
			if row[ci].Kind == changeset.KindNull || row[ci].Kind == changeset.KindUndefined {
				null = true
			}
			where = append(where, db.Quote(t.Columns[ci].Name)+" = ? COLLATE "+db.Quote(ix.coll[j]))
			args = append(args, row[ci])
		}
		if null {
			continue
		}
		q := fmt.Sprintf("SELECT %s FROM main.%s WHERE %s", strings.Join(pkSel, ","), db.Quote(t.Name), strings.Join(where, " AND "))
		stmt, err := conn.Prepare(q)
		if err != nil {
			return nil, fmt.Errorf("look for rows clashing on %s: %w", ix.name, err)
		}
		for i, a := range args {
			db.Bind(stmt, i+1, a)
		}
		for {
			has, err := stmt.Step()
			if err != nil {
				stmt.Reset()
				return nil, err
			}
			if !has {
				break
			}
			k := make([]changeset.Value, len(pkSel))
			for i := range k {
				k[i] = db.Column(stmt, i)
			}
			if e := string(changeset.EncodeKey(k)); !seen[e] {
				seen[e] = true
				out = append(out, k)
			}
		}
		stmt.Reset()
		stmt.ClearBindings()
	}
	return out, nil
}

// uniqueWinner reports whether row a (insert clock ia, key ka) keeps a
// unique value against row b: the earlier insert wins, the smaller encoded
// key breaks ties. Both arguments' roles are symmetric, so every device
// reaches the same answer.
func uniqueWinner(ia state.Clock, ka []byte, ib state.Clock, kb []byte) bool {
	if c := ia.Compare(ib); c != 0 {
		return c < 0
	}
	return string(ka) < string(kb)
}
