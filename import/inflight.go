package importer

import (
	"fmt"
	"strings"

	"github.com/rowdrop/rowdrop/internal/changeset"
	"github.com/rowdrop/rowdrop/internal/rows"
	"github.com/rowdrop/rowdrop/internal/state"
)

// settlePending completes what the in-flight journal j of an interrupted
// merge says it wrote to live (state/inflight.go): a batch recorded as
// about to commit, and not as committed, died in or just after its live
// commit, and live alone tells whether that went in. The journal holds
// the content each key was written with: a key counts as written where
// live holds exactly that row. A row the app created since under the same
// id (an INTEGER id is the next free one, so this is the common case), or
// one it edited since, counts as not written, which at worst keeps a row
// twice (nothing is lost). A journal from before row sums falls back to
// presence: written when live holds more than half the batch's keys, and
// at least two.
func (im *Importer) settlePending(j *state.InflightJournal) (map[string]bool, error) {
	out := j.Written
	for _, keys := range j.Pending {
		var present []string
		summed := false
		for _, k := range keys {
			row, err := im.liveRow(k)
			if err != nil {
				return nil, err
			}
			sum, ok := j.Sums[k]
			summed = summed || ok
			switch {
			case row == nil:
			case ok && state.InflightRowSum(row) == sum:
				out[k] = true
			case !ok:
				present = append(present, k)
			}
		}
		if !summed && len(present) >= 2 && 2*len(present) > len(keys) {
			for _, k := range present {
				out[k] = true
			}
		}
	}
	return out, nil
}

// liveRow returns the row live holds under key (state.InflightKeyText of
// a table keyed by one column), or nil.
func (im *Importer) liveRow(key string) ([]changeset.Value, error) {
	tbl, pk, ok := strings.Cut(key, "\x00")
	t := im.Tables[tbl]
	if !ok || t == nil || len(t.PKCols()) != 1 {
		return nil, nil
	}
	vals, err := changeset.DecodeKey([]byte(pk))
	if err != nil || len(vals) != 1 {
		return nil, nil
	}
	r := rows.Open(im.Engine.Live, "main", t)
	defer r.Close()
	row, err := r.Get(vals)
	if err != nil {
		return nil, fmt.Errorf("read %s in the live database: %w", t.Name, err)
	}
	return row, nil
}
