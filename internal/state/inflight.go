package state

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/rowdrop/rowdrop/internal/changeset"
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

// The in-flight key journal. Re-running an interrupted merge finds, for
// an insert into an INTEGER-keyed table, a row in live that base lacks:
// the interrupted run's own write (perhaps edited since by the app), or a
// row created here that the insert collides with (re-keying moves it,
// merge/rekey.go). Only a record made before the crash tells them apart,
// and base.db's is rolled back with the rest of the merge. So the live
// side keeps its own record, a file in the state directory: inside each
// live batch's transaction, before it commits, the keys it inserted where
// live held no row (fsynced: the intent; a key live held is a row created
// here, never listed, or a re-run would take it for the merge's own);
// after it committed, that it did (and any keys it left alone after
// all), in bytes the intent reserved. A batch without its commit line counts as not
// written, which at worst keeps a row twice (nothing is lost).
const inflightKeysFile = "inflight-keys"

// InflightKeyText names a row in the journal's terms: table, NUL, the
// encoded key (the merge's batch key).
func InflightKeyText(table string, pk []byte) string { return table + "\x00" + string(pk) }

func (d *Dir) inflightKeysPath() string { return filepath.Join(d.Path, inflightKeysFile) }

// StartInflightKeys begins the journal of the merge of file name,
// dropping any earlier one.
func (d *Dir) StartInflightKeys(name string) error {
	return d.writeInflightKeys(os.O_CREATE|os.O_TRUNC|os.O_WRONLY, "F "+hex.EncodeToString([]byte(name))+"\n", true)
}

// IntendInflightKeys records, durably, that live batch id may insert the
// rows keys (InflightKeyText), before it commits. The returned function
// records, after the commit, that it did and which of the keys it left
// alone (except: local rows that move instead). That second record
// overwrites bytes the first reserved, so it needs no new space on a full
// disk; it is not fsynced: a process killed after it keeps it, a power cut
// that loses it leaves the batch counted as not written.
//
// sums[i] (InflightRowSum, or "") is the content of the row the batch
// wrote under keys[i], read back inside its transaction: a re-run that
// finds the batch without its commit record counts a key as written only
// where live still holds exactly that row. Presence alone cannot tell: an
// app inserting after the crash takes the very INTEGER ids the batch had
// taken, so live then holds rows under all of them.
func (d *Dir) IntendInflightKeys(id int64, keys, sums []string) (committed func(except map[string]bool) error, err error) {
	f, err := os.OpenFile(d.inflightKeysPath(), os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("in-flight journal in %s: %w", d.Path, err)
	}
	defer f.Close()
	off, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		return nil, fmt.Errorf("in-flight journal in %s: %w", d.Path, err)
	}
	var b strings.Builder
	flags := make(map[string]int64, len(keys)) // key -> offset of its flag byte
	for i, k := range keys {
		sum := "-"
		if i < len(sums) && sums[i] != "" {
			sum = sums[i]
		}
		line := fmt.Sprintf("I %d %s %s ", id, hex.EncodeToString([]byte(k)), sum)
		b.WriteString(line)
		flags[k] = off + int64(b.Len())
		b.WriteString("?\n")
	}
	line := fmt.Sprintf("T %d ", id)
	b.WriteString(line)
	trailer := off + int64(b.Len())
	b.WriteString("?\n")
	if _, err := f.WriteString(b.String()); err != nil {
		return nil, fmt.Errorf("write the in-flight journal in %s: %w", d.Path, err)
	}
	if err := f.Sync(); err != nil {
		return nil, fmt.Errorf("write the in-flight journal in %s: %w", d.Path, err)
	}
	path := d.inflightKeysPath()
	return func(except map[string]bool) error {
		f, err := os.OpenFile(path, os.O_WRONLY, 0o600)
		if err != nil {
			return fmt.Errorf("in-flight journal %s: %w", path, err)
		}
		defer f.Close()
		for k := range except {
			if at, ok := flags[k]; ok {
				if _, err := f.WriteAt([]byte{'x'}, at); err != nil {
					return fmt.Errorf("write the in-flight journal %s: %w", path, err)
				}
			}
		}
		if _, err := f.WriteAt([]byte{'C'}, trailer); err != nil {
			return fmt.Errorf("write the in-flight journal %s: %w", path, err)
		}
		return nil
	}, nil
}

func (d *Dir) writeInflightKeys(flag int, text string, sync bool) error {
	f, err := os.OpenFile(d.inflightKeysPath(), flag, 0o600)
	if err != nil {
		return fmt.Errorf("in-flight journal in %s: %w", d.Path, err)
	}
	_, err = f.WriteString(text)
	if err == nil && sync {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("write the in-flight journal in %s: %w", d.Path, err)
	}
	return nil
}

// InflightJournal is what the journal of an interrupted merge says.
type InflightJournal struct {
	// Written are the rows (InflightKeyText) its committed batches
	// inserted into live, less the ones each left alone.
	Written map[string]bool
	// Pending are the rows of each batch recorded as about to commit and
	// not as committed: the process died in or just after the commit, and
	// only live can tell whether it went in (see the importer).
	Pending [][]string
	// Sums are the contents (InflightRowSum) the pending batches wrote
	// under their keys; a key without one was journaled before sums were.
	Sums map[string]string
}

// InflightRowSum is the journal's record of a row's content: a short
// hash of all its values, enough to tell the row a batch wrote from one
// the app created under the same id.
func InflightRowSum(row []changeset.Value) string {
	h := sha256.Sum256(changeset.EncodeKey(row))
	return hex.EncodeToString(h[:12])
}

// InflightWritten reads the journal of an interrupted merge of file name.
// Nil if the journal is of another file or absent (start one).
func (d *Dir) InflightWritten(name string) (*InflightJournal, error) {
	data, err := os.ReadFile(d.inflightKeysPath())
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read the in-flight journal in %s: %w", d.Path, err)
	}
	lines := strings.Split(string(data), "\n")
	if len(lines) == 0 || lines[0] != "F "+hex.EncodeToString([]byte(name)) {
		return nil, nil
	}
	intended := map[string][]string{}
	sums := map[string]string{}
	committed := map[string]bool{}
	var order []string
	for _, l := range lines[1:] {
		f := strings.Fields(l)
		switch {
		case len(f) == 3 && f[0] == "T":
			committed[f[1]] = f[2] == "C"
			order = append(order, f[1])
		case len(f) == 4 && f[0] == "I" && f[3] == "?": // before row sums
			if k, err := hex.DecodeString(f[2]); err == nil { // else a torn last line
				intended[f[1]] = append(intended[f[1]], string(k))
			}
		case len(f) == 5 && f[0] == "I" && f[4] == "?":
			if k, err := hex.DecodeString(f[2]); err == nil { // else a torn last line
				intended[f[1]] = append(intended[f[1]], string(k))
				if f[3] != "-" {
					sums[string(k)] = f[3]
				}
			}
		}
	}
	out := &InflightJournal{Written: map[string]bool{}, Sums: map[string]string{}}
	for _, id := range order {
		if committed[id] {
			for _, k := range intended[id] {
				out.Written[k] = true
			}
		} else if len(intended[id]) > 0 {
			out.Pending = append(out.Pending, intended[id])
			for _, k := range intended[id] {
				if sum, ok := sums[k]; ok {
					out.Sums[k] = sum
				}
			}
		}
	}
	return out, nil
}

// ClearInflightKeys drops the journal once its merge is wholly committed.
func (d *Dir) ClearInflightKeys() error {
	if err := os.Remove(d.inflightKeysPath()); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove the in-flight journal in %s: %w", d.Path, err)
	}
	return nil
}
