package export

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"zombiezen.com/go/sqlite"
	"zombiezen.com/go/sqlite/sqlitex"

	"github.com/rowdrop/rowdrop/internal/changeset"
	"github.com/rowdrop/rowdrop/internal/db"
	"github.com/rowdrop/rowdrop/internal/schema"
)

// Capture writes, as one SQLite changeset, every difference between the
// base copy and the live database. Two ways, same output:
//
//   - full: sqlite3session_diff of every synced table, base -> live. Always
//     right; costs a scan of both databases.
//   - fast: only the keys the opt-in hint triggers recorded in
//     rowdrop_dirty are copied (live and base versions) into private
//     in-memory tables, and sqlite3session_diff runs on those. Cost follows
//     the edit, and the semantics are SQLite's own by construction.
//
// dirtyMax is the highest rowdrop_dirty rowid the capture accounts for
// (0 if the table is absent); rows up to it may be cleared after publishing.

// snapshotThreshold: rollback-journal databases are copied with the backup
// API in steps of this many pages, so the app's writers are never blocked
// for long, and diffed from the copy.
const snapshotStepPages = 256

func openCapture(mainURI string, readOnly bool) (*sqlite.Conn, error) {
	flags := sqlite.OpenReadWrite | sqlite.OpenCreate | sqlite.OpenURI
	if readOnly {
		flags = sqlite.OpenReadOnly | sqlite.OpenURI
	}
	conn, err := sqlite.OpenConn(mainURI, flags)
	if err != nil {
		return nil, err
	}
	conn.SetBusyTimeout(db.BusyTimeout)
	return conn, nil
}

func attach(conn *sqlite.Conn, path, name string) error {
	return db.Exec(conn, "ATTACH DATABASE ? AS "+db.Quote(name), db.FileURI(path)+"?mode=ro")
}

// journalMode reads the live database's journal mode without changing it.
func journalMode(conn *sqlite.Conn) (string, error) {
	var mode string
	err := sqlitex.ExecuteTransient(conn, "PRAGMA journal_mode", &sqlitex.ExecOptions{ResultFunc: func(s *sqlite.Stmt) error {
		mode = strings.ToLower(s.ColumnText(0))
		return nil
	}})
	return mode, err
}

func hasDirtyTable(conn *sqlite.Conn, dbName string) (bool, error) {
	n := 0
	err := sqlitex.ExecuteTransient(conn, fmt.Sprintf("SELECT count(*) FROM %s.sqlite_master WHERE type='table' AND name='rowdrop_dirty'", db.Quote(dbName)),
		&sqlitex.ExecOptions{ResultFunc: func(s *sqlite.Stmt) error { n = s.ColumnInt(0); return nil }})
	return n > 0, err
}

func dirtyMax(conn *sqlite.Conn, dbName string) (int64, error) {
	ok, err := hasDirtyTable(conn, dbName)
	if err != nil || !ok {
		return 0, err
	}
	var m int64
	err = sqlitex.ExecuteTransient(conn, fmt.Sprintf("SELECT coalesce(max(rowid),0) FROM %s.rowdrop_dirty", db.Quote(dbName)),
		&sqlitex.ExecOptions{ResultFunc: func(s *sqlite.Stmt) error { m = s.ColumnInt64(0); return nil }})
	return m, err
}

// captureFull diffs every synced table. In WAL mode it reads the live
// database in one read transaction (readers never block WAL writers); in
// rollback-journal mode it first copies the database with the backup API in
// small steps, then diffs the private copy, so no long read lock is held.
func captureFull(ctx context.Context, livePath, basePath, stateDir string, tables []*schema.Table, out io.Writer) (int64, fixups, error) {
	probe, err := openCapture(db.FileURI(livePath), true)
	if err != nil {
		return 0, nil, fmt.Errorf("open %s: %w", livePath, err)
	}
	mode, err := journalMode(probe)
	if err != nil {
		probe.Close()
		return 0, nil, fmt.Errorf("read journal mode of %s: %w", livePath, err)
	}
	mainPath := livePath
	if mode != "wal" {
		snap := filepath.Join(stateDir, "snapshot.db")
		// The copy is as large as the app's database: don't keep it.
		defer removeDB(snap)
		err := snapshot(ctx, probe, snap)
		probe.Close()
		if err != nil {
			return 0, nil, fmt.Errorf("copy %s for diffing: %w", livePath, err)
		}
		mainPath = snap
	} else {
		probe.Close()
	}
	conn, err := openCapture(db.FileURI(mainPath)+"?mode=ro", true)
	if err != nil {
		return 0, nil, fmt.Errorf("open %s: %w", mainPath, err)
	}
	defer conn.Close()
	defer db.Interruptible(ctx, conn)()
	if err := attach(conn, basePath, "base"); err != nil {
		return 0, nil, fmt.Errorf("attach base copy: %w", err)
	}
	end, err := db.Begin(conn, "DEFERRED")
	if err != nil {
		return 0, nil, err
	}
	defer end(&err)
	dmax, err := dirtyMax(conn, "main")
	if err != nil {
		return 0, nil, err
	}
	sess, err := conn.CreateSession("main")
	if err != nil {
		return 0, nil, fmt.Errorf("create session: %w", err)
	}
	defer sess.Delete()
	fx := fixups{}
	for _, t := range tables {
		if err = sess.Attach(t.Name); err != nil {
			return 0, nil, fmt.Errorf("session attach %s: %w", t.Name, err)
		}
		if err = sess.Diff("base", t.Name); err != nil {
			return 0, nil, fmt.Errorf("diff table %s against the base copy: %w", t.Name, err)
		}
		if err = findFixups(conn, "main", "base", t, fx); err != nil {
			return 0, nil, fmt.Errorf("compare table %s exactly: %w", t.Name, err)
		}
	}
	if err = sess.WriteChangeset(out); err != nil {
		return 0, nil, fmt.Errorf("write changeset: %w", err)
	}
	return dmax, fx, nil
}

