package scenario

import (
	"bytes"
	"context"
	"io/fs"
	"os"
	"path/filepath"

	"rowdrop"
	"rowdrop/internal/rdfile"
)

// Mirror makes to's copy of from's device directory what a sync tool
// would make it: every changeset, snapshot and acknowledgement from has
// is copied if missing or different (temp name, then rename), and every
// changeset or snapshot from has deleted (collection) is deleted in to's
// folder too. Only from's own directory is touched.
func (w *World) Mirror(from, to *Device) {
	w.T.Helper()
	if from == to {
		return
	}
	src := filepath.Join(from.Folder, from.ID)
	dst := filepath.Join(to.Folder, from.ID)
	have := map[string]bool{}
	ents, err := os.ReadDir(src)
	if err != nil && !os.IsNotExist(err) {
		w.T.Fatal(err)
	}
	for _, e := range ents {
		kind, _, _ := rdfile.Classify(from.ID + "/" + e.Name())
		if e.Type()&fs.ModeType != 0 || (kind != rdfile.NameChangeset && kind != rdfile.NameSnapshot && kind != rdfile.NameAck) {
			continue
		}
		have[e.Name()] = true
		data, err := os.ReadFile(filepath.Join(src, e.Name()))
		if err != nil {
			w.T.Fatal(err)
		}
		if old, err := os.ReadFile(filepath.Join(dst, e.Name())); err == nil && bytes.Equal(old, data) {
			continue
		}
		if err := os.MkdirAll(dst, 0o755); err != nil {
			w.T.Fatal(err)
		}
		tmp := filepath.Join(dst, ".syncthing."+e.Name()+".tmp")
		if err := os.WriteFile(tmp, data, 0o644); err != nil {
			w.T.Fatal(err)
		}
		if err := os.Rename(tmp, filepath.Join(dst, e.Name())); err != nil {
			w.T.Fatal(err)
		}
	}
	ents, _ = os.ReadDir(dst)
	for _, e := range ents {
		kind, _, _ := rdfile.Classify(from.ID + "/" + e.Name())
		if (kind == rdfile.NameChangeset || kind == rdfile.NameSnapshot) && !have[e.Name()] {
			if err := os.Remove(filepath.Join(dst, e.Name())); err != nil {
				w.T.Fatal(err)
			}
		}
	}
}

// MirrorAll mirrors every device's directory to every other device.
func (w *World) MirrorAll() {
	w.T.Helper()
	for _, from := range w.Devs {
		for _, to := range w.Devs {
			w.Mirror(from, to)
		}
	}
}

// FolderBytes is the total size of the regular files in d's copy of the
// shared folder.
func (d *Device) FolderBytes() int64 {
	var n int64
	_ = filepath.WalkDir(d.Folder, func(_ string, e fs.DirEntry, err error) error {
		if err == nil && e.Type().IsRegular() {
			if info, err := e.Info(); err == nil {
				n += info.Size()
			}
		}
		return nil
	})
	return n
}

// Collect runs a collection (gc) on d.
func (d *Device) Collect(dryRun bool) *rowdrop.CollectReport {
	d.W.T.Helper()
	r, err := d.S.Collect(context.Background(), dryRun)
	if err != nil {
		d.W.T.Fatalf("%s: collect: %v", d.Name, err)
	}
	if len(r.Deleted) > 0 {
		d.logf("collected %d file(s), %d bytes", len(r.Deleted), r.Bytes)
	}
	return r
}
