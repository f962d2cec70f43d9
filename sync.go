package rowdrop

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/rowdrop/rowdrop/export"
	importer "github.com/rowdrop/rowdrop/import"
	"github.com/rowdrop/rowdrop/internal/db"
	"github.com/rowdrop/rowdrop/internal/folder"
	"github.com/rowdrop/rowdrop/internal/fsx"
	"github.com/rowdrop/rowdrop/internal/rdfile"
	"github.com/rowdrop/rowdrop/internal/state"
	"github.com/rowdrop/rowdrop/merge"
)

// One sync cycle: export this device's changes, import the others'.

// Report is the outcome of one Sync.
type Report struct {
	Export export.Result
	Import importer.Result
}

// Sync runs one cycle: export this device's changes, then import others'.
// A write that failed on a full disk is reported as a *fsx.DiskFullError
// naming the directory and its free space.
func (s *Syncer) Sync(ctx context.Context) (Report, error) {
	r, err := s.sync(ctx)
	return r, s.diskFull(err)
}

// diskFull names the full disk behind err, if that is what it is (the
// state directory's, the database's or the folder's).
func (s *Syncer) diskFull(err error) error {
	return fsx.DiskFull(err, db.MaybeFull(err), s.cfg.State, filepath.Dir(s.cfg.DB), s.cfg.Folder)
}

func (s *Syncer) sync(ctx context.Context) (Report, error) {
	var r Report
	// A clock set right while this process runs (watch): as at Open.
	if err := s.boundClock(); err != nil {
		return r, err
	}
	c, err := s.newCycle()
	if err != nil {
		return r, err
	}
	// A new device joins from a snapshot before its first export, so that
	// rows it already holds merge into the snapshot's (snapshots.go).
	joined, err := s.joinIfNew(ctx, c)
	if err != nil {
		return r, err
	}
	if err = retryBusy(ctx, 8, 25*time.Millisecond, func() (e error) { r.Export, e = s.export(ctx, c); return e }); err != nil {
		return r, err
	}
	if _, statErr := os.Stat(s.cfg.Folder); statErr != nil {
		return r, fmt.Errorf("shared folder %s is not available: %w (mount it, or check the --folder path; exports wait in the outbox meanwhile)", s.cfg.Folder, statErr)
	}
	err = retryBusy(ctx, 8, 25*time.Millisecond, func() (e error) { r.Import, e = s.importOnce(ctx, c); return e })
	r.Import.Changes += joined.Changes
	r.Import.Conflicts += joined.Conflicts
	r.Import.Copied += joined.Copied
	r.Import.AddLocks(joined)
	if err != nil {
		return r, err
	}
	if r.Export.PublishErr != nil {
		// Imports went ahead; the export waits in the outbox and is retried.
		return r, fmt.Errorf("exported changes wait in the outbox: %w", r.Export.PublishErr)
	}
	if r.Export.Held != "" {
		// Imports went ahead; the export waits for the user's word.
		return r, fmt.Errorf("%w: this device's changes were not published: %s", ErrMassChange, r.Export.Held)
	}
	return r, nil
}

// ErrMassChange: the mass-change guard held this device's export (Config,
// MassChangePercent); Sync's error says which tables and how to confirm.
var ErrMassChange = errors.New("export held by the mass-change guard")

// Export captures local changes and publishes them as one file.
func (s *Syncer) Export(ctx context.Context) (export.Result, error) {
	c, err := s.newCycle()
	if err != nil {
		return export.Result{}, err
	}
	res, err := s.export(ctx, c)
	return res, s.diskFull(err)
}

func (s *Syncer) export(ctx context.Context, c *cycle) (export.Result, error) {
	ls := c.schema
	// An import interrupted between its live and base commits must finish
	// first, or its merged values would look like local edits.
	if in, err := s.st.CurrentInflight(); err != nil {
		return export.Result{}, err
	} else if in.Kind != state.InflightNone {
		if _, err := s.importOnce(ctx, c); err != nil {
			return export.Result{}, err
		}
		if err := s.inflightFinished(); err != nil {
			return export.Result{}, err
		}
	}
	// A local row that must leave a shared INTEGER id (rekey.go) never
	// leaves under it. (Checked first: preparing the merge engine for a
	// new schema runs EnsureBase, which the export runs anyway.)
	if pending, err := s.st.HasLocalMoves(); err != nil {
		return export.Result{}, err
	} else if pending {
		im, err := s.importer(ls)
		if err != nil {
			return export.Result{}, err
		}
		if err := im.Engine.FixLocalMoves(ctx); err != nil {
			return export.Result{}, err
		}
	}
	res, err := s.exp.Export(ctx, ls.tables)
	if err != nil {
		return res, err
	}
	c.recognised = true // the export checked the live file (export/recognise.go)
	// The export brought the base copy in line with ls (EnsureBase): the
	// importer follows what it found, without running it again.
	s.prepareImporter(ls, ls.tables, res.SchemaProblems)
	if res.Seq > 0 {
		s.log.Info("exported", "seq", res.Seq, "changes", res.Changes, "bytes", res.Bytes, "mode", res.Mode, "file", res.File)
	}
	return res, nil
}

