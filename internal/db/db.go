// Package db holds rowdrop's thin layer over zombiezen.com/go/sqlite:
// opening the app's database without changing it, reading and binding values
// in changeset form, quoting identifiers, and setting the app's triggers
// aside for corrective writes.
package db

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
	"unsafe"

	"zombiezen.com/go/sqlite"
	"zombiezen.com/go/sqlite/sqlitex"

	"github.com/rowdrop/rowdrop/internal/changeset"
)

// BusyTimeout is how long rowdrop waits for the app's locks. The app's
// writers get the same courtesy from rowdrop's short transactions.
const BusyTimeout = 10 * time.Second

// OpenLive opens the app's live database. It never passes OpenWAL (that
// would switch the app's journal mode) and never creates the file.
func OpenLive(path string, readOnly bool) (*sqlite.Conn, error) {
	flags := sqlite.OpenReadWrite | sqlite.OpenURI
	if readOnly {
		flags = sqlite.OpenReadOnly | sqlite.OpenURI
	}
	conn, err := sqlite.OpenConn(fileURI(path), flags)
	if err != nil {
		return nil, fmt.Errorf("open database %s: %w (check the path and that this user may read it)", path, err)
	}
	conn.SetBusyTimeout(BusyTimeout)
	// A cheap read proves the file really is a SQLite database.
	if err := sqlitex.ExecuteTransient(conn, "SELECT count(*) FROM sqlite_master", nil); err != nil {
		conn.Close()
		return nil, fmt.Errorf("read database %s: %w (is it a SQLite database, and not locked exclusively by the app?)", path, err)
	}
	return conn, nil
}

// OpenPrivate opens (creating) one of rowdrop's own databases: WAL with
// full sync, so every commit is durable with one fsync of the WAL. A
// rollback journal must fsync the journal before any page leaves the page
// cache; a merge into a large base copy spills the cache constantly, and
// those fsyncs were a third of a 1M-row merge's time (docs/BENCH.md, P2).
func OpenPrivate(path string) (*sqlite.Conn, error) {
	conn, err := sqlite.OpenConn(fileURI(path), sqlite.OpenReadWrite|sqlite.OpenCreate|sqlite.OpenURI)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	conn.SetBusyTimeout(BusyTimeout)
	// cache_size: 8 MiB. The page cache is most of an import's memory (this
	// engine's allocator rounds each cached page up, so it costs about
	// twice its nominal size): with 64 MiB, importing a 1 GB changeset
	// peaked at ~250 MB RSS, with 8 MiB at ~90 MB, and merges were no
	// slower (rowdrop-bench P5 and P2; docs/BENCH.md). Misses are served
	// from the OS page cache.
	for _, p := range []string{"PRAGMA journal_mode=WAL", "PRAGMA synchronous=FULL", "PRAGMA cache_size=-8192",
		"PRAGMA journal_size_limit=67108864"} {
		if err := sqlitex.ExecuteTransient(conn, p, nil); err != nil {
			conn.Close()
			return nil, fmt.Errorf("configure %s: %w", path, err)
		}
	}
	return conn, nil
}

func fileURI(path string) string {
	r := strings.NewReplacer("%", "%25", "?", "%3f", "#", "%23")
	return "file:" + r.Replace(path)
}

// FileURI returns path as a SQLite URI (for ATTACH).
func FileURI(path string) string { return fileURI(path) }

// Quote quotes an identifier for SQL.
func Quote(name string) string {
	return `"` + strings.ReplaceAll(name, `"`, `""`) + `"`
}

// Column reads result column i as a changeset value.
func Column(stmt *sqlite.Stmt, i int) changeset.Value {
	switch stmt.ColumnType(i) {
	case sqlite.TypeInteger:
		return changeset.Value{Kind: changeset.KindInteger, Int: stmt.ColumnInt64(i)}
	case sqlite.TypeFloat:
		return changeset.Value{Kind: changeset.KindFloat, Float: stmt.ColumnFloat(i)}
	case sqlite.TypeText:
		b := make([]byte, stmt.ColumnLen(i))
		stmt.ColumnBytes(i, b)
		return changeset.Value{Kind: changeset.KindText, Bytes: b}
	case sqlite.TypeBlob:
		b := make([]byte, stmt.ColumnLen(i))
		stmt.ColumnBytes(i, b)
		return changeset.Value{Kind: changeset.KindBlob, Bytes: b}
	default:
		return changeset.Value{Kind: changeset.KindNull}
	}
}

// Bind binds a changeset value to parameter i (1-based). A value whose
// bytes are in a section of its input (Src) must be read first
// (internal/rows does).
func Bind(stmt *sqlite.Stmt, i int, v changeset.Value) {
	switch v.Kind {
	case changeset.KindInteger:
		stmt.BindInt64(i, v.Int)
	case changeset.KindFloat:
		stmt.BindFloat(i, v.Float)
	case changeset.KindText:
		// BindText copies the value into SQLite's memory before it
		// returns, so a string view of the bytes is enough: no Go copy
		// (it was a third of all allocations of a large import).
		stmt.BindText(i, unsafe.String(unsafe.SliceData(v.Bytes), len(v.Bytes)))
	case changeset.KindBlob:
		if v.Bytes == nil {
			stmt.BindBytes(i, []byte{})
		} else {
			stmt.BindBytes(i, v.Bytes)
		}
	default:
		stmt.BindNull(i)
	}
}

