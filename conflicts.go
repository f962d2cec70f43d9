package rowdrop

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"time"

	"zombiezen.com/go/sqlite"

	"github.com/rowdrop/rowdrop/internal/changeset"
	"github.com/rowdrop/rowdrop/internal/db"
	"github.com/rowdrop/rowdrop/internal/hlc"
	"github.com/rowdrop/rowdrop/internal/rows"
	"github.com/rowdrop/rowdrop/internal/state"
)

// Conflict is a readable conflict-log entry: one row and one pair of
// edits that met on it (every cell where they met), with the values that
// were kept and the ones that lost.
type Conflict struct {
	// ID is the entry's content id: the same conflict has the same id on
	// every device that merged it (a hash of table, key and the two
	// edits' clocks). Seq is this device's number for it, accepted where
	// an id is.
	ID      string   `json:"id"`
	Seq     int64    `json:"seq"`
	At      string   `json:"at"`
	Kind    string   `json:"kind"`
	Table   string   `json:"table"`
	Key     string   `json:"key"`
	Columns []string `json:"columns"`
	// Winner and Loser map a column to its value as an SQL literal
	// ('text', 12, X'00ff', NULL), for people; their JSON (winner,
	// loser) is typed (JSONValue).
	Winner    map[string]string `json:"-"`
	Loser     map[string]string `json:"-"`
	WinnerJS  map[string]any    `json:"winner,omitempty"`
	LoserJS   map[string]any    `json:"loser,omitempty"`
	WinnerBy  string            `json:"winner_device"`
	LoserBy   string            `json:"loser_device"`
	WinnerAt  string            `json:"winner_clock,omitempty"`
	LoserAt   string            `json:"loser_clock,omitempty"`
	File      string            `json:"file,omitempty"`
	Note      string            `json:"note,omitempty"`
	Restored  string            `json:"restored,omitempty"`
	Dismissed string            `json:"dismissed,omitempty"`
}

// JSONValue is how a cell's value appears in JSON: INTEGER and REAL as
// numbers (a REAL that is infinite as the string "Infinity" or
// "-Infinity", which JSON numbers cannot hold), TEXT as a string, NULL as
// null, and a BLOB as {"blob": "<hex>"}.
func JSONValue(v changeset.Value) any {
	switch v.Kind {
	case changeset.KindInteger:
		return v.Int
	case changeset.KindFloat:
		switch {
		case math.IsInf(v.Float, 1):
			return "Infinity"
		case math.IsInf(v.Float, -1):
			return "-Infinity"
		case math.IsNaN(v.Float):
			return nil
		}
		return v.Float
	case changeset.KindText:
		return string(v.Bytes)
	case changeset.KindBlob:
		return map[string]string{"blob": hex.EncodeToString(v.Bytes)}
	}
	return nil
}

// view renders a conflict-log entry; values that do not decode are left
// out, a column list that does not is an error (the state is damaged).
func view(c *state.Conflict) (*Conflict, error) {
	v := &Conflict{ID: c.ID, Seq: c.Seq, At: msTime(c.AtMS), Kind: c.Kind, Table: c.Table, Key: c.PKText, WinnerBy: c.WinnerDev, LoserBy: c.LoserDev,
		File: c.File, Note: c.Note, Restored: msTime(c.Restored), Dismissed: msTime(c.Dismissed)}
	if err := json.Unmarshal([]byte(c.Cols), &v.Columns); err != nil {
		return nil, fmt.Errorf("conflict %s: stored column list %q is unreadable: %w", c.ID, c.Cols, err)
	}
	render := func(b []byte) (map[string]string, map[string]any) {
		if b == nil {
			return nil, nil
		}
		vals, err := changeset.DecodeKey(b)
		if err != nil {
			return nil, nil
		}
		m, js := map[string]string{}, map[string]any{}
		for i, col := range v.Columns {
			if i < len(vals) && vals[i].Kind != changeset.KindUndefined {
				m[col] = vals[i].String()
				js[col] = JSONValue(vals[i])
			}
		}
		return m, js
	}
	v.Winner, v.WinnerJS = render(c.Winner)
	v.Loser, v.LoserJS = render(c.Loser)
	if c.WinnerHLC != 0 {
		v.WinnerAt = hlc.Timestamp(c.WinnerHLC).String()
	}
	if c.LoserHLC != 0 {
		v.LoserAt = hlc.Timestamp(c.LoserHLC).String()
	}
	return v, nil
}

// ConflictFilter selects conflict-log entries; the zero value selects
// every entry not dismissed.
type ConflictFilter struct {
	Table     string    // only this table
	Since     time.Time // only entries logged at or after it
	Dismissed bool      // dismissed entries too
}

