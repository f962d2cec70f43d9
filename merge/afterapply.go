package merge

import (
	"strings"

	"zombiezen.com/go/sqlite"

	"github.com/rowdrop/rowdrop/internal/changeset"
	"github.com/rowdrop/rowdrop/internal/db"
)

// After-apply actions (Engine.AfterApply): SQL an app profile or the user
// gives per table, run in the live database once per row a batch merged
// into it, inside the batch's transaction, so an app whose own code (not a
// trigger) feeds a change log or an index sees merged rows as it sees
// local edits: Joplin's search reads item_changes, which only Joplin's
// JavaScript writes. The statement may use :key (the row's first
// primary-key column) and :op ('insert', 'update' or 'delete').
//
// An action that fails (a table a newer version of the app dropped, a
// constraint) is logged and skipped: the merged rows stay, as the app's
// own data matters more than its feed.

// afterApply runs the actions for the rows of items written to live.
func (e *Engine) afterApply(items []*item) {
	if len(e.AfterApply) == 0 {
		return
	}
	for _, it := range items {
		if !it.liveWritten || sameRow(it.liveBefore, it.liveWant) {
			continue
		}
		sql := e.afterApplySQL(it.table.Name)
		if sql == "" {
			continue
		}
		op := "update"
		switch {
		case it.liveBefore == nil:
			op = "insert"
		case it.liveWant == nil:
			op = "delete"
		}
		if err := runAfterApply(e.Live, sql, it.key, op); err != nil {
			e.Log.Warn("after-apply action failed: the merged row is kept, but the app's own feed misses it (fix after_apply for the table)",
				"table", it.table.Name, "key", KeyText(it.key), "err", err)
		}
	}
}

// afterApplySQL is the action for a table, matched case-insensitively.
func (e *Engine) afterApplySQL(table string) string {
	if sql, ok := e.AfterApply[table]; ok {
		return sql
	}
	for t, sql := range e.AfterApply {
		if strings.EqualFold(t, table) {
			return sql
		}
	}
	return ""
}

func runAfterApply(conn *sqlite.Conn, sql string, key []changeset.Value, op string) (err error) {
	stmt, err := conn.Prepare(sql)
	if err != nil {
		return err
	}
	defer func() {
		if rerr := stmt.Reset(); err == nil {
			err = rerr
		}
		stmt.ClearBindings()
	}()
	for i := 1; i <= stmt.BindParamCount(); i++ {
		switch stmt.BindParamName(i) {
		case ":key":
			if len(key) > 0 {
				db.Bind(stmt, i, key[0])
			}
		case ":op":
			stmt.BindText(i, op)
		}
	}
	for {
		more, err := stmt.Step()
		if err != nil || !more {
			return err
		}
	}
}
