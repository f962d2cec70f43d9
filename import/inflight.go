package importer

import (
	"fmt"
	"strings"

	"github.com/rowdrop/rowdrop/internal/changeset"
	"github.com/rowdrop/rowdrop/internal/db"
	"github.com/rowdrop/rowdrop/internal/state"
)

// settlePending completes what the in-flight journal j of an interrupted
// merge says it wrote to live (state/inflight.go): a batch recorded as
// about to commit, and not as committed, died in or just after its live
// commit, and live alone tells whether that went in. Its keys are inserts
// where base had no row, so had it not committed, live holds rows under
// few of them (rows created here since, or before: a collision); had it
// committed, under nearly all (the app may have deleted some since). So
// a batch counts as written when live holds more than half its keys, and
// at least two; else as not written (at worst a row is kept twice).
func (im *Importer) settlePending(j *state.InflightJournal) (map[string]bool, error) {
	out := j.Written
	for _, keys := range j.Pending {
		var present []string
		for _, k := range keys {
			ok, err := im.liveHas(k)
			if err != nil {
				return nil, err
			}
			if ok {
				present = append(present, k)
			}
		}
		if len(present) >= 2 && 2*len(present) > len(keys) {
			for _, k := range present {
				out[k] = true
			}
		}
	}
	return out, nil
}

// liveHas reports whether live holds a row under key (state.InflightKeyText
// of a table keyed by one column).
func (im *Importer) liveHas(key string) (bool, error) {
	tbl, pk, ok := strings.Cut(key, "\x00")
	t := im.Tables[tbl]
	if !ok || t == nil || len(t.PKCols()) != 1 {
		return false, nil
	}
	vals, err := changeset.DecodeKey([]byte(pk))
	if err != nil || len(vals) != 1 {
		return false, nil
	}
	s, err := im.Engine.Live.Prepare(fmt.Sprintf("SELECT 1 FROM main.%s WHERE %s = ?", db.Quote(t.Name), db.Quote(t.Columns[t.PKCols()[0]].Name)))
	if err != nil {
		return false, fmt.Errorf("read %s in the live database: %w", t.Name, err)
	}
	defer s.Reset()
	db.Bind(s, 1, vals[0])
	found, err := s.Step()
	if err != nil {
		return false, fmt.Errorf("read %s in the live database: %w", t.Name, err)
	}
	return found, nil
}