// removeDB removes a private database file and its journals.
func removeDB(path string) {
	for _, suffix := range []string{"", "-journal", "-wal", "-shm"} {
		os.Remove(path + suffix)
	}
}

func snapshot(ctx context.Context, src *sqlite.Conn, path string) error {
	dst, err := sqlite.OpenConn(db.FileURI(path), sqlite.OpenReadWrite|sqlite.OpenCreate|sqlite.OpenURI)
	if err != nil {
		return err
	}
	defer dst.Close()
	b, err := sqlite.NewBackup(dst, "main", src, "main")
	if err != nil {
		return err
	}
	start := time.Now()
	for {
		if err := ctx.Err(); err != nil {
			b.Close()
			return err
		}
		step := snapshotStepPages
		if time.Since(start) > 30*time.Second {
			step = -1 // a very busy app keeps restarting the copy: finish in one go
		}
		more, err := b.Step(step)
		if err != nil {
			b.Close()
			return err
		}
		if !more {
			break
		}
		time.Sleep(time.Millisecond) // let the app's writers in between steps
	}
	return b.Close()
}

// captureFast diffs only the keys recorded by the hint triggers.
func captureFast(ctx context.Context, livePath, basePath string, tables []*schema.Table, out io.Writer) (int64, fixups, error) {
	conn, err := openCapture("file:rowdrop-fast?mode=memory", false)
	if err != nil {
		return 0, nil, err
	}
	defer conn.Close()
	defer db.Interruptible(ctx, conn)()
	if err := attach(conn, livePath, "live"); err != nil {
		return 0, nil, fmt.Errorf("attach %s: %w", livePath, err)
	}
	if err := attach(conn, basePath, "base"); err != nil {
		return 0, nil, fmt.Errorf("attach base copy: %w", err)
	}
	if err := db.Exec(conn, "ATTACH DATABASE ':memory:' AS old"); err != nil {
		return 0, nil, err
	}
	byName := map[string]*schema.Table{}
	for _, t := range tables {
		byName[t.Name] = t
	}
	// One read transaction over live and base: the keys and the row
	// versions come from the same snapshot.
	end, err := db.Begin(conn, "DEFERRED")
	if err != nil {
		return 0, nil, err
	}
	dmax, err := dirtyMax(conn, "live")
	if err != nil {
		end(&err)
		return 0, nil, err
	}
	type key struct {
		tbl  string
		vals []changeset.Value
	}
	seen := map[string]bool{}
	var keys []key
	err = sqlitex.Execute(conn, "SELECT DISTINCT tbl,k1,k2,k3,k4,k5,k6,k7,k8 FROM live.rowdrop_dirty WHERE rowid<=?",
		&sqlitex.ExecOptions{Args: []any{dmax}, ResultFunc: func(s *sqlite.Stmt) error {
			t := byName[s.ColumnText(0)]
			if t == nil {
				return nil // table no longer synced
			}
			k := key{tbl: t.Name}
			for i := range t.PKCols() {
				k.vals = append(k.vals, db.Column(s, 1+i))
			}
			id := t.Name + "\x00" + string(changeset.EncodeKey(k.vals))
			if !seen[id] {
				seen[id] = true
				keys = append(keys, k)
			}
			return nil
		}})
	if err != nil {
		end(&err)
		return 0, nil, fmt.Errorf("read dirty keys: %w", err)
	}
	copyStmts := map[string][2]*sqlite.Stmt{}
	var used []*schema.Table
	for _, k := range keys {
		t := byName[k.tbl]
		st, ok := copyStmts[t.Name]
		if !ok {
			for _, d := range []string{"main", "old"} {
				ddl, derr := t.CreateIn(d)
				if derr == nil {
					derr = db.Exec(conn, ddl)
				}
				if derr != nil {
					err = fmt.Errorf("prepare fast diff of %s: %w", t.Name, derr)
					end(&err)
					return 0, nil, err
				}
			}
			var where []string
			for _, i := range t.PKCols() {
				where = append(where, db.Quote(t.Columns[i].Name)+" IS ?")
			}
			w := strings.Join(where, " AND ")
			q := db.Quote(t.Name)
			// OR IGNORE: two hinted keys can name one row (keys that
			// differ only in case under a NOCASE key), and it also
			// overrides an ON CONFLICT REPLACE clause of the app's table.
			for i, pair := range [][2]string{{"main", "live"}, {"old", "base"}} {
				st[i], err = conn.Prepare(fmt.Sprintf("INSERT OR IGNORE INTO %s.%s SELECT * FROM %s.%s WHERE %s", pair[0], q, pair[1], q, w))
				if err != nil {
					end(&err)
					return 0, nil, fmt.Errorf("prepare fast diff of %s: %w", t.Name, err)
				}
			}
			copyStmts[t.Name] = st
			used = append(used, t)
		}
		for _, s := range st {
			for i, v := range k.vals {
				db.Bind(s, i+1, v)
			}
			_, err = s.Step()
			s.Reset()
			if err != nil {
				end(&err)
				return 0, nil, fmt.Errorf("copy dirty row of %s: %w", t.Name, err)
			}
		}
	}
	for _, st := range copyStmts {
		st[0].Finalize()
		st[1].Finalize()
	}
	if end(&err); err != nil {
		return 0, nil, err
	}
	if len(used) == 0 {
		return dmax, nil, nil
	}
	sess, err := conn.CreateSession("main")
	if err != nil {
		return 0, nil, err
	}
	defer sess.Delete()
	fx := fixups{}
	for _, t := range used {
		if err := sess.Attach(t.Name); err != nil {
			return 0, nil, err
		}
		if err := sess.Diff("old", t.Name); err != nil {
			return 0, nil, fmt.Errorf("fast diff of %s: %w", t.Name, err)
		}
		if err := findFixups(conn, "main", "old", t, fx); err != nil {
			return 0, nil, fmt.Errorf("compare dirty rows of %s exactly: %w", t.Name, err)
		}
	}
	if err := sess.WriteChangeset(out); err != nil {
		return 0, nil, err
	}
	return dmax, fx, nil
}

