package export

import (
	"fmt"

	"rowdrop/internal/db"
	"rowdrop/internal/schema"
	"rowdrop/internal/state"
)

// EnsureBase creates, in the base copy, every synced table it lacks, using
// the app's own CREATE TABLE statement (same columns, types and key, which
// the session diff requires). New tables start empty, so their existing
// rows are exported as inserts: that is how a device's data first reaches
// the others. A table whose shape changed is refused with guidance.
func EnsureBase(st *state.Dir, tables []*schema.Table) error {
	have, _, err := schema.Inspect(st.Base, "main", schema.Filter{})
	if err != nil {
		return fmt.Errorf("read base copy schema: %w", err)
	}
	byName := map[string]*schema.Table{}
	for _, t := range have {
		byName[t.Name] = t
	}
	for _, t := range tables {
		b := byName[t.Name]
		if b == nil {
			ddl, err := t.CreateIn("main")
			if err == nil {
				err = db.Exec(st.Base, ddl)
			}
			if err != nil {
				return fmt.Errorf("create table %s in the base copy: %w", t.Name, err)
			}
			continue
		}
		if b.Fingerprint() != t.Fingerprint() {
			return fmt.Errorf("table %s changed shape since rowdrop last saw it (columns, types or primary key); rowdrop cannot yet follow this migration: exclude the table in the config, or re-initialise this device's state directory: %w", t.Name, ErrSchemaChanged)
		}
	}
	return nil
}

// ErrSchemaChanged marks a synced table whose shape no longer matches the base copy.
var ErrSchemaChanged = fmt.Errorf("schema changed")
