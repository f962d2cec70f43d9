package state

import (
	"fmt"
	"strings"

	"github.com/rowdrop/rowdrop/internal/rdfile"
)

// InflightKind says what kind of merge an Inflight marker names.
type InflightKind int

// The kinds of merge that commit live before base.
const (
	InflightNone      InflightKind = iota // nothing in flight
	InflightChangeset                     // a changeset file (Name: its path in the shared folder)
	InflightSnapshot                      // a snapshot (Name: its path in the shared folder)
	InflightUnique                        // the pass over rows held on UNIQUE clashes (Name empty)
)

func (k InflightKind) String() string {
	switch k {
	case InflightNone:
		return "none"
	case InflightChangeset:
		return "changeset"
	case InflightSnapshot:
		return "snapshot"
	case InflightUnique:
		return "unique-clashes"
	}
	return fmt.Sprintf("InflightKind(%d)", int(k))
}

// Inflight is the crash-recovery marker: a merge commits the app's
// database before the base copy, so one cut short between the two would
// leave merged values in live that look like local edits. The marker is
// set before the live commit and cleared in the base commit; while it is
// set, an export imports first, and the merge it names runs again.
type Inflight struct {
	Kind InflightKind
	Name string
}

// inflightUnique is how the UNIQUE pass is stored (older versions wrote
// the same value).
const inflightUnique = "unique-clashes"

// encode gives the stored value, the format older versions wrote and read:
// a file's or snapshot's path (told apart by the snapshot extension), or
// "unique-clashes".
func (in Inflight) encode() (string, error) {
	switch in.Kind {
	case InflightChangeset:
		if in.Name == "" || in.Name == inflightUnique || strings.HasSuffix(in.Name, rdfile.SnapshotExt) {
			return "", fmt.Errorf("in-flight changeset %q: not a changeset path", in.Name)
		}
		return in.Name, nil
	case InflightSnapshot:
		if !strings.HasSuffix(in.Name, rdfile.SnapshotExt) {
			return "", fmt.Errorf("in-flight snapshot %q: not a snapshot path", in.Name)
		}
		return in.Name, nil
	case InflightUnique:
		if in.Name != "" {
			return "", fmt.Errorf("in-flight UNIQUE pass names %q: it names nothing", in.Name)
		}
		return inflightUnique, nil
	}
	return "", fmt.Errorf("in-flight marker of kind %v cannot be set", in.Kind)
}

// decodeInflight reads a stored value, including those of older versions.
func decodeInflight(v string) Inflight {
	switch {
	case v == "":
		return Inflight{}
	case v == inflightUnique:
		return Inflight{Kind: InflightUnique}
	case strings.HasSuffix(v, rdfile.SnapshotExt):
		return Inflight{Kind: InflightSnapshot, Name: v}
	}
	return Inflight{Kind: InflightChangeset, Name: v}
}

// BeginInflight sets the marker (inside the caller's transaction if any,
// but normally committed on its own before the live commit).
func (d *Dir) BeginInflight(in Inflight) error {
	v, err := in.encode()
	if err != nil {
		return err
	}
	return d.Set(keyInflight, v)
}

// EndInflight clears the marker; it belongs in the base commit.
func (d *Dir) EndInflight() error { return d.Set(keyInflight, "") }

// CurrentInflight returns the marker (Kind InflightNone if unset).
func (d *Dir) CurrentInflight() (Inflight, error) {
	v, err := d.Value(keyInflight)
	if err != nil {
		return Inflight{}, err
	}
	return decodeInflight(v), nil
}
