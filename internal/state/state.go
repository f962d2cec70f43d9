// Package state owns a device's private state directory: its identity, the
// lock that keeps two rowdrop processes off the same state, the base copy of
// the synced tables and the merge metadata stored beside it in the same
// SQLite file (so progress and data commit together), and the outbox of
// files built but not yet published.
package state

import (
	"crypto/rand"
	"encoding/base32"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"zombiezen.com/go/sqlite"
	"zombiezen.com/go/sqlite/sqlitex"

	"github.com/rowdrop/rowdrop/internal/db"
	"github.com/rowdrop/rowdrop/internal/fsx"
)

// Dir is an opened, locked state directory.
type Dir struct {
	Path string
	conn *sqlite.Conn // base.db: base copy of synced tables + rowdrop_* metadata
	lock *os.File
}

// Conn is the connection to base.db. Its app tables (the base copy of the
// synced tables) are export's and merge's to read and write directly; its
// rowdrop_* tables are this package's, reached only through Dir's methods
// and the functions of this package.
func (d *Dir) Conn() *sqlite.Conn { return d.conn }

// Identity is who this device is.
type Identity struct {
	Device  string // 16-char id, names the device's folder in the shared folder
	Name    string // human name
	Install string // per-installation token, regenerated if the state dir is cloned
}

