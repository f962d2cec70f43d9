package export

import (
	"fmt"
	"sort"
	"strings"

	"zombiezen.com/go/sqlite"
	"zombiezen.com/go/sqlite/sqlitex"

	"rowdrop/internal/db"
	"rowdrop/internal/state"
)

// The mass-change guard. Like Dropbox asking before it propagates a mass
// deletion, an export that would delete or overwrite more than a share of
// a table's rows is held until the user confirms it: a bulk delete by a
// buggy app, a truncated table or a restore that slipped past recognise.go
// then costs nothing on the other devices. It is held before it is built:
// the base copy does not advance, so the changes stay unexported edits in
// live, published by `rowdrop sync --confirm-mass-change`, or undone in
// the app (or by restoring the database: the rows come back from the base
// copy).

// Defaults of the guard (Exporter.MassPercent, MassMinRows).
const (
	DefaultMassPercent = 50
	DefaultMassMinRows = 20
)

// massChange returns why the export described by ts must be held ("": it
// need not). Only tables with enough deleted or overwritten rows to matter
// are counted, in the base copy (what other devices hold).
func (e *Exporter) massChange(ts touchedSet) (string, error) {
	pct, minRows := e.MassPercent, e.MassMinRows
	if pct < 0 {
		return "", nil
	}
	if pct == 0 {
		pct = DefaultMassPercent
	}
	if minRows <= 0 {
		minRows = DefaultMassMinRows
	}
	var over []string
	names := make([]string, 0, len(ts.lost))
	for n := range ts.lost {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, name := range names {
		lost := ts.lost[name]
		// lost > pct% of total needs total < lost*100/pct: skip the count
		// when even the smallest guarded table would not be exceeded.
		if lost*100 <= int64(pct)*int64(minRows) {
			continue
		}
		var total int64
		err := sqlitex.ExecuteTransient(e.State.Base, fmt.Sprintf("SELECT count(*) FROM main.%s", db.Quote(name)), &sqlitex.ExecOptions{ResultFunc: func(s *sqlite.Stmt) error {
			total = s.ColumnInt64(0)
			return nil
		}})
		if err != nil {
			return "", fmt.Errorf("count rows of %s in the base copy: %w", name, err)
		}
		if total >= int64(minRows) && lost*100 > int64(pct)*total {
			over = append(over, fmt.Sprintf("%d of the %d rows of %s", lost, total, name))
		}
	}
	if len(over) == 0 {
		return "", nil
	}
	return fmt.Sprintf("it would delete or overwrite %s on every device (more than %d%%). If that is meant, publish it with `rowdrop sync --confirm-mass-change`; if not, undo it in the app (or restore the database from a backup) and sync again", strings.Join(over, ", "), pct), nil
}

// releaseHold forgets a hold once an export got through (confirmed, or
// the mass change was undone).
func (e *Exporter) releaseHold() error {
	e.ConfirmMassChange = false // one confirmation, one export
	v, err := e.State.Value(state.KeyMassHeld)
	if err != nil || v == "" {
		return err
	}
	return e.State.Set(state.KeyMassHeld, "")
}
