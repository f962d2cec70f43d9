// Package gc decides which of its own files a device may delete from the
// shared folder (collection), and deletes them.
//
// The rule (docs/FORMAT.md §14): a device deletes only files in its own
// directory, and a changeset only when
//
//   - every active device has acknowledged applying it (its ack.json says
//     so): a device that has never written an ack, or whose ack is refused,
//     counts as having applied nothing; active means it has a directory in
//     the folder and no device's user retired it; and
//   - the newest whole snapshot in the folder (by clock, then device id)
//     includes it, so a device that joins later, from that snapshot, finds
//     every later change still in the folder.
//
// Its own older snapshots go once it has a newer whole one. Nothing of
// another device is ever deleted.
package gc

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/rowdrop/rowdrop/internal/ack"
	"github.com/rowdrop/rowdrop/internal/folder"
	"github.com/rowdrop/rowdrop/internal/rdfile"
)

// Snapshot is a snapshot file found in a device directory. Header is nil
// when its header is unreadable (Err says why); the payload is not checked
// here (Verify does).
type Snapshot struct {
	Device string
	Seq    uint64
	Rel    string
	Bytes  int64
	Header *rdfile.Header
	Err    error
}

// Dir is what one device directory holds.
type Dir struct {
	ID         string
	Changesets []folder.Entry // ascending
	Snapshots  []Snapshot     // ascending by sequence
	Ack        *ack.Ack       // nil when absent or refused
	AckErr     error          // why the ack was refused (nil when absent or fine)
	Bytes      int64          // all regular files
}

// Survey lists every device directory of the folder (scan, or one
// folder.Scan of its own when scan is nil: a caller that already listed
// the folder passes its listing) and reads the snapshot headers and acks
// in them. Only regular files are
// looked at; temp files, artefacts and unknown names are skipped (the
// importer reports those).
func Survey(f *folder.Folder, scan *folder.Scan) (map[string]*Dir, error) {
	if scan == nil {
		var err error
		if scan, err = f.Scan(); err != nil {
			return nil, err
		}
	}
	out := map[string]*Dir{}
	for id, sd := range scan.Dirs {
		dir := &Dir{ID: id, Changesets: sd.Changesets, Bytes: sd.Bytes}
		out[id] = dir
		for _, e := range sd.Snapshots {
			s := Snapshot{Device: id, Seq: e.Seq, Rel: e.Rel, Bytes: e.Bytes}
			fh, err := f.Open(e.Rel)
			switch {
			case err != nil:
				s.Err = err
			case fh.Header.Kind != rdfile.KindSnapshot:
				s.Err = fmt.Errorf("%s: header says kind %q under a snapshot name", e.Rel, fh.Header.Kind)
			case fh.Header.Device != id || fh.Header.Seq != e.Seq:
				s.Err = fmt.Errorf("%s: header says device %s snapshot %d, its name says %s/%d", e.Rel, fh.Header.Device, fh.Header.Seq, id, e.Seq)
			default:
				h := fh.Header
				s.Header = &h
			}
			dir.Snapshots = append(dir.Snapshots, s)
		}
		if sd.Ack {
			a, err := f.ReadAck(id)
			if err != nil {
				dir.AckErr = err
			} else {
				dir.Ack = a
			}
		}
	}
	return out, nil
}

// Input is what a device knows about itself when it plans a collection.
type Input struct {
	Folder *folder.Folder
	// Dirs, optional, is the folder's Survey if the caller already made
	// it (nil: Make surveys the folder itself).
	Dirs map[string]*Dir
	Self string
	// Published is this device's highest sequence number such that every
	// file up to it is in the folder (files waiting in the outbox are not).
	Published uint64
	// Forgotten lists the devices this device's user retired.
	Forgotten []string
	// Names, optional, gives human names of devices for messages.
	Names map[string]string
	// Usable, optional, validates a whole snapshot the way a joiner
	// would (payload, clock, tables): only a snapshot a joiner can use
	// covers collected files.
	Usable func(rel string) error
}

// Item is one file a collection deletes.
type Item struct {
	Rel    string `json:"path"`
	Kind   string `json:"kind"` // "changeset" or "snapshot"
	Seq    uint64 `json:"seq"`
	Bytes  int64  `json:"bytes"`
	Reason string `json:"reason"`
}

// Plan is what a collection would do, and why it stops where it does.
type Plan struct {
	Self      string `json:"device"`
	Published uint64 `json:"published"`
	// Active are the devices whose acknowledgements count; Retired the
	// devices some device's user retired (their acks no longer count).
	Active  []string `json:"active_devices"`
	Retired []string `json:"retired_devices"`
	// AckBound: the lowest of the active devices' acknowledgements of this
	// device's files (Published when there is no other active device).
	AckBound uint64 `json:"ack_bound"`
	// Snapshot is the newest whole snapshot in the folder ("" if none);
	// SnapshotBound how far it includes this device's files.
	Snapshot      string `json:"snapshot,omitempty"`
	SnapshotBound uint64 `json:"snapshot_bound"`
	// Bound: changesets up to it go.
	Bound  uint64 `json:"bound"`
	Delete []Item `json:"delete"`
	// Kept counts this device's changesets that stay.
	Kept int `json:"kept"`
	// Why says what holds the remaining changesets back.
	Why []string `json:"why_kept,omitempty"`
	// Problems are acks and snapshots that were refused, with the reason.
	Problems []string `json:"problems,omitempty"`
}