const metaSchema = `
CREATE TABLE IF NOT EXISTS rowdrop_state(k TEXT PRIMARY KEY, v) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS rowdrop_devices(
	id TEXT PRIMARY KEY, name TEXT NOT NULL DEFAULT '', applied INTEGER NOT NULL DEFAULT 0,
	last_hlc INTEGER NOT NULL DEFAULT 0, last_applied_ms INTEGER NOT NULL DEFAULT 0) WITHOUT ROWID;
-- Row lifecycle clocks. ins: the insert that created the current incarnation
-- (all cells default to it); wmax: latest write (insert or update); del:
-- latest delete. A row is alive iff wmax > del. dead holds the full row of a
-- deleted or not-yet-complete row (encoded), so a later edit can revive it.
CREATE TABLE IF NOT EXISTS rowdrop_rows(
	tbl TEXT NOT NULL, pk BLOB NOT NULL,
	ins INTEGER NOT NULL DEFAULT 0, ins_dev TEXT NOT NULL DEFAULT '',
	wmax INTEGER NOT NULL DEFAULT 0, wmax_dev TEXT NOT NULL DEFAULT '',
	del INTEGER NOT NULL DEFAULT 0, del_dev TEXT NOT NULL DEFAULT '',
	dead BLOB,
	cells BLOB, -- clocks of the cells written after ins (meta.go: encodeCells)
	PRIMARY KEY(tbl, pk)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS rowdrop_conflicts(
	id INTEGER PRIMARY KEY,
	at_ms INTEGER NOT NULL, kind TEXT NOT NULL, tbl TEXT NOT NULL, pk BLOB NOT NULL, pk_text TEXT NOT NULL,
	cols TEXT NOT NULL,           -- JSON array of column names
	winner BLOB, winner_dev TEXT NOT NULL, winner_hlc INTEGER NOT NULL,
	loser BLOB, loser_dev TEXT NOT NULL, loser_hlc INTEGER NOT NULL,
	file TEXT NOT NULL DEFAULT '', note TEXT NOT NULL DEFAULT '',
	restored_ms INTEGER NOT NULL DEFAULT 0,
	cid TEXT NOT NULL DEFAULT '',           -- content id, the same on every device (conflicts.go)
	dismissed_ms INTEGER NOT NULL DEFAULT 0,
	winner_ext INTEGER NOT NULL DEFAULT 0, loser_ext INTEGER NOT NULL DEFAULT 0); -- 1: the side is in rowdrop_conflict_values
-- A conflict's big side (db.StreamMin and more), by id*2 (winner) or
-- id*2+1 (loser) of its entry: alone in its row's last column, SQLite
-- writes it through blob I/O without holding it in memory (conflicts.go).
CREATE TABLE IF NOT EXISTS rowdrop_conflict_values(id INTEGER PRIMARY KEY, v BLOB NOT NULL);
-- Every changeset this device applied or published: its clock (every
-- change of a file carries the file's clock, so (dev, hlc) names the file
-- that wrote a value) and its causal context (JSON {device: seq}: what the
-- writer had applied). Re-keying (merge/rekey.go) asks whether a value's
-- writer had seen a given insert.
CREATE TABLE IF NOT EXISTS rowdrop_filelog(
	dev TEXT NOT NULL, seq INTEGER NOT NULL, hlc INTEGER NOT NULL, seen TEXT NOT NULL DEFAULT '{}',
	PRIMARY KEY(dev, seq)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS rowdrop_filelog_hlc ON rowdrop_filelog(dev, hlc);
-- What every changeset this device applied, published or took from a
-- snapshot's chain heads was: its file sum (docs/FORMAT.md §5.1) and, to
-- tell cheaply whether the file in the folder changed since, its size and
-- modification time when last checked (0: never seen here). Device-private:
-- snapshots do not carry it (filelog.go).
-- Per other device, the latest evidence of life seen from it in the
-- folder (its newest file and ack) and when this device first saw that
-- evidence, by this device's clock (observed.go): "silent since" is judged
-- by arrival, not by the other device's own clock.
CREATE TABLE IF NOT EXISTS rowdrop_observed(dev TEXT PRIMARY KEY, evidence TEXT NOT NULL, at_ms INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS rowdrop_filesums(
	dev TEXT NOT NULL, seq INTEGER NOT NULL, sum TEXT NOT NULL,
	size INTEGER NOT NULL DEFAULT 0, mtime_ns INTEGER NOT NULL DEFAULT 0,
	PRIMARY KEY(dev, seq)) WITHOUT ROWID;
-- INTEGER primary-key collisions: two devices inserted different rows
-- under old_pk; the one inserted later (mover) lives under new_pk.
CREATE TABLE IF NOT EXISTS rowdrop_rekeys(
	tbl TEXT NOT NULL, old_pk BLOB NOT NULL, new_pk BLOB NOT NULL,
	keeper_hlc INTEGER NOT NULL, keeper_dev TEXT NOT NULL,
	mover_hlc INTEGER NOT NULL, mover_dev TEXT NOT NULL,
	PRIMARY KEY(tbl, old_pk, mover_dev, mover_hlc)) WITHOUT ROWID;
-- Rows alive by their clocks but kept out of the tables because they clash
-- on a UNIQUE constraint with an earlier-inserted row (merge/unique.go);
-- their values are rowdrop_rows.dead. logged: the values last written to
-- the conflict log for it (NULL: not yet).
CREATE TABLE IF NOT EXISTS rowdrop_unique_held(
	tbl TEXT NOT NULL, pk BLOB NOT NULL, logged BLOB,
	PRIMARY KEY(tbl, pk)) WITHOUT ROWID;
-- Rows created here and not exported yet that met a remote insert under
-- the same INTEGER id: they move to a new id once the file is merged
-- (merge/rekey.go, FixLocalMoves); hlc is the remote insert's clock.
CREATE TABLE IF NOT EXISTS rowdrop_local_moves(
	tbl TEXT NOT NULL, pk BLOB NOT NULL, hlc INTEGER NOT NULL,
	PRIMARY KEY(tbl, pk)) WITHOUT ROWID;
-- Files seen in the folder that could not be applied yet, with the reason.
CREATE TABLE IF NOT EXISTS rowdrop_files(
	path TEXT PRIMARY KEY, dev TEXT NOT NULL, seq INTEGER NOT NULL,
	status TEXT NOT NULL, reason TEXT NOT NULL, first_ms INTEGER NOT NULL, last_ms INTEGER NOT NULL) WITHOUT ROWID;
-- One table's part of an applied file, kept out of its table here
-- (import/held.go): kind 'held' (the table's shape differs, it is unknown
-- or changed here) or 'excluded' (the table is not synced here); it is
-- applied by itself once the table syncs here in the file's shape.
CREATE TABLE IF NOT EXISTS rowdrop_held_tables(
	dev TEXT NOT NULL, tbl TEXT NOT NULL, seq INTEGER NOT NULL, path TEXT NOT NULL,
	kind TEXT NOT NULL, reason TEXT NOT NULL, first_ms INTEGER NOT NULL,
	PRIMARY KEY(dev, tbl, seq)) WITHOUT ROWID;
-- A checked copy, in held/ of the state directory, of each file with a
-- held table part (held_copies.go): the part survives the file's
-- collection. sum is the SHA-256 of the copy's bytes.
CREATE TABLE IF NOT EXISTS rowdrop_held_copies(
	path TEXT PRIMARY KEY, file TEXT NOT NULL, sum TEXT NOT NULL, size INTEGER NOT NULL) WITHOUT ROWID;
-- Devices this device's user retired (rowdrop devices forget): collection
-- no longer waits for their acknowledgement.
CREATE TABLE IF NOT EXISTS rowdrop_forgotten(id TEXT PRIMARY KEY, at_ms INTEGER NOT NULL) WITHOUT ROWID;
`

// Initialised reports whether path holds an initialised state directory
// (one Open has created its database), so a caller can tell a first run
// from a later one without creating anything.
func Initialised(path string) bool {
	st, err := os.Stat(filepath.Join(path, "base.db"))
	return err == nil && st.Mode().IsRegular()
}

