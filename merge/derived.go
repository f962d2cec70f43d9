package merge

import (
	"encoding/json"
	"strings"

	"github.com/rowdrop/rowdrop/internal/state"
)

// Trigger-derived cells. An app's trigger that stamps a column of the row
// being written (AFTER UPDATE ON notes BEGIN UPDATE notes SET updated_at
// = ... WHERE id = new.id; END) gives every edit a new value there: two
// edits of different columns of one row then "conflict" on that column
// alone. Such a cell is not a conflict of its own: it is logged only
// within an entry of a cell the user wrote.

// derivedCols lists, per table (lower case), the columns the app's
// triggers on that table set on that table's rows: `UPDATE t SET c = ...`
// in the body of a trigger on t. Shallow like the rest of apprules.go: a
// form it does not recognise only means a cell logged as before.
func derivedCols(trs []appTrigger) map[string]map[string]bool {
	out := map[string]map[string]bool{}
	for _, tr := range trs {
		if tr.event != "UPDATE" && tr.event != "INSERT" {
			continue
		}
		for _, col := range setCols(tr.sql, tr.table) {
			tbl := strings.ToLower(tr.table)
			if out[tbl] == nil {
				out[tbl] = map[string]bool{}
			}
			out[tbl][strings.ToLower(col)] = true
		}
	}
	return out
}

// setCols returns the columns an `UPDATE tbl SET ...` in sql assigns.
func setCols(sql, tbl string) []string {
	var toks []string
	for _, t := range sqlToken.FindAllString(sql, -1) {
		if !strings.HasPrefix(t, "--") && !strings.HasPrefix(t, "/*") {
			toks = append(toks, t)
		}
	}
	low := func(i int) string {
		if i < 0 || i >= len(toks) {
			return ""
		}
		return strings.ToLower(toks[i])
	}
	var out []string
	for i := range toks {
		// Skip the header's "UPDATE [OF cols] ON t": only a body's
		// UPDATE is followed by the table and SET.
		if low(i) != "update" {
			continue
		}
		j := i + 1
		if k := low(j); k == "or" {
			j += 2 // UPDATE OR REPLACE t
		}
		if j+2 < len(toks) && toks[j+1] == "." {
			j += 2 // schema.t
		}
		if !strings.EqualFold(ident(toks[min(j, len(toks)-1)]), tbl) || low(j+1) != "set" {
			continue
		}
		// col = expr, ...: a column whose expression reads the row's own
		// value of it (SET title = trim(new.title)) reshapes what the user
		// wrote and is no derived cell.
		depth := 0
		start := true
		col, self := "", false
		done := func() {
			if col != "" && !self {
				out = append(out, col)
			}
			col, self = "", false
		}
		for k := j + 2; k < len(toks); k++ {
			switch l := low(k); {
			case l == "(":
				depth++
			case l == ")":
				depth--
			case depth == 0 && (l == "where" || l == "from" || l == ";" || l == "returning" || l == "end"):
				k = len(toks)
			case depth == 0 && l == ",":
				done()
				start = true
			case depth == 0 && start:
				if c := ident(toks[k]); c != "" && low(k+1) == "=" {
					col = c
				}
				start = false
			case (l == "new" || l == "old") && low(k+1) == "." && col != "" && strings.EqualFold(ident(toks[min(k+2, len(toks)-1)]), col):
				self = true
			}
		}
		done()
	}
	return out
}

// derivedOnly reports whether every column of c is one the app's
// triggers derive.
func derivedOnly(c *state.Conflict, derived map[string]bool) bool {
	if len(derived) == 0 {
		return false
	}
	var cols []string
	if json.Unmarshal([]byte(c.Cols), &cols) != nil || len(cols) == 0 {
		return false
	}
	for _, col := range cols {
		if !derived[strings.ToLower(col)] {
			return false
		}
	}
	return true
}

// logged drops, from the conflicts one change of one row gave, those of
// trigger-derived cells alone, unless a conflict of a written cell shares
// their id (the same two edits): they then join that entry.
func logged(cs []*state.Conflict, derived map[string]bool) []*state.Conflict {
	if len(derived) == 0 {
		return cs
	}
	real := map[string]bool{}
	for _, c := range cs {
		if !derivedOnly(c, derived) {
			real[state.ConflictID(c)] = true
		}
	}
	// Written cells first, so an entry lists them before derived ones.
	out := cs[:0:0]
	for _, c := range cs {
		if !derivedOnly(c, derived) {
			out = append(out, c)
		}
	}
	for _, c := range cs {
		if derivedOnly(c, derived) && real[state.ConflictID(c)] {
			out = append(out, c)
		}
	}
	return out
}