// Bytes is the total size of the files the plan deletes.
func (p *Plan) Bytes() int64 {
	var n int64
	for _, it := range p.Delete {
		n += it.Bytes
	}
	return n
}

func (in Input) name(dev string) string {
	if n := in.Names[dev]; n != "" {
		return dev + " (" + n + ")"
	}
	return dev
}

// Retired returns the devices retired by this device's user or by any
// device whose acknowledgement lists them.
func Retired(dirs map[string]*Dir, forgotten []string) map[string]bool {
	out := map[string]bool{}
	for _, d := range forgotten {
		out[d] = true
	}
	for _, d := range dirs {
		if d.Ack != nil {
			for _, f := range d.Ack.Forgotten {
				out[f] = true
			}
		}
	}
	return out
}

// NewestWhole returns the newest snapshot of dirs (by clock, then device
// id) whose payload checksum verifies, and the problems of the newer ones
// that did not.
func NewestWhole(f *folder.Folder, dirs map[string]*Dir, usable func(rel string) error) (*Snapshot, []string) {
	var all []Snapshot
	var problems []string
	for _, d := range dirs {
		for _, s := range d.Snapshots {
			if s.Header == nil {
				problems = append(problems, fmt.Sprintf("snapshot %s is not usable: %v", s.Rel, s.Err))
				continue
			}
			all = append(all, s)
		}
	}
	sort.Slice(all, func(i, j int) bool {
		a, b := all[i].Header, all[j].Header
		if a.HLC != b.HLC {
			return a.HLC > b.HLC
		}
		return a.Device > b.Device
	})
	for i := range all {
		if err := verify(f, all[i].Rel); err != nil {
			problems = append(problems, fmt.Sprintf("snapshot %s is not whole (yet): %v", all[i].Rel, err))
			continue
		}
		if usable != nil {
			if err := usable(all[i].Rel); err != nil {
				problems = append(problems, fmt.Sprintf("snapshot %s does not count for collection: %v", all[i].Rel, err))
				continue
			}
		}
		return &all[i], problems
	}
	return nil, problems
}

func verify(f *folder.Folder, rel string) error {
	fh, err := f.Open(rel)
	if err != nil {
		return err
	}
	return fh.Verify()
}

