package merge

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"zombiezen.com/go/sqlite"
	"zombiezen.com/go/sqlite/sqlitex"

	"github.com/rowdrop/rowdrop/internal/changeset"
	"github.com/rowdrop/rowdrop/internal/db"
	"github.com/rowdrop/rowdrop/internal/rows"
	"github.com/rowdrop/rowdrop/internal/schema"
	"github.com/rowdrop/rowdrop/internal/state"
)

// A set-wise join: the rows of a snapshot that this device has never seen
// (no metadata, no base row, no live row under the key) merge, by
// joinRow, into exactly the snapshot's row and metadata. A new device's
// join, and `rowdrop restore`, are almost only such rows, so instead of
// reading, deciding and writing each in Go, they are copied in SQL, in
// chunks in the order of the table's key, on live's connection with the
// snapshot and the base copy attached:
//
//   - live first, one write transaction per chunk (INSERT ... SELECT,
//     OR ABORT as rows.Insert): the app's triggers fire for every row as
//     for the row-by-row merge, and a synced cell a trigger changed is put
//     back with the triggers off (as writeBatch does); the after-apply
//     action runs per row; the chunk's hold follows lockTarget and the
//     app gets its turn after it (inLive);
//   - then base and the metadata, in a transaction of their own. As with
//     a batch of the row-by-row merge, base is never ahead of live, and a
//     crash between the two leaves live rows that base lacks, which the
//     re-run (the snapshot is in flight) takes row by row.
//
// Only tables of which this device holds no row metadata and no base row
// are taken (a new device, a restore; not a device re-basing), and not
// those matched by natural key (a row new here gets an id of its own),
// WITHOUT ROWID tables (no rowid to chunk by) or tables with rows held on
// a UNIQUE clash. Rows a copy cannot give (deleted or incomplete ones,
// those with a lineage, those live already holds) and every row of a
// chunk the app's rules or constraints refuse go on to the row-by-row
// merge, which knows what to do with them.

// Schema names of the attached databases during a set-wise join.
const (
	joinSnap = "rowdrop_snap"
	joinBase = "rowdrop_base"
)

// setwiseChunk is the first chunk's size; later ones follow the hold.
const setwiseChunk = 1000

// maxSetwiseChunk bounds a chunk (rows per live transaction).
const maxSetwiseChunk = 50000

// exclusiveChunk is the chunk when no app waits for live (Exclusive):
// large, and still bounding the WAL a chunk writes.
const exclusiveChunk = 200000

// rebaseSetwise merges set-wise what it can (see above) and returns the
// tables it took and the rows of them left to the row-by-row merge.
func (e *Engine) rebaseSetwise(ctx context.Context, in RebaseInput, st *Stats, progress func(done, total int), total int) (taken []string, rest []state.RowKey, done int, err error) {
	if e.RowByRow || in.Path == "" {
		return nil, nil, 0, nil
	}
	cands, err := e.setwiseTables(in)
	if err != nil || len(cands) == 0 {
		return nil, nil, 0, err
	}
	if err := db.RegisterKeyFunc(e.Live); err != nil {
		return nil, nil, 0, fmt.Errorf("set-wise join: %w", err)
	}
	detach, err := e.attachForJoin(in.Path)
	if err != nil {
		return nil, nil, 0, err
	}
	defer func() {
		if derr := detach(); derr != nil && err == nil {
			err = derr
		}
	}()
	triggered, err := tablesWithTriggers(e.Live)
	if err != nil {
		return nil, nil, 0, err
	}
	for _, t := range cands {
		n, err := e.joinTable(ctx, t, triggered[strings.ToLower(t.Name)], st, func(n int) {
			done += n
			if progress != nil {
				progress(done, total)
			}
		})
		if err != nil {
			return nil, nil, 0, err
		}
		if n > 0 {
			taken = append(taken, t.Name)
		}
	}
	if len(taken) == 0 {
		return nil, nil, 0, nil
	}
	rest, err = state.RowKeysNotIn(e.Live, joinSnap, joinBase, taken)
	return taken, rest, done, err
}

