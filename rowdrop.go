// Package rowdrop syncs a SQLite app database between devices that share
// only a folder (Syncthing, Dropbox, a USB stick). It never copies the live
// database file: each device captures its changes through SQLite (export),
// publishes them as immutable per-device changeset files, and merges other
// devices' files at column level (import, merge). Open a Syncer, call Sync
// (or run `rowdrop watch`), Close it.
//
// The package orchestrates; the work is done below it. Its files, one
// concept each: rowdrop.go (configuration and state-directory discovery),
// syncer.go (the Syncer's lifecycle), sync.go (export, import, a sync
// cycle), snapshots.go, status.go, devices.go (devices, acknowledgements),
// collect.go (collection of old files) and conflicts.go.
package rowdrop

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/rowdrop/rowdrop/internal/folder"
	"github.com/rowdrop/rowdrop/internal/fsx"
	"github.com/rowdrop/rowdrop/internal/rdfile"
	"github.com/rowdrop/rowdrop/internal/state"
)

// Config names one (database, folder) pair and how to sync it.
type Config struct {
	// Passphrase, if set, unlocks an encrypted folder's key when the
	// state directory does not hold it yet (a new device, restore).
	Passphrase []byte
	DB         string // the app's live SQLite database
	Folder     string // the shared folder
	State      string // private state directory; default: DefaultStateDir
	DeviceName string // human name of this device; default: hostname
	// CreateFolder lets the first Open create a shared folder that does
	// not exist; without it, that Open fails before writing anything.
	CreateFolder bool

	Include      []string // tables to sync (empty: all with a primary key)
	Exclude      []string // tables never synced
	LocalColumns []string // "table.column" values that stay on this device
	// Identity matches the rows of a table across devices by a natural
	// key instead of the primary key: table -> columns, which must be
	// UNIQUE and NOT NULL. The table's INTEGER PRIMARY KEY becomes
	// device-local, so an app that renumbers its ids (buku) stays safe
	// (docs/MERGE.md, "Identity by natural key").
	Identity map[string][]string

	// Hints opts into the fast capture path: rowdrop installs three small
	// triggers per synced table that record changed keys in rowdrop_dirty.
	Hints bool
	// SweepEvery forces a full diff this often when hints are on (0: 24h).
	SweepEvery time.Duration
	// MaxChangeset caps the decompressed size of a file read from the
	// folder (0: 4 GiB).
	MaxChangeset int64
	// MaxHeader caps the header of a file read from the folder (0:
	// 1 MiB; the format allows up to 16 MiB).
	MaxHeader int64
	// MaxValue caps each TEXT or BLOB value in a file read from the
	// folder (0: 256 MiB).
	MaxValue int64
	// NoRekey turns off re-keying of INTEGER id collisions. By default,
	// when two devices insert different rows under one INTEGER PRIMARY KEY
	// id, both rows survive: the later insert moves to a new (negative) id
	// on every device and the rows referencing it through declared foreign
	// keys follow (merge/rekey.go); files then apply in causal order. With
	// NoRekey the later insert replaces the earlier row, which goes whole
	// to the conflict log.
	NoRekey bool
	// JoinRowByRow merges a snapshot one row at a time, as rowdrop did
	// before joins were set-wise (merge/rebase_setwise.go): slower, the
	// same outcome; for comparison and diagnosis.
	JoinRowByRow bool
	// MergeBatch fixes the number of changes per live write transaction
	// of an import. 0 (the default) adapts it so each stays near 50 ms;
	// tests set small values to exercise the batch pipeline.
	MergeBatch int

	// StandIns registers substitutes for SQL functions that the app's
	// triggers call but only the app defines (calibre's title_sort, say):
	// name -> "identity" (first argument), "null", "lower", "upper", or
	// "uuid" (a random UUID, for a function called without arguments that
	// makes a value, like uuid4() or random_uuid()).
	// Without one, a file whose apply needs the function is held.
	StandIns map[string]string

	// App names the app profile (configs/apps) laid under this
	// configuration: "" recognises the app from its schema, "none" uses
	// none, another value forces that profile. A profile is a default: the
	// user's include, exclude, local columns, stand-ins, identities and
	// after-apply actions override it (internal/profile).
	App string
	// AfterApply maps a table to SQL run in the live database after
	// merged changes to it, inside the same transaction, once per merged
	// row, with :key (the row's first primary-key column) and :op
	// ('insert', 'update' or 'delete') bound: the app's own change feeds
	// then see synced rows (Joplin's item_changes).
	AfterApply map[string]string

	// MassChangePercent and MassChangeMinRows set the mass-change guard:
	// an export that would delete or overwrite more than MassChangePercent
	// percent of a table holding at least MassChangeMinRows rows is held
	// (not built, not published) until confirmed; Sync then returns an
	// error wrapping ErrMassChange that says why. 0: the defaults, 50% and
	// 20 rows; a negative MassChangePercent turns the guard off.
	MassChangePercent, MassChangeMinRows int64
	// ConfirmMassChange lets this Syncer's next export through the guard
	// (`rowdrop sync --confirm-mass-change`).
	ConfirmMassChange bool

	// DeviceHorizon is how long another device may stay silent (no new
	// acknowledgement or file) before status warns that it holds back the
	// collection of old files (0: DefaultDeviceHorizon, 30 days). A silent
	// device is never dropped by itself: the user retires it.
	DeviceHorizon time.Duration

	Logger *slog.Logger
	Now    func() time.Time // clock, for tests of skew; default time.Now
	// Progress, if set, reports long work: files imported (done of total,
	// the last file), or, while joining or re-basing from a snapshot (file
	// ends in .rds), rows of it merged.
	Progress func(done, total int, file string)
}

