// Package rows reads and writes whole rows of a synced table by primary
// key, in changeset value form. Export uses it to advance the base copy;
// merge uses it on the live database and the base copy alike.
package rows

import (
	"fmt"
	"slices"
	"strings"

	"zombiezen.com/go/sqlite"
	"zombiezen.com/go/sqlite/sqlitex"

	"github.com/rowdrop/rowdrop/internal/changeset"
	"github.com/rowdrop/rowdrop/internal/db"
	"github.com/rowdrop/rowdrop/internal/schema"
)

// Table accesses one table in one database of a connection.
type Table struct {
	conn   *sqlite.Conn
	T      *schema.Table
	dbName string
	qname  string // "db"."table"
	where  string // pk1=? AND pk2=?
	sel    *sqlite.Stmt
	ins    *sqlite.Stmt
	del    *sqlite.Stmt
	upd    map[string]*sqlite.Stmt // by column set
	// stream: big BLOB values may be written through incremental blob
	// I/O (see streamable); 0 not known yet, 1 yes, -1 no.
	stream  int
	indexed map[int]bool // columns in an index: never streamed
	rowid   *sqlite.Stmt
}

// Open prepares access to table t in database dbName of conn.
func Open(conn *sqlite.Conn, dbName string, t *schema.Table) *Table {
	var w []string
	for _, i := range t.PKCols() {
		w = append(w, db.Quote(t.Columns[i].Name)+"=?")
	}
	return &Table{conn: conn, T: t, dbName: dbName, qname: db.Quote(dbName) + "." + db.Quote(t.Name), where: strings.Join(w, " AND "), upd: map[string]*sqlite.Stmt{}}
}

func (r *Table) cols() string {
	var c []string
	for _, col := range r.T.Columns {
		c = append(c, db.Quote(col.Name))
	}
	return strings.Join(c, ",")
}

func (r *Table) prep(q string) (*sqlite.Stmt, error) {
	s, err := r.conn.Prepare(q)
	if err != nil {
		return nil, fmt.Errorf("table %s: prepare %q: %w", r.T.Name, q, err)
	}
	return s, nil
}

func (r *Table) bindKey(s *sqlite.Stmt, from int, key []changeset.Value) {
	for i, v := range key {
		db.Bind(s, from+i, v)
	}
}

// Get returns the row with the given key (PK values in key order), or nil.
func (r *Table) Get(key []changeset.Value) ([]changeset.Value, error) {
	if r.sel == nil {
		s, err := r.prep(fmt.Sprintf("SELECT %s FROM %s WHERE %s", r.cols(), r.qname, r.where))
		if err != nil {
			return nil, err
		}
		r.sel = s
	}
	s := r.sel
	defer s.Reset()
	r.bindKey(s, 1, key)
	ok, err := s.Step()
	if err != nil {
		return nil, fmt.Errorf("read row of %s: %w", r.T.Name, err)
	}
	if !ok {
		return nil, nil
	}
	row := make([]changeset.Value, len(r.T.Columns))
	for i := range row {
		row[i] = db.Column(s, i)
	}
	return row, nil
}

// Insert inserts a full row. OR ABORT overrides an ON CONFLICT REPLACE
// clause of the app's table definition, which would otherwise delete a
// colliding row silently; a collision is reported as a constraint error.
func (r *Table) Insert(row []changeset.Value) error {
	if r.ins == nil {
		ph := strings.TrimSuffix(strings.Repeat("?,", len(r.T.Columns)), ",")
		s, err := r.prep(fmt.Sprintf("INSERT OR ABORT INTO %s(%s) VALUES(%s)", r.qname, r.cols(), ph))
		if err != nil {
			return err
		}
		r.ins = s
	}
	s := r.ins
	defer s.Reset()
	big := r.bigBlobs(row, nil)
	for i, v := range row {
		if slices.Contains(big, i) {
			s.BindZeroBlob(i+1, int64(v.Len()))
			continue
		}
		if err := bindData(s, i+1, v); err != nil {
			return fmt.Errorf("insert into %s: %w", r.T.Name, err)
		}
	}
	if _, err := s.Step(); err != nil {
		return fmt.Errorf("insert into %s: %w", r.T.Name, err)
	}
	if len(big) == 0 {
		return nil
	}
	return r.fillBlobs(r.conn.LastInsertRowID(), Key(r.T, row), big, row)
}

