package export

import (
	"fmt"

	"zombiezen.com/go/sqlite"
	"zombiezen.com/go/sqlite/sqlitex"

	"github.com/rowdrop/rowdrop/internal/db"
)

// What rowdrop leaves in the app's database, and taking it out again:
// the hint triggers and rowdrop_dirty (hints.go) when hints are switched
// off, and those and rowdrop_marker (recognise.go) on uninstall. Each
// removal is one transaction: the app never sees triggers that write into
// a table that is gone.

// Object is one schema object rowdrop created in the app's database.
type Object struct {
	Type string `json:"type"` // table or trigger
	Name string `json:"name"`
}

func (o Object) String() string { return o.Type + " " + o.Name }

// ownObjects lists rowdrop's objects in conn's main database: the hint
// triggers, then rowdrop_dirty, then (withMarker) rowdrop_marker.
func ownObjects(conn *sqlite.Conn, withMarker bool) ([]Object, error) {
	var out []Object
	err := sqlitex.ExecuteTransient(conn, `SELECT type, name FROM main.sqlite_master
		WHERE (type='trigger' AND name LIKE 'rowdrop\_dirty\_%' ESCAPE '\') OR (type='table' AND (name='rowdrop_dirty' OR (?1 AND name=?2)))
		ORDER BY type='table', name`, &sqlitex.ExecOptions{Args: []any{withMarker, markerTable}, ResultFunc: func(s *sqlite.Stmt) error {
		out = append(out, Object{Type: s.ColumnText(0), Name: s.ColumnText(1)})
		return nil
	}})
	if err != nil {
		return nil, fmt.Errorf("list rowdrop's tables and triggers in the live database: %w", err)
	}
	return out, nil
}

// dropOwn drops rowdrop's objects from conn in one transaction (none:
// no write at all) and returns them; dryRun only lists them.
func dropOwn(conn *sqlite.Conn, withMarker, dryRun bool) (objs []Object, err error) {
	if objs, err = ownObjects(conn, withMarker); err != nil || len(objs) == 0 || dryRun {
		return objs, err
	}
	end, err := db.Begin(conn, "IMMEDIATE")
	if err != nil {
		return nil, fmt.Errorf("remove rowdrop's tables and triggers: %w", err)
	}
	defer end(&err)
	// Listed again under the write lock: another process may have changed them.
	if objs, err = ownObjects(conn, withMarker); err != nil {
		return nil, err
	}
	for _, o := range objs {
		verb := "DROP TRIGGER IF EXISTS main."
		if o.Type == "table" {
			verb = "DROP TABLE IF EXISTS main."
		}
		if err = db.Exec(conn, verb+db.Quote(o.Name)); err != nil {
			return nil, fmt.Errorf("drop %s from the live database: %w", o, err)
		}
	}
	return objs, nil
}

// RemoveHints drops the hint triggers and rowdrop_dirty (hints switched
// off), in one transaction, and returns what it dropped.
func RemoveHints(conn *sqlite.Conn) ([]Object, error) { return dropOwn(conn, false, false) }

// Uninstall drops everything rowdrop put into the app's database (hint
// triggers, rowdrop_dirty, rowdrop_marker) in one transaction and returns
// it; dryRun only lists it.
func Uninstall(conn *sqlite.Conn, dryRun bool) ([]Object, error) { return dropOwn(conn, true, dryRun) }
