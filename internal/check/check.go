// Package check verifies a shared folder on its own, as restic's `check`
// verifies a repository: it reads every file rowdrop keeps there through
// internal/folder and reports what is damaged, missing or foreign, one
// problem per file with what to do. It needs no app database and no state
// directory, and it never writes anything: the folder is only listed and
// read, and a snapshot is checked in memory.
//
// What is checked, per device directory:
//   - changesets: header (docs/FORMAT.md §9.2), that the header names the
//     file's device and sequence number, the payload checksum; with
//     ReadData the whole payload decodes as a changeset that agrees with
//     its header (§7.3);
//   - sequence numbers: no gap between what a snapshot includes and the
//     newest file any header or ack says exists (§3);
//   - snapshots: header, checksum, that the payload decompresses to a
//     SQLite database; with ReadData that the database opens and passes
//     PRAGMA integrity_check;
//   - ack.json: that it parses (ack.Parse) and names its directory;
//   - the hash chain (§5.1): every changeset names its predecessor's file
//     sum, and acks and snapshots name the sums of files they include; a
//     file whose sum disagrees was replaced under its own name;
//   - sync-tool conflict copies (identical, or a second installation
//     publishing under one device id) and names rowdrop never writes.
package check

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"

	"github.com/rowdrop/rowdrop/internal/folder"
	"github.com/rowdrop/rowdrop/internal/rdfile"
)

// Kind says what is wrong with a file.
type Kind string

// Kinds of problems.
const (
	// Damaged: whole (or claiming to be) but wrong: a bad checksum that is
	// not a file still arriving, a header that contradicts its name, a
	// payload that does not decode, a snapshot that is no sound database,
	// an ack.json that does not parse.
	Damaged Kind = "damaged"
	// Incomplete: shorter than announced or with a checksum mismatch, as a
	// file still being delivered looks; one damaged for good looks alike.
	Incomplete Kind = "incomplete"
	// Missing: a changeset the sequence needs is not in the folder.
	Missing Kind = "missing"
	// Foreign: not a rowdrop file, or a name rowdrop never writes.
	Foreign Kind = "foreign"
	// TooNew: written by a newer rowdrop format.
	TooNew Kind = "too_new"
	// ConflictCopy: a sync tool's conflict copy of a rowdrop file.
	ConflictCopy Kind = "conflict_copy"
	// Replaced: whole, but not the content its (device, sequence) names:
	// the next file, an ack or a snapshot records another file sum.
	Replaced Kind = "replaced"
)

// Problem is one thing found wrong, about one file.
type Problem struct {
	// File is the file's path relative to the folder (<device>/<name>);
	// for a range of missing changesets, the first of them.
	File   string `json:"file"`
	Device string `json:"device"`
	Kind   Kind   `json:"kind"`
	// What is wrong, in words.
	What string `json:"what"`
	// Fix is what to do about it.
	Fix string `json:"fix"`
}

// String is the problem as one line: kind, file, what is wrong, what to do.
func (p Problem) String() string {
	return fmt.Sprintf("%-13s %s: %s; %s", p.Kind, p.File, p.What, p.Fix)
}

// Device is what the folder holds of one device.
type Device struct {
	ID   string `json:"id"`
	Name string `json:"name,omitempty"` // from its newest readable header or its ack
	// Changesets counts the changeset files present; First and Last are
	// their lowest and highest sequence numbers (0 when there are none).
	Changesets int    `json:"changesets"`
	First      uint64 `json:"first,omitempty"`
	Last       uint64 `json:"last,omitempty"`
	Snapshots  int    `json:"snapshots"`
	Ack        bool   `json:"ack"`
	Problems   int    `json:"problems"`
}

// Report is the outcome of a check.
type Report struct {
	Folder   string `json:"folder"`
	ReadData bool   `json:"read_data"`
	OK       bool   `json:"ok"`
	// Summary is the one-line verdict printed first.
	Summary    string    `json:"summary"`
	Devices    []Device  `json:"devices"`
	Changesets int       `json:"changesets"` // files checked, by kind
	Snapshots  int       `json:"snapshots"`
	Acks       int       `json:"acks"`
	Bytes      int64     `json:"bytes"` // read from changesets and snapshots
	Problems   []Problem `json:"problems"`
	// Notes are things left unchecked and why; they are not problems.
	Notes []string `json:"notes,omitempty"`
}

