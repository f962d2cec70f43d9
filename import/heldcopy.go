package importer

import (
	"errors"
	"fmt"
	"os"

	"github.com/rowdrop/rowdrop/internal/rdfile"
	"github.com/rowdrop/rowdrop/internal/state"
)

// Held copies (docs/INTERNALS.md, "Held copies"): the owner of a file may
// collect it once every device applied it, and this device counts a file
// with a held part as applied. So the file is copied into the state
// directory (state.WriteHeldCopy) before the commit recording it applied,
// the copy recorded with its checksum in that commit, and a held part is
// read from the folder's file while it is there, else from the copy,
// checked first. The copy goes after the commit applying its last part.

// copyHeld copies file rel (f, opened and verified from the folder) into
// the state directory and checks the copy is the same file. A non-empty
// reason means the folder's file changed while it was copied (the file
// is retried next sync); err is a local failure (a full disk).
func (im *Importer) copyHeld(rel string, f *rdfile.File) (state.HeldCopy, string, error) {
	r, err := im.Folder.OpenRaw(rel)
	if err != nil {
		return state.HeldCopy{}, fmt.Sprintf("%s: could not be read again to keep a copy of its held table part: %v; retried next sync", rel, err), nil
	}
	c, err := im.State.WriteHeldCopy(rel, r)
	r.Close()
	if err != nil {
		return c, "", err
	}
	if why := im.sameFile(rel, c, f.Header.Device, f.Header.Seq, f.Sum()); why != "" {
		os.Remove(c.File)
		return c, fmt.Sprintf("%s: changed while a copy of its held table part was kept (%s); retried next sync", rel, why), nil
	}
	return c, "", nil
}

// sameFile says why copy c is not a whole file dev/seq with file sum sum
// (any sum if ""), or "".
func (im *Importer) sameFile(rel string, c state.HeldCopy, dev string, seq uint64, sum string) string {
	cf, err := im.Folder.OpenCopy(rel, c.File)
	if err != nil {
		return err.Error()
	}
	if cf.Header.Device != dev || cf.Header.Seq != seq || (sum != "" && cf.Sum() != sum) {
		return fmt.Sprintf("the copy %s is device %s's file %d with sum %s, not the file applied", c.File, cf.Header.Device, cf.Header.Seq, cf.Sum())
	}
	if err := cf.Verify(); err != nil {
		return err.Error()
	}
	return ""
}

// ensureCopies copies the files of held parts that have no copy yet while
// they are still in the folder: parts recorded before copies existed (a
// state directory from an older rowdrop) and parts inherited from a
// snapshot. A file that cannot be copied now is told and tried again next
// sync; err is a local failure.
func (im *Importer) ensureCopies(parts []state.HeldPart, copies map[string]state.HeldCopy) error {
	for _, p := range parts {
		if _, ok := copies[p.Path]; ok || im.retired[p.Dev] {
			continue
		}
		// A changeset's part names its sequence; a snapshot's part (its
		// tables not synced here) has 0, and the snapshot's number is in
		// its name.
		kind, dev, seq := rdfile.Classify(p.Path)
		list := im.files[p.Dev]
		if kind == rdfile.NameSnapshot {
			list = im.scan.Snapshots
		}
		found := false
		for _, x := range list {
			found = found || x.Rel == p.Path
		}
		if !found || (kind != rdfile.NameChangeset && kind != rdfile.NameSnapshot) {
			continue // gone already: releaseOne says so
		}
		f, err := im.Folder.Open(p.Path)
		if err != nil {
			im.log().Warn("no copy kept of a held table part's file: it cannot be read now; tried again next sync", "file", p.Path, "table", p.Table, "err", err)
			continue
		}
		// The file applied here, if its sum was recorded (a part inherited
		// from a snapshot, or a snapshot's, has none: the file's own
		// checksums decide).
		sum := ""
		if kind == rdfile.NameChangeset {
			if sum, err = im.State.Sum(p.Dev, p.Seq); err != nil {
				return err
			}
		}
		if f.Header.Device != dev || f.Header.Seq != seq || (sum != "" && f.Sum() != sum) {
			im.log().Warn("no copy kept of a held table part's file: the folder's file is not the one applied here", "file", p.Path, "table", p.Table)
			continue
		}
		r, err := im.Folder.OpenRaw(p.Path)
		if err != nil {
			im.log().Warn("no copy kept of a held table part's file: it cannot be read now; tried again next sync", "file", p.Path, "table", p.Table, "err", err)
			continue
		}
		c, err := im.State.WriteHeldCopy(p.Path, r)
		r.Close()
		if err != nil {
			return err
		}
		if why := im.sameFile(p.Path, c, dev, seq, sum); why != "" {
			os.Remove(c.File)
			im.log().Warn("no copy kept of a held table part's file: it does not verify; tried again next sync", "file", p.Path, "table", p.Table, "why", why)
			continue
		}
		if err := im.State.RecordHeldCopy(c); err != nil {
			return err
		}
		copies[p.Path] = c
		im.log().Info("copy kept of a held table part's file", "file", p.Path, "copy", c.File)
	}
	return nil
}

