package importer

import (
	"context"
	"fmt"
	"strings"

	"github.com/rowdrop/rowdrop/internal/folder"
	"github.com/rowdrop/rowdrop/internal/hlc"
	"github.com/rowdrop/rowdrop/internal/rdfile"
	"github.com/rowdrop/rowdrop/internal/schema"
	"github.com/rowdrop/rowdrop/internal/state"
	"github.com/rowdrop/rowdrop/merge"
)

// Held per table, not per file (docs/MERGE.md, "Tables held apart").
//
// A file whose changes to one table cannot go in here (the table's shape
// differs between the writer and this device, the table is unknown here
// or changed here in a way rowdrop cannot follow, or it is not synced
// here) is applied without that table: the table's part is recorded
// (state.HeldPart) in the same base commit as the file's applied record,
// and every other table keeps syncing. A later file of the same device
// touching only other tables does not wait. A later file touching the
// held table holds its part too, so a table's parts go in in file order.
// At the start of every import the held parts whose table now matches are
// applied, each by itself, from the file still in the folder: a held
// table catches up, and an excluded table that enters the sync set here
// (include, un-exclude, a profile change) gets every change it missed.
// A file whose tables can all go in is applied whole, in one transaction.

// Changed is a synced table whose shape changed here in a way the base
// copy cannot follow.
type Changed struct {
	Columns []rdfile.Column // the live table's
	Why     string          // the problem, with what to do (export.SchemaProblem)
}

// tableParts sorts the tables of file e's header h: skip names those
// kept out of this merge, parts records why each is kept. A non-empty
// refuse holds the whole file (a table rowdrop never syncs, a header
// contradicting itself).
func (im *Importer) tableParts(e folder.Entry, h rdfile.Header) (skip map[string]bool, parts []state.HeldPart, refuse string) {
	skip = map[string]bool{}
	for _, t := range h.Tables {
		kind, reason := im.checkTable(t, h)
		switch kind {
		case partRefused:
			return nil, nil, reason
		case "":
			if !im.pending[h.Device][t.Name] {
				continue
			}
			kind, reason = state.PartHeld, fmt.Sprintf("table %s: waits behind an earlier held part of device %s's files for this table (a table's changes go in in file order)", t.Name, h.Device)
		}
		skip[t.Name] = true
		parts = append(parts, state.HeldPart{Dev: h.Device, Table: t.Name, Seq: h.Seq, Path: e.Rel, Kind: kind, Reason: reason, FirstMS: im.now().UnixMilli()})
	}
	return skip, parts, ""
}

// partRefused: a table of a header refuses the whole file.
const partRefused = "refused"

// notePending records applied parts as pending for the rest of the import.
func (im *Importer) notePending(parts []state.HeldPart) {
	for _, p := range parts {
		if p.Kind == state.PartHeld && !im.pending[p.Dev][p.Table] && !im.retired[p.Dev] {
			// Told once per sync and table: the first part that waits.
			im.log().Warn("table held apart; the rest of the file applied", "file", p.Path, "table", p.Table, "reason", p.Reason)
		}
		if im.pending[p.Dev] == nil {
			im.pending[p.Dev] = map[string]bool{}
		}
		im.pending[p.Dev][p.Table] = true
	}
}