// Import applies every applicable file from the other devices. A device
// that is new, or that misses files its devices have collected, first
// merges a usable snapshot (import/rebase.go).
func (s *Syncer) Import(ctx context.Context) (importer.Result, error) {
	c, err := s.newCycle()
	if err != nil {
		return importer.Result{}, err
	}
	res, err := s.importOnce(ctx, c)
	return res, s.diskFull(err)
}

// ErrInflight: an import was cut short between its live and base commits
// and could not be finished yet; this device's export waits for it.
var ErrInflight = export.ErrInflight

// inflightFinished checks, after the import that was to finish it, that
// the interrupted merge in is done: while it is not, the live database
// holds merged values the base copy lacks, and an export would publish
// them as this device's own edits (an echo, with a newer clock).
func (s *Syncer) inflightFinished() error {
	now, err := s.st.CurrentInflight()
	if err != nil || now.Kind == state.InflightNone {
		return err
	}
	why := ""
	if fss, err := s.st.FileStatuses(); err == nil {
		for _, fs := range fss {
			if fs.Path == now.Name && fs.Reason != "" {
				why = ": " + fs.Reason
			}
		}
	}
	return fmt.Errorf("%w: the merge of %s %s was cut short after the database %s was written and before the state directory %s was; this device's changes are not exported until it is finished (sync again once the cause below is fixed)%s",
		ErrInflight, now.Kind, now.Name, s.cfg.DB, s.cfg.State, why)
}

// cycle is what one operation (Sync, Export, Import, Snapshot) reads once
// and passes down: the live schema and, once needed, the folder view.
// Every import of the operation goes through that one view and advances
// its applied vector, so the view stays true.
type cycle struct {
	schema liveSchema
	view   *folderView
	// recognised: an export of this cycle checked the live file and
	// recorded what identifies it.
	recognised bool
}

func (s *Syncer) newCycle() (*cycle, error) {
	ls, err := s.readSchema()
	if err != nil {
		return nil, err
	}
	return &cycle{schema: ls}, nil
}

// folder returns the cycle's folder view, taken now if there is none yet
// or the last listing failed.
func (s *Syncer) folder(c *cycle) (*folderView, error) {
	if c.view == nil || c.view.err != nil {
		v, err := s.viewFolder()
		if err != nil {
			return nil, err
		}
		c.view = v
	}
	return c.view, nil
}

// folderView is one listing of the shared folder and what this device has
// applied of it; one Sync takes it once and passes it on.
type folderView struct {
	scan    *folder.Scan // nil if the folder could not be read (err)
	err     error
	applied map[string]uint64
}

// viewFolder lists the folder and reads the applied vector.
func (s *Syncer) viewFolder() (*folderView, error) {
	applied, err := s.st.Applied()
	if err != nil {
		return nil, err
	}
	v := &folderView{applied: applied}
	v.scan, v.err = s.shared.Scan()
	if v.err != nil {
		v.scan = nil
	}
	return v, nil
}

