package export

import (
	"context"
	"os"
	"sort"

	"github.com/rowdrop/rowdrop/internal/changeset"
	"github.com/rowdrop/rowdrop/internal/schema"
)

// Adopting the live database: the user's word that what live holds now is
// the truth ("my database now is the truth"). The next export then skips
// the recognition of the file and the mass-change guard, and exports live's
// differences from the base copy as new edits with a fresh clock: they win
// over everything merged before, on every device.

// TableChanges counts, for one table, what adopting live would do on
// every device.
type TableChanges struct {
	Table  string `json:"table"`
	Insert int64  `json:"insert"`
	Change int64  `json:"change"`
	Delete int64  `json:"delete"`
}

// AdoptPlan compares live with the base copy and counts, per synced table,
// the rows adopting live would insert, change and delete on every device.
func (e *Exporter) AdoptPlan(ctx context.Context, tables []*schema.Table) ([]TableChanges, error) {
	tables, _, err := EnsureBase(e.State, tables)
	if err != nil {
		return nil, err
	}
	diff, err := e.captureDiff(ctx, tables)
	if err != nil {
		return nil, err
	}
	defer func() { diff.Close(); os.Remove(diff.Name()) }()
	counts := map[string]*TableChanges{}
	err = eachCaptured(diff, tables, func(t *schema.Table, c *changeset.Change) error {
		if !exportForm(t, c) {
			return nil
		}
		tc := counts[t.Name]
		if tc == nil {
			tc = &TableChanges{Table: t.Name}
			counts[t.Name] = tc
		}
		switch c.Op {
		case changeset.OpInsert:
			tc.Insert++
		case changeset.OpUpdate:
			tc.Change++
		case changeset.OpDelete:
			tc.Delete++
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	out := make([]TableChanges, 0, len(counts))
	for _, tc := range counts {
		out = append(out, *tc)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Table < out[j].Table })
	return out, nil
}