// setwiseTables lists, by name, the tables a set-wise join may take.
func (e *Engine) setwiseTables(in RebaseInput) ([]*schema.Table, error) {
	var out []*schema.Table
	for _, name := range slices.Sorted(func(yield func(string) bool) {
		for n := range in.Tables {
			if !yield(n) {
				return
			}
		}
	}) {
		t := in.Tables[name]
		if t.HasIdentity() {
			continue
		}
		if rowid, err := hasRowid(in.Conn, name); err != nil || !rowid {
			if err != nil {
				return nil, err
			}
			continue
		}
		if has, err := e.State.HasRowMeta(name); err != nil || has {
			if err != nil {
				return nil, err
			}
			continue
		}
		if n, err := e.heldIn(name); err != nil || n > 0 {
			if err != nil {
				return nil, err
			}
			continue
		}
		empty := true
		err := sqlitex.ExecuteTransient(e.State.Conn(), "SELECT 1 FROM main."+db.Quote(name)+" LIMIT 1", &sqlitex.ExecOptions{ResultFunc: func(*sqlite.Stmt) error {
			empty = false
			return nil
		}})
		if err != nil {
			return nil, fmt.Errorf("read the base copy of %s: %w", name, err)
		}
		if empty {
			out = append(out, t)
		}
	}
	return out, nil
}

// hasRowid reports whether table name of the snapshot open on conn is a
// rowid table.
func hasRowid(conn *sqlite.Conn, name string) (bool, error) {
	rowid := false
	err := sqlitex.Execute(conn, "SELECT wr FROM pragma_table_list WHERE schema='main' AND name=?", &sqlitex.ExecOptions{Args: []any{name},
		ResultFunc: func(s *sqlite.Stmt) error {
			rowid = s.ColumnInt(0) == 0
			return nil
		}})
	if err != nil {
		return false, fmt.Errorf("read the snapshot's table %s: %w", name, err)
	}
	return rowid, nil
}

// attachForJoin attaches the snapshot (read-only) and the base copy to
// live's connection; the returned function detaches them.
func (e *Engine) attachForJoin(snapPath string) (func() error, error) {
	if err := db.Exec(e.Live, "ATTACH ? AS "+joinSnap, db.FileURI(snapPath)+"?mode=ro&immutable=1"); err != nil {
		return nil, fmt.Errorf("set-wise join: attach the snapshot %s: %w", snapPath, err)
	}
	if err := db.Exec(e.Live, "ATTACH ? AS "+joinBase, db.FileURI(filepath.Join(e.State.Path, "base.db"))); err != nil {
		db.Exec(e.Live, "DETACH "+joinSnap)
		return nil, fmt.Errorf("set-wise join: attach the base copy in %s: %w", e.State.Path, err)
	}
	// The base copy's own connection caches 8 MiB (db.OpenPrivate).
	if err := db.Exec(e.Live, "PRAGMA "+joinBase+".cache_size=-8192"); err != nil {
		db.Exec(e.Live, "DETACH "+joinBase)
		db.Exec(e.Live, "DETACH "+joinSnap)
		return nil, fmt.Errorf("set-wise join: %w", err)
	}
	return func() error {
		err := db.Exec(e.Live, "DETACH "+joinBase)
		if derr := db.Exec(e.Live, "DETACH "+joinSnap); err == nil {
			err = derr
		}
		if err != nil {
			return fmt.Errorf("set-wise join: detach the snapshot and the base copy: %w", err)
		}
		return nil
	}, nil
}

