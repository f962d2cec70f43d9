package state

import (
	"fmt"

	"zombiezen.com/go/sqlite"
	"zombiezen.com/go/sqlite/sqlitex"
)

// Observe records that device dev shows evidence (a description of its
// newest file and ack) and returns when this device first saw that
// evidence, by its own clock: nowMS if it is new since the last call, 0
// if this is the first call for dev (nothing to compare with: the
// other device's own clock is all there is).
func (d *Dir) Observe(dev, evidence string, nowMS int64) (int64, error) {
	var old string
	var at int64
	found := false
	err := sqlitex.Execute(d.conn, "SELECT evidence, at_ms FROM rowdrop_observed WHERE dev=?", &sqlitex.ExecOptions{Args: []any{dev},
		ResultFunc: func(s *sqlite.Stmt) error {
			old, at, found = s.ColumnText(0), s.ColumnInt64(1), true
			return nil
		}})
	if err != nil {
		return 0, fmt.Errorf("read what was observed of device %s: %w", dev, err)
	}
	if found && old == evidence {
		return at, nil
	}
	if found {
		at = nowMS
	}
	if err := sqlitex.Execute(d.conn, "INSERT OR REPLACE INTO rowdrop_observed(dev, evidence, at_ms) VALUES(?,?,?)",
		&sqlitex.ExecOptions{Args: []any{dev, evidence, at}}); err != nil {
		return 0, fmt.Errorf("record what was observed of device %s: %w", dev, err)
	}
	return at, nil
}
