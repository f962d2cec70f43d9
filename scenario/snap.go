package scenario

import (
	"context"
	"os"
	"path/filepath"
	"sort"

	"rowdrop/export"
	"rowdrop/internal/rdfile"
)

// Snapshot publishes a snapshot of the device's merged state into its own
// copy of the folder.
func (d *Device) Snapshot() export.SnapshotResult {
	d.W.T.Helper()
	r, err := d.S.Snapshot(context.Background())
	if err != nil {
		d.W.T.Fatalf("%s: snapshot: %v", d.Name, err)
	}
	d.logf("snapshot %d (%d rows, seen %v)", r.Seq, r.Rows, r.Seen)
	return r
}

// Snapshots returns the numbers of the device's snapshots in its own
// folder, ascending.
func (d *Device) Snapshots() []uint64 {
	d.W.T.Helper()
	ents, _ := os.ReadDir(filepath.Join(d.Folder, d.ID))
	var out []uint64
	for _, e := range ents {
		if s, ok := rdfile.ParseSnapshotSeq(e.Name()); ok {
			out = append(out, s)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

// DeliverSnapshots copies every snapshot of from into to's folder (temp
// name, then rename, as a sync tool does).
func (w *World) DeliverSnapshots(from, to *Device) {
	w.T.Helper()
	if from == to {
		return
	}
	for _, n := range from.Snapshots() {
		name := rdfile.SnapshotName(n)
		data, err := os.ReadFile(filepath.Join(from.Folder, from.ID, name))
		if err != nil {
			w.T.Fatal(err)
		}
		dir := filepath.Join(to.Folder, from.ID)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			w.T.Fatal(err)
		}
		tmp := filepath.Join(dir, ".syncthing."+name+".tmp")
		if err := os.WriteFile(tmp, data, 0o644); err != nil {
			w.T.Fatal(err)
		}
		if err := os.Rename(tmp, filepath.Join(dir, name)); err != nil {
			w.T.Fatal(err)
		}
	}
}

// Collect simulates device d collecting its changeset files 1..upTo: they
// vanish from its folder and, as the sync tool propagates the deletion,
// from every other device's copy. (The real collector is rowdrop gc; this
// is the folder as it looks afterwards.)
func (w *World) Collect(d *Device, upTo uint64) {
	w.T.Helper()
	for _, to := range w.Devs {
		for s := uint64(1); s <= upTo; s++ {
			p := filepath.Join(to.Folder, d.ID, rdfile.FileName(s))
			if err := os.Remove(p); err != nil && !os.IsNotExist(err) {
				w.T.Fatal(err)
			}
		}
	}
}