// joinTable copies the rows of t new here, chunk by chunk in key order
// (see above; the b-trees of live, base and the metadata then grow at
// their ends), and returns how many it copied. A chunk the live database
// refuses ends the copy of t: its rows and the later ones are left to the
// row-by-row merge.
func (e *Engine) joinTable(ctx context.Context, t *schema.Table, triggered bool, st *Stats, copied func(int)) (int, error) {
	var cols, sCols, keyArgs, absent []string
	for _, c := range t.Columns {
		cols = append(cols, db.Quote(c.Name))
		sCols = append(sCols, "s."+db.Quote(c.Name))
	}
	for _, i := range t.PKCols() {
		q := db.Quote(t.Columns[i].Name)
		keyArgs = append(keyArgs, "s."+q)
		absent = append(absent, "l."+q+" IS s."+q)
	}
	colList := strings.Join(cols, ", ")
	keyList := strings.Join(keyArgs, ", ")
	keyExpr := db.KeyFunc + "(" + keyList + ")"
	absentSQL := "NOT EXISTS (SELECT 1 FROM main." + db.Quote(t.Name) + " l WHERE " + strings.Join(absent, " AND ") + ")"
	// After the last chunk's last key, in the order of the table's key
	// (its index; a NULL in a key is never after anything: such rows are
	// left to the row-by-row merge).
	after := "(" + keyList + ") > (" + strings.TrimSuffix(strings.Repeat("?, ", len(keyArgs)), ", ") + ")"
	snapT := joinSnap + "." + db.Quote(t.Name)
	fromChunk := fmt.Sprintf("SELECT %s FROM %s c CROSS JOIN %s s ON s.rowid = c.rid ORDER BY c.n", strings.Join(sCols, ", "), state.JoinChunkTable, snapT)
	action := e.afterApplySQL(t.Name)
	snapRows := rows.Open(e.Live, joinSnap, t)
	defer snapRows.Close()
	liveRows := rows.Open(e.Live, "main", t)
	defer liveRows.Close()

	total, size := 0, setwiseChunk
	if e.Exclusive {
		size = exclusiveChunk
	}
	var last []changeset.Value // the last chunk's last key
	for {
		n := 0
		var work time.Duration
		err := e.inLive(ctx, st, func() error {
			began := time.Now()
			defer func() { work = time.Since(began) }()
			where, args := absentSQL, []any(nil)
			if last != nil {
				where += " AND " + after
				for _, v := range last {
					args = append(args, db.ArgOf(v))
				}
			}
			var err error
			if n, err = state.FillJoinChunk(e.Live, joinSnap, t.Name, keyExpr, where, keyList, size, args...); err != nil || n == 0 {
				return err
			}
			if err := db.Exec(e.Live, "INSERT OR ABORT INTO main."+db.Quote(t.Name)+"("+colList+") "+fromChunk); err != nil {
				return fmt.Errorf("copy rows of %s into the live database: %w", t.Name, err)
			}
			if triggered {
				if err := e.restoreJoined(t, snapRows, liveRows, st); err != nil {
					return err
				}
			}
			if action != "" {
				e.afterJoined(t, action)
			}
			return nil
		})
		if err != nil {
			if ctx.Err() != nil || !refusedChunk(err) {
				return total, err
			}
			e.Log.Info("set-wise join: the live database refused a chunk; the rest of the table merges row by row", "table", t.Name, "err", err)
			return total, nil
		}
		if n == 0 {
			return total, nil
		}
		if last, err = lastOfChunk(e.Live, snapT, t); err != nil {
			return total, err
		}
		if err := e.baseJoined(t, colList, keyExpr, fromChunk); err != nil {
			return total, err
		}
		total += n
		st.Changes += int64(n)
		st.Copied += int64(n)
		st.Batches++
		copied(n)
		if n < size {
			return total, nil
		}
		if !e.Exclusive {
			size = nextChunk(size, work)
		}
		if err := ctx.Err(); err != nil {
			return total, err
		}
	}
}

// lastOfChunk reads the key of the chunk's last row.
func lastOfChunk(conn *sqlite.Conn, snapT string, t *schema.Table) ([]changeset.Value, error) {
	var key []string
	for _, i := range t.PKCols() {
		key = append(key, "s."+db.Quote(t.Columns[i].Name))
	}
	var out []changeset.Value
	q := fmt.Sprintf("SELECT %s FROM %s s WHERE s.rowid = (SELECT rid FROM %s ORDER BY n DESC LIMIT 1)", strings.Join(key, ", "), snapT, state.JoinChunkTable)
	err := sqlitex.ExecuteTransient(conn, q, &sqlitex.ExecOptions{ResultFunc: func(s *sqlite.Stmt) error {
		out = make([]changeset.Value, s.ColumnCount())
		for i := range out {
			out[i] = db.Column(s, i)
		}
		return nil
	}})
	if err != nil || out == nil {
		return nil, fmt.Errorf("read the last key of a chunk of %s: %v", snapT, err)
	}
	return out, nil
}

// nextChunk scales the chunk toward lockTarget from the last one's work.
func nextChunk(size int, work time.Duration) int {
	switch {
	case work > lockTarget*6/10:
		return max(size*int(lockTarget*6/10)/int(work), 100)
	case work < lockTarget/4:
		return min(size*2, maxSetwiseChunk)
	}
	return size
}

// refusedChunk reports whether the live database refused a chunk for a
// reason the row-by-row merge handles (a constraint, a trigger's RAISE, a
// function the app's triggers use that is not defined here, ...), rather
// than a failure of the database itself.
func refusedChunk(err error) bool {
	switch sqlite.ErrCode(err).ToPrimary() {
	case sqlite.ResultConstraint, sqlite.ResultError, sqlite.ResultMismatch, sqlite.ResultRange, sqlite.ResultTooBig:
		return true
	}
	return false
}