// checkTable says whether table t of header h can be applied here: ""
// if so, else the kind of hold (state.PartHeld, state.PartExcluded or
// partRefused) and why, naming the exact difference and what to do.
func (im *Importer) checkTable(t rdfile.Table, h rdfile.Header) (kind, reason string) {
	lower := strings.ToLower(t.Name)
	if strings.HasPrefix(lower, "sqlite_") || strings.HasPrefix(lower, "rowdrop_") {
		return partRefused, fmt.Sprintf("names table %q, which is never synced: refused", t.Name)
	}
	if schema.Fingerprint(t.Name, t.Columns) != t.Fingerprint {
		return partRefused, fmt.Sprintf("table %s: the header's fingerprint does not match its columns: held", t.Name)
	}
	writer := h.Device
	if h.DeviceName != "" {
		writer = fmt.Sprintf("%s (%s)", h.Device, h.DeviceName)
	}
	if im.Excluded[t.Name] {
		return state.PartExcluded, fmt.Sprintf("table %s is not synced here (excluded, or not in the include list): its part of this file is kept and applies once the table syncs here", t.Name)
	}
	either := fmt.Sprintf("; or stop syncing it: exclude table %s on every device (exclude: [%s]). Every other table keeps syncing meanwhile", t.Name, t.Name)
	if c, ok := im.Changed[t.Name]; ok {
		diff := schema.Difference(t.Columns, c.Columns)
		if diff == "" {
			diff = "the same columns as this database's table now, but the base copy here still has the old shape"
		}
		return state.PartHeld, fmt.Sprintf("table %s changed shape on this device in a way rowdrop cannot follow, so its part of this file is held. Device %s's shape against this database's: %s. To resume: on device %s, migrate the app to the same shape; on this device, once every device runs the new shape, rejoin (move the state directory aside and sync), and the held parts apply%s",
			t.Name, writer, diff, writer, either)
	}
	local := im.Tables[t.Name]
	if local == nil {
		return state.PartHeld, fmt.Sprintf("table %s is not in this database (device %s has it, with columns %s: its app may be newer): its part of this file is held. To resume: on this device, run the app version that creates the table, and the held part applies by itself%s",
			t.Name, writer, columnList(t.Columns), either)
	}
	if local.Fingerprint() == t.Fingerprint {
		return "", ""
	}
	switch d := schema.CompareRemote(t.Name, t.Columns, local.Columns); d.Kind {
	case "same", "fewer":
		// Fewer trailing columns: the writer's app has not added them
		// yet; its changes apply and the missing columns keep their
		// local values (or take their defaults in new rows).
		return "", ""
	case "more":
		return state.PartHeld, fmt.Sprintf("table %s has column(s) %s on device %s that this database lacks (the app there is newer): its part of this file is held until the app here adds them; then it applies by itself%s",
			t.Name, strings.Join(d.Missing, ", "), writer, either)
	default:
		return state.PartHeld, fmt.Sprintf("table %s has another shape on device %s than here: %s. Its part of this file is held. To resume: migrate the app's database on the device that is behind to the other's shape (on device %s, or on this one), and the held part applies by itself%s",
			t.Name, writer, schema.Difference(t.Columns, local.Columns), writer, either)
	}
}

func columnList(cols []rdfile.Column) string {
	names := make([]string, len(cols))
	for i, c := range cols {
		names[i] = c.Name
	}
	return "(" + strings.Join(names, ", ") + ")"
}

