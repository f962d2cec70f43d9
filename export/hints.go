package export

import (
	"errors"
	"fmt"
	"strings"

	"zombiezen.com/go/sqlite"
	"zombiezen.com/go/sqlite/sqlitex"

	"github.com/rowdrop/rowdrop/internal/db"
	"github.com/rowdrop/rowdrop/internal/schema"
)

// Hint triggers: the opt-in fast capture path. Three tiny triggers per
// synced table append (table, key) to rowdrop_dirty inside the app's own
// transaction, so a hint commits exactly when the edit does, whichever
// process made it. Nothing else of the app's schema is touched.

// MaxHintKeyCols is the widest primary key the hint table records.
const MaxHintKeyCols = 8

const dirtyDDL = `CREATE TABLE IF NOT EXISTS rowdrop_dirty(tbl TEXT NOT NULL, k1, k2, k3, k4, k5, k6, k7, k8)`

func lit(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// hintTriggers returns name -> CREATE TRIGGER statement for table t of
// database dbName on conn.
//
// The AFTER triggers record the key of every inserted, updated (old and, if
// it changed, new key) and deleted row. That is not quite every row an
// edit can touch: a REPLACE conflict resolution (INSERT OR REPLACE, UPDATE
// OR REPLACE, UNIQUE ... ON CONFLICT REPLACE) deletes the rows that
// collide with the new one on a UNIQUE index or on the rowid without firing
// delete triggers (SQLite fires them only with recursive_triggers on). So
// tables with such a conflict target also get BEFORE INSERT and BEFORE
// UPDATE triggers that record the keys of the rows the new values collide
// with, i.e. the rows a REPLACE is about to delete. Over-recording is
// harmless (a key whose row did not change diffs to nothing); missing a key
// would lose a change.
func hintTriggers(conn *sqlite.Conn, dbName string, t *schema.Table) (map[string]string, error) {
	t = t.Storage() // the fast capture reads the keys SQLite's diff uses
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
	out := map[string]string{
		base + "_i": fmt.Sprintf("CREATE TRIGGER %s AFTER INSERT ON %s BEGIN %s%s); END", db.Quote(base+"_i"), q, ins, keys("NEW")),
		base + "_u": fmt.Sprintf("CREATE TRIGGER %s AFTER UPDATE ON %s BEGIN %s%s); INSERT INTO rowdrop_dirty SELECT %s,%s WHERE %s; END",
			db.Quote(base+"_u"), q, ins, keys("OLD"), lit(t.Name), keys("NEW"), strings.Join(changed, " OR ")),
		base + "_d": fmt.Sprintf("CREATE TRIGGER %s AFTER DELETE ON %s BEGIN %s%s); END", db.Quote(base+"_d"), q, ins, keys("OLD")),
	}
	targets, err := conflictTargets(conn, dbName, t)
	if err != nil {
		return nil, err
	}
	if len(targets) == 0 {
		return out, nil
	}
	var stmts, moved []string
	for _, tg := range targets {
		var where []string
		for i, c := range tg.cols {
			where = append(where, q+"."+c+" = NEW."+c+" COLLATE "+db.Quote(tg.coll[i]))
			moved = append(moved, "NEW."+c+" IS NOT OLD."+c)
		}
		stmts = append(stmts, fmt.Sprintf("INSERT INTO rowdrop_dirty SELECT %s,%s FROM %s WHERE %s;", lit(t.Name), keys(q), q, strings.Join(where, " AND ")))
	}
	body := strings.Join(stmts, " ")
	out[base+"_bi"] = fmt.Sprintf("CREATE TRIGGER %s BEFORE INSERT ON %s BEGIN %s END", db.Quote(base+"_bi"), q, body)
	// An UPDATE that keeps every target column can't collide with anyone.
	out[base+"_bu"] = fmt.Sprintf("CREATE TRIGGER %s BEFORE UPDATE ON %s WHEN %s BEGIN %s END", db.Quote(base+"_bu"), q, strings.Join(moved, " OR "), body)
	return out, nil
}

// conflictTarget is a UNIQUE index's columns (or the rowid) on which a
// REPLACE can delete another row, each with the index's collation.
type conflictTarget struct {
	cols []string // quoted column names, or rowid
	coll []string
}

// errHintsUnsupported marks a table whose changes hint triggers cannot
// follow exactly; such a database is always captured by full diffs.
var errHintsUnsupported = errors.New("hint triggers cannot follow every change of this table")

// conflictTargets lists t's UNIQUE indexes other than the primary key, and
// the rowid of a rowid table whose primary key is not the rowid (an
// explicit rowid can collide with another row there).
func conflictTargets(conn *sqlite.Conn, dbName string, t *schema.Table) ([]conflictTarget, error) {
	var idx []string // UNIQUE indexes other than the primary key's
	pkIndex := false
	err := sqlitex.ExecuteTransient(conn, fmt.Sprintf("PRAGMA %s.index_list(%s)", db.Quote(dbName), db.Quote(t.Name)),
		&sqlitex.ExecOptions{ResultFunc: func(s *sqlite.Stmt) error {
			switch {
			case s.GetText("origin") == "pk":
				pkIndex = true
			case s.GetInt64("unique") != 0:
				idx = append(idx, s.GetText("name"))
			}
			return nil
		}})
	if err != nil {
		return nil, fmt.Errorf("list indexes of %s: %w", t.Name, err)
	}
	var out []conflictTarget
	for _, name := range idx {
		var tg conflictTarget
		expr := false
		err := sqlitex.ExecuteTransient(conn, fmt.Sprintf("PRAGMA %s.index_xinfo(%s)", db.Quote(dbName), db.Quote(name)),
			&sqlitex.ExecOptions{ResultFunc: func(s *sqlite.Stmt) error {
				if s.GetInt64("key") == 0 {
					return nil
				}
				switch cid := s.GetInt64("cid"); {
				case cid == -2:
					expr = true
				case cid == -1:
					tg.cols = append(tg.cols, "rowid")
				default:
					tg.cols = append(tg.cols, db.Quote(s.GetText("name")))
				}
				tg.coll = append(tg.coll, s.GetText("coll"))
				return nil
			}})
		if err != nil {
			return nil, fmt.Errorf("read index %s of %s: %w", name, t.Name, err)
		}
		if expr {
			return nil, fmt.Errorf("table %s has a UNIQUE index on an expression (%s), whose REPLACE deletions the hint triggers cannot see; rowdrop uses full diffs: %w", t.Name, name, errHintsUnsupported)
		}
		out = append(out, tg)
	}
	if pkIndex {
		withoutRowid := false
		err := sqlitex.ExecuteTransient(conn, fmt.Sprintf("PRAGMA %s.table_list(%s)", db.Quote(dbName), db.Quote(t.Name)),
			&sqlitex.ExecOptions{ResultFunc: func(s *sqlite.Stmt) error {
				withoutRowid = s.GetInt64("wr") != 0
				return nil
			}})
		if err != nil {
			return nil, fmt.Errorf("read table kind of %s: %w", t.Name, err)
		}
		if !withoutRowid {
			out = append(out, conflictTarget{cols: []string{"rowid"}, coll: []string{"BINARY"}})
		}
	}
	return out, nil
}

// HintsSupported reports whether every table's key fits the hint table.
func HintsSupported(tables []*schema.Table) bool {
	for _, t := range tables {
		if len(t.Storage().PKCols()) > MaxHintKeyCols {
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
		want, err := hintTriggers(conn, dbName, t)
		if err != nil {
			return false, err
		}
		for name, sql := range want {
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
	if err = dropHintTriggers(conn); err != nil {
		return err
	}
	for _, t := range tables {
		var want map[string]string
		if want, err = hintTriggers(conn, "main", t); err != nil {
			return err
		}
		for _, sql := range want {
			if err = db.Exec(conn, sql); err != nil {
				return fmt.Errorf("create capture trigger on %s: %w", t.Name, err)
			}
		}
	}
	return nil
}

// dropHintTriggers drops every hint trigger, inside the caller's transaction.
func dropHintTriggers(conn *sqlite.Conn) error {
	var old []string
	err := sqlitex.ExecuteTransient(conn, "SELECT name FROM main.sqlite_master WHERE type='trigger' AND name LIKE 'rowdrop\\_dirty\\_%' ESCAPE '\\'",
		&sqlitex.ExecOptions{ResultFunc: func(s *sqlite.Stmt) error { old = append(old, s.ColumnText(0)); return nil }})
	if err != nil {
		return err
	}
	for _, n := range old {
		if err := db.Exec(conn, "DROP TRIGGER "+db.Quote(n)); err != nil {
			return err
		}
	}
	return nil
}

// clearHints deletes consumed hints (rowid <= max).
func clearHints(conn *sqlite.Conn, max int64) error {
	if max <= 0 {
		return nil
	}
	return db.Exec(conn, "DELETE FROM rowdrop_dirty WHERE rowid<=?", max)
}