// Make plans a collection for in.Self. It reads the folder; it deletes
// nothing.
func Make(in Input) (*Plan, error) {
	dirs := in.Dirs
	if dirs == nil {
		var err error
		if dirs, err = Survey(in.Folder, nil); err != nil {
			return nil, err
		}
	}
	p := &Plan{Self: in.Self, Published: in.Published, Delete: []Item{}}
	retired := Retired(dirs, in.Forgotten)
	ids := make([]string, 0, len(dirs))
	for id := range dirs {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for id := range retired {
		p.Retired = append(p.Retired, id)
	}
	sort.Strings(p.Retired)

	// Acknowledgements of the active devices.
	p.AckBound = in.Published
	var ackWhy []string
	for _, id := range ids {
		d := dirs[id]
		if id == in.Self || retired[id] {
			continue
		}
		p.Active = append(p.Active, id)
		var got uint64
		why := ""
		forget := fmt.Sprintf("if that device is gone for good, run `rowdrop devices forget %s`", id)
		switch {
		case d.AckErr != nil:
			p.Problems = append(p.Problems, fmt.Sprintf("acknowledgement of device %s refused: %v (it counts as having applied nothing; the file is its device's to fix: upgrade or resync rowdrop there)", in.name(id), d.AckErr))
			why = fmt.Sprintf("device %s: its ack.json is refused (%v); it counts as having applied nothing; %s", in.name(id), d.AckErr, forget)
		case d.Ack == nil:
			why = fmt.Sprintf("device %s has not written an acknowledgement yet, so it counts as having applied nothing (it writes one after its next sync; %s)", in.name(id), forget)
		default:
			got = d.Ack.Applied[in.Self]
			if got > in.Published {
				p.Problems = append(p.Problems, fmt.Sprintf("device %s claims to have applied this device's files up to %d, beyond the %d it has published: its acknowledgement of this device is ignored", in.name(id), got, in.Published))
				why = fmt.Sprintf("device %s: its acknowledgement claims files this device never published, so it counts as having applied nothing", in.name(id))
				got = 0
			} else if got < in.Published {
				why = fmt.Sprintf("device %s has applied this device's files only up to %d (its acknowledgement was written %s); %s", in.name(id), got, msTime(d.Ack.WrittenMS), forget)
			}
		}
		if got < p.AckBound {
			p.AckBound = got
		}
		if why != "" {
			ackWhy = append(ackWhy, why)
		}
	}

	// Coverage: the newest whole snapshot.
	snap, problems := NewestWhole(in.Folder, dirs, in.Usable)
	p.Problems = append(p.Problems, problems...)
	var snapWhy string
	if snap == nil {
		snapWhy = "no whole snapshot in the folder: a device joining later could get these changes from nowhere else (make one with `rowdrop snapshot`; `rowdrop watch` makes them by itself)"
	} else {
		p.Snapshot = snap.Rel
		p.SnapshotBound = snap.Header.Seen[in.Self]
		if p.SnapshotBound > in.Published {
			p.Problems = append(p.Problems, fmt.Sprintf("snapshot %s claims to include this device's files up to %d, beyond the %d it has published: it does not count", snap.Rel, p.SnapshotBound, in.Published))
			p.SnapshotBound = 0
		}
		snapWhy = fmt.Sprintf("the newest whole snapshot, %s, includes this device's files only up to %d (a newer snapshot lets more go)", snap.Rel, p.SnapshotBound)
	}
	p.Bound = min(p.AckBound, p.SnapshotBound, in.Published)
	// The newest changeset always stays: it shows a joining device how far
	// this device has published, so a snapshot that includes less is seen
	// to leave a gap (with no file left, nothing would say so).
	keepNewest := in.Published > 0 && p.Bound >= in.Published
	if keepNewest {
		p.Bound = in.Published - 1
	}

	self := dirs[in.Self]
	if self == nil {
		self = &Dir{ID: in.Self}
	}
	for _, c := range self.Changesets {
		if c.Seq > p.Bound {
			p.Kept++
			continue
		}
		p.Delete = append(p.Delete, Item{Rel: c.Rel, Kind: rdfile.KindChangeset, Seq: c.Seq, Bytes: c.Bytes,
			Reason: fmt.Sprintf("every active device has applied it (lowest acknowledgement: %d) and snapshot %s includes it (up to %d)", p.AckBound, p.Snapshot, p.SnapshotBound)})
	}
	if p.Kept > 0 {
		if keepNewest {
			p.Why = append(p.Why, fmt.Sprintf("this device's newest changeset (%d) always stays: it tells a device joining from a snapshot how far this one has published", in.Published))
		}
		if in.Published == 0 {
			p.Why = append(p.Why, "this device has no file in the folder that it knows to be published")
		}
		if p.SnapshotBound < in.Published || snap == nil {
			p.Why = append(p.Why, snapWhy)
		}
		p.Why = append(p.Why, ackWhy...)
	}

	// Own snapshots older than its newest whole one.
	var newestOwn *Snapshot
	for i := len(self.Snapshots) - 1; i >= 0; i-- {
		s := &self.Snapshots[i]
		if s.Header != nil && verify(in.Folder, s.Rel) == nil {
			newestOwn = s
			break
		}
	}
	if newestOwn != nil {
		for _, s := range self.Snapshots {
			if s.Seq < newestOwn.Seq {
				p.Delete = append(p.Delete, Item{Rel: s.Rel, Kind: rdfile.KindSnapshot, Seq: s.Seq, Bytes: s.Bytes,
					Reason: fmt.Sprintf("this device has a newer whole snapshot, %s", newestOwn.Rel)})
			}
		}
	}
	return p, nil
}

func msTime(ms int64) string {
	if ms <= 0 {
		return "never"
	}
	return time.UnixMilli(ms).UTC().Format(time.RFC3339)
}

// Execute deletes the plan's files, in ascending order (so an interrupted
// collection never leaves a gap below files that stay), logging each. It
// refuses any path outside the device's own directory. It returns what
// was deleted.
func Execute(ctx context.Context, f *folder.Folder, p *Plan, log *slog.Logger) ([]Item, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	var done []Item
	for _, it := range p.Delete {
		if err := ctx.Err(); err != nil {
			return done, err
		}
		kind, dev, _ := rdfile.Classify(it.Rel)
		if dev != p.Self || (kind != rdfile.NameChangeset && kind != rdfile.NameSnapshot) || strings.Count(it.Rel, "/") != 1 {
			return done, fmt.Errorf("refusing to delete %s: only this device's own changesets and snapshots (under %s/) are ever collected", it.Rel, p.Self)
		}
		path := f.Path(it.Rel)
		if err := f.Remove(it.Rel); err != nil && !errors.Is(err, os.ErrNotExist) {
			return done, fmt.Errorf("delete %s: %w (check the permissions of %s; the files not deleted yet stay and the next collection retries)", path, err, filepath.Dir(path))
		}
		log.Info("collected", "file", it.Rel, "bytes", it.Bytes, "reason", it.Reason)
		done = append(done, it)
	}
	return done, nil
}
