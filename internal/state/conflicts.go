package state

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"

	"zombiezen.com/go/sqlite"
	"zombiezen.com/go/sqlite/sqlitex"

	"github.com/rowdrop/rowdrop/internal/changeset"
	"github.com/rowdrop/rowdrop/internal/db"
)

// The conflict log (rowdrop_conflicts). An entry is one row and one pair
// of edits: every cell of the row on which the same two writes met is one
// entry, not one each. Its id is a hash of what every device that merges
// the two writes sees alike (the table, the key, the kind of conflict and
// the two writes' clocks), so the same conflict has the same id on every device; the
// local sequence number (Seq) is kept for the ids printed before.

// Conflict is one entry of the conflict log.
type Conflict struct {
	ID        string `json:"id"`  // content id (ConflictID)
	Seq       int64  `json:"seq"` // this device's number for it
	AtMS      int64  `json:"at_ms"`
	Kind      string `json:"kind"`
	Table     string `json:"table"`
	PK        []byte `json:"-"`
	PKText    string `json:"key"`
	Cols      string `json:"columns"` // JSON array
	Winner    []byte `json:"-"`       // encoded values (one per column in Cols, or a whole row)
	WinnerDev string `json:"winner_device"`
	WinnerHLC uint64 `json:"winner_hlc"`
	Loser     []byte `json:"-"`
	// WinnerValues and LoserValues are the sides as values, for a writer
	// that has them (the merge), in place of Winner and Loser (which stay
	// nil): AddConflict encodes them as it writes, a big side straight
	// from the values into the log, with no copy of it in memory. Entries
	// read back have Winner and Loser.
	WinnerValues []changeset.Value `json:"-"`
	LoserValues  []changeset.Value `json:"-"`
	LoserDev     string            `json:"loser_device"`
	LoserHLC     uint64            `json:"loser_hlc"`
	File         string            `json:"file,omitempty"`
	Note         string            `json:"note,omitempty"`
	Restored     int64             `json:"restored_ms,omitempty"`
	Dismissed    int64             `json:"dismissed_ms,omitempty"`
}

// conflictIDLen is how many hex digits of the hash an id keeps: 48 bits,
// plenty for one database's log, short enough to type.
const conflictIDLen = 12

// deleteKinds are the kinds of one conflict between a delete and an edit,
// which devices name by who won and what they had seen (merge/decide.go):
// one class for the id.
var deleteKinds = map[string]bool{"deleted": true, "edit-deleted": true, "delete-lost": true}

// ConflictID is c's content id: a hash of its table, key, kind of
// conflict and the two clocks (in a fixed order, so which one won does
// not matter). Every device that merges the same two writes computes the
// same id; a delete against an edit is one class whatever side a device
// saw it from. An entry about an edit not exported yet (winner "local",
// no clock) can only be named by this device.
func ConflictID(c *Conflict) string {
	a := c.WinnerDev + ":" + strconv.FormatUint(c.WinnerHLC, 10)
	b := c.LoserDev + ":" + strconv.FormatUint(c.LoserHLC, 10)
	if b < a {
		a, b = b, a
	}
	class := c.Kind
	if deleteKinds[class] {
		class = "delete"
	}
	h := sha256.New()
	for _, part := range [][]byte{[]byte(c.Table), c.PK, []byte(class), []byte(a), []byte(b)} {
		h.Write([]byte(strconv.Itoa(len(part))))
		h.Write([]byte{0})
		h.Write(part)
	}
	return hex.EncodeToString(h.Sum(nil))[:conflictIDLen]
}

// AddConflict logs c. An entry with the same id (the same two writes on
// the same row) takes c's columns in instead: the cells of one row and
// one edit are one entry, and a merge run again logs nothing twice.
func (d *Dir) AddConflict(c *Conflict) (err error) {
	defer sqlitex.Save(d.conn)(&err)
	return addConflict(d.conn, c)
}

