// Package rows reads and writes whole rows of a synced table by primary
// key, in changeset value form. Export uses it to advance the base copy;
// merge uses it on the live database and the base copy alike.
package rows

import (
	"fmt"
	"strings"

	"zombiezen.com/go/sqlite"

	"github.com/rowdrop/rowdrop/internal/changeset"
	"github.com/rowdrop/rowdrop/internal/db"
	"github.com/rowdrop/rowdrop/internal/schema"
)

// Table accesses one table in one database of a connection.
type Table struct {
	conn  *sqlite.Conn
	T     *schema.Table
	qname string // "db"."table"
	where string // pk1=? AND pk2=?
	sel   *sqlite.Stmt
	ins   *sqlite.Stmt
	del   *sqlite.Stmt
	upd   map[string]*sqlite.Stmt // by column set
}

// Open prepares access to table t in database dbName of conn.
func Open(conn *sqlite.Conn, dbName string, t *schema.Table) *Table {
	var w []string
	for _, i := range t.PKCols() {
		w = append(w, db.Quote(t.Columns[i].Name)+"=?")
	}
	return &Table{conn: conn, T: t, qname: db.Quote(dbName) + "." + db.Quote(t.Name), where: strings.Join(w, " AND "), upd: map[string]*sqlite.Stmt{}}
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
	for i, v := range row {
		db.Bind(s, i+1, v)
	}
	if _, err := s.Step(); err != nil {
		return fmt.Errorf("insert into %s: %w", r.T.Name, err)
	}
	return nil
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
	for i, v := range vals {
		db.Bind(s, i+1, v)
	}
	r.bindKey(s, len(vals)+1, key)
	if _, err := s.Step(); err != nil {
		return fmt.Errorf("update %s: %w", r.T.Name, err)
	}
	return nil
}

// Close finalizes prepared statements.
func (r *Table) Close() {
	for _, s := range []*sqlite.Stmt{r.sel, r.ins, r.del} {
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
