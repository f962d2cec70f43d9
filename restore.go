package rowdrop

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/rowdrop/rowdrop/internal/folder"
	"github.com/rowdrop/rowdrop/internal/fsx"
	"github.com/rowdrop/rowdrop/internal/schema"
	"github.com/rowdrop/rowdrop/internal/state"
)

// Restore: building the app's database on a new machine from the shared
// folder alone (`rowdrop restore`).

// ErrNothingToRestore means the shared folder holds no file of any device.
var ErrNothingToRestore = errors.New("the shared folder holds nothing to restore")

// RestoreResult is what Restore built.
type RestoreResult struct {
	DB       string // the database, under its final name
	State    string // the new device's state directory
	Device   string // the new device's id
	Snapshot string // the snapshot the schema and the first rows came from
	Report   Report // the sync that merged the snapshot and every later file
}

// restoringMark, in a state directory, says a restore is building it and
// its database is not under its final name yet.
const restoringMark = "restoring"

// Restore builds the database cfg.DB from the shared folder as a new
// device: the app's complete schema from the snapshot it joins from
// (tables, indexes, triggers, views, user_version, journal mode), that
// snapshot's rows and every later file. The database is built under a
// temporary name next to cfg.DB, fsynced and renamed into place, so a
// killed restore leaves no half database under the final name; running
// restore again resumes it. It refuses a cfg.DB that holds tables (or a
// state directory of another device of it) unless force; force moves
// such a state directory aside. It fails with ErrNothingToRestore when
// the folder holds no device's files.
func Restore(ctx context.Context, cfg Config, force bool) (res RestoreResult, err error) {
	if cfg.DB == "" || cfg.Folder == "" {
		return res, errors.New("both a database (--db) and a shared folder (--folder) are required")
	}
	final, err := filepath.Abs(cfg.DB)
	if err != nil {
		return res, fmt.Errorf("database %s: %w", cfg.DB, err)
	}
	if err := checkRestoreTarget(final, force); err != nil {
		return res, err
	}
	scan, err := folder.New(cfg.Folder, cfg.limits()).Scan()
	if err != nil {
		return res, err
	}
	if len(scan.Snapshots) == 0 && len(scan.Files) == 0 {
		return res, fmt.Errorf("%s: %w (no device has synced into it yet)", cfg.Folder, ErrNothingToRestore)
	}
	if cfg.State == "" {
		cfg.State = DefaultStateDir(final, cfg.Folder)
	}
	tmp := filepath.Join(filepath.Dir(final), fsx.TempPrefix+"restore-"+filepath.Base(final))
	if err := prepareRestoreState(cfg.State, tmp, force); err != nil {
		return res, err
	}
	if f, err := os.OpenFile(tmp, os.O_RDWR|os.O_CREATE, 0o644); err != nil {
		return res, fmt.Errorf("create the database under construction %s: %w (check that the directory of --db is writable)", tmp, err)
	} else {
		f.Close()
	}
	build := cfg
	build.DB = tmp
	s, err := Open(ctx, build)
	if err != nil {
		return res, err
	}
	defer func() {
		if s != nil {
			s.Close()
		}
	}()
	res.State, res.Device = cfg.State, s.id.Device
	s.exclusive = true // nothing but this restore knows the file under construction
	full, snap, err := s.restoreSchema(ctx)
	if err != nil {
		return res, err
	}
	res.Snapshot = snap
	if res.Report, err = s.Sync(ctx); err != nil {
		return res, fmt.Errorf("restore into %s (the database under construction; run restore again to resume): %w", tmp, err)
	}
	if err := s.Close(); err != nil {
		return res, err
	}
	s = nil
	if err := full.FinishFile(tmp); err != nil {
		return res, err
	}
	if err := replaceWith(tmp, final, force); err != nil {
		return res, err
	}
	// The breadcrumb findStateDir reads names the final database.
	if err := state.LeaveBreadcrumbs(cfg.State, res.Device, final); err != nil {
		return res, fmt.Errorf("record the database in state directory %s: %w", cfg.State, err)
	}
	if err := os.Remove(filepath.Join(cfg.State, restoringMark)); err != nil {
		return res, fmt.Errorf("finish state directory %s: %w", cfg.State, err)
	}
	res.DB = final
	return res, nil
}

