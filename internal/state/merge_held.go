package state

import (
	"fmt"

	"zombiezen.com/go/sqlite"
	"zombiezen.com/go/sqlite/sqlitex"

	"github.com/rowdrop/rowdrop/internal/db"
	"github.com/rowdrop/rowdrop/internal/hlc"
)

// The merge's own bookkeeping beside the base copy: rows held out of
// their table on a UNIQUE clash (merge/unique.go), local rows that must
// leave a shared INTEGER id (merge/rekey.go, FixLocalMoves), and the
// renaming of a re-keyed row's metadata.

// HeldRow is a row alive by its clocks but kept out of its table because
// it clashes on a UNIQUE constraint with an earlier-inserted row; its
// values are its RowMeta.Dead.
type HeldRow struct {
	Table string
	PK    []byte
	// Logged holds the values last written to the conflict log for the
	// row (nil: not logged yet).
	Logged []byte
}

// HeldCounts returns the number of held rows per table.
func (d *Dir) HeldCounts() (map[string]int, error) {
	out := map[string]int{}
	err := sqlitex.ExecuteTransient(d.conn, "SELECT tbl, count(*) FROM rowdrop_unique_held GROUP BY tbl", &sqlitex.ExecOptions{ResultFunc: func(s *sqlite.Stmt) error {
		out[s.ColumnText(0)] = s.ColumnInt(1)
		return nil
	}})
	if err != nil {
		return nil, fmt.Errorf("read held UNIQUE clashes: %w", err)
	}
	return out, nil
}

// HeldRows lists every held row.
func (d *Dir) HeldRows() ([]HeldRow, error) {
	var out []HeldRow
	err := sqlitex.Execute(d.conn, "SELECT tbl, pk, logged FROM rowdrop_unique_held", &sqlitex.ExecOptions{ResultFunc: func(s *sqlite.Stmt) error {
		out = append(out, HeldRow{Table: s.ColumnText(0), PK: columnBlob(s, 1), Logged: columnBlob(s, 2)})
		return nil
	}})
	if err != nil {
		return nil, fmt.Errorf("read held UNIQUE clashes: %w", err)
	}
	return out, nil
}

// Hold lists the row under pk of table tbl as held; an entry already there
// keeps what it logged.
func (d *Dir) Hold(tbl string, pk []byte) error {
	if err := db.Exec(d.conn, "INSERT INTO rowdrop_unique_held(tbl, pk) VALUES(?, ?) ON CONFLICT DO NOTHING", tbl, pk); err != nil {
		return fmt.Errorf("record a held UNIQUE clash: %w", err)
	}
	return nil
}

// HoldLogged lists a row as held whose values logged were just written to
// the conflict log.
func (d *Dir) HoldLogged(tbl string, pk, logged []byte) error {
	if err := db.Exec(d.conn, "INSERT OR REPLACE INTO rowdrop_unique_held(tbl, pk, logged) VALUES(?, ?, ?)", tbl, pk, logged); err != nil {
		return fmt.Errorf("record a held UNIQUE clash: %w", err)
	}
	return nil
}

// SetHeldLogged records that a held row's values logged were written to
// the conflict log.
func (d *Dir) SetHeldLogged(tbl string, pk, logged []byte) error {
	if err := db.Exec(d.conn, "UPDATE rowdrop_unique_held SET logged=? WHERE tbl=? AND pk=?", logged, tbl, pk); err != nil {
		return fmt.Errorf("update held UNIQUE clashes: %w", err)
	}
	return nil
}

// Unhold drops a row from the held list (if it is there).
func (d *Dir) Unhold(tbl string, pk []byte) error {
	if err := db.Exec(d.conn, "DELETE FROM rowdrop_unique_held WHERE tbl=? AND pk=?", tbl, pk); err != nil {
		return fmt.Errorf("update held UNIQUE clashes: %w", err)
	}
	return nil
}

// LocalMove is a row created here and not exported yet that met a remote
// insert under the same INTEGER id: it moves to a new id once the file is
// merged. HLC is the remote insert's clock.
type LocalMove struct {
	Table string
	PK    []byte
	HLC   hlc.Timestamp
}

// AddLocalMove records a local row to move (once).
func (d *Dir) AddLocalMove(m LocalMove) error {
	if err := sqlitex.Execute(d.conn, "INSERT OR IGNORE INTO rowdrop_local_moves(tbl,pk,hlc) VALUES(?,?,?)",
		&sqlitex.ExecOptions{Args: []any{m.Table, m.PK, int64(m.HLC)}}); err != nil {
		return fmt.Errorf("record a local row to move: %w", err)
	}
	return nil
}

// LocalMoves lists the local rows waiting to move.
func (d *Dir) LocalMoves() ([]LocalMove, error) {
	var out []LocalMove
	err := sqlitex.Execute(d.conn, "SELECT tbl, pk, hlc FROM rowdrop_local_moves", &sqlitex.ExecOptions{ResultFunc: func(s *sqlite.Stmt) error {
		pk := make([]byte, s.ColumnLen(1))
		s.ColumnBytes(1, pk)
		out = append(out, LocalMove{Table: s.ColumnText(0), PK: pk, HLC: hlc.Timestamp(s.ColumnInt64(2))})
		return nil
	}})
	if err != nil {
		return nil, fmt.Errorf("read pending local moves: %w", err)
	}
	return out, nil
}

// DropLocalMove forgets a local row to move (moved, or nothing to move).
func (d *Dir) DropLocalMove(tbl string, pk []byte) error {
	if err := sqlitex.Execute(d.conn, "DELETE FROM rowdrop_local_moves WHERE tbl=? AND pk=?",
		&sqlitex.ExecOptions{Args: []any{tbl, pk}}); err != nil {
		return fmt.Errorf("clear a local move: %w", err)
	}
	return nil
}

// MoveRowMeta renames the metadata of a row of table tbl that moved from
// key from to key to (re-keying).
func (d *Dir) MoveRowMeta(tbl string, from, to []byte) error {
	if err := sqlitex.Execute(d.conn, "UPDATE rowdrop_rows SET pk=? WHERE tbl=? AND pk=?", &sqlitex.ExecOptions{Args: []any{to, tbl, from}}); err != nil {
		return fmt.Errorf("move metadata of a re-keyed row of %s: %w", tbl, err)
	}
	return nil
}