// Open locks and opens (creating) the state directory. It fails if another
// rowdrop process holds it.
func Open(path string) (*Dir, error) {
	if err := os.MkdirAll(filepath.Join(path, "outbox"), 0o700); err != nil {
		return nil, fmt.Errorf("create state directory %s: %w", path, err)
	}
	lf, err := os.OpenFile(filepath.Join(path, "lock"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open lock in state directory %s: %w", path, err)
	}
	if err := fsx.TryLock(lf); err != nil {
		lf.Close()
		if errors.Is(err, fsx.ErrLockHeld) {
			return nil, fmt.Errorf("state directory %s is in use by another rowdrop process (stop it, or give this one its own --state): %w", path, ErrLocked)
		}
		return nil, fmt.Errorf("lock state directory %s: %w", path, err)
	}
	base, err := db.OpenPrivate(filepath.Join(path, "base.db"))
	if err != nil {
		lf.Close()
		return nil, err
	}
	if err := sqlitex.ExecuteScript(base, metaSchema, nil); err != nil {
		base.Close()
		lf.Close()
		return nil, fmt.Errorf("initialise %s: %w", filepath.Join(path, "base.db"), err)
	}
	err = inlineCells(base)
	if err == nil {
		err = upgradeConflicts(base)
	}
	if err != nil {
		base.Close()
		lf.Close()
		return nil, fmt.Errorf("upgrade %s: %w", filepath.Join(path, "base.db"), err)
	}
	return &Dir{Path: path, conn: base, lock: lf}, nil
}

// ErrLocked means another process holds the state directory.
var ErrLocked = errors.New("state directory locked")

// Close releases the state directory.
func (d *Dir) Close() error {
	err := d.conn.Close()
	d.lock.Close()
	return err
}

// Outbox is where built files wait to be published.
func (d *Dir) Outbox() string { return filepath.Join(d.Path, "outbox") }

// Identity returns the device identity, creating it on first use.
func (d *Dir) Identity(name string) (Identity, error) {
	var id Identity
	for _, f := range []struct {
		k Key
		v *string
	}{{KeyDevice, &id.Device}, {KeyName, &id.Name}, {KeyInstall, &id.Install}} {
		v, err := d.Value(f.k)
		if err != nil {
			return id, err
		}
		*f.v = v
	}
	if id.Device != "" {
		if name != "" && name != id.Name {
			if err := d.Set(KeyName, name); err != nil {
				return id, err
			}
			id.Name = name
		}
		return id, nil
	}
	return d.CreateIdentity(NewID(), name)
}

// CreateIdentity gives a state directory that has no identity yet the
// device id dev. Identity uses a random id; seeded tests choose theirs,
// since device ids break clock ties and order files, and a seed must
// replay the same run.
func (d *Dir) CreateIdentity(dev, name string) (Identity, error) {
	if name == "" {
		name, _ = os.Hostname()
	}
	id := Identity{Device: dev, Name: name, Install: NewInstall()}
	err := sqlitex.Execute(d.conn, "INSERT INTO rowdrop_state(k,v) VALUES(?,?),(?,?),(?,?),(?,1)",
		&sqlitex.ExecOptions{Args: []any{string(KeyDevice), id.Device, string(KeyName), id.Name, string(KeyInstall), id.Install, string(KeyNextSeq)}})
	if err != nil {
		return id, fmt.Errorf("record device identity in %s: %w", d.Path, err)
	}
	return id, nil
}

// NewID returns a random 16-character lowercase base32 id (80 bits).
func NewID() string {
	var b [10]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err) // crypto/rand never fails on supported platforms
	}
	return strings.ToLower(base32.StdEncoding.EncodeToString(b[:]))
}

// NewInstall returns a per-installation token: creation time (ms, so the
// newer of two installations can be told) and a random part.
func NewInstall() string {
	return fmt.Sprintf("%013d-%s", time.Now().UnixMilli(), NewID())
}

// InstallTime returns the creation time encoded in an install token (0 if
// it has none).
func InstallTime(tok string) int64 {
	ms, _, ok := strings.Cut(tok, "-")
	if !ok {
		return 0
	}
	n, _ := strconv.ParseInt(ms, 10, 64)
	return n
}

// CheckInstallation regenerates the install token when this state
// directory is not where it was created (copied to another machine,
// restored from a backup): two installations then publish under one device
// id, and their tokens tell their files apart. install_since records the
// first sequence number written under the new token.
func (d *Dir) CheckInstallation() (regenerated bool, err error) {
	fp := machineFingerprint(d.Path)
	old, err := d.Value(KeyHostFP)
	if err != nil || old == fp {
		return false, err
	}
	if old == "" {
		return false, d.Set(KeyHostFP, fp)
	}
	end, err := db.Begin(d.conn, "IMMEDIATE")
	if err != nil {
		return false, err
	}
	defer end(&err)
	if err = d.Set(KeyInstall, NewInstall()); err != nil {
		return false, err
	}
	next, err := d.Int(KeyNextSeq)
	if err != nil {
		return false, err
	}
	if err = d.Set(KeyInstallSince, next); err != nil {
		return false, err
	}
	return true, d.Set(KeyHostFP, fp)
}

// machineFingerprint identifies "this state directory on this machine":
// hostname, machine id and the directory's identity on its volume (the
// inode on Unix). On Linux it is the same string as before platforms were
// split (machineid_*.go, dirid_*.go), so no installation looks moved.
func machineFingerprint(dir string) string {
	host, _ := os.Hostname()
	return fmt.Sprintf("%s|%s|%d", host, machineID(), dirID(dir))
}
