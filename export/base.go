package export

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"zombiezen.com/go/sqlite"

	"github.com/rowdrop/rowdrop/internal/db"
	"github.com/rowdrop/rowdrop/internal/rdfile"
	"github.com/rowdrop/rowdrop/internal/schema"
	"github.com/rowdrop/rowdrop/internal/state"
)

// SchemaProblem is a synced table whose live shape changed in a way the
// base copy cannot follow (primary key changed, a column removed, renamed,
// retyped or moved). The table is left out of export and import until the
// problem is resolved; every other table keeps syncing.
type SchemaProblem struct {
	Table  string `json:"table"`
	Reason string `json:"reason"`
}

// EnsureBase makes the base copy follow the live schema, and returns the
// tables that can be synced plus the ones that cannot (with guidance).
//
//   - A synced table missing from base is created with the app's own
//     CREATE TABLE statement (same columns, types and key, which the
//     session diff requires). It starts empty, so its existing rows are
//     exported as inserts: that is how a device's data first reaches the
//     others.
//   - A table that gained trailing columns (the app ran ALTER TABLE ...
//     ADD COLUMN) gets the same columns in base, with the same
//     declaration. Existing base rows then read the column's default, as
//     the existing live rows do, so the migration itself exports nothing;
//     later edits of the new columns are exported as usual.
//   - Any other change of shape is reported as a SchemaProblem; the table
//     is not synced meanwhile (its changes stay in live, unexported, and
//     files touching it are held).
//
// The problems are also recorded in the state (state.KeySchemaProblems,
// as JSON) for Status.
func EnsureBase(st *state.Dir, tables []*schema.Table) ([]*schema.Table, []SchemaProblem, error) {
	have, _, err := schema.Inspect(st.Conn(), "main", schema.Filter{})
	if err != nil {
		return nil, nil, fmt.Errorf("read base copy schema: %w", err)
	}
	byName := map[string]*schema.Table{}
	for _, t := range have {
		byName[t.Name] = t
	}
	var ok []*schema.Table
	var problems []SchemaProblem
	keyedBy, err := recordedIdentity(st)
	if err != nil {
		return nil, nil, err
	}
	identityChanged := false
	for _, vt := range tables {
		// The base copy holds the table as SQLite keys it (an identity
		// only changes how rows are matched: identity.go of schema).
		t := vt.Storage()
		b := byName[t.Name]
		if cur := vt.IdentityColumns(); b == nil && cur != nil {
			keyedBy[t.Name], identityChanged = cur, true
		} else if b != nil && !slices.Equal(cur, keyedBy[t.Name]) {
			// Row clocks and files are keyed by the identity: a change
			// would make this device's records name other rows.
			problems = append(problems, SchemaProblem{Table: t.Name, Reason: fmt.Sprintf("table %s: its identity changed from %s to %s (config identity:), and this device's records of its rows are keyed by the old one; ", t.Name, identityText(keyedBy[t.Name]), identityText(cur)) + problemGuidance(t.Name, st.Path)})
			continue
		}
		if b == nil {
			ddl, err := t.CreateIn("main")
			if err == nil {
				err = db.Exec(st.Conn(), ddl)
			}
			if err != nil {
				return nil, nil, fmt.Errorf("create table %s in the base copy: %w", t.Name, err)
			}
			if err := mirrorUniqueIndexes(st, t, nil); err != nil {
				return nil, nil, err
			}
			ok = append(ok, vt)
			continue
		}
		if err := mirrorUniqueIndexes(st, t, b); err != nil {
			return nil, nil, err
		}
		if b.Fingerprint() == t.Fingerprint() {
			ok = append(ok, vt)
			continue
		}
		added, why := schema.CompareShapes(t.Name, b.Columns, t.Columns)
		if why != "" {
			problems = append(problems, SchemaProblem{Table: t.Name, Reason: why + "; " + problemGuidance(t.Name, st.Path)})
			continue
		}
		if err := addColumns(st, t, added); err != nil {
			return nil, nil, err
		}
		ok = append(ok, vt)
	}
	if identityChanged {
		js, err := json.Marshal(keyedBy)
		if err != nil {
			return nil, nil, err
		}
		if err := st.Set(state.KeyIdentity, string(js)); err != nil {
			return nil, nil, err
		}
	}
	if err := recordProblems(st, problems); err != nil {
		return nil, nil, err
	}
	return ok, problems, nil
}

// recordedIdentity reads the identities the base copy's tables were
// created under (none for a state directory older than identities).
func recordedIdentity(st *state.Dir) (map[string][]string, error) {
	m := map[string][]string{}
	v, err := st.Value(state.KeyIdentity)
	if err != nil || v == "" {
		return m, err
	}
	if err := json.Unmarshal([]byte(v), &m); err != nil {
		return nil, fmt.Errorf("state value %s in %s is unreadable: %w (move the state directory aside to rejoin)", state.KeyIdentity, st.Path, err)
	}
	return m, nil
}

func identityText(cols []string) string {
	if cols == nil {
		return "none (the primary key)"
	}
	return "(" + strings.Join(cols, ", ") + ")"
}