// importOnce is Import within cycle c.
func (s *Syncer) importOnce(ctx context.Context, c *cycle) (importer.Result, error) {
	im, err := s.importer(c.schema)
	if err != nil {
		return importer.Result{}, err
	}
	fv, err := s.folder(c)
	if err != nil {
		return importer.Result{}, err
	}
	liveFile, err := s.recogniseForImport(ctx, c)
	if err != nil {
		return importer.Result{}, err
	}
	if liveFile.recovered {
		s.imKey = "" // live changed under the importer: prepare it again
		if im, err = s.importer(c.schema); err != nil {
			return importer.Result{}, err
		}
	}
	scan, scanErr, applied := fv.scan, fv.err, fv.applied
	rb, err := im.Rebase(ctx, scan, applied)
	if err != nil {
		return importer.Result{}, err
	}
	if err := im.Engine.FixLocalMoves(ctx); err != nil { // after a rebase
		return importer.Result{}, err
	}
	if scanErr != nil {
		return importer.Result{}, scanErr // it says which folder and what to check
	}
	res, err := im.ImportScanned(ctx, scan, applied)
	if err == nil {
		// A value that a row held on a UNIQUE clash waits for can be freed
		// by this device's own export too, not only by an import.
		var us merge.Stats
		us, err = im.Engine.ResolveHeld(ctx)
		res.Conflicts += us.Conflicts
		res.AddLocks(us)
	}
	res.Changes += rb.Stats.Changes
	res.Conflicts += rb.Stats.Conflicts
	res.Copied += rb.Stats.Copied
	res.AddLocks(rb.Stats)
	if err != nil {
		return res, err
	}
	if err := im.NoteGaps(rb.Gaps, applied); err != nil {
		return res, err
	}
	if liveFile.f != nil {
		if res.Applied > 0 || rb.Used != "" {
			s.exp.Mark(liveFile.f) // the merge wrote live: a new generation
		}
		if err := s.exp.RecordLiveFile(*liveFile.f); err != nil {
			return res, err
		}
	}
	if res.Applied > 0 {
		s.log.Info("imported", "files", res.Applied, "changes", res.Changes, "conflicts", res.Conflicts, "max_lock", res.MaxLock, "long_locks", res.LongLocks)
	}
	// Tell the other devices how far this one has got, so they can
	// collect their old files. A failure here costs only disk space
	// elsewhere: it is reported, the import stands.
	if _, err := s.writeAck(false, applied); err != nil {
		s.log.Warn("acknowledgement not written", "err", err)
	}
	// Note, by this device's clock, what arrived from each device: that
	// is when a device was last heard of ("silent since"), whatever its
	// own clock says.
	if _, err := s.devices(ctx, scan); err != nil {
		s.log.Warn("could not note what arrived from the other devices", "err", err)
	}
	return res, nil
}

// importLive is what recogniseForImport found: what identifies the live
// file (f; nil while an interrupted import is unfinished) and whether it
// was recovered.
type importLive struct {
	f         *state.LiveFile
	recovered bool
}

// recogniseForImport checks the live file before a merge: merged into a
// file that is not the one last synced, its differences would stay as
// unexported edits. An export of the same cycle checked it already; an
// interrupted import's merged values are in live only, so none is checked
// until it is finished.
func (s *Syncer) recogniseForImport(ctx context.Context, c *cycle) (importLive, error) {
	if c.recognised {
		f, ok, err := s.st.LiveFile()
		if err != nil || !ok {
			return importLive{}, err
		}
		return importLive{f: &f}, nil
	}
	if in, err := s.st.CurrentInflight(); err != nil || in.Kind != state.InflightNone {
		return importLive{}, err
	}
	rec, cur, err := s.exp.Recognise(ctx, s.importedTables(c.schema))
	if err != nil {
		return importLive{}, err
	}
	c.recognised = true
	return importLive{f: &cur, recovered: rec != nil}, nil
}

// outbox lists the sequence numbers of this device's files waiting in the
// outbox (built, not yet published).
func (s *Syncer) outbox() ([]uint64, error) {
	ents, err := os.ReadDir(s.st.Outbox())
	if err != nil {
		return nil, fmt.Errorf("read the outbox %s: %w", s.st.Outbox(), err)
	}
	var out []uint64
	for _, e := range ents {
		if seq, ok := rdfile.ParseSeq(e.Name()); ok {
			out = append(out, seq)
		}
	}
	return out, nil
}

// Publish retries publishing files waiting in the outbox.
func (s *Syncer) Publish() ([]string, error) { return s.exp.Publish() }

// AdoptPlan counts, per synced table, what Adopt would insert, change and
// delete on every device: live's differences from the base copy.
func (s *Syncer) AdoptPlan(ctx context.Context) ([]export.TableChanges, error) {
	c, err := s.newCycle()
	if err != nil {
		return nil, err
	}
	return s.exp.AdoptPlan(ctx, c.schema.tables)
}

// Adopt takes the live database as the truth ("my database now is the
// truth"): one sync whose export publishes live's differences from the
// base copy as new edits, winning over everything merged before, without
// the recognition of a replaced or older file and without the mass-change
// guard. Show AdoptPlan to the user first.
func (s *Syncer) Adopt(ctx context.Context) (Report, error) {
	s.exp.Adopt = true
	defer func() { s.exp.Adopt = false }()
	return s.Sync(ctx)
}