func addConflict(conn *sqlite.Conn, c *Conflict) error {
	c.ID = ConflictID(c)
	old, err := conflictsWhere(conn, "cid=?", c.ID)
	if err != nil {
		return fmt.Errorf("read the conflict log: %w", err)
	}
	sides := []side{newSide(c.Winner, c.WinnerValues), newSide(c.Loser, c.LoserValues)}
	if len(old) > 0 {
		c.Winner, c.Loser = sides[0].encoded(), sides[1].encoded()
		return mergeConflict(conn, old[0], c)
	}
	err = sqlitex.Execute(conn, `INSERT INTO rowdrop_conflicts(at_ms,kind,tbl,pk,pk_text,cols,winner,winner_dev,winner_hlc,loser,loser_dev,loser_hlc,file,note,restored_ms,dismissed_ms,cid,winner_ext,loser_ext)
		VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)`, &sqlitex.ExecOptions{Args: []any{
		c.AtMS, c.Kind, c.Table, c.PK, c.PKText, c.Cols, sides[0].inline(), c.WinnerDev, int64(c.WinnerHLC), sides[1].inline(), c.LoserDev, int64(c.LoserHLC),
		c.File, c.Note, c.Restored, c.Dismissed, c.ID, sides[0].big(), sides[1].big()}})
	if err != nil {
		return fmt.Errorf("write the conflict log: %w", err)
	}
	c.Seq = conn.LastInsertRowID()
	for i, sd := range sides {
		if !sd.big() {
			continue
		}
		// zeroblob(n) as the row's last column takes no memory, and the
		// bytes go in through blob I/O: SQLite holds no copy of the side.
		id := c.Seq*2 + int64(i)
		if err := db.Exec(conn, "INSERT INTO rowdrop_conflict_values(id, v) VALUES(?, zeroblob(?))", id, sd.n); err != nil {
			return fmt.Errorf("write the conflict log: %w", err)
		}
		if _, err := db.FillBlob(conn, "main", "rowdrop_conflict_values", "v", id, sd.write); err != nil {
			return fmt.Errorf("write the conflict log: %w", err)
		}
	}
	return nil
}

// side is one side of a conflict as it is written: encoded bytes, or
// values encoded as they are written.
type side struct {
	enc  []byte
	vals []changeset.Value
	n    int // encoded length
}

func newSide(enc []byte, vals []changeset.Value) side {
	if enc == nil && vals != nil {
		return side{vals: vals, n: changeset.KeyLen(vals)}
	}
	return side{enc: enc, n: len(enc)}
}

// big reports whether the side is kept in rowdrop_conflict_values rather
// than in its entry's row, where SQLite would copy it into a bound
// parameter and again into the row's record.
func (s side) big() bool { return s.n >= db.StreamMin }

// encoded returns the side's encoding (nil: no side).
func (s side) encoded() []byte {
	if s.vals != nil {
		return changeset.EncodeKey(s.vals)
	}
	return s.enc
}

// inline is what the entry's own column holds for the side.
func (s side) inline() []byte {
	if s.big() {
		return []byte{}
	}
	return s.encoded()
}

func (s side) write(w io.Writer) error {
	if s.vals != nil {
		return changeset.WriteKey(w, s.vals)
	}
	_, err := w.Write(s.enc)
	return err
}

// dropConflictValues deletes the big sides of the entries where selects.
func dropConflictValues(conn *sqlite.Conn, where string, args ...any) error {
	return db.Exec(conn, "DELETE FROM rowdrop_conflict_values WHERE id/2 IN (SELECT id FROM rowdrop_conflicts WHERE "+where+")", args...)
}

// mergeConflict adds the columns of c that entry old lacks, with their
// values. An entry whose side is a missing row ("no row") stays as it
// is: it already covers the whole row.
func mergeConflict(conn *sqlite.Conn, old, c *Conflict) error {
	if (old.Winner == nil) != (c.Winner == nil) || (old.Loser == nil) != (c.Loser == nil) {
		return nil
	}
	var oc, nc []string
	if json.Unmarshal([]byte(old.Cols), &oc) != nil || json.Unmarshal([]byte(c.Cols), &nc) != nil {
		return nil // unreadable lists: keep what is there
	}
	ow, ol, okO := decodeSides(old, len(oc))
	nw, nl, okN := decodeSides(c, len(nc))
	if !okO || !okN {
		return nil
	}
	has := map[string]bool{}
	for _, col := range oc {
		has[col] = true
	}
	added := false
	for i, col := range nc {
		if has[col] {
			continue
		}
		added = true
		oc = append(oc, col)
		if ow != nil {
			ow = append(ow, nw[i])
		}
		if ol != nil {
			ol = append(ol, nl[i])
		}
	}
	if !added {
		return nil
	}
	js, _ := json.Marshal(oc)
	enc := func(v []changeset.Value) []byte {
		if v == nil {
			return nil
		}
		return changeset.EncodeKey(v)
	}
	if err := dropConflictValues(conn, "id=?", old.Seq); err != nil {
		return fmt.Errorf("write the conflict log: %w", err)
	}
	if err := sqlitex.Execute(conn, "UPDATE rowdrop_conflicts SET cols=?, winner=?, loser=?, winner_ext=0, loser_ext=0 WHERE id=?", &sqlitex.ExecOptions{
		Args: []any{string(js), enc(ow), enc(ol), old.Seq}}); err != nil {
		return fmt.Errorf("write the conflict log: %w", err)
	}
	return nil
}