// eachCaptured decodes a captured changeset and calls fn with each change
// to one of tables (changes to other tables are skipped), in changeset
// order; fn's error stops the walk and is returned as is.
func eachCaptured(r io.Reader, tables []*schema.Table, fn func(t *schema.Table, c *changeset.Change) error) error {
	return walkCaptured(capturedReader(r, nil), tables, fn)
}

// eachCapturedPooled is eachCaptured over a capture file, with big
// values' buffers from pool (nil: none), and big BLOBs (outside DELETEs)
// left in the file as sections of it (changeset.Reader.RefBig): fn must
// not keep a change's values past its return, nor past the file's.
func eachCapturedPooled(r *os.File, tables []*schema.Table, pool *changeset.Pool, fn func(t *schema.Table, c *changeset.Change) error) error {
	rd := capturedReader(r, pool)
	if off, err := r.Seek(0, io.SeekCurrent); err == nil {
		rd.RefBig(r, off)
	}
	return walkCaptured(rd, tables, fn)
}

func walkCaptured(rd *changeset.Reader, tables []*schema.Table, fn func(t *schema.Table, c *changeset.Change) error) error {
	byName := make(map[string]*schema.Table, len(tables))
	for _, t := range tables {
		byName[t.Name] = t
	}
	for {
		c, err := rd.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("decode captured changeset: %w", err)
		}
		if t := byName[c.Table.Name]; t != nil {
			if err := fn(t, c); err != nil {
				return err
			}
		}
	}
}

// capturedReader returns a reader of the captured changeset in r, taking
// big values' buffers from pool (nil: none). From a file of known size
// each big value is read into one allocation of its size, not grown into
// it (a copy less).
func capturedReader(r io.Reader, pool *changeset.Pool) *changeset.Reader {
	rd := changeset.NewReader(bufio.NewReaderSize(r, 1<<20), changeset.Limits{})
	rd.UsePool(pool)
	if f, ok := r.(*os.File); ok {
		fi, err1 := f.Stat()
		off, err2 := f.Seek(0, io.SeekCurrent)
		if err1 == nil && err2 == nil && fi.Mode().IsRegular() {
			rd.SetSize(fi.Size() - off)
		}
	}
	return rd
}