// StreamMin is the size from which rowdrop writes a BLOB as zeroblob(n)
// and then fills it through incremental blob I/O, in the same
// transaction: SQLite then neither copies the bound value into its memory
// nor builds a record holding it (when it is the record's last column;
// else the record holds zeros), and writes it page by page through a
// small buffer.
const StreamMin = 1 << 20

// FillBlob lets write fill the zeroblob that column col of the row with
// rowid id of table dbName.table holds, from its start (SQLite copies
// what it is given through a small buffer). ok is false when SQLite
// refuses blob I/O on the column (an indexed or foreign-key column):
// nothing was written, and err says why.
func FillBlob(conn *sqlite.Conn, dbName, table, col string, id int64, write func(io.Writer) error) (ok bool, err error) {
	b, err := conn.OpenBlob(dbName, table, col, id, true)
	if err != nil {
		return false, err
	}
	err = write(b)
	if cerr := b.Close(); err == nil {
		err = cerr
	}
	return true, err
}

// WithoutTriggers runs fn on conn with the database's triggers out of the
// way: rowdrop's corrective writes and row moves are bookkeeping, not edits,
// and the app's triggers must not act on them.
//
// The drivers expose no sqlite3_db_config(SQLITE_DBCONFIG_ENABLE_TRIGGER),
// and reaching into a driver's private fields breaks at run time on an
// upgrade, so this uses plain SQL: inside a savepoint it drops every
// trigger of the main schema, runs fn, and creates them again from their
// stored text (sqlite_master keeps it verbatim), in their original order so
// triggers on one table still fire in the same order. Other connections
// never see the triggers missing: the savepoint holds the write lock from
// the first DROP and the triggers are back before it is released. If fn
// fails, the triggers are put back and fn's error returned (its writes stay
// for the caller's transaction to keep or roll back); if they cannot be put
// back, everything since the savepoint is rolled back, triggers included.
// TEMP triggers are not touched: only the connection that made them sees
// them, and rowdrop makes none.
func WithoutTriggers(conn *sqlite.Conn, fn func() error) (err error) {
	type trigger struct{ name, sql string }
	var trigs []trigger
	if err := sqlitex.ExecuteTransient(conn, "SELECT name, sql FROM main.sqlite_master WHERE type = 'trigger' AND sql IS NOT NULL ORDER BY rowid", &sqlitex.ExecOptions{
		ResultFunc: func(s *sqlite.Stmt) error {
			trigs = append(trigs, trigger{s.ColumnText(0), s.ColumnText(1)})
			return nil
		}}); err != nil {
		return fmt.Errorf("list the database's triggers to set them aside: %w", err)
	}
	if len(trigs) == 0 {
		return fn()
	}
	if err := Exec(conn, "SAVEPOINT rowdrop_without_triggers"); err != nil {
		return fmt.Errorf("set the app's triggers aside: %w", err)
	}
	putBack := func() error {
		for _, t := range trigs {
			if err := Exec(conn, t.sql); err != nil {
				return fmt.Errorf("create trigger %s again: %w", t.name, err)
			}
		}
		return Exec(conn, "RELEASE rowdrop_without_triggers")
	}
	undo := func(cause error) error {
		if e := Exec(conn, "ROLLBACK TO rowdrop_without_triggers"); e != nil {
			return errors.Join(cause, fmt.Errorf("roll back to before the triggers were set aside: %w", e))
		}
		return errors.Join(cause, Exec(conn, "RELEASE rowdrop_without_triggers"))
	}
	for _, t := range trigs {
		if err := Exec(conn, "DROP TRIGGER main."+Quote(t.name)); err != nil {
			return undo(fmt.Errorf("set trigger %s aside: %w", t.name, err))
		}
	}
	ferr := fn()
	if err := putBack(); err != nil {
		return undo(errors.Join(ferr, fmt.Errorf("put the app's triggers back (nothing rowdrop wrote since setting them aside is kept): %w", err)))
	}
	return ferr
}

// Exec runs a statement with arguments, discarding results.
func Exec(conn *sqlite.Conn, query string, args ...any) error {
	return sqlitex.Execute(conn, query, &sqlitex.ExecOptions{Args: args})
}

// Interruptible arranges for long statements on conn to stop when ctx ends;
// the returned func restores the previous state.
func Interruptible(ctx context.Context, conn *sqlite.Conn) func() {
	old := conn.SetInterrupt(ctx.Done())
	return func() { conn.SetInterrupt(old) }
}

// Begin starts a transaction of the given kind ("DEFERRED" or "IMMEDIATE")
// and returns its end function: pass it the outcome; it commits on nil and
// rolls back otherwise. A failed rollback is added to the outcome.
func Begin(conn *sqlite.Conn, kind string) (func(*error), error) {
	if err := sqlitex.ExecuteTransient(conn, "BEGIN "+kind, nil); err != nil {
		return nil, err
	}
	return func(errp *error) {
		if *errp == nil {
			if err := sqlitex.ExecuteTransient(conn, "COMMIT", nil); err != nil {
				*errp = err
				if rbErr := rollback(conn); rbErr != nil {
					*errp = errors.Join(err, rbErr)
				}
			}
			return
		}
		if rbErr := rollback(conn); rbErr != nil {
			*errp = errors.Join(*errp, rbErr)
		}
	}, nil
}

// rollback ends the open transaction, if SQLite has not already.
func rollback(conn *sqlite.Conn) error {
	if conn.AutocommitEnabled() {
		return nil
	}
	if err := sqlitex.ExecuteTransient(conn, "ROLLBACK", nil); err != nil {
		return fmt.Errorf("roll back: %w", err)
	}
	return nil
}