// Delete deletes the row with the given key.
func (r *Table) Delete(key []changeset.Value) error {
	if r.del == nil {
		s, err := r.prep(fmt.Sprintf("DELETE FROM %s WHERE %s", r.qname, r.where))
		if err != nil {
			return err
		}
		r.del = s
	}
	s := r.del
	defer s.Reset()
	r.bindKey(s, 1, key)
	if _, err := s.Step(); err != nil {
		return fmt.Errorf("delete from %s: %w", r.T.Name, err)
	}
	return nil
}

// Update sets the given columns (indices) of the row with key to vals
// (OR ABORT: see Insert).
func (r *Table) Update(key []changeset.Value, cols []int, vals []changeset.Value) error {
	if len(cols) == 0 {
		return nil
	}
	var sig strings.Builder
	for _, c := range cols {
		fmt.Fprintf(&sig, "%d,", c)
	}
	s := r.upd[sig.String()]
	if s == nil {
		var set []string
		for _, c := range cols {
			set = append(set, db.Quote(r.T.Columns[c].Name)+"=?")
		}
		var err error
		s, err = r.prep(fmt.Sprintf("UPDATE OR ABORT %s SET %s WHERE %s", r.qname, strings.Join(set, ","), r.where))
		if err != nil {
			return err
		}
		r.upd[sig.String()] = s
	}
	defer s.Reset()
	var big []int // of vals
	for _, c := range cols {
		if r.T.Columns[c].PK > 0 {
			big = []int{} // a new key: the row is found by the old one
			break
		}
	}
	if big == nil {
		big = r.bigBlobs(vals, cols)
	}
	for i, v := range vals {
		if slices.Contains(big, i) {
			s.BindZeroBlob(i+1, int64(v.Len()))
			continue
		}
		if err := bindData(s, i+1, v); err != nil {
			return fmt.Errorf("update %s: %w", r.T.Name, err)
		}
	}
	r.bindKey(s, len(vals)+1, key)
	if _, err := s.Step(); err != nil {
		return fmt.Errorf("update %s: %w", r.T.Name, err)
	}
	if len(big) == 0 || r.conn.Changes() == 0 {
		return nil
	}
	id, err := r.rowID(key)
	if err != nil {
		return err
	}
	full := make([]changeset.Value, len(r.T.Columns))
	colsBig := make([]int, len(big))
	for j, i := range big {
		full[cols[i]] = vals[i]
		colsBig[j] = cols[i]
	}
	return r.fillBlobs(id, key, colsBig, full)
}

// streamMin is the size from which a BLOB value is written through
// incremental blob I/O (db.StreamMin).
const streamMin = db.StreamMin

// bigBlobs returns the indices into vals (columns cols[i], or i when cols
// is nil) of the BLOB values to stream, if the table allows it.
func (r *Table) bigBlobs(vals []changeset.Value, cols []int) []int {
	var big []int
	for i, v := range vals {
		if v.Kind == changeset.KindBlob && v.Len() >= streamMin {
			big = append(big, i)
		}
	}
	if len(big) == 0 || !r.streamable() {
		return nil
	}
	return slices.DeleteFunc(big, func(i int) bool {
		if cols != nil {
			i = cols[i]
		}
		return r.indexed[i]
	})
}