// decodeSides decodes an entry's winner and loser values, each nil or n
// values.
func decodeSides(c *Conflict, n int) (w, l []changeset.Value, ok bool) {
	dec := func(b []byte) ([]changeset.Value, bool) {
		if b == nil {
			return nil, true
		}
		v, err := changeset.DecodeKey(b)
		return v, err == nil && len(v) == n
	}
	w, okW := dec(c.Winner)
	l, okL := dec(c.Loser)
	return w, l, okW && okL
}

const conflictCols = `id,at_ms,kind,tbl,pk,pk_text,cols,
	CASE WHEN winner_ext THEN (SELECT v FROM rowdrop_conflict_values WHERE rowdrop_conflict_values.id = rowdrop_conflicts.id*2) ELSE winner END,
	winner_dev,winner_hlc,
	CASE WHEN loser_ext THEN (SELECT v FROM rowdrop_conflict_values WHERE rowdrop_conflict_values.id = rowdrop_conflicts.id*2+1) ELSE loser END,
	loser_dev,loser_hlc,file,note,restored_ms,dismissed_ms,cid`

func conflictsWhere(conn *sqlite.Conn, where string, args ...any) ([]*Conflict, error) {
	var out []*Conflict
	err := sqlitex.Execute(conn, "SELECT "+conflictCols+" FROM rowdrop_conflicts WHERE "+where+" ORDER BY at_ms DESC, id DESC",
		&sqlitex.ExecOptions{Args: args, ResultFunc: func(s *sqlite.Stmt) error {
			out = append(out, &Conflict{Seq: s.ColumnInt64(0), AtMS: s.ColumnInt64(1), Kind: s.ColumnText(2), Table: s.ColumnText(3),
				PK: columnBlob(s, 4), PKText: s.ColumnText(5), Cols: s.ColumnText(6), Winner: columnBlob(s, 7), WinnerDev: s.ColumnText(8),
				WinnerHLC: uint64(s.ColumnInt64(9)), Loser: columnBlob(s, 10), LoserDev: s.ColumnText(11), LoserHLC: uint64(s.ColumnInt64(12)),
				File: s.ColumnText(13), Note: s.ColumnText(14), Restored: s.ColumnInt64(15), Dismissed: s.ColumnInt64(16), ID: s.ColumnText(17)})
			return nil
		}})
	return out, err
}

// ConflictFilter selects conflict-log entries; the zero value selects
// every entry not dismissed.
type ConflictFilter struct {
	Table     string // only this table ("": all)
	SinceMS   int64  // only entries logged at or after this time (0: all)
	Dismissed bool   // include dismissed entries
}

// Conflicts lists the conflict-log entries f selects, newest first.
func (d *Dir) Conflicts(f ConflictFilter) ([]*Conflict, error) {
	where, args := []string{"1"}, []any{}
	if f.Table != "" {
		where, args = append(where, "tbl=?"), append(args, f.Table)
	}
	if f.SinceMS > 0 {
		where, args = append(where, "at_ms>=?"), append(args, f.SinceMS)
	}
	if !f.Dismissed {
		where = append(where, "dismissed_ms=0")
	}
	out, err := conflictsWhere(d.conn, strings.Join(where, " AND "), args...)
	if err != nil {
		return nil, fmt.Errorf("read the conflict log in %s: %w", d.Path, err)
	}
	return out, nil
}

// ErrNoConflict means no entry has the given id.
var ErrNoConflict = errors.New("no such conflict")