// releaseHeld applies, each by itself and in file order per device and
// table, the held parts whose table now takes them, and rewords the
// others' reasons for the schema as it is now. It leaves im.pending
// naming the tables that still have a held part.
func (im *Importer) releaseHeld(ctx context.Context, res *Result) error {
	im.pending = map[string]map[string]bool{}
	// Copies no part needs go (applied, or written by an import cut short
	// before its commit); parts without a copy get one while their file
	// is still in the folder.
	if err := im.State.SweepHeldCopies(); err != nil {
		return err
	}
	parts, err := im.State.HeldParts()
	if err != nil {
		return err
	}
	copies, err := im.State.HeldCopies()
	if err != nil {
		return err
	}
	if err := im.ensureCopies(parts, copies); err != nil {
		return err
	}
	defer func() {
		if err := im.State.SweepHeldCopies(); err != nil {
			im.log().Warn("held copies not removed (tried again next sync)", "err", err)
		}
	}()
	for _, p := range parts { // by device, table, sequence
		if im.pending[p.Dev][p.Table] || im.retired[p.Dev] {
			im.notePending([]state.HeldPart{p})
			continue
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		applied, err := im.releaseOne(ctx, p, copies, res)
		if err != nil {
			return err
		}
		if !applied {
			im.notePending([]state.HeldPart{p})
		}
	}
	return nil
}

// releaseOne applies held part p if its table takes it now, from the
// folder's file, or from this device's copy (copies) once it is gone.
func (im *Importer) releaseOne(ctx context.Context, p state.HeldPart, copies map[string]state.HeldCopy, res *Result) (bool, error) {
	keep := func(kind, reason string) (bool, error) {
		if kind == p.Kind && reason == p.Reason {
			return false, nil
		}
		p.Kind, p.Reason = kind, reason
		return false, im.State.HoldPart(p)
	}
	if strings.HasSuffix(p.Path, rdfile.SnapshotExt) {
		return im.releaseSnapshotPart(ctx, p, copies, res, keep)
	}
	var e folder.Entry
	found := false
	for _, x := range im.files[p.Dev] {
		if x.Seq == p.Seq {
			e, found = x, true
		}
	}
	c, hasCopy := copies[p.Path]
	fromCopy := func() (*rdfile.File, string) {
		f, why := im.openCopy(p, c)
		e = folder.Entry{Device: p.Dev, Seq: p.Seq, Rel: p.Path, Bytes: c.Size}
		return f, why
	}
	var f *rdfile.File
	switch {
	case found:
		var err error
		if f, err = im.Folder.Open(e.Rel); err != nil {
			if !hasCopy {
				return keep(p.Kind, fmt.Sprintf("%s: its part for table %s is held here, and the file cannot be read now: %v", e.Rel, p.Table, err))
			}
			f = nil
		}
	case !hasCopy:
		return keep(p.Kind, fmt.Sprintf("%s: its part for table %s is held here, but the file is no longer in the folder (collected by its device?) and this device kept no copy of it: table %s can only catch up from a snapshot that includes it: run `rowdrop snapshot` on a device that is up to date, let the folder sync, then move this device's state directory aside and sync (it rejoins from the snapshot)", p.Path, p.Table, p.Table))
	}
	if f == nil {
		var why string
		if f, why = fromCopy(); f == nil {
			return keep(p.Kind, why)
		}
		hasCopy = false // the copy is in use: no second fallback
	}
	h := f.Header
	var ht *rdfile.Table
	for i := range h.Tables {
		if h.Tables[i].Name == p.Table {
			ht = &h.Tables[i]
		}
	}
	if ht == nil {
		return keep(state.PartHeld, fmt.Sprintf("%s: its header no longer names table %s, whose part is held here", e.Rel, p.Table))
	}
	h.HLC = uint64(im.effectiveHLC(h))
	if kind, reason := im.checkTable(*ht, h); kind != "" {
		return keep(kind, e.Rel+": "+reason)
	}
	if err := f.Verify(); err != nil {
		if !hasCopy {
			return keep(p.Kind, fmt.Sprintf("%s: its part for table %s is held here, and the file no longer verifies: %v", e.Rel, p.Table, err))
		}
		// The folder's file is damaged: this device's copy stands in.
		var why string
		if f, why = fromCopy(); f == nil {
			return keep(p.Kind, why)
		}
		if err := f.Verify(); err != nil {
			return keep(p.Kind, fmt.Sprintf("%s: its part for table %s is held here, and neither the file nor this device's copy %s verifies (%v), so it is not applied. To resume: %s", p.Path, p.Table, c.File, err, copyAdvice(p)))
		}
		h = f.Header
		h.HLC = uint64(im.effectiveHLC(h))
	}
	skip := map[string]bool{}
	for _, t := range h.Tables {
		skip[t.Name] = t.Name != p.Table
	}
	finish := func() error {
		im.Clock.Observe(hlc.Timestamp(h.HLC))
		if err := im.State.ReleasePart(p.Dev, p.Table, p.Seq); err != nil {
			return err
		}
		// The copy's record goes with its last part (its file after).
		if err := im.State.DropUnusedHeldCopies(); err != nil {
			return err
		}
		return im.State.EndInflight()
	}
	// The in-flight marker names the part, so an interrupted merge of it
	// is finished by the next import's release (sync.go: before export).
	status, reason, err := im.mergeFile(ctx, e, f, h, skip, heldName(e.Rel, p.Table), finish, res)
	if err != nil || status != "" {
		if err == nil {
			_, err = keep(p.Kind, reason)
		}
		return false, err
	}
	if found && f.Path == im.Folder.Path(e.Rel) {
		im.log().Info("held table part applied", "file", e.Rel, "table", p.Table)
	} else {
		im.log().Info("held table part applied from this device's copy (the file left the folder)", "file", p.Path, "copy", c.File, "table", p.Table)
	}
	res.Released++
	return true, nil
}

// heldName is the in-flight name of table tbl's part of file rel.
func heldName(rel, tbl string) string { return rel + "#" + tbl }

// tablesHeld counts the tables with a held part (not merely excluded)
// from a device not retired here.
func (im *Importer) tablesHeld() (int, error) {
	parts, err := im.State.HeldParts()
	if err != nil {
		return 0, err
	}
	tables := map[string]bool{}
	for _, p := range parts {
		if p.Kind == state.PartHeld && !im.retired[p.Dev] {
			tables[p.Table] = true
		}
	}
	return len(tables), nil
}

// inheritHeld records, in the base transaction of snapshot snap's merge,
// the snapshot's own part for each table it carries that is not synced
// here, and the held table parts its writer carried (state.SnapshotHeldTable) of
// the files the merge counts as applied here: the snapshot's state lacks
// those parts, so they are applied here once the tables take them (the
// next import's release). Parts of files applied here already, or of
// this device's own, are not this device's to hold.
func (im *Importer) inheritHeld(snap *Snapshot) error {
	// The tables the snapshot carries that are not synced here: their
	// rows are left out of this merge, so the snapshot itself is kept as
	// their part, merged for that table alone once it syncs here.
	copied := false
	for _, t := range snap.Header.Tables {
		if im.Excluded[t.Name] {
			// The snapshot may be collected before the table syncs here.
			if !copied {
				if err := im.copySnapshot(snap); err != nil {
					return err
				}
				copied = true
			}
			if err := im.State.HoldPart(state.HeldPart{Dev: snap.Header.Device, Table: t.Name, Seq: 0, Path: snap.Entry.Rel, Kind: state.PartExcluded,
				Reason: fmt.Sprintf("table %s is not synced here: its rows in snapshot %s are kept for when it is", t.Name, snap.Entry.Rel), FirstMS: im.now().UnixMilli()}); err != nil {
				return err
			}
		}
	}
	parts, err := state.SnapshotHeldParts(snap.Conn)
	if err != nil {
		return err
	}
	if len(parts) == 0 {
		return nil
	}
	applied, err := im.State.Applied()
	if err != nil {
		return err
	}
	for _, p := range parts {
		lower := strings.ToLower(p.Table)
		if p.Dev == im.Self.Device || p.Seq <= applied[p.Dev] || p.Seq > snap.Header.Seen[p.Dev] ||
			!rdfile.ValidDeviceID(p.Dev) || p.Path != rdfile.RelPath(p.Dev, p.Seq) ||
			strings.HasPrefix(lower, "sqlite_") || strings.HasPrefix(lower, "rowdrop_") {
			continue // not this device's to hold, or not a part any writer records
		}
		p.Kind, p.Reason, p.FirstMS = state.PartHeld, fmt.Sprintf("%s: its part for table %s was held by the device whose snapshot this device joined from (%s); it applies here once the table takes it", p.Path, p.Table, snap.Entry.Rel), im.now().UnixMilli()
		if err := im.State.HoldPart(p); err != nil {
			return err
		}
	}
	return nil
}

// releaseSnapshotPart merges table p.Table alone from snapshot p.Path
// (a per-table join) once the table syncs here in the snapshot's shape.
func (im *Importer) releaseSnapshotPart(ctx context.Context, p state.HeldPart, copies map[string]state.HeldCopy, res *Result, keep func(kind, reason string) (bool, error)) (bool, error) {
	if im.Excluded[p.Table] {
		return keep(state.PartExcluded, p.Reason)
	}
	var e folder.Entry
	found := false
	for _, x := range im.scan.Snapshots {
		if x.Rel == p.Path {
			e, found = x, true
		}
	}
	if c, ok := copies[p.Path]; !found && ok {
		// Collected from the folder: this device's copy stands in.
		if err := state.CheckHeldCopy(c); err != nil {
			im.log().Warn("held copy damaged: its table part is not applied", "copy", c.File, "file", p.Path, "table", p.Table, "err", err)
			return keep(p.Kind, fmt.Sprintf("table %s syncs here now, and its rows were to come from snapshot %s, which is no longer in the folder; this device's copy of it cannot be used, so it is not applied (%v). To resume: %s", p.Table, p.Path, err, copyAdvice(p)))
		}
		_, dev, n := rdfile.Classify(p.Path)
		e, found = folder.Entry{Device: dev, Seq: n, Rel: p.Path, Bytes: c.Size}, true
		im.copyFor = map[string]string{p.Path: c.File}
		defer func() { im.copyFor = nil }()
	}
	if !found {
		return keep(p.Kind, fmt.Sprintf("table %s syncs here now, and its rows were to come from snapshot %s, which is no longer in the folder: run `rowdrop snapshot` on a device that is up to date, let the folder sync, then move this device's state directory aside and sync (it rejoins from the new snapshot)", p.Table, p.Path))
	}
	snap, status, reason, err := im.OpenSnapshot(ctx, e)
	if err != nil {
		return false, err
	}
	if status != "" {
		return keep(p.Kind, fmt.Sprintf("table %s syncs here now, and its rows were to come from snapshot %s, which is not usable here: %s", p.Table, p.Path, reason))
	}
	defer snap.Close()
	t := snap.Tables[p.Table]
	if t == nil {
		return keep(state.PartHeld, fmt.Sprintf("table %s syncs here now, and snapshot %s, which was to bring its rows, does not carry it in this database's shape", p.Table, p.Path))
	}
	localKnows, err := im.State.LastClocks()
	if err != nil {
		return false, err
	}
	if err := im.State.BeginInflight(state.Inflight{Kind: state.InflightSnapshot, Name: e.Rel}); err != nil {
		return false, err
	}
	h := snap.Header
	src := merge.Source{Device: h.Device, Clock: state.Clock{HLC: hlc.Timestamp(h.HLC), Dev: h.Device}, File: e.Rel}
	in := merge.RebaseInput{Conn: snap.Conn, Tables: map[string]*schema.Table{p.Table: t}, Self: im.Self.Device, LocalKnows: localKnows, RemoteKnows: snap.Knows}
	st, err := im.Engine.Rebase(ctx, src, in, func() error {
		im.Clock.Observe(max(snap.MaxClock, hlc.Timestamp(h.HLC)))
		if err := im.State.ReleasePart(p.Dev, p.Table, p.Seq); err != nil {
			return err
		}
		if err := im.State.DropUnusedHeldCopies(); err != nil {
			return err
		}
		return im.State.EndInflight()
	}, nil)
	res.Changes += st.Changes
	res.Conflicts += st.Conflicts
	res.AddLocks(st)
	if err != nil {
		return false, fmt.Errorf("merge table %s from snapshot %s: %w", p.Table, e.Rel, err)
	}
	im.log().Info("table caught up from a snapshot", "snapshot", e.Rel, "table", p.Table, "rows", st.Changes)
	res.Released++
	return true, nil
}
