package state

import (
	"encoding/json"
	"fmt"
)

// LiveFile is what identifies the app's live database and its history,
// recorded with every export and import and checked before the next
// capture (export/recognise.go). Every field is cheap to read: a stat of
// the path, page 1 of the file and four pragmas through SQLite, and an
// index probe or two per synced table.
type LiveFile struct {
	// FileID is the file's identity on its filesystem: "dev:ino" on unix,
	// "volume:index" on Windows ("" when the platform has none). A file
	// replaced by a rename (VACUUM INTO + mv, a restore, a reinstall that
	// recreated it) gets a new one.
	FileID string `json:"file_id,omitempty"`
	// Counter is the SQLite header's file change counter (offset 24). It
	// only grows in one file's history, so a smaller one is an older copy.
	Counter uint32 `json:"counter"`
	// Pages is the database's page count (informational: VACUUM shrinks it).
	Pages int64 `json:"pages"`
	// AppID and UserVersion are PRAGMA application_id and user_version:
	// another app's database, or an older schema version, is not the file.
	AppID       int64 `json:"application_id"`
	UserVersion int64 `json:"user_version"`
	// Marker and Token are the generation and owner of rowdrop's marker
	// row in the app's database (table rowdrop_marker, export/recognise.go):
	// every export that publishes and every import that merges writes the
	// next generation, so a copy from before has a smaller one, whatever
	// the tool that brought it back. 0: no marker.
	Marker int64  `json:"marker,omitempty"`
	Token  string `json:"token,omitempty"`
	// Rows fingerprints each synced table by its first and last row in key
	// order ("" for an empty table).
	Rows map[string]string `json:"rows,omitempty"`
	// SchemaVersion is PRAGMA schema_version, as rowdrop's own schema
	// writes (its marker, the hint triggers) left it.
	SchemaVersion int64 `json:"schema_version"`
	// Roots is each synced table's root page (sqlite_master.rootpage): a
	// table dropped and created again gets a new one.
	Roots map[string]int64 `json:"roots,omitempty"`
	AtMS  int64            `json:"at_ms"`
}

// Empty reports whether every synced table was empty.
func (f LiveFile) Empty() bool {
	for _, fp := range f.Rows {
		if fp != "" {
			return false
		}
	}
	return true
}

// LiveFile returns what identified the live database when it was last
// recorded; ok is false if it never was.
func (d *Dir) LiveFile() (f LiveFile, ok bool, err error) {
	v, err := d.Value(KeyLiveFile)
	if err != nil || v == "" {
		return f, false, err
	}
	if err := json.Unmarshal([]byte(v), &f); err != nil {
		// Unreadable: as if never recorded (the next sync records it).
		return LiveFile{}, false, nil
	}
	return f, true, nil
}

// SetLiveFile records what identifies the live database now.
func (d *Dir) SetLiveFile(f LiveFile) error {
	b, err := json.Marshal(f)
	if err != nil {
		return fmt.Errorf("encode live file identity: %w", err)
	}
	return d.Set(KeyLiveFile, string(b))
}

// Recognition is what a check of the live database found when it was not
// the file last synced, and what rowdrop did about it.
type Recognition struct {
	Kind   string `json:"kind"`   // "replaced", "older-copy", "emptied"
	Reason string `json:"reason"` // which signal said so
	// Restored counts rows brought back from the base copy into live;
	// Reverted the rows whose live values lost to the base copy's (each in
	// the conflict log); Kept the differences exported as new edits
	// (rows the base copy never held).
	Restored, Reverted, Kept int
	AtMS                     int64 `json:"at_ms"`
}

// LastRecognition returns the last Recognition recorded (ok false: none).
func (d *Dir) LastRecognition() (r Recognition, ok bool, err error) {
	v, err := d.Value(KeyRecognition)
	if err != nil || v == "" {
		return r, false, err
	}
	if json.Unmarshal([]byte(v), &r) != nil {
		return Recognition{}, false, nil
	}
	return r, true, nil
}

// SetRecognition records what the last check found.
func (d *Dir) SetRecognition(r Recognition) error {
	b, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("encode recognition: %w", err)
	}
	return d.Set(KeyRecognition, string(b))
}
