package rowdrop

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/rowdrop/rowdrop/export"
	importer "github.com/rowdrop/rowdrop/import"
	"github.com/rowdrop/rowdrop/internal/folder"
	"github.com/rowdrop/rowdrop/internal/rdfile"
	"github.com/rowdrop/rowdrop/internal/schema"
	"github.com/rowdrop/rowdrop/internal/state"
)

// upToDate is the verdict when nothing waits in either direction.
const upToDate = "up to date as of the last sync (edits made since then go out with the next one)"

// Status is what `rowdrop status` reports.
type Status struct {
	// Verdict is the one-line answer to "is this device in sync?" that
	// status prints first: "up to date as of the last sync ...", "3 files waiting for device
	// laptop", "1 file held: ...", "folder unavailable: ...".
	Verdict  string `json:"verdict"`
	Device   string `json:"device"`
	Name     string `json:"name"`
	Database string `json:"database"`
	Folder   string `json:"folder"`
	StateDir string `json:"state_dir"`
	// App names the app profile in use ("": none; see Config.App).
	App        string         `json:"app,omitempty"`
	FolderOK   bool           `json:"folder_available"`
	NextSeq    int64          `json:"next_seq"`
	Outbox     int            `json:"outbox_waiting"`
	LastExport string         `json:"last_export,omitempty"`
	LastImport string         `json:"last_import,omitempty"`
	Devices    []DeviceStatus `json:"devices"`
	Files      []FileStatus   `json:"files"`
	Synced     []string       `json:"tables_synced"`
	// TablesHeld are the tables with a part of another device's file held
	// here (its shape differs, or the table is unknown or changed here):
	// every other table keeps syncing; each says the exact difference and
	// what to do. Not in Synced.
	TablesHeld []TableHeld `json:"tables_held,omitempty"`
	// CatchingUp are the tables that entered this device's sync set
	// (include, un-exclude, a profile change) and have not caught up yet
	// with the changes others made meanwhile. Not in Synced.
	CatchingUp []TableHeld `json:"tables_catching_up,omitempty"`
	// HeldCopies are this device's copies of files with a held table
	// part (kept so the part survives the file's collection; they go once
	// it applies). A table excluded here for good keeps them.
	HeldCopies *HeldCopies    `json:"held_copies,omitempty"`
	Skipped    []SkippedTable `json:"tables_skipped"`
	Conflicts  int            `json:"conflicts"`
	Unknown    []string       `json:"unknown_files,omitempty"`
	// Warnings name devices silent for longer than the device horizon:
	// they hold back the collection of old files until they sync again or
	// the user retires them (`rowdrop devices forget ID`).
	Warnings []string `json:"warnings,omitempty"`
	// Held says why the mass-change guard holds this device's changes
	// back, and how to publish them ("": nothing held).
	Held string `json:"export_held,omitempty"`
	// Recognised is the last time the live database was found not to be
	// the file last synced (replaced, an older copy, emptied), and what
	// was done about it.
	Recognised *Recognition `json:"live_database_recognised,omitempty"`
}

// Recognition is what a check of the live database found when it was not
// the file last synced (export/recognise.go), and what was done.
type Recognition struct {
	Kind   string `json:"kind"`   // "replaced", "older-copy" or "emptied"
	Reason string `json:"reason"` // the signal that told
	// Restored counts rows brought back from the base copy, Reverted rows
	// whose values lost to the synced ones (each in the conflict log),
	// Kept differences exported as new edits (rows never synced).
	Restored int    `json:"restored_rows"`
	Reverted int    `json:"reverted_rows"`
	Kept     int    `json:"kept_rows"`
	At       string `json:"at"`
}

func recognitionView(r *state.Recognition) *Recognition {
	if r == nil {
		return nil
	}
	return &Recognition{Kind: r.Kind, Reason: r.Reason, Restored: r.Restored, Reverted: r.Reverted, Kept: r.Kept, At: msTime(r.AtMS)}
}

// TableHeld is one table's held parts of one device's files.
type TableHeld struct {
	Table  string `json:"table"`
	Device string `json:"device"`
	Files  int    `json:"files"` // held parts of that device's files
	First  string `json:"first_file"`
	Reason string `json:"reason"` // the first part's
	Since  string `json:"since"`
}

