package export

import (
	"fmt"
	"sort"
	"strings"

	"zombiezen.com/go/sqlite"
	"zombiezen.com/go/sqlite/sqlitex"

	"github.com/rowdrop/rowdrop/internal/db"
	"github.com/rowdrop/rowdrop/internal/state"
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
// need not). A row counts when the export deletes it, or overwrites it
// while its current values were last written by another device: that is
// other devices' work undone. (A device rewriting its own rows, a "mark
// all read" or a backfill after a migration, is its user's editing.) Only
// tables with enough such rows to matter are counted, in the base copy.
func (e *Exporter) massChange(ts touchedSet) (string, error) {
	pct, minRows := e.MassPercent, e.MassMinRows
	if pct <= 0 {
		return "", nil
	}
	if minRows <= 0 {
		minRows = DefaultMassMinRows
	}
	// lost > pct% of total needs total < lost*100/pct: below this, even
	// the smallest guarded table would not be exceeded.
	small := func(n int64) bool { return n*100 <= int64(pct)*int64(minRows) }
	names := map[string]bool{}
	for n := range ts.deleted {
		names[n] = true
	}
	for n := range ts.updated {
		names[n] = true
	}
	sorted := make([]string, 0, len(names))
	for n := range names {
		sorted = append(sorted, n)
	}
	sort.Strings(sorted)
	var meta *state.Meta
	defer func() {
		if meta != nil {
			meta.Close()
		}
	}()
	var over []string
	for _, name := range sorted {
		lost := ts.deleted[name]
		if small(lost + int64(len(ts.updated[name]))) {
			continue
		}
		if len(ts.updated[name]) > 0 {
			if meta == nil {
				var err error
				if meta, err = e.State.NewMeta(); err != nil {
					return "", err
				}
			}
			for _, pk := range ts.updated[name] {
				m, err := meta.Get(name, pk)
				if err != nil {
					return "", err
				}
				if m != nil && m.WMax.Dev != e.ID.Device {
					lost++
				}
			}
		}
		if small(lost) {
			continue
		}
		var total int64
		err := sqlitex.ExecuteTransient(e.State.Conn(), fmt.Sprintf("SELECT count(*) FROM main.%s", db.Quote(name)), &sqlitex.ExecOptions{ResultFunc: func(s *sqlite.Stmt) error {
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
	e.ConfirmMassChange, e.Adopt = false, false // one confirmation, one export
	v, err := e.State.Value(state.KeyMassHeld)
	if err != nil || v == "" {
		return err
	}
	return e.State.Set(state.KeyMassHeld, "")
}