// Conflict finds one entry, dismissed or not, by its id, a prefix of it
// (4 characters at least) or, as printed before ids were content ids, its
// local number.
func (d *Dir) Conflict(ref string) (*Conflict, error) {
	ref = strings.ToLower(strings.TrimPrefix(strings.TrimSpace(ref), "#"))
	var cs []*Conflict
	var err error
	if len(ref) >= 4 && strings.Trim(ref, "0123456789abcdef") == "" {
		cs, err = conflictsWhere(d.conn, "substr(cid,1,length(?1))=?1", ref)
	}
	if err == nil && len(cs) == 0 {
		if n, perr := strconv.ParseInt(ref, 10, 64); perr == nil && n > 0 {
			cs, err = conflictsWhere(d.conn, "id=?", n)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("read the conflict log in %s: %w", d.Path, err)
	}
	switch len(cs) {
	case 0:
		return nil, fmt.Errorf("%w %q in this database's log", ErrNoConflict, ref)
	case 1:
		return cs[0], nil
	}
	ids := make([]string, len(cs))
	for i, c := range cs {
		ids[i] = c.ID
	}
	sort.Strings(ids)
	return nil, fmt.Errorf("conflict id %q is the start of %d ids (%s): give more of it", ref, len(cs), strings.Join(ids, ", "))
}

// OpenConflicts counts the conflict-log entries neither restored nor
// dismissed.
func (d *Dir) OpenConflicts() (int, error) {
	var n int
	err := sqlitex.Execute(d.conn, "SELECT count(*) FROM rowdrop_conflicts WHERE restored_ms=0 AND dismissed_ms=0", &sqlitex.ExecOptions{ResultFunc: func(s *sqlite.Stmt) error {
		n = s.ColumnInt(0)
		return nil
	}})
	if err != nil {
		return 0, fmt.Errorf("count conflicts in %s: %w", d.Path, err)
	}
	return n, nil
}

// MarkRestored records that conflict id's losing values were restored.
func (d *Dir) MarkRestored(id string, atMS int64) error {
	if err := db.Exec(d.conn, "UPDATE rowdrop_conflicts SET restored_ms=? WHERE cid=?", atMS, id); err != nil {
		return fmt.Errorf("mark conflict %s restored in %s: %w", id, d.Path, err)
	}
	return nil
}

// DismissConflict hides conflict id from the log's listing and from the
// open count; `conflicts show` still finds it, and the same conflict
// merged again stays dismissed.
func (d *Dir) DismissConflict(id string, atMS int64) error {
	if err := db.Exec(d.conn, "UPDATE rowdrop_conflicts SET dismissed_ms=? WHERE cid=?", atMS, id); err != nil {
		return fmt.Errorf("dismiss conflict %s in %s: %w", id, d.Path, err)
	}
	return nil
}

// PruneConflicts deletes the entries logged before beforeMS and returns
// how many.
func (d *Dir) PruneConflicts(beforeMS int64) (int, error) {
	var n int
	err := func() (err error) {
		defer sqlitex.Save(d.conn)(&err)
		if err = dropConflictValues(d.conn, "at_ms<?", beforeMS); err != nil {
			return err
		}
		if err = db.Exec(d.conn, "DELETE FROM rowdrop_conflicts WHERE at_ms<?", beforeMS); err != nil {
			return err
		}
		n = d.conn.Changes()
		return nil
	}()
	if err != nil {
		return 0, fmt.Errorf("prune the conflict log in %s: %w", d.Path, err)
	}
	return n, nil
}

// upgradeConflicts gives a log written before content ids its columns,
// ids and grouping (the per-cell entries of one row and edit become one
// entry, keeping the first one's number), in one transaction.
func upgradeConflicts(conn *sqlite.Conn) (err error) {
	defer sqlitex.Save(conn)(&err)
	have := map[string]bool{}
	if err = sqlitex.ExecuteTransient(conn, "SELECT name FROM pragma_table_info('rowdrop_conflicts')", &sqlitex.ExecOptions{ResultFunc: func(s *sqlite.Stmt) error {
		have[s.ColumnText(0)] = true
		return nil
	}}); err != nil {
		return err
	}
	for col, decl := range map[string]string{"cid": "TEXT NOT NULL DEFAULT ''", "dismissed_ms": "INTEGER NOT NULL DEFAULT 0",
		"winner_ext": "INTEGER NOT NULL DEFAULT 0", "loser_ext": "INTEGER NOT NULL DEFAULT 0"} {
		if !have[col] {
			if err = sqlitex.ExecuteTransient(conn, "ALTER TABLE rowdrop_conflicts ADD COLUMN "+col+" "+decl, nil); err != nil {
				return err
			}
		}
	}
	if err = sqlitex.ExecuteTransient(conn, "CREATE INDEX IF NOT EXISTS rowdrop_conflicts_cid ON rowdrop_conflicts(cid)", nil); err != nil {
		return err
	}
	return rehashConflicts(conn, "cid=''")
}

// rehashConflicts recomputes the ids of the entries where selects
// (oldest first), merging entries that turn out to be one.
func rehashConflicts(conn *sqlite.Conn, where string, args ...any) error {
	cs, err := conflictsWhere(conn, where, args...)
	if err != nil {
		return err
	}
	sort.Slice(cs, func(i, j int) bool { return cs[i].Seq < cs[j].Seq })
	for _, c := range cs {
		id := ConflictID(c)
		if id == c.ID {
			continue
		}
		same, err := conflictsWhere(conn, "cid=? AND id<>?", id, c.Seq)
		if err != nil {
			return err
		}
		if len(same) > 0 {
			if err := mergeConflict(conn, same[0], c); err != nil {
				return err
			}
			if err := dropConflictValues(conn, "id=?", c.Seq); err != nil {
				return err
			}
			if err := db.Exec(conn, "DELETE FROM rowdrop_conflicts WHERE id=?", c.Seq); err != nil {
				return err
			}
			continue
		}
		if err := db.Exec(conn, "UPDATE rowdrop_conflicts SET cid=? WHERE id=?", id, c.Seq); err != nil {
			return err
		}
	}
	return nil
}
