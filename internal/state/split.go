package state

import (
	"encoding/json"
	"fmt"
	"sort"
)

// A split identity: two installations of one device (a cloned state
// directory) published the same sequence number with different contents,
// and the sync tool kept one under the name and the other as a conflict
// copy. Every device merges both contents (import/split.go); these record
// which contents it merged, by "device/seq/payload checksum", so each is
// merged once.

// SplitMerged reports whether content key was merged.
func (d *Dir) SplitMerged(key string) (bool, error) {
	m, err := d.splitMerged()
	return m[key], err
}

// AddSplitMerged records that content key was merged (in the caller's
// transaction: the merge's base commit).
func (d *Dir) AddSplitMerged(key string) error {
	m, err := d.splitMerged()
	if err != nil {
		return err
	}
	m[key] = true
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	b, err := json.Marshal(keys)
	if err != nil {
		return err
	}
	return d.Set(keySplit, string(b))
}

func (d *Dir) splitMerged() (map[string]bool, error) {
	v, err := d.Value(keySplit)
	if err != nil || v == "" {
		return map[string]bool{}, err
	}
	var keys []string
	if err := json.Unmarshal([]byte(v), &keys); err != nil {
		return nil, fmt.Errorf("state %s in %s: %w", keySplit, d.Path, err)
	}
	m := make(map[string]bool, len(keys))
	for _, k := range keys {
		m[k] = true
	}
	return m, nil
}