// HeldCopies is what the held copies take in the state directory.
type HeldCopies struct {
	Files int    `json:"files"`
	Bytes int64  `json:"bytes"`
	Dir   string `json:"dir"`
}

// SkippedTable is a table rowdrop does not sync here, with the reason.
type SkippedTable struct {
	Name   string `json:"name"`
	Kind   string `json:"kind"` // "excluded" (by rule or config), "unsyncable" or SkippedSchemaChanged
	Reason string `json:"reason"`
}

// SkippedSchemaChanged is the SkippedTable.Kind of a synced table whose shape
// changed on this device in a way rowdrop cannot follow (export.SchemaProblem).
const SkippedSchemaChanged = "schema-changed"

// DeviceStatus describes another device seen in the folder.
type DeviceStatus struct {
	ID        string `json:"id"`
	Name      string `json:"name,omitempty"`
	Published uint64 `json:"published"` // highest sequence present in the folder
	Applied   uint64 `json:"applied"`   // how far this device has applied it
	Pending   int    `json:"pending"`
	// Unacked counts this device's published files that the device has
	// not acknowledged applying yet.
	Unacked uint64 `json:"unacked"`
	// Retired: some device ran `rowdrop devices forget` for it; nothing
	// waits for it.
	Retired bool `json:"retired,omitempty"`
}

// FileStatus is a file that waits, is held, or is broken.
type FileStatus struct {
	Path   string `json:"path"`
	Status string `json:"status"`
	Reason string `json:"reason"`
	Since  string `json:"since"`
	// BlocksLater counts the later files of the same device in the folder
	// that wait behind this one (a device's files apply in order).
	BlocksLater int `json:"blocks_later,omitempty"`
}

func msTime(ms int64) string {
	if ms == 0 {
		return ""
	}
	return time.UnixMilli(ms).UTC().Format(time.RFC3339)
}

// Status reports the state of this pair. It reads; it does not sync.
func (s *Syncer) Status(ctx context.Context) (*Status, error) {
	var vals [3]int64
	for i, k := range []state.Key{state.KeyNextSeq, state.KeyLastExport, state.KeyLastImport} {
		var err error
		if vals[i], err = s.st.Int(k); err != nil {
			return nil, err
		}
	}
	st := &Status{Device: s.id.Device, Name: s.id.Name, Database: s.cfg.DB, Folder: s.cfg.Folder, StateDir: s.cfg.State,
		NextSeq: vals[0], LastExport: msTime(vals[1]), LastImport: msTime(vals[2])}
	if s.app != nil {
		st.App = s.app.Name
	}
	waiting, err := s.outbox()
	if err != nil {
		return nil, err
	}
	st.Outbox = len(waiting)
	ls, err := s.readSchema()
	if err != nil {
		return nil, err
	}
	tables := ls.tables
	for _, sk := range ls.skipped {
		st.Skipped = append(st.Skipped, SkippedTable(sk))
	}
	problems, err := export.CheckBase(s.st, tables)
	if err != nil {
		return nil, err
	}
	blocked := map[string]bool{}
	for _, p := range problems {
		blocked[p.Table] = true
		st.Skipped = append(st.Skipped, SkippedTable{Name: p.Table, Kind: SkippedSchemaChanged, Reason: p.Reason})
	}
	notSynced, err := s.heldTables(st, tables)
	if err == nil {
		err = s.heldCopies(st)
	}
	if err != nil {
		return nil, err
	}
	for _, t := range tables {
		if !blocked[t.Name] && !notSynced[t.Name] {
			st.Synced = append(st.Synced, t.Name)
		}
	}
	applied, err := s.st.Applied()
	if err != nil {
		return nil, err
	}
	names, err := s.st.DeviceNames()
	if err != nil {
		return nil, err
	}
	scan, scanErr := s.shared.Scan()
	if scanErr == nil {
		st.FolderOK = true
		st.Unknown = scan.Unknown
		for dev, files := range scan.Files {
			if dev == s.id.Device {
				continue
			}
			d := DeviceStatus{ID: dev, Name: names[dev], Applied: applied[dev]}
			for _, f := range files {
				if f.Seq > d.Published {
					d.Published = f.Seq
				}
				if f.Seq > d.Applied {
					d.Pending++
				}
			}
			st.Devices = append(st.Devices, d)
		}
		for _, c := range scan.Conflicts {
			st.Files = append(st.Files, FileStatus{Path: c, Status: importer.StatusBroken, Reason: "conflict copy made by the sync tool: rowdrop files are written once, so two installations may share this device identity"})
		}
	}
	recorded, err := s.st.FileStatuses()
	if err != nil {
		return nil, err
	}
	for _, f := range recorded {
		fs := FileStatus{Path: f.Path, Status: f.Status, Reason: f.Reason, Since: msTime(f.FirstMS)}
		if scanErr == nil && f.Status == importer.StatusHeld {
			for _, later := range scan.Files[f.Dev] {
				if later.Seq > f.Seq {
					fs.BlocksLater++
				}
			}
		}
		st.Files = append(st.Files, fs)
	}
	if scanErr == nil {
		st.Files = append(st.Files, s.checkFiles(scan, applied, st.Files)...)
	}
	if scanErr == nil {
		devs, err := s.devices(ctx, scan)
		if err != nil {
			return nil, err
		}
		st.Warnings = s.deviceWarnings(devs)
		s.ackedBy(st, devs, scan)
	}
	if st.Conflicts, err = s.st.OpenConflicts(); err != nil {
		return nil, err
	}
	if st.Held, err = s.st.Value(state.KeyMassHeld); err != nil {
		return nil, err
	}
	if r, ok, err := s.st.LastRecognition(); err != nil {
		return nil, err
	} else if ok {
		st.Recognised = recognitionView(&r)
	}
	st.Verdict = verdict(st)
	return st, nil
}