// streamable reports whether this table's big BLOBs may be written as
// zeroblob(n) first and filled in after, in the same transaction: only if
// nothing can see the zeros, so no trigger, no CHECK constraint, no
// generated column, no partial or expression index, and a rowid to find
// the row by (not WITHOUT ROWID, no column hiding the name rowid); and
// never a column of an index (a UNIQUE one would clash on the zeros).
// Foreign-key columns, refused by SQLite's blob I/O while enforcement is
// on, get their value by UPDATE instead (fillBlobs).
func (r *Table) streamable() bool {
	if r.stream != 0 {
		return r.stream > 0
	}
	r.stream = -1
	sql := strings.ToUpper(r.T.CreateSQL)
	if sql == "" || strings.Contains(sql, "WITHOUT") || strings.Contains(sql, "CHECK") || strings.Contains(sql, "GENERATED") || strings.Contains(sql, " AS ") {
		return false
	}
	for _, c := range r.T.Columns {
		switch strings.ToLower(c.Name) {
		case "rowid", "_rowid_", "oid":
			return false
		}
	}
	triggers := -1
	err := sqlitex.Execute(r.conn, fmt.Sprintf("SELECT count(*) FROM %s.sqlite_schema WHERE type = 'trigger' AND tbl_name = ? COLLATE NOCASE", db.Quote(r.dbName)),
		&sqlitex.ExecOptions{Args: []any{r.T.Name}, ResultFunc: func(s *sqlite.Stmt) error { triggers = s.ColumnInt(0); return nil }})
	if err != nil || triggers != 0 {
		return false
	}
	r.indexed = map[int]bool{}
	var indexes []string
	unsafe := false
	err = sqlitex.Execute(r.conn, fmt.Sprintf("SELECT name, partial FROM %s.pragma_index_list(?)", db.Quote(r.dbName)),
		&sqlitex.ExecOptions{Args: []any{r.T.Name}, ResultFunc: func(s *sqlite.Stmt) error {
			indexes = append(indexes, s.ColumnText(0))
			unsafe = unsafe || s.ColumnInt(1) != 0
			return nil
		}})
	for _, ix := range indexes {
		if err != nil || unsafe {
			break
		}
		err = sqlitex.Execute(r.conn, fmt.Sprintf("SELECT cid FROM %s.pragma_index_xinfo(?) WHERE key", db.Quote(r.dbName)),
			&sqlitex.ExecOptions{Args: []any{ix}, ResultFunc: func(s *sqlite.Stmt) error {
				cid := s.ColumnInt(0)
				unsafe = unsafe || cid == -2 // an expression
				r.indexed[cid] = true
				return nil
			}})
	}
	if err == nil && !unsafe {
		r.stream = 1
	}
	return r.stream > 0
}

// rowID returns the rowid of the row with key.
func (r *Table) rowID(key []changeset.Value) (int64, error) {
	if r.rowid == nil {
		s, err := r.prep(fmt.Sprintf("SELECT _rowid_ FROM %s WHERE %s", r.qname, r.where))
		if err != nil {
			return 0, err
		}
		r.rowid = s
	}
	s := r.rowid
	defer s.Reset()
	r.bindKey(s, 1, key)
	ok, err := s.Step()
	if err != nil || !ok {
		return 0, fmt.Errorf("find the row just written in %s: %v", r.T.Name, err)
	}
	return s.ColumnInt64(0), nil
}

// fillBlobs writes row[c] for each column c of cols into the zeroblob
// the row with rowid id (and key) holds there. A column SQLite does not
// let blob I/O write (indexed, a foreign key) gets its value by UPDATE.
func (r *Table) fillBlobs(id int64, key []changeset.Value, cols []int, row []changeset.Value) error {
	for _, c := range cols {
		name := r.T.Columns[c].Name
		ok, err := db.FillBlob(r.conn, r.dbName, r.T.Name, name, id, row[c].WriteData)
		if !ok {
			if uerr := r.updateBound(key, c, row[c]); uerr != nil {
				return fmt.Errorf("write %s.%s: %w", r.T.Name, name, uerr)
			}
			continue
		}
		if err != nil {
			return fmt.Errorf("write %s.%s: %w", r.T.Name, name, err)
		}
	}
	return nil
}

// updateBound sets one column by an UPDATE binding its value.
func (r *Table) updateBound(key []changeset.Value, c int, v changeset.Value) error {
	q := fmt.Sprintf("UPDATE %s SET %s = ? WHERE %s", r.qname, db.Quote(r.T.Columns[c].Name), r.where)
	s, err := r.conn.Prepare(q)
	if err != nil {
		return err
	}
	defer s.Reset()
	if err := bindData(s, 1, v); err != nil {
		return err
	}
	r.bindKey(s, 2, key)
	_, err = s.Step()
	return err
}

// bindData binds v, reading its bytes first if they are in a section of
// the input (changeset.Value.Src) rather than in memory.
func bindData(s *sqlite.Stmt, i int, v changeset.Value) error {
	if v.Src != nil {
		b, err := v.Data()
		if err != nil {
			return err
		}
		v.Bytes, v.Src = b, nil
	}
	db.Bind(s, i, v)
	return nil
}

// Close finalizes prepared statements.
func (r *Table) Close() {
	for _, s := range []*sqlite.Stmt{r.sel, r.ins, r.del, r.rowid} {
		if s != nil {
			s.Finalize()
		}
	}
	for _, s := range r.upd {
		s.Finalize()
	}
}

// Key extracts the PK values (in key order) from a full or partial row.
func Key(t *schema.Table, row []changeset.Value) []changeset.Value {
	k := make([]changeset.Value, 0, len(t.PKCols()))
	for _, i := range t.PKCols() {
		k = append(k, row[i])
	}
	return k
}
