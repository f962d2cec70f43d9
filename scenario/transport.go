package scenario

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/rowdrop/rowdrop/internal/changeset"
	"github.com/rowdrop/rowdrop/internal/folder"
	"github.com/rowdrop/rowdrop/internal/rdfile"
)

// Published returns the sequence numbers of this device's files in its
// own folder, ascending.
func (d *Device) Published() []uint64 {
	d.W.T.Helper()
	return Seqs(d.W.T, d.Folder, d.ID)
}

// Seqs returns the sequence numbers of device dev's changesets in folder,
// ascending (none if dev has no directory there).
func Seqs(t testing.TB, folder, dev string) []uint64 {
	t.Helper()
	return numbered(t, filepath.Join(folder, dev), rdfile.ParseSeq)
}

// numbered returns the numbers parse finds in the names of dir's entries,
// ascending.
func numbered(t testing.TB, dir string, parse func(name string) (uint64, bool)) []uint64 {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		if os.IsNotExist(err) {
			return nil
		}
		t.Fatal(err)
	}
	var out []uint64
	for _, e := range ents {
		if s, ok := parse(e.Name()); ok {
			out = append(out, s)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

// place writes data as dir/name the way a sync tool finishes a download:
// under a temp name first, then renamed over whatever is there.
func place(t testing.TB, dir, name string, data []byte) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	tmp := filepath.Join(dir, ".syncthing."+name+".tmp")
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, name)); err != nil {
		t.Fatal(err)
	}
}

// FilePath is where device d published file seq.
func (d *Device) FilePath(seq uint64) string {
	return filepath.Join(d.Folder, d.ID, rdfile.FileName(seq))
}

// Has reports whether file seq of device from is whole in to's folder.
func (w *World) Has(to, from *Device, seq uint64) bool {
	a, err1 := os.Stat(from.FilePath(seq))
	b, err2 := os.Stat(filepath.Join(to.Folder, from.ID, rdfile.FileName(seq)))
	return err1 == nil && err2 == nil && a.Size() == b.Size()
}

// Deliver copies file seq of device from into to's folder, the way a sync
// tool finishes a download: temp name, then rename over whatever (partial)
// file is there. Delivering again is harmless, as with a real tool.
func (w *World) Deliver(from *Device, seq uint64, to *Device) {
	w.deliver(from, seq, to, -1)
}

// DeliverPartial writes only the first n bytes of file seq under its final
// name, as a sync tool writing in place (or a pulled USB stick) leaves it.
func (w *World) DeliverPartial(from *Device, seq uint64, to *Device, n int) {
	w.deliver(from, seq, to, n)
}

func (w *World) deliver(from *Device, seq uint64, to *Device, n int) {
	w.T.Helper()
	if from == to {
		return
	}
	data, err := os.ReadFile(from.FilePath(seq))
	if err != nil {
		w.T.Fatalf("deliver %s/%d: %v", from.Name, seq, err)
	}
	if n >= 0 && n < len(data) {
		data = data[:n]
	}
	place(w.T, filepath.Join(to.Folder, from.ID), rdfile.FileName(seq), data)
}

// DeliverAll copies every published file of from into to's folder.
func (w *World) DeliverAll(from, to *Device) {
	w.T.Helper()
	for _, s := range from.Published() {
		w.Deliver(from, s, to)
	}
}

// Send delivers every published file of from to each of to, and each
// imports.
func (w *World) Send(from *Device, to ...*Device) {
	w.T.Helper()
	for _, d := range to {
		w.DeliverAll(from, d)
		d.Import()
	}
}

// Flood delivers every published file to every device.
func (w *World) Flood() {
	w.T.Helper()
	for _, from := range w.Devs {
		for _, to := range w.Devs {
			w.DeliverAll(from, to)
		}
	}
}

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
		place(w.T, dst, e.Name(), data)
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

// Snapshots returns the numbers of the device's snapshots in its own
// folder, ascending.
func (d *Device) Snapshots() []uint64 {
	d.W.T.Helper()
	return numbered(d.W.T, filepath.Join(d.Folder, d.ID), rdfile.ParseSnapshotSeq)
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
		place(w.T, filepath.Join(to.Folder, from.ID), name, data)
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

// PublishedFile is one decoded changeset file.
type PublishedFile struct {
	Header  rdfile.Header
	Changes []*changeset.Change
}

// ReadPublished decodes every file device d published.
func (d *Device) ReadPublished() []PublishedFile {
	d.W.T.Helper()
	var out []PublishedFile
	for _, s := range d.Published() {
		pf, err := ReadFile(d.FilePath(s))
		if err != nil {
			d.W.T.Fatal(err)
		}
		out = append(out, pf)
	}
	return out
}

// OpenFile opens the rowdrop file at path, inside a shared folder
// (<folder>/<device>/<name>), the way every reader does: through
// internal/folder.
func OpenFile(path string) (*rdfile.File, error) {
	f, rel := folder.At(path)
	if r := worldRing(f); r != nil {
		f = f.WithRing(r, os.TempDir())
	}
	return f.Open(rel)
}

// ReadFile decodes one changeset file.
func ReadFile(path string) (PublishedFile, error) {
	var pf PublishedFile
	f, err := OpenFile(path)
	if err != nil {
		return pf, err
	}
	if err := f.Verify(); err != nil {
		return pf, err
	}
	pf.Header = f.Header
	cs, err := f.Changeset()
	if err != nil {
		return pf, err
	}
	defer cs.Close()
	rd := changeset.NewReader(bufio.NewReader(cs), changeset.Limits{})
	for {
		c, err := rd.Next()
		if err == io.EOF {
			return pf, nil
		}
		if err != nil {
			return pf, fmt.Errorf("%s: %w", path, err)
		}
		pf.Changes = append(pf.Changes, c)
	}
}

// KeyText renders a key the way the conflict log does.
func KeyText(key []changeset.Value) string {
	parts := make([]string, len(key))
	for i, v := range key {
		parts[i] = v.String()
	}
	return strings.Join(parts, ", ")
}
