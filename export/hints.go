package export

import (
	"fmt"
	"strings"

	"zombiezen.com/go/sqlite"
	"zombiezen.com/go/sqlite/sqlitex"

	"rowdrop/internal/db"
	"rowdrop/internal/schema"
)

// Hint triggers: the opt-in fast capture path. Three tiny triggers per
// synced table append (table, key) to rowdrop_dirty inside the app's own
// transaction, so a hint commits exactly when the edit does, whichever
// process made it. Nothing else of the app's schema is touched.

// MaxHintKeyCols is the widest primary key the hint table records.
const MaxHintKeyCols = 8

const dirtyDDL = `CREATE TABLE IF NOT EXISTS rowdrop_dirty(tbl TEXT NOT NULL, k1, k2, k3, k4, k5, k6, k7, k8)`

func lit(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// hintTriggers returns name -> CREATE TRIGGER statement for table t.
func hintTriggers(t *schema.Table) map[string]string {
	keys := func(row string) string {
		var v []string
		for _, i := range t.PKCols() {
			v = append(v, row+"."+db.Quote(t.Columns[i].Name))
		}
		for len(v) < MaxHintKeyCols {
			v = append(v, "NULL")
		}
		return strings.Join(v, ",")
	}
	var changed []string
	for _, i := range t.PKCols() {
		c := db.Quote(t.Columns[i].Name)
		changed = append(changed, "NEW."+c+" IS NOT OLD."+c)
	}
	ins := "INSERT INTO rowdrop_dirty VALUES(" + lit(t.Name) + ","
	base := "rowdrop_dirty_" + fmt.Sprintf("%x", t.Name)
	q := db.Quote(t.Name)
	return map[string]string{
		base + "_i": fmt.Sprintf("CREATE TRIGGER %s AFTER INSERT ON %s BEGIN %s%s); END", db.Quote(base+"_i"), q, ins, keys("NEW")),
		base + "_u": fmt.Sprintf("CREATE TRIGGER %s AFTER UPDATE ON %s BEGIN %s%s); INSERT INTO rowdrop_dirty SELECT %s,%s WHERE %s; END",
			db.Quote(base+"_u"), q, ins, keys("OLD"), lit(t.Name), keys("NEW"), strings.Join(changed, " OR ")),
		base + "_d": fmt.Sprintf("CREATE TRIGGER %s AFTER DELETE ON %s BEGIN %s%s); END", db.Quote(base+"_d"), q, ins, keys("OLD")),
	}
}

// HintsSupported reports whether every table's key fits the hint table.
func HintsSupported(tables []*schema.Table) bool {
	for _, t := range tables {
		if len(t.PKCols()) > MaxHintKeyCols {
			return false
		}
	}
	return true
}

// hintsValid reports whether the installed triggers are exactly the ones
// rowdrop would install for these tables: anything missing or altered (an
// app migration that rebuilt a table drops its triggers) puts the fast
// path in doubt.
func hintsValid(conn *sqlite.Conn, dbName string, tables []*schema.Table) (bool, error) {
	have := map[string]string{}
	err := sqlitex.ExecuteTransient(conn, fmt.Sprintf("SELECT name, sql FROM %s.sqlite_master WHERE type IN ('trigger','table') AND name LIKE 'rowdrop\\_dirty%%' ESCAPE '\\'", db.Quote(dbName)),
		&sqlitex.ExecOptions{ResultFunc: func(s *sqlite.Stmt) error { have[s.ColumnText(0)] = s.ColumnText(1); return nil }})
	if err != nil {
		return false, err
	}
	if _, ok := have["rowdrop_dirty"]; !ok {
		return false, nil
	}
	for _, t := range tables {
		for name, sql := range hintTriggers(t) {
			if have[name] != sql {
				return false, nil
			}
		}
	}
	return true, nil
}

// InstallHints creates rowdrop_dirty and the hint triggers in the live
// database (the user opted in), replacing stale ones, in one transaction.
func InstallHints(conn *sqlite.Conn, tables []*schema.Table) (err error) {
	if !HintsSupported(tables) {
		return fmt.Errorf("a synced table has more than %d primary-key columns; the fast capture path cannot be used (rowdrop falls back to full diffs)", MaxHintKeyCols)
	}
	end, err := db.Begin(conn, "IMMEDIATE")
	if err != nil {
		return fmt.Errorf("install capture triggers: %w", err)
	}
	defer end(&err)
	if err = db.Exec(conn, dirtyDDL); err != nil {
		return err
	}
	var old []string
	err = sqlitex.ExecuteTransient(conn, "SELECT name FROM main.sqlite_master WHERE type='trigger' AND name LIKE 'rowdrop\\_dirty\\_%' ESCAPE '\\'",
		&sqlitex.ExecOptions{ResultFunc: func(s *sqlite.Stmt) error { old = append(old, s.ColumnText(0)); return nil }})
	if err != nil {
		return err
	}
	for _, n := range old {
		if err = db.Exec(conn, "DROP TRIGGER "+db.Quote(n)); err != nil {
			return err
		}
	}
	for _, t := range tables {
		for _, sql := range hintTriggers(t) {
			if err = db.Exec(conn, sql); err != nil {
				return fmt.Errorf("create capture trigger on %s: %w", t.Name, err)
			}
		}
	}
	return nil
}

// RemoveHints drops the hint triggers and table.
func RemoveHints(conn *sqlite.Conn) (err error) {
	end, err := db.Begin(conn, "IMMEDIATE")
	if err != nil {
		return err
	}
	defer end(&err)
	var old []string
	err = sqlitex.ExecuteTransient(conn, "SELECT name FROM main.sqlite_master WHERE type='trigger' AND name LIKE 'rowdrop\\_dirty\\_%' ESCAPE '\\'",
		&sqlitex.ExecOptions{ResultFunc: func(s *sqlite.Stmt) error { old = append(old, s.ColumnText(0)); return nil }})
	if err != nil {
		return err
	}
	for _, n := range old {
		if err = db.Exec(conn, "DROP TRIGGER "+db.Quote(n)); err != nil {
			return err
		}
	}
	return db.Exec(conn, "DROP TABLE IF EXISTS rowdrop_dirty")
}

// clearHints deletes consumed hints (rowid <= max).
func clearHints(conn *sqlite.Conn, max int64) error {
	if max <= 0 {
		return nil
	}
	return db.Exec(conn, "DELETE FROM rowdrop_dirty WHERE rowid<=?", max)
}