// Options tune a check.
type Options struct {
	// ReadData also decodes every changeset's payload completely and opens
	// every snapshot's database for PRAGMA integrity_check.
	ReadData bool
	// MaxSnapshotMemory bounds the decompressed snapshot ReadData checks in
	// memory; a larger one is noted as unchecked. 0 means 1 GiB.
	MaxSnapshotMemory int64
	// Progress, if set, is called before each file is read.
	Progress func(done, total int, rel string)
}

func (o Options) maxSnapshotMemory() int64 {
	if o.MaxSnapshotMemory <= 0 {
		return 1 << 30
	}
	return o.MaxSnapshotMemory
}

// Run checks the folder. It fails only when the folder cannot be listed
// (or ctx ends); everything wrong with its content is in the report.
func Run(ctx context.Context, f *folder.Folder, opt Options) (*Report, error) {
	if err := f.Available(); err != nil {
		return nil, fmt.Errorf("shared folder %s: %w (is it mounted? pass the folder rowdrop syncs through with --folder)", f.Dir(), err)
	}
	scan, err := f.Scan()
	if err != nil {
		return nil, err
	}
	c := &checker{f: f, opt: opt, scan: scan, r: &Report{Folder: f.Dir(), ReadData: opt.ReadData},
		devs: map[string]*devState{}, total: countFiles(scan)}
	ids := make([]string, 0, len(scan.Dirs))
	for id := range scan.Dirs {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		c.devs[id] = &devState{Device: Device{ID: id}}
	}
	// Snapshots and acks first: they say which changesets must exist.
	for _, id := range ids {
		d := scan.Dirs[id]
		for _, e := range d.Snapshots {
			if err := c.progress(ctx, e.Rel); err != nil {
				return nil, err
			}
			c.snapshot(ctx, e)
		}
		if d.Ack {
			if err := c.progress(ctx, folder.AckRel(id)); err != nil {
				return nil, err
			}
			c.ack(id)
		}
	}
	for _, id := range ids {
		for _, e := range scan.Dirs[id].Changesets {
			if err := c.progress(ctx, e.Rel); err != nil {
				return nil, err
			}
			c.changeset(ctx, e)
		}
	}
	for _, rel := range scan.Conflicts {
		if err := c.progress(ctx, rel); err != nil {
			return nil, err
		}
		c.conflictCopy(rel)
	}
	for _, u := range scan.Unknown {
		c.unknown(u)
	}
	// Devices only headers and acks speak of have no directory here.
	ids = ids[:0]
	for id := range c.devs {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		c.sequence(id)
		c.chain(id)
	}
	c.finish(ids)
	return c.r, nil
}

// countFiles is how many files Run will read, for progress.
func countFiles(s *folder.Scan) int {
	n := len(s.Conflicts) + len(s.Snapshots)
	for _, d := range s.Dirs {
		n += len(d.Changesets)
		if d.Ack {
			n++
		}
	}
	return n
}

// devState is a device's report and what its files said about which of
// its changesets exist.
type devState struct {
	Device
	present []uint64 // changeset numbers in the folder, ascending
	// known is the highest sequence number of this device that any
	// readable header or ack says was published.
	known uint64
	// knownBy names the file that says so, for the message.
	knownBy string
	// covered is the highest sequence number of this device that a sound
	// snapshot includes: files up to it may have been collected.
	covered  uint64
	nameFrom uint64 // sequence number of the header Name came from
	// payloads maps a changeset's name to its payload checksum, for
	// comparing conflict copies.
	payloads map[string]string
	// sums and prevs are, per readable changeset, its file sum and the
	// sum it names as its predecessor's (the hash chain).
	sums, prevs map[uint64]string
	// claims are the sums acks and snapshots recorded for its files.
	claims []claim
}

// claim is a file sum another file records for a changeset.
type claim struct {
	seq      uint64
	sum, why string
}

// claim notes that file why records sum for changeset seq of dev.
func (c *checker) claim(dev string, seq uint64, sum, why string) {
	if seq == 0 || sum == "" || !rdfile.ValidDeviceID(dev) {
		return
	}
	d := c.dev(dev)
	d.claims = append(d.claims, claim{seq, sum, why})
}