// checkRestoreTarget refuses a database that holds anything, unless
// force. A missing file, an empty one and one without any schema object
// are empty (an app may create the file before its tables).
func checkRestoreTarget(path string, force bool) error {
	st, err := os.Stat(filepath.Dir(path))
	if err != nil || !st.IsDir() {
		return fmt.Errorf("directory of database %s does not exist: create it first", path)
	}
	st, err = os.Stat(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("database %s: %w", path, err)
	}
	if !st.Mode().IsRegular() {
		return fmt.Errorf("database %s is not a regular file", path)
	}
	wal, _ := os.Stat(path + "-wal")
	if st.Size() == 0 && (wal == nil || wal.Size() == 0) {
		return nil
	}
	n, err := schema.ObjectsIn(path)
	if err != nil && !force {
		return fmt.Errorf("database %s exists and is not an empty SQLite database (%w): restore never overwrites it; pass --force to replace it, or choose another --db", path, err)
	}
	if n > 0 && !force {
		return fmt.Errorf("database %s already holds %d schema objects: restore builds a new database and never overwrites one; if it is to be replaced, stop the app and pass --force, or choose another --db", path, n)
	}
	return nil
}

// prepareRestoreState readies the state directory of the new device: a
// half-built one of an interrupted restore is resumed when its database
// under construction is still there, else started over; the state
// directory of another device of this database is moved aside with force.
func prepareRestoreState(dir, tmp string, force bool) error {
	_, markErr := os.Stat(filepath.Join(dir, restoringMark))
	_, baseErr := os.Stat(filepath.Join(dir, "base.db"))
	_, tmpErr := os.Stat(tmp)
	switch {
	case markErr == nil && tmpErr == nil:
		return nil // resume
	case markErr == nil:
		if err := os.RemoveAll(dir); err != nil {
			return fmt.Errorf("remove the state directory %s of an interrupted restore: %w", dir, err)
		}
	case baseErr == nil && !force:
		return fmt.Errorf("state directory %s already belongs to a device of this database: restore makes a new device (pass --force to move that state directory aside, or give another --state)", dir)
	case baseErr == nil:
		aside := fmt.Sprintf("%s.replaced-%d", dir, time.Now().Unix())
		if err := os.Rename(dir, aside); err != nil {
			return fmt.Errorf("move state directory %s aside: %w", dir, err)
		}
	}
	for _, p := range []string{tmp, tmp + "-journal", tmp + "-wal", tmp + "-shm"} {
		if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("remove %s left by an interrupted restore: %w", p, err)
		}
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create state directory %s: %w", dir, err)
	}
	if err := os.WriteFile(filepath.Join(dir, restoringMark), []byte(tmp), 0o600); err != nil {
		return fmt.Errorf("mark state directory %s: %w", dir, err)
	}
	return nil
}

// restoreSchema creates the app's schema in the (empty) database under
// construction, from the snapshot a new device joins from. A database
// that already has tables (a resumed restore) keeps them.
func (s *Syncer) restoreSchema(ctx context.Context) (*schema.Full, string, error) {
	c, err := s.newCycle()
	if err != nil {
		return nil, "", err
	}
	fv, err := s.folder(c)
	if err != nil {
		return nil, "", err
	}
	if fv.err != nil {
		return nil, "", fv.err
	}
	im, err := s.importer(c.schema)
	if err != nil {
		return nil, "", err
	}
	full, snap, why, err := im.SchemaFromSnapshots(ctx, fv.scan, fv.applied)
	if err != nil {
		return nil, "", err
	}
	if full == nil {
		return nil, "", fmt.Errorf("cannot restore: %s", why)
	}
	have, err := schema.ReadFull(s.live)
	if err != nil {
		return nil, "", err
	}
	if len(have.Objects) == 0 {
		if err := full.Create(s.live); err != nil {
			return nil, "", fmt.Errorf("create the app's schema from snapshot %s: %w", snap, err)
		}
	}
	s.log.Info("restoring: created the app's schema", "snapshot", snap, "objects", len(full.Objects))
	return full, snap, nil
}

// replaceWith renames the finished database into place (atomically, even
// over a file another process has open) and makes the rename durable.
// With force, an old database's journal and WAL go first: SQLite would
// otherwise apply them to the new file.
func replaceWith(tmp, final string, force bool) error {
	if force {
		for _, p := range []string{final + "-wal", final + "-shm", final + "-journal"} {
			if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
				return fmt.Errorf("remove %s of the database being replaced: %w", p, err)
			}
		}
	}
	for _, p := range []string{tmp + "-wal", tmp + "-shm", tmp + "-journal"} {
		if _, err := os.Stat(p); err == nil {
			return fmt.Errorf("the restored database %s still has %s: not renamed into place", tmp, p)
		}
	}
	if err := fsx.Rename(tmp, final); err != nil {
		return fmt.Errorf("rename the restored database into place: %w", err)
	}
	return fsx.SyncDir(filepath.Dir(final))
}