// ackedBy fills, per other device, the name it publishes (when this device
// has none recorded), whether it is retired, and how many of this device's
// files in the folder it has not acknowledged.
func (s *Syncer) ackedBy(st *Status, devs []DeviceInfo, scan *folder.Scan) {
	var own uint64
	for _, f := range scan.Files[s.id.Device] {
		own = max(own, f.Seq)
	}
	byID := map[string]DeviceInfo{}
	listed := map[string]bool{}
	for _, d := range st.Devices {
		listed[d.ID] = true
	}
	for _, d := range devs {
		byID[d.ID] = d
		// A device that published only its acknowledgement (it had
		// nothing to export yet) is a device this one waits for too.
		if d.Status != DeviceSelf && !listed[d.ID] && d.LastAck != "" {
			st.Devices = append(st.Devices, DeviceStatus{ID: d.ID, Applied: d.AppliedHere})
		}
	}
	for i := range st.Devices {
		d := &st.Devices[i]
		info, ok := byID[d.ID]
		if !ok {
			continue
		}
		if d.Name == "" {
			d.Name = info.Name
		}
		d.Retired = info.Status == DeviceRetired
		if n := info.Applied[s.id.Device]; n < own {
			d.Unacked = own - n
		}
	}
}

// verdict sums a status up in one line, the most pressing fact first.
func verdict(st *Status) string {
	files := func(n int) string {
		if n == 1 {
			return "1 file"
		}
		return fmt.Sprintf("%d files", n)
	}
	if !st.FolderOK {
		v := "folder unavailable: " + st.Folder + " cannot be read (not mounted? wrong path?)"
		if st.Outbox > 0 {
			v += "; " + files(st.Outbox) + " of this device wait in the outbox"
		}
		return v
	}
	var held, broken, waiting int
	var first *FileStatus
	for i, f := range st.Files {
		switch f.Status {
		case importer.StatusHeld:
			held++
		case importer.StatusBroken:
			broken++
		default:
			waiting++
			continue
		}
		if first == nil {
			first = &st.Files[i]
		}
	}
	if first != nil {
		var parts []string
		if held > 0 {
			parts = append(parts, files(held)+" held")
		}
		if broken > 0 {
			if held > 0 {
				parts = append(parts, fmt.Sprintf("%d broken", broken))
			} else {
				parts = append(parts, files(broken)+" broken")
			}
		}
		return strings.Join(parts, ", ") + ": " + first.Reason
	}
	if st.Held != "" {
		return "this device's changes are held back: " + st.Held
	}
	var parts []string
	if st.Outbox > 0 {
		parts = append(parts, files(st.Outbox)+" of this device wait in the outbox (the next sync publishes them)")
	}
	name := func(d DeviceStatus) string {
		if d.Name != "" {
			return d.Name
		}
		return d.ID
	}
	for _, d := range st.Devices {
		if d.Pending > 0 {
			parts = append(parts, fmt.Sprintf("%s from device %s not applied here yet", files(d.Pending), name(d)))
		}
	}
	if waiting > 0 {
		parts = append(parts, files(waiting)+" still arriving")
	}
	for _, d := range st.Devices {
		if d.Unacked > 0 && !d.Retired {
			parts = append(parts, fmt.Sprintf("%s waiting for device %s", files(int(d.Unacked)), name(d)))
		}
	}
	if len(parts) == 0 {
		// Status reads no diff of live against base (a full read of the
		// app's tables), so it cannot know about edits since the last
		// sync: it says what it knows, and since when.
		return upToDate
	}
	return strings.Join(parts, "; ")
}

