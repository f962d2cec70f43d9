package rowdrop

import (
	"context"
	"encoding/json"
	"fmt"

	"zombiezen.com/go/sqlite"

	"github.com/rowdrop/rowdrop/internal/changeset"
	"github.com/rowdrop/rowdrop/internal/db"
	"github.com/rowdrop/rowdrop/internal/hlc"
	"github.com/rowdrop/rowdrop/internal/rows"
	"github.com/rowdrop/rowdrop/internal/state"
	"github.com/rowdrop/rowdrop/merge"
)

// Conflict is a readable conflict-log entry.
type Conflict struct {
	ID       int64             `json:"id"`
	At       string            `json:"at"`
	Kind     string            `json:"kind"`
	Table    string            `json:"table"`
	Key      string            `json:"key"`
	Columns  []string          `json:"columns"`
	Winner   map[string]string `json:"winner,omitempty"`
	Loser    map[string]string `json:"loser,omitempty"`
	WinnerBy string            `json:"winner_device"`
	LoserBy  string            `json:"loser_device"`
	WinnerAt string            `json:"winner_clock,omitempty"`
	LoserAt  string            `json:"loser_clock,omitempty"`
	File     string            `json:"file,omitempty"`
	Note     string            `json:"note,omitempty"`
	Restored string            `json:"restored,omitempty"`
}

// view renders a conflict-log entry; values that do not decode are left
// out, a column list that does not is an error (the state is damaged).
func view(c *state.Conflict) (*Conflict, error) {
	v := &Conflict{ID: c.ID, At: msTime(c.AtMS), Kind: c.Kind, Table: c.Table, Key: c.PKText, WinnerBy: c.WinnerDev, LoserBy: c.LoserDev,
		File: c.File, Note: c.Note, Restored: msTime(c.Restored)}
	if err := json.Unmarshal([]byte(c.Cols), &v.Columns); err != nil {
		return nil, fmt.Errorf("conflict %d: stored column list %q is unreadable: %w", c.ID, c.Cols, err)
	}
	render := func(b []byte) map[string]string {
		if b == nil {
			return nil
		}
		vals, err := changeset.DecodeKey(b)
		if err != nil {
			return nil
		}
		m := map[string]string{}
		for i, col := range v.Columns {
			if i < len(vals) {
				m[col] = vals[i].String()
			}
		}
		return m
	}
	v.Winner, v.Loser = render(c.Winner), render(c.Loser)
	if c.WinnerHLC != 0 {
		v.WinnerAt = hlc.Timestamp(c.WinnerHLC).String()
	}
	if c.LoserHLC != 0 {
		v.LoserAt = hlc.Timestamp(c.LoserHLC).String()
	}
	return v, nil
}

// Conflicts lists the conflict log, newest first.
func (s *Syncer) Conflicts() ([]*Conflict, error) {
	cs, err := s.st.Conflicts(0)
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

// Conflict returns one entry.
func (s *Syncer) Conflict(id int64) (*Conflict, error) {
	cs, err := s.st.Conflicts(id)
	if err != nil {
		return nil, err
	}
	if len(cs) == 0 {
		return nil, fmt.Errorf("no conflict with id %d (list them with `rowdrop conflicts`)", id)
	}
	return view(cs[0])
}

// RestoreConflict writes an entry's losing value(s) back into the live
// database as a new local edit, which the next export publishes like any
// edit.
func (s *Syncer) RestoreConflict(ctx context.Context, id int64) (err error) {
	cs, err := s.st.Conflicts(id)
	if err != nil {
		return err
	}
	if len(cs) == 0 {
		return fmt.Errorf("no conflict with id %d (list them with `rowdrop conflicts`)", id)
	}
	c := cs[0]
	if c.Loser == nil {
		return fmt.Errorf("conflict %d (%s) has no losing value to restore", id, c.Kind)
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
		return fmt.Errorf("conflict %d is about table %s, which is not synced here any more", id, c.Table)
	}
	var cols []string
	if err := json.Unmarshal([]byte(c.Cols), &cols); err != nil {
		return fmt.Errorf("conflict %d: stored column list is unreadable: %w", id, err)
	}
	vals, err := changeset.DecodeKey(c.Loser)
	if err != nil || len(vals) != len(cols) {
		return fmt.Errorf("conflict %d: stored value is unreadable", id)
	}
	key, err := changeset.DecodeKey(c.PK)
	if err != nil {
		return fmt.Errorf("conflict %d: stored key is unreadable", id)
	}
	end, err := db.Begin(s.live, "IMMEDIATE")
	if err != nil {
		return fmt.Errorf("restore conflict %d: %w", id, err)
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
			return fmt.Errorf("conflict %d: the row no longer exists and the entry holds only some columns; re-create the row in the app first", id)
		}
		if err = rt.Insert(merge.FreshLocalKey(t, vals)); err != nil {
			return restoreErr(id, c, err)
		}
	} else {
		var idx []int
		var keep []changeset.Value
		for j, name := range cols {
			i := t.ColIndex(name)
			if i < 0 {
				return fmt.Errorf("conflict %d: table %s has no column %s any more", id, t.Name, name)
			}
			if i == t.StorageKey() {
				continue // this device's id of the row (identity by natural key) stays
			}
			idx = append(idx, i)
			keep = append(keep, vals[j])
		}
		vals = keep
		if err = rt.Update(key, idx, vals); err != nil {
			return restoreErr(id, c, err)
		}
	}
	return s.st.MarkRestored(id, s.cfg.Now().UnixMilli())
}

// restoreErr explains a restore refused by a constraint: typically a row
// that lost a UNIQUE clash, whose value another row still holds.
func restoreErr(id int64, c *state.Conflict, err error) error {
	if sqlite.ErrCode(err) == sqlite.ResultConstraintUnique {
		return fmt.Errorf("restore conflict %d: another row of %s now holds one of its UNIQUE values (%w); change or delete that row in the app first, then restore again", id, c.Table, err)
	}
	return fmt.Errorf("restore conflict %d: %w", id, err)
}