// restoreJoined puts back, with the triggers off, every synced cell of
// the chunk's rows that the app's triggers changed in live (writeBatch
// does the same per row).
func (e *Engine) restoreJoined(t *schema.Table, snapRows, liveRows *rows.Table, st *Stats) error {
	var differ []string
	for _, c := range t.Columns {
		q := db.Quote(c.Name)
		differ = append(differ, fmt.Sprintf("l.%s IS NOT s.%s COLLATE BINARY OR typeof(l.%s) <> typeof(s.%s)", q, q, q, q))
	}
	var on, key []string
	for _, i := range t.PKCols() {
		q := db.Quote(t.Columns[i].Name)
		on = append(on, "l."+q+" IS s."+q)
		key = append(key, "s."+q)
	}
	q := fmt.Sprintf("SELECT %s FROM %s.%s s CROSS JOIN main.%s l ON %s WHERE s.rowid IN (SELECT rid FROM %s) AND (%s)",
		strings.Join(key, ", "), joinSnap, db.Quote(t.Name), db.Quote(t.Name), strings.Join(on, " AND "), state.JoinChunkTable, strings.Join(differ, " OR "))
	var keys [][]changeset.Value
	err := sqlitex.Execute(e.Live, q, &sqlitex.ExecOptions{ResultFunc: func(s *sqlite.Stmt) error {
		k := make([]changeset.Value, s.ColumnCount())
		for i := range k {
			k[i] = db.Column(s, i)
		}
		keys = append(keys, k)
		return nil
	}})
	if err != nil {
		return fmt.Errorf("compare the joined rows of %s with the snapshot: %w", t.Name, err)
	}
	if len(keys) == 0 {
		return nil
	}
	return db.WithoutTriggers(e.Live, func() error {
		for _, k := range keys {
			want, err := snapRows.Get(k)
			if err != nil {
				return err
			}
			got, err := liveRows.Get(k)
			if err != nil {
				return err
			}
			if err := writeRow(liveRows, k, got, want); err != nil {
				return fmt.Errorf("undo trigger side effects on %s: %w", t.Name, err)
			}
			st.Corrected++
		}
		return nil
	})
}

// afterJoined runs the table's after-apply action for each row of the
// chunk, as an insert (afterApply does the same per row).
func (e *Engine) afterJoined(t *schema.Table, action string) {
	var keys [][]changeset.Value
	var key []string
	for _, i := range t.PKCols() {
		key = append(key, db.Quote(t.Columns[i].Name))
	}
	q := fmt.Sprintf("SELECT %s FROM %s.%s WHERE rowid IN (SELECT rid FROM %s) ORDER BY rowid", strings.Join(key, ", "), joinSnap, db.Quote(t.Name), state.JoinChunkTable)
	err := sqlitex.Execute(e.Live, q, &sqlitex.ExecOptions{ResultFunc: func(s *sqlite.Stmt) error {
		k := make([]changeset.Value, s.ColumnCount())
		for i := range k {
			k[i] = db.Column(s, i)
		}
		keys = append(keys, k)
		return nil
	}})
	if err != nil {
		e.Log.Warn("after-apply action not run: the joined rows could not be listed", "table", t.Name, "err", err)
		return
	}
	for _, k := range keys {
		if err := runAfterApply(e.Live, action, k, "insert"); err != nil {
			e.Log.Warn("after-apply action failed: the merged row is kept, but the app's own feed misses it (fix after_apply for the table)",
				"table", t.Name, "key", KeyText(k), "err", err)
		}
	}
}

// baseJoined writes the chunk's rows and metadata into the base copy, in
// a transaction of its own after live's.
func (e *Engine) baseJoined(t *schema.Table, colList, keyExpr, fromChunk string) (err error) {
	end, err := db.Begin(e.Live, "DEFERRED")
	if err != nil {
		return fmt.Errorf("start write transaction on the base copy: %w", err)
	}
	defer end(&err)
	if err = db.Exec(e.Live, "INSERT OR ABORT INTO "+joinBase+"."+db.Quote(t.Name)+"("+colList+") "+fromChunk); err != nil {
		return fmt.Errorf("update base copy of %s: %w", t.Name, err)
	}
	return state.CopyJoinChunkMeta(e.Live, joinSnap, joinBase, t.Name, keyExpr)
}