// openCopy opens held part p's file from this device's copy c, checked
// against its checksum first. A nil file comes with the reason, naming
// the copy and what to do; a damaged copy is never applied.
func (im *Importer) openCopy(p state.HeldPart, c state.HeldCopy) (*rdfile.File, string) {
	rejoin := copyAdvice(p)
	if err := state.CheckHeldCopy(c); err != nil {
		im.log().Warn("held copy damaged: its table part is not applied", "copy", c.File, "file", p.Path, "table", p.Table, "err", err)
		if errors.Is(err, state.ErrHeldCopyDamaged) {
			return nil, fmt.Sprintf("%s: its part for table %s is held here and the file is no longer in the folder; this device's copy of it is damaged, so it is not applied (%v). To resume: %s", p.Path, p.Table, err, rejoin)
		}
		return nil, fmt.Sprintf("%s: its part for table %s is held here and the file is no longer in the folder; this device's copy of it cannot be read (%v). To resume: restore the copy's permissions or disk, or %s", p.Path, p.Table, err, rejoin)
	}
	f, err := im.Folder.OpenCopy(p.Path, c.File)
	if err == nil && (f.Header.Device != p.Dev || f.Header.Seq != p.Seq) {
		err = fmt.Errorf("it is device %s's file %d", f.Header.Device, f.Header.Seq)
	}
	if err != nil {
		return nil, fmt.Sprintf("%s: its part for table %s is held here and the file is no longer in the folder; this device's copy %s is not that file (%v), so it is not applied. To resume: %s", p.Path, p.Table, c.File, err, rejoin)
	}
	return f, ""
}

// copyAdvice says what to do when held part p's copy cannot stand in for
// its file.
func copyAdvice(p state.HeldPart) string {
	return fmt.Sprintf("put file %s back into the shared folder (from a backup, or another device's copy of the folder) and sync; or, if it is gone for good, delete the copy and let table %s catch up from a snapshot: run `rowdrop snapshot` on a device that is up to date, let the folder sync, then move this device's state directory aside and sync (it rejoins from the snapshot)", p.Path, p.Table)
}

// openFile opens folder file rel, or the held copy standing in for it
// while a held part is read from it (copyFor).
func (im *Importer) openFile(rel string) (*rdfile.File, error) {
	if p, ok := im.copyFor[rel]; ok {
		return im.Folder.OpenCopy(rel, p)
	}
	return im.Folder.Open(rel)
}

// copySnapshot keeps a copy of snapshot snap, whose rows of a table not
// synced here are kept as that table's part (inheritHeld, in the base
// transaction of its merge, so the copy is on disk before that commit).
func (im *Importer) copySnapshot(snap *Snapshot) error {
	rel := snap.Entry.Rel
	if _, ok := im.copyFor[rel]; ok {
		return nil // read from its copy already, which stays recorded
	}
	r, err := im.Folder.OpenRaw(rel)
	if err != nil {
		return fmt.Errorf("keep a copy of snapshot %s for the tables not synced here: %w", rel, err)
	}
	c, err := im.State.WriteHeldCopy(rel, r)
	r.Close()
	if err != nil {
		return err
	}
	if why := im.sameFile(rel, c, snap.Header.Device, snap.Header.Seq, ""); why != "" {
		os.Remove(c.File)
		return fmt.Errorf("keep a copy of snapshot %s for the tables not synced here: %s; sync again", rel, why)
	}
	return im.State.RecordHeldCopy(c)
}