// chain reports the changesets of device id whose content is not the one
// the hash chain names.
func (c *checker) chain(id string) {
	d := c.dev(id)
	fix := "a published file is never rewritten: put the original back from a backup or another machine's copy of the shared folder (the sync tool's old versions), and find what wrote into it"
	short := func(s string) string { return s[:min(len(s), 12)] }
	for _, seq := range d.present {
		prev, ok := d.prevs[seq]
		before, okb := d.sums[seq-1]
		if ok && okb && prev != "" && !rdfile.SumsMatch(prev, before) {
			c.problem(Problem{File: rdfile.RelPath(id, seq-1), Device: id, Kind: Replaced,
				What: fmt.Sprintf("its file sum is %s…, but changeset %d of the device names %s… as its predecessor: one of the two was replaced under its own name", short(before), seq, short(prev)), Fix: fix})
		}
	}
	for _, cl := range d.claims {
		if sum, ok := d.sums[cl.seq]; ok && sum != cl.sum {
			c.problem(Problem{File: rdfile.RelPath(id, cl.seq), Device: id, Kind: Replaced,
				What: fmt.Sprintf("its file sum is %s…, but %s with sum %s…: replaced under its own name", short(sum), cl.why, short(cl.sum)), Fix: fix})
		}
	}
}

type checker struct {
	f     *folder.Folder
	opt   Options
	scan  *folder.Scan
	r     *Report
	devs  map[string]*devState
	done  int
	total int
}

func (c *checker) progress(ctx context.Context, rel string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	c.done++
	if c.opt.Progress != nil {
		c.opt.Progress(c.done, c.total, rel)
	}
	return nil
}

// dev returns the state of device id (a directory Scan listed).
func (c *checker) dev(id string) *devState {
	d := c.devs[id]
	if d == nil {
		d = &devState{Device: Device{ID: id}}
		c.devs[id] = d
	}
	return d
}

func (c *checker) problem(p Problem) {
	c.r.Problems = append(c.r.Problems, p)
	if d := c.devs[p.Device]; d != nil {
		d.Problems++
	}
}

// sawSeq records that file (of any device) says device dev published up
// to seq.
func (c *checker) sawSeq(dev string, seq uint64, file string) {
	if seq == 0 || !rdfile.ValidDeviceID(dev) {
		return
	}
	// A device without a directory here is checked too: its files are
	// missing, unless a snapshot includes them.
	if d := c.dev(dev); seq > d.known {
		d.known, d.knownBy = seq, file
	}
}

// setName keeps the device name of the newest header read.
func (d *devState) setName(name string, seq uint64) {
	if name != "" && seq >= d.nameFrom {
		d.Name, d.nameFrom = name, seq
	}
}

// readErr turns a failure to open or read a rowdrop file into a problem,
// with the fix for a file of that role (what depends on it).
func (c *checker) readErr(rel, dev string, err error, fix string) {
	p := Problem{File: rel, Device: dev, What: detail(c.f.Path(rel), err), Fix: fix}
	switch {
	case errors.Is(err, rdfile.ErrForeign):
		p.Kind = Foreign
		p.What = "not a rowdrop file (it does not start with " + rdfile.Magic + ")"
		p.Fix = "move it out of the shared folder; " + fix
	case errors.Is(err, rdfile.ErrTooNew):
		p.Kind = TooNew
		p.Fix = "upgrade rowdrop on this machine and check again (devices running this version hold the file until then)"
	case errors.Is(err, rdfile.ErrIncomplete):
		p.Kind = Incomplete
		p.Fix = "if the sync tool is still delivering it, check again when it is done; if it stays so, it is damaged: " + fix
	default:
		p.Kind = Damaged
	}
	c.problem(p)
}

// detail is err's message without the path its first words repeat.
func detail(path string, err error) string {
	msg := err.Error()
	if errors.Is(err, os.ErrNotExist) {
		return "vanished while the check ran"
	}
	return oneLine(strings.ReplaceAll(msg, path+": ", ""))
}

func oneLine(s string) string {
	return strings.ReplaceAll(strings.TrimSpace(s), "\n", "; ")
}

// restoreFix is what to do about a changeset that is damaged for good.
func restoreFix(dev string) string {
	return fmt.Sprintf("restore a whole copy from a backup or another machine's copy of the shared folder "+
		"(devices that have not applied it wait at it, and at device %s's later files)", dev)
}

