package state

import (
	"fmt"
	"iter"
	"slices"
	"strings"

	"zombiezen.com/go/sqlite"
	"zombiezen.com/go/sqlite/sqlitex"

	"github.com/rowdrop/rowdrop/internal/db"
)

// What a rebase (merge/rebase.go) reads of a snapshot and adds to this
// device's state; the snapshot's row metadata is read with NewMetaOn.

// RowKey names one row: its table and its encoded key.
type RowKey struct {
	Table string
	PK    []byte
}

// RowKeysInOrder yields the (table, key) of every row with merge metadata
// on conn (a snapshot's), in table then key order, so a rebase meets rows
// in the same order on every device. A failure to read ends the sequence
// with a non-nil error. Other statements on conn may run while it yields.
func RowKeysInOrder(conn *sqlite.Conn) iter.Seq2[RowKey, error] {
	return RowKeysInOrderExcept(conn, nil)
}

// RowKeysInOrderExcept is RowKeysInOrder without the rows of the tables
// skip (those a set-wise join took).
func RowKeysInOrderExcept(conn *sqlite.Conn, skip []string) iter.Seq2[RowKey, error] {
	q := "SELECT tbl, pk FROM rowdrop_rows ORDER BY tbl, pk"
	if len(skip) > 0 {
		q = "SELECT tbl, pk FROM rowdrop_rows WHERE tbl NOT IN (" + strings.TrimSuffix(strings.Repeat("?,", len(skip)), ",") + ") ORDER BY tbl, pk"
	}
	return func(yield func(RowKey, error) bool) {
		list, err := conn.Prepare(q)
		if err != nil {
			yield(RowKey{}, fmt.Errorf("list snapshot rows: %w", err))
			return
		}
		defer list.Reset()
		defer list.ClearBindings()
		for i, t := range skip {
			list.BindText(i+1, t)
		}
		for {
			ok, err := list.Step()
			if err != nil {
				yield(RowKey{}, fmt.Errorf("list snapshot rows: %w", err))
				return
			}
			if !ok || !yield(RowKey{Table: list.ColumnText(0), PK: columnBlob(list, 1)}, nil) {
				return
			}
		}
	}
}

// MergeHistory adds the file log and re-keying records of the snapshot
// open on snap to this device's, in one transaction; both only grow, and
// a record already here wins. File log entries are copied as stored (the
// snapshot's reader checked them).
func (d *Dir) MergeHistory(snap *sqlite.Conn) (err error) {
	files, err := ReadFileLog(snap)
	if err != nil {
		return fmt.Errorf("merge the snapshot's file log: %w", err)
	}
	rekeys, err := ReadRekeys(snap)
	if err != nil {
		return fmt.Errorf("merge the snapshot's re-keying records: %w", err)
	}
	end, err := db.Begin(d.conn, "IMMEDIATE")
	if err != nil {
		return fmt.Errorf("start write transaction on the base copy: %w", err)
	}
	defer end(&err)
	for _, f := range files {
		if err := db.Exec(d.conn, "INSERT OR IGNORE INTO rowdrop_filelog(dev,seq,hlc,seen) VALUES(?,?,?,?)", f.Dev, f.Seq, f.HLC, f.Seen); err != nil {
			return fmt.Errorf("merge the snapshot's file log: %w", err)
		}
	}
	for _, r := range rekeys {
		if err := d.AddRekey(r); err != nil {
			return fmt.Errorf("merge the snapshot's re-keying records: %w", err)
		}
	}
	return nil
}

// Set-wise joins (merge/rebase_setwise.go) run on one connection with the
// snapshot and the state database attached under the schema names they
// pass; the snapshot's rows are matched with their metadata through
// db.KeyFunc. A chunk of rows being merged is the list of the snapshot
// table's rowids in JoinChunkTable.

// JoinChunkTable is the temporary table of the rowids of the chunk a
// set-wise join merges.
const JoinChunkTable = "temp.rowdrop_join_chunk"

// copyableMeta is the condition on a snapshot's metadata row m under
// which a row that this device has never seen merges by copying it and m
// as they are (merge.joinRow's outcome for such a row): alive, no kept
// values, no lineage entry (which a join does not carry over).
const copyableMeta = `(m.wmax > m.del OR (m.wmax = m.del AND m.wmax_dev > m.del_dev)) AND m.dead IS NULL AND (m.cells IS NULL OR substr(m.cells, 1, 1) <> x'00')`

// HasRowMeta reports whether this device holds metadata of any row of
// table tbl.
func (d *Dir) HasRowMeta(tbl string) (bool, error) {
	has := false
	err := sqlitex.Execute(d.conn, "SELECT 1 FROM rowdrop_rows WHERE tbl=? LIMIT 1", &sqlitex.ExecOptions{Args: []any{tbl},
		ResultFunc: func(*sqlite.Stmt) error { has = true; return nil }})
	if err != nil {
		return false, fmt.Errorf("read row metadata of %s: %w", tbl, err)
	}
	return has, nil
}

