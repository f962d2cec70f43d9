// Package db holds rowdrop's thin layer over zombiezen.com/go/sqlite:
// opening the app's database without changing it, reading and binding values
// in changeset form, quoting identifiers, and the one connection setting the
// driver does not expose (turning triggers off for corrective writes).
package db

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"time"
	"unsafe"

	"modernc.org/libc"
	lib "modernc.org/sqlite/lib"
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

// Bind binds a changeset value to parameter i (1-based).
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

// rawHandle digs the C handle and TLS out of a zombiezen connection. The
// driver does not expose sqlite3_db_config, which rowdrop needs to switch
// triggers off for corrective writes, so this reads its private fields
// (tls *libc.TLS and conn uintptr, as in v1.4.x). A driver that renames or
// retypes them gets a clear error here, not a crash, and TestTriggerSwitch
// fails.
func rawHandle(conn *sqlite.Conn) (*libc.TLS, uintptr, error) {
	return rawHandleOf(reflect.ValueOf(conn).Elem())
}

// rawHandleOf is rawHandle on the struct value v (a test passes others).
func rawHandleOf(v reflect.Value) (*libc.TLS, uintptr, error) {
	tf, cf := v.FieldByName("tls"), v.FieldByName("conn")
	if !tf.IsValid() || !cf.IsValid() || tf.Type() != reflect.TypeFor[*libc.TLS]() || cf.Kind() != reflect.Uintptr {
		return nil, 0, fmt.Errorf("the sqlite driver's connection (%s) no longer has the fields tls *libc.TLS and conn uintptr: cannot reach sqlite3_db_config to switch triggers off (adapt internal/db.rawHandle to the new driver version)", v.Type())
	}
	if tf.IsNil() || cf.Uint() == 0 {
		return nil, 0, errors.New("sqlite connection has no handle (closed?): cannot switch triggers")
	}
	return (*libc.TLS)(tf.UnsafePointer()), uintptr(cf.Uint()), nil
}

// SetTriggers turns trigger execution on or off for this connection only.
// It reads the setting back, so a switch that did not take is an error.
// Prefer WithoutTriggers, which also switches them back on.
func SetTriggers(conn *sqlite.Conn, on bool) error {
	tls, h, err := rawHandle(conn)
	if err != nil {
		return err
	}
	want := int32(0)
	if on {
		want = 1
	}
	res := libc.Xmalloc(tls, 4) // int *pRes: the setting after the call
	if res == 0 {
		return errors.New("sqlite3_db_config(ENABLE_TRIGGER): out of memory")
	}
	defer libc.Xfree(tls, res)
	*cInt(res) = -1
	va := libc.NewVaList(want, res)
	if va == 0 {
		return errors.New("sqlite3_db_config(ENABLE_TRIGGER): out of memory")
	}
	defer libc.Xfree(tls, va)
	if rc := lib.Xsqlite3_db_config(tls, h, lib.SQLITE_DBCONFIG_ENABLE_TRIGGER, va); rc != lib.SQLITE_OK {
		return fmt.Errorf("sqlite3_db_config(ENABLE_TRIGGER, %d): code %d", want, rc)
	}
	if got := *cInt(res); got != want {
		return fmt.Errorf("sqlite3_db_config(ENABLE_TRIGGER, %d): triggers are %d afterwards (the driver's handle is not what internal/db.rawHandle expects)", want, got)
	}
	return nil
}

// cInt is the C int at p, in memory libc allocated (outside Go's heap).
func cInt(p uintptr) *int32 { return (*int32)(unsafe.Add(nil, p)) }

// WithoutTriggers runs fn with triggers off on conn and switches them back
// on, whatever fn returns: an error switching back is returned too, since
// the connection would then skip the app's triggers on every later write.
func WithoutTriggers(conn *sqlite.Conn, fn func() error) error {
	if err := SetTriggers(conn, false); err != nil {
		return fmt.Errorf("switch triggers off: %w", err)
	}
	err := fn()
	if onErr := SetTriggers(conn, true); onErr != nil {
		return errors.Join(err, fmt.Errorf("switch triggers back on: %w", onErr))
	}
	return err
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