// resolve checks the configuration and fills in the defaults.
// limits are the reader's limits on files from the folder.
func (cfg Config) limits() rdfile.Limits {
	return rdfile.Limits{MaxRaw: cfg.MaxChangeset, MaxHeader: cfg.MaxHeader, MaxValue: cfg.MaxValue}
}

func (cfg Config) resolve() (Config, error) {
	if cfg.DB == "" || cfg.Folder == "" {
		return cfg, errors.New("both a database (--db) and a shared folder (--folder) are required")
	}
	if st, err := os.Stat(cfg.DB); err != nil {
		return cfg, fmt.Errorf("database %s: %w (give the path of the app's SQLite file)", cfg.DB, err)
	} else if !st.Mode().IsRegular() {
		return cfg, fmt.Errorf("database %s is not a regular file", cfg.DB)
	}
	if cfg.State == "" {
		cfg.State = findStateDir(cfg.DB, cfg.Folder)
	}
	if cfg.SweepEvery == 0 {
		cfg.SweepEvery = 24 * time.Hour
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	// Refuse a state directory or folder that would put rowdrop's files
	// next to, or the database inside, the shared folder. The paths are
	// compared after resolving symbolic links: ~/Dropbox is often a link,
	// and a link to the database's directory must not pass.
	if fsx.Inside(cfg.DB, cfg.Folder) {
		return cfg, fmt.Errorf("database %s is inside the shared folder %s: the sync tool would copy the live file (move the database out of the folder)", cfg.DB, describeReal(cfg.Folder))
	}
	if fsx.Inside(cfg.State, cfg.Folder) {
		return cfg, fmt.Errorf("state directory %s is inside the shared folder %s: it is private to this device (choose another --state)", cfg.State, describeReal(cfg.Folder))
	}
	if err := checkFolder(cfg); err != nil {
		return cfg, err
	}
	return cfg, nil
}

// checkFolder refuses a shared folder that does not exist on a first run
// (no state directory yet), unless cfg.CreateFolder or the folder is to be
// made directly on a mounted stick: then it creates it.
// A typo'd --folder must not leave a state directory with an identity and
// an outbox behind. Once the pair is initialised, a missing folder is a
// stick not mounted or a share offline: exports wait in the outbox.
func checkFolder(cfg Config) error {
	shared := folder.New(cfg.Folder, cfg.limits())
	err := shared.Available()
	switch {
	case err == nil:
		return nil
	case !errors.Is(err, os.ErrNotExist):
		return fmt.Errorf("shared folder %s: %w (check the --folder path)", cfg.Folder, err)
	case state.Initialised(cfg.State):
		return nil
	case cfg.CreateFolder:
		return shared.Create()
	case fsx.OnRemovableMount(filepath.Dir(cfg.Folder)):
		// Its parent is a stick that is in (a filesystem mounted below
		// /media, /run/media, /mnt or /Volumes): no typo, a first use.
		cfg.Logger.Info("creating the shared folder on the mounted stick", "folder", cfg.Folder)
		return shared.Create()
	}
	return fmt.Errorf("shared folder %s does not exist: check the path, mount the stick or share it is on, or pass --create-folder to create it (nothing was written)", cfg.Folder)
}

// describeReal names dir, and where it resolves to when that differs.
func describeReal(dir string) string {
	abs, _ := filepath.Abs(dir)
	if real := fsx.RealPath(dir); real != "" && real != abs {
		return dir + " (which resolves to " + real + ")"
	}
	return dir
}

// DefaultStateDir is the state directory for a (database, folder) pair:
// $XDG_STATE_HOME/rowdrop/<hash of both absolute paths>.
func DefaultStateDir(dbPath, folder string) string { return state.DefaultDir(dbPath, folder) }

// findStateDir returns the default state directory for the pair, unless
// it does not exist yet and another default state directory of the same
// database already publishes into this folder: then the folder was mounted
// under another path (a USB stick), and that device continues.
func findStateDir(dbPath, dir string) string {
	return state.FindDir(dbPath, dir, folder.New(dir, rdfile.Limits{}).HasDevice)
}

// leaveBreadcrumbs writes plain-text files into the state directory that
// let findStateDir recognise it when the folder comes back under another
// path. They are a convenience: a failure is logged, not fatal.
func leaveBreadcrumbs(cfg Config, device string) {
	if err := state.LeaveBreadcrumbs(cfg.State, device, cfg.DB); err != nil {
		cfg.Logger.Warn("state directory breadcrumbs not written: if the folder comes back under another path, pass --state", "state", cfg.State, "err", err)
	}
}