// FillJoinChunk puts into JoinChunkTable (emptied first), in the order
// order, at most limit rowids of the rows of table tbl in snapshot schema
// snap (aliased s) for which the SQL condition where holds (with args:
// the rows after the last chunk, and not in live) and whose metadata
// copyableMeta accepts. keyExpr is the row's encoded key (db.KeyFunc over
// s's key columns). It returns how many it put.
func FillJoinChunk(conn *sqlite.Conn, snap, tbl, keyExpr, where, order string, limit int, args ...any) (int, error) {
	if err := sqlitex.ExecuteTransient(conn, "CREATE TEMP TABLE IF NOT EXISTS "+strings.TrimPrefix(JoinChunkTable, "temp.")+"(n INTEGER PRIMARY KEY, rid INTEGER NOT NULL)", nil); err != nil {
		return 0, fmt.Errorf("create the join's chunk table: %w", err)
	}
	if err := sqlitex.ExecuteTransient(conn, "DELETE FROM "+JoinChunkTable, nil); err != nil {
		return 0, fmt.Errorf("empty the join's chunk table: %w", err)
	}
	q := fmt.Sprintf(`INSERT INTO %s(rid) SELECT s.rowid FROM %s.%s s CROSS JOIN %s.rowdrop_rows m ON m.tbl=? AND m.pk=%s
		WHERE %s AND %s ORDER BY %s LIMIT %d`,
		JoinChunkTable, db.Quote(snap), db.Quote(tbl), db.Quote(snap), keyExpr, where, copyableMeta, order, limit)
	if err := sqlitex.Execute(conn, q, &sqlitex.ExecOptions{Args: append([]any{tbl}, args...)}); err != nil {
		return 0, fmt.Errorf("choose the rows of %s to join: %w", tbl, err)
	}
	return conn.Changes(), nil
}

// CopyJoinChunkMeta copies the metadata of the chunk's rows (FillJoinChunk)
// from the snapshot's into the state database's rowdrop_rows.
func CopyJoinChunkMeta(conn *sqlite.Conn, snap, base, tbl, keyExpr string) error {
	q := fmt.Sprintf(`INSERT INTO %s.rowdrop_rows(tbl,pk,ins,ins_dev,wmax,wmax_dev,del,del_dev,dead,cells)
		SELECT m.tbl, m.pk, m.ins, m.ins_dev, m.wmax, m.wmax_dev, m.del, m.del_dev, m.dead, m.cells
		FROM %s c CROSS JOIN %s.%s s ON s.rowid=c.rid CROSS JOIN %s.rowdrop_rows m ON m.tbl=? AND m.pk=%s ORDER BY c.n`,
		db.Quote(base), JoinChunkTable, db.Quote(snap), db.Quote(tbl), db.Quote(snap), keyExpr)
	if err := sqlitex.Execute(conn, q, &sqlitex.ExecOptions{Args: []any{tbl}}); err != nil {
		return fmt.Errorf("copy the row metadata of %s: %w", tbl, err)
	}
	return nil
}

// RowKeysNotIn lists, in table then key order, the rows of tables with
// metadata in snapshot schema snap but none in state schema base: what
// a set-wise join left to the row-by-row merge.
func RowKeysNotIn(conn *sqlite.Conn, snap, base string, tables []string) ([]RowKey, error) {
	var out []RowKey
	q := fmt.Sprintf(`SELECT s.pk FROM %s.rowdrop_rows s WHERE s.tbl=? AND NOT EXISTS (SELECT 1 FROM %s.rowdrop_rows b WHERE b.tbl=s.tbl AND b.pk=s.pk) ORDER BY s.pk`,
		db.Quote(snap), db.Quote(base))
	slices.Sort(tables)
	for _, t := range tables {
		err := sqlitex.Execute(conn, q, &sqlitex.ExecOptions{Args: []any{t}, ResultFunc: func(s *sqlite.Stmt) error {
			out = append(out, RowKey{Table: t, PK: columnBlob(s, 0)})
			return nil
		}})
		if err != nil {
			return nil, fmt.Errorf("list the rows of %s left to merge: %w", t, err)
		}
	}
	return out, nil
}

// RowsWithoutAliveMeta reports whether table tbl on conn (a snapshot's,
// aliased s) holds a row with no metadata, or with metadata that says it
// is deleted (Alive). keyExpr is the row's encoded key (db.KeyFunc over
// s's key columns).
func RowsWithoutAliveMeta(conn *sqlite.Conn, tbl, keyExpr string) (bool, error) {
	found := false
	q := fmt.Sprintf(`SELECT 1 FROM main.%s s WHERE NOT EXISTS (SELECT 1 FROM rowdrop_rows m WHERE m.tbl=? AND m.pk=%s
		AND (m.wmax > m.del OR (m.wmax = m.del AND m.wmax_dev > m.del_dev))) LIMIT 1`, db.Quote(tbl), keyExpr)
	err := sqlitex.Execute(conn, q, &sqlitex.ExecOptions{Args: []any{tbl}, ResultFunc: func(*sqlite.Stmt) error {
		found = true
		return nil
	}})
	return found, err
}