// checkFiles reads the header of every changeset file in the folder that
// no import has judged, so that status reports a damaged or foreign file
// as soon as it lands rather than after the next sync, and also one that
// was damaged after this device applied it (devices that have not applied
// it yet cannot). Only headers are read, which is cheap; the payload
// checksum stays the import's job.
func (s *Syncer) checkFiles(scan *folder.Scan, applied map[string]uint64, known []FileStatus) []FileStatus {
	seen := map[string]bool{}
	for _, f := range known {
		seen[f.Path] = true
	}
	var out []FileStatus
	for dev, files := range scan.Files {
		for _, e := range files {
			if seen[e.Rel] {
				continue
			}
			path := s.shared.Path(e.Rel)
			_, err := s.shared.Open(e.Rel)
			if err == nil {
				continue
			}
			status := importer.StatusBroken
			switch {
			case errors.Is(err, rdfile.ErrIncomplete):
				status = importer.StatusWaiting
			case errors.Is(err, rdfile.ErrTooNew):
				status = importer.StatusHeld
			}
			note := "found by status; not imported yet"
			switch {
			case dev == s.id.Device:
				note = "this device's own file, damaged in the folder: devices that have not applied it cannot"
			case e.Seq <= applied[dev]:
				note = "applied here before it was damaged: devices that have not applied it cannot"
			}
			reason := strings.TrimPrefix(err.Error(), path+": ")
			out = append(out, FileStatus{Path: e.Rel, Status: status, Reason: e.Rel + ": " + reason + " (" + note + ")"})
		}
	}
	return out
}

// heldCopies fills st's held copies (none: nil).
func (s *Syncer) heldCopies(st *Status) error {
	n, b, err := s.st.HeldCopyUsage()
	if err != nil || n == 0 {
		return err
	}
	st.HeldCopies = &HeldCopies{Files: n, Bytes: b, Dir: s.st.HeldCopyDir()}
	return nil
}

// heldTables fills st's held and catching-up tables from the held parts
// (import/held.go) of devices not retired, and names the tables of this
// device's sync set among them. A part kept for an excluded table counts
// only once the table syncs here: it is then catching up.
func (s *Syncer) heldTables(st *Status, tables []*schema.Table) (map[string]bool, error) {
	parts, err := s.st.HeldParts()
	if err != nil {
		return nil, err
	}
	retired, err := s.st.Forgotten()
	if err != nil {
		return nil, err
	}
	syncs := map[string]bool{}
	for _, t := range tables {
		syncs[t.Name] = true
	}
	out := map[string]bool{}
	var last *TableHeld
	for _, p := range parts { // by device, table, sequence
		if slices.Contains(retired, p.Dev) || (p.Kind == state.PartExcluded && !syncs[p.Table]) {
			continue
		}
		if last != nil && last.Device == p.Dev && last.Table == p.Table {
			last.Files++
			continue
		}
		out[p.Table] = true
		th := TableHeld{Table: p.Table, Device: p.Dev, Files: 1, First: p.Path, Reason: p.Reason, Since: msTime(p.FirstMS)}
		if p.Kind == state.PartExcluded {
			th.Reason = fmt.Sprintf("table %s syncs here now, and has not yet caught up with file %s and later (the next sync applies them)", p.Table, p.Path)
			st.CatchingUp = append(st.CatchingUp, th)
			last = &st.CatchingUp[len(st.CatchingUp)-1]
		} else {
			st.TablesHeld = append(st.TablesHeld, th)
			last = &st.TablesHeld[len(st.TablesHeld)-1]
		}
	}
	return out, nil
}