// ack checks device id's ack.json.
func (c *checker) ack(id string) {
	rel := folder.AckRel(id)
	c.r.Acks++
	a, err := c.f.ReadAck(id)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return // vanished since the scan
		}
		c.problem(Problem{File: rel, Device: id, Kind: Damaged, What: detail(c.f.Path(rel), err),
			Fix: fmt.Sprintf("device %s rewrites it on its next sync (until then the others count it as having applied nothing, which only holds collection back); if that device is gone for good, delete the file and run `rowdrop devices forget %s`", id, id)})
		return
	}
	d := c.dev(id)
	d.Ack = true
	if d.Name == "" {
		d.Name = a.DeviceName
	}
	for dev, n := range a.Applied {
		c.sawSeq(dev, n, rel)
		c.claim(dev, n, a.Sums[dev], rel+" acknowledges it")
	}
}

// unknown reports a name inside a device directory that rowdrop never
// writes (Scan marks non-regular changeset names).
func (c *checker) unknown(u string) {
	rel, note, _ := strings.Cut(u, " (")
	dev, _, _ := strings.Cut(rel, "/")
	what := "a name rowdrop never writes in a device directory"
	if note != "" {
		what = "has a changeset's name but is " + strings.TrimSuffix(note, ")")
	}
	c.problem(Problem{File: rel, Device: dev, Kind: Foreign, What: what,
		Fix: "rowdrop ignores it: move it out of the shared folder (device directories hold only <seq>.rdc, snap-<n>.rds and ack.json)"})
}

// sequence reports the changesets of device id that are missing: a gap
// between two files in the folder, files before the lowest one that no
// sound snapshot includes (collection deletes only those), and files
// after the newest one that a header or an ack says were published.
func (c *checker) sequence(id string) {
	d := c.dev(id)
	p := d.present
	report := func(lo, hi uint64, why, fix string) {
		what := fmt.Sprintf("changeset %d of device %s is not in the folder", lo, id)
		if hi > lo {
			what = fmt.Sprintf("changesets %d to %d of device %s are not in the folder", lo, hi, id)
		}
		if fix == "" {
			fix = fmt.Sprintf("if the sync tool is still delivering it, check again later; otherwise restore it from a backup or another machine's copy of the folder "+
				"(devices that have not applied it wait at it, and at device %s's later files)", id)
		}
		c.problem(Problem{File: rdfile.RelPath(id, lo), Device: id, Kind: Missing, What: what + why, Fix: fix})
	}
	var last uint64
	if len(p) > 0 {
		if first := p[0]; first > d.covered+1 {
			report(d.covered+1, first-1, " and no sound snapshot includes it (collection deletes only files a snapshot includes)",
				"run `rowdrop snapshot` on a device that has applied it, so that joining devices start past it; or restore it from a backup or another machine's copy of the folder")
		}
		for i := 1; i < len(p); i++ {
			if p[i] > p[i-1]+1 {
				report(p[i-1]+1, p[i]-1, "", "")
			}
		}
		last = p[len(p)-1]
	}
	if lo := max(last, d.covered) + 1; d.known >= lo {
		report(lo, d.known, fmt.Sprintf(" (published, says %s)", d.knownBy), "")
	}
}

// finish sorts the report and writes its verdict.
func (c *checker) finish(ids []string) {
	for _, id := range ids {
		d := c.devs[id]
		dir := c.scan.Dirs[id]
		if dir == nil && d.Problems == 0 {
			continue // named in a snapshot but none of its files is needed
		}
		d.Changesets = len(d.present)
		if len(d.present) > 0 {
			d.First, d.Last = d.present[0], d.present[len(d.present)-1]
		}
		if dir != nil {
			d.Snapshots = len(dir.Snapshots)
		}
		c.r.Devices = append(c.r.Devices, d.Device)
	}
	sort.SliceStable(c.r.Problems, func(i, j int) bool { return c.r.Problems[i].File < c.r.Problems[j].File })
	if c.r.Problems == nil {
		c.r.Problems = []Problem{}
	}
	if c.r.Devices == nil {
		c.r.Devices = []Device{}
	}
	c.r.OK = len(c.r.Problems) == 0
	scope := "headers and checksums"
	if c.opt.ReadData {
		scope = "headers, checksums and every payload"
	}
	counted := fmt.Sprintf("%s, %s, %s, %s of %s (%s)", plural(len(c.r.Devices), "device"), plural(c.r.Changesets, "changeset"),
		plural(c.r.Snapshots, "snapshot"), plural(c.r.Acks, "ack"), c.r.Folder, scope)
	if c.r.OK {
		c.r.Summary = "no problems: " + counted
	} else {
		c.r.Summary = plural(len(c.r.Problems), "problem") + ": " + counted
	}
}

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}