// CheckBase reports, without changing anything, the tables whose live
// shape the base copy cannot follow (see EnsureBase).
func CheckBase(st *state.Dir, tables []*schema.Table) ([]SchemaProblem, error) {
	have, _, err := schema.Inspect(st.Conn(), "main", schema.Filter{})
	if err != nil {
		return nil, fmt.Errorf("read base copy schema: %w", err)
	}
	byName := map[string]*schema.Table{}
	for _, t := range have {
		byName[t.Name] = t
	}
	var problems []SchemaProblem
	keyedBy, err := recordedIdentity(st)
	if err != nil {
		return nil, err
	}
	for _, vt := range tables {
		t := vt.Storage()
		b := byName[t.Name]
		if b != nil && !slices.Equal(vt.IdentityColumns(), keyedBy[t.Name]) {
			problems = append(problems, SchemaProblem{Table: t.Name, Reason: fmt.Sprintf("table %s: its identity changed from %s to %s (config identity:)", t.Name, identityText(keyedBy[t.Name]), identityText(vt.IdentityColumns()))})
			continue
		}
		if b == nil || b.Fingerprint() == t.Fingerprint() {
			continue
		}
		if _, why := schema.CompareShapes(t.Name, b.Columns, t.Columns); why != "" {
			problems = append(problems, SchemaProblem{Table: t.Name, Reason: why + "; " + problemGuidance(t.Name, st.Path)})
		}
	}
	return problems, nil
}

func problemGuidance(table, stateDir string) string {
	return fmt.Sprintf("rowdrop cannot follow this migration, so table %s is neither exported nor imported on this device (its local edits are kept in the database, files that touch it are held) while every other table keeps syncing. "+
		"To resume: if the app made this change on purpose, wait until every device runs the new app version, then move this device's state directory aside (mv %s %s.old) and sync: the device rejoins under a new identity and nothing is lost (rows that differ land in the conflict log); "+
		"or exclude table %s in the config to stop syncing it", table, stateDir, stateDir, table)
}

func recordProblems(st *state.Dir, problems []SchemaProblem) error {
	v := ""
	if len(problems) > 0 {
		js, err := json.Marshal(problems)
		if err != nil {
			return err
		}
		v = string(js)
	}
	if old, err := st.Value(state.KeySchemaProblems); err != nil || old == v {
		return err
	}
	return st.Set(state.KeySchemaProblems, v)
}

// addColumns repeats the app's ALTER TABLE ... ADD COLUMN in the base
// copy, in one transaction.
func addColumns(st *state.Dir, t *schema.Table, added []rdfile.Column) (err error) {
	end, err := db.Begin(st.Conn(), "IMMEDIATE")
	if err != nil {
		return fmt.Errorf("add columns to the base copy of %s: %w", t.Name, err)
	}
	defer end(&err)
	for _, c := range added {
		def, derr := t.ColumnDef(c.Name)
		if derr != nil {
			return fmt.Errorf("follow the new column %s.%s in the base copy: %w", t.Name, c.Name, derr)
		}
		if err = db.Exec(st.Conn(), "ALTER TABLE main."+db.Quote(t.Name)+" ADD COLUMN "+def); err != nil {
			return fmt.Errorf("follow the new column %s.%s in the base copy (ADD COLUMN %s): %w", t.Name, c.Name, def, err)
		}
	}
	return nil
}

// ErrSchemaChanged marks a synced table whose shape no longer matches the
// base copy in a way rowdrop cannot follow (see SchemaProblem).
var ErrSchemaChanged = fmt.Errorf("schema changed")

// mirrorUniqueIndexes gives the base copy of t the live table's UNIQUE
// indexes (CREATE UNIQUE INDEX; constraints inside CREATE TABLE come with
// the table), so that merges meet the same constraints in base as in live
// (merge/unique.go decides UNIQUE clashes on base). b is the base table as
// it is (nil if just created).
func mirrorUniqueIndexes(st *state.Dir, t, b *schema.Table) error {
	have := map[string]string{}
	if b != nil {
		for _, ix := range b.UniqueIndexes {
			have[ix.Name] = ix.SQL
		}
	}
	want := map[string]bool{}
	for _, ix := range t.UniqueIndexes {
		want[ix.Name] = true
		if sql, ok := have[ix.Name]; ok && sql == ix.SQL {
			continue
		}
		if _, ok := have[ix.Name]; ok {
			if err := db.Exec(st.Conn(), "DROP INDEX main."+db.Quote(ix.Name)); err != nil {
				return fmt.Errorf("replace index %s in the base copy: %w", ix.Name, err)
			}
		}
		ddl, err := ix.CreateIn("main")
		if err != nil {
			return err
		}
		if err := db.Exec(st.Conn(), ddl); err != nil {
			if sqlite.ErrCode(err).ToPrimary() == sqlite.ResultConstraint {
				// Base still holds rows the app has since de-duplicated
				// (edits not exported yet): the next export brings base in
				// line and a later call creates the index.
				continue
			}
			return fmt.Errorf("create UNIQUE index %s of table %s in the base copy (%s): %w", ix.Name, t.Name, st.Path, err)
		}
	}
	for name := range have {
		if !want[name] {
			if err := db.Exec(st.Conn(), "DROP INDEX main."+db.Quote(name)); err != nil {
				return fmt.Errorf("drop index %s from the base copy: %w", name, err)
			}
		}
	}
	return nil
}