// Conflicts lists the conflict log (entries not dismissed), newest first.
func (s *Syncer) Conflicts() ([]*Conflict, error) { return s.ConflictLog(ConflictFilter{}) }

// ConflictLog lists the entries f selects, newest first.
func (s *Syncer) ConflictLog(f ConflictFilter) ([]*Conflict, error) {
	sf := state.ConflictFilter{Table: f.Table, Dismissed: f.Dismissed}
	if !f.Since.IsZero() {
		sf.SinceMS = f.Since.UnixMilli()
	}
	cs, err := s.st.Conflicts(sf)
	if err != nil {
		return nil, err
	}
	out := make([]*Conflict, 0, len(cs))
	for _, c := range cs {
		v, err := view(c)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, nil
}

// conflict finds one stored entry by id, id prefix or local number.
func (s *Syncer) conflict(id string) (*state.Conflict, error) {
	c, err := s.st.Conflict(id)
	if errors.Is(err, state.ErrNoConflict) {
		return nil, fmt.Errorf("%w (list them with `rowdrop conflicts`)", err)
	}
	return c, err
}

// Conflict returns one entry, dismissed or not, by its id, a prefix of it
// or its local number.
func (s *Syncer) Conflict(id string) (*Conflict, error) {
	c, err := s.conflict(id)
	if err != nil {
		return nil, err
	}
	return view(c)
}

// DismissConflict hides an entry from the log's listing and the open
// count (its values are not touched); it returns the entry's id.
func (s *Syncer) DismissConflict(id string) (string, error) {
	c, err := s.conflict(id)
	if err != nil {
		return "", err
	}
	return c.ID, s.st.DismissConflict(c.ID, s.cfg.Now().UnixMilli())
}

// PruneConflicts deletes the entries logged before t and says how many.
func (s *Syncer) PruneConflicts(before time.Time) (int, error) {
	return s.st.PruneConflicts(before.UnixMilli())
}

// RestoreConflict writes an entry's losing value(s) back into the live
// database as a new local edit, which the next export publishes like any
// edit.
func (s *Syncer) RestoreConflict(ctx context.Context, ref string) (err error) {
	c, err := s.conflict(ref)
	if err != nil {
		return err
	}
	id := c.ID
	if c.Loser == nil {
		return fmt.Errorf("conflict %s (%s) has no losing value to restore", id, c.Kind)
	}
	ls, err := s.readSchema()
	if err != nil {
		return err
	}
	tables := ls.tables
	var t = tables[0]
	found := false
	for _, x := range tables {
		if x.Name == c.Table {
			t, found = x, true
		}
	}
	if !found {
		return fmt.Errorf("conflict %s is about table %s, which is not synced here any more", id, c.Table)
	}
	var cols []string
	if err := json.Unmarshal([]byte(c.Cols), &cols); err != nil {
		return fmt.Errorf("conflict %s: stored column list is unreadable: %w", id, err)
	}
	vals, err := changeset.DecodeKey(c.Loser)
	if err != nil || len(vals) != len(cols) {
		return fmt.Errorf("conflict %s: stored value is unreadable", id)
	}
	key, err := changeset.DecodeKey(c.PK)
	if err != nil {
		return fmt.Errorf("conflict %s: stored key is unreadable", id)
	}
	end, err := db.Begin(s.live, "IMMEDIATE")
	if err != nil {
		return fmt.Errorf("restore conflict %s: %w", id, err)
	}
	defer end(&err)
	rt := rows.Open(s.live, "main", t)
	defer rt.Close()
	cur, err := rt.Get(key)
	if err != nil {
		return err
	}
	if cur == nil {
		if len(cols) != len(t.Columns) {
			return fmt.Errorf("conflict %s: the row no longer exists and the entry holds only some columns; re-create the row in the app first", id)
		}
		if err = rt.Insert(vals); err != nil {
			return restoreErr(id, c, err)
		}
	} else {
		var idx []int
		for _, name := range cols {
			i := t.ColIndex(name)
			if i < 0 {
				return fmt.Errorf("conflict %s: table %s has no column %s any more", id, t.Name, name)
			}
			idx = append(idx, i)
		}
		if err = rt.Update(key, idx, vals); err != nil {
			return restoreErr(id, c, err)
		}
	}
	return s.st.MarkRestored(c.ID, s.cfg.Now().UnixMilli())
}

// restoreErr explains a restore refused by a constraint: typically a row
// that lost a UNIQUE clash, whose value another row still holds.
func restoreErr(id string, c *state.Conflict, err error) error {
	if sqlite.ErrCode(err) == sqlite.ResultConstraintUnique {
		return fmt.Errorf("restore conflict %s: another row of %s now holds one of its UNIQUE values (%w); change or delete that row in the app first, then restore again", id, c.Table, err)
	}
	return fmt.Errorf("restore conflict %s: %w", id, err)
}
