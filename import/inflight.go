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
// the content each key was written with. The batch committed if live
// holds exactly that content under any of its keys; then every row live
// holds under its keys is the batch's (edited here since, perhaps). If
// none matches it did not commit: rows under its keys are the app's, made
// since (an INTEGER id is the next free one, so the app's next inserts
// take exactly the batch's ids). At worst, a committed batch whose every
// row the app edited since is taken as not written, which keeps those
// rows twice (nothing is lost). A journal from before row sums falls back
// to presence: written when live holds more than half the batch's keys,
// and at least two.
func (im *Importer) settlePending(j *state.InflightJournal) (map[string]bool, error) {
	out := j.Written
	for _, keys := range j.Pending {
		var present []string
		summed, matched := false, false
		for _, k := range keys {
			row, err := im.liveRow(k)
			if err != nil {
				return nil, err
			}
			if row == nil {
				continue
			}
			present = append(present, k)
			if sum, ok := j.Sums[k]; ok {
				summed = true
				matched = matched || state.InflightRowSum(row) == sum
			}
		}
		if matched || (!summed && len(present) >= 2 && 2*len(present) > len(keys)) {
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
