package export

import (
	"context"
	"fmt"
	"maps"
	"os"
	"strconv"
	"strings"
	"time"

	"zombiezen.com/go/sqlite"
	"zombiezen.com/go/sqlite/sqlitex"

	"github.com/rowdrop/rowdrop/internal/db"
	"github.com/rowdrop/rowdrop/internal/folder"
	"github.com/rowdrop/rowdrop/internal/fsx"
	"github.com/rowdrop/rowdrop/internal/hlc"
	"github.com/rowdrop/rowdrop/internal/rdfile"
	"github.com/rowdrop/rowdrop/internal/schema"
	"github.com/rowdrop/rowdrop/internal/state"
)

// SnapshotResult describes one published snapshot.
type SnapshotResult struct {
	File  string            `json:"file"`  // path in the shared folder
	Seq   uint64            `json:"seq"`   // this device's snapshot number
	Rows  int64             `json:"rows"`  // rows with merge metadata (live and deleted)
	Bytes int64             `json:"bytes"` // compressed payload
	Raw   int64             `json:"raw"`   // SQLite database size
	Seen  map[string]uint64 `json:"seen"`  // changesets it includes, per device
}

// SnapshotDue reports whether a new snapshot is due: at least everyFiles
// files (this device's exports plus other devices' files applied) since
// the last one, or every elapsed since it and at least one new file. A
// zero knob disables its trigger.
func SnapshotDue(st *state.Dir, now time.Time, everyFiles int, every time.Duration) (bool, error) {
	seen, err := seenVector(st)
	if err != nil {
		return false, err
	}
	total := sumSeen(seen)
	covered, err := st.Int(state.KeySnapTotal)
	if err != nil {
		return false, err
	}
	since := total - covered
	if total == 0 || since <= 0 {
		return false, nil
	}
	if everyFiles > 0 && since >= int64(everyFiles) {
		return true, nil
	}
	if every > 0 {
		last, err := st.Int(state.KeySnapMS)
		if err != nil {
			return false, err
		}
		if last == 0 {
			// Never snapshotted: count from the device's start instead of
			// snapshotting on the first step.
			if err := st.Set(state.KeySnapMS, now.UnixMilli()); err != nil {
				return false, err
			}
			return false, nil
		}
		return now.Sub(time.UnixMilli(last)) >= every, nil
	}
	return false, nil
}

// seenVector is what the base copy includes: this device's published
// files, and every other device's applied ones.
func seenVector(st *state.Dir) (map[string]uint64, error) {
	seen, err := st.Applied()
	if err != nil {
		return nil, err
	}
	maps.DeleteFunc(seen, func(_ string, n uint64) bool { return n == 0 })
	next, err := st.Int(state.KeyNextSeq)
	if err != nil {
		return nil, err
	}
	if own := next - 1; own > 0 {
		dev, err := st.Value(state.KeyDevice)
		if err != nil {
			return nil, err
		}
		seen[dev] = uint64(own)
	}
	return seen, nil
}

func sumSeen(seen map[string]uint64) int64 {
	var n int64
	for _, v := range seen {
		n += int64(v)
	}
	return n
}

// MakeSnapshot publishes a snapshot of this device's base copy: the synced
// tables and their merge metadata, exactly the state that the files in its
// Seen vector produce. The caller exports first (so this device's edits are
// in) and makes sure the outbox is empty. The copy is taken with SQLite's
// online backup API into the state directory, stripped of device-private
// tables, vacuumed, and published like every rowdrop file: compressed,
// checksummed, under a temporary name first, never replacing a file.
//
// app is the live database's complete schema (schema.ReadFull): the
// snapshot carries it (state.SnapshotSchemaTable, format version 2) so a
// new machine can rebuild the app's database from the folder alone
// (rowdrop restore). nil leaves it out.
func MakeSnapshot(ctx context.Context, st *state.Dir, id state.Identity, clock *hlc.Clock, shared *folder.Folder, tables []*schema.Table, app *schema.Full, now time.Time) (res SnapshotResult, err error) {
	if n, _ := os.ReadDir(st.Outbox()); len(outboxFiles(n)) > 0 {
		return res, fmt.Errorf("%d exported file(s) still wait in the outbox %s: a snapshot must not include changes the folder does not have yet (make the shared folder available and sync first)", len(outboxFiles(n)), st.Outbox())
	}
	seen, err := seenVector(st)
	if err != nil {
		return res, err
	}
	if len(seen) == 0 {
		return res, fmt.Errorf("nothing to snapshot: this device has neither exported nor applied any file yet (sync first)")
	}
	f, err := os.CreateTemp(st.Path, fsx.TempPrefix+"snapout-")
	if err != nil {
		return res, fmt.Errorf("create snapshot copy in state directory %s: %w", st.Path, err)
	}
	tmp := f.Name()
	f.Close()
	defer removeDB(tmp)
	last := clock.Last()
	if last == 0 {
		last = InitialClock
	}
	if err := copyBase(ctx, st, tmp, id, tables, app, last, now); err != nil {
		return res, fmt.Errorf("copy base copy for a snapshot: %w", err)
	}
	var rows int64
	if c, err := sqlite.OpenConn(db.FileURI(tmp)+"?mode=ro", sqlite.OpenReadOnly|sqlite.OpenURI); err == nil {
		rows, err = state.CountRowMeta(c)
		c.Close()
		if err != nil {
			return res, fmt.Errorf("read the snapshot copy %s: %w", tmp, err)
		}
	}
	// The next number: past the last one recorded and past any in the
	// folder (a crash after publishing but before recording it).
	last64, err := st.Int(state.KeySnapSeq)
	if err != nil {
		return res, err
	}
	n := uint64(last64)
	if err := shared.MkdirDevice(id.Device); err != nil {
		return res, fmt.Errorf("create this device's directory %s in the shared folder: %w", shared.Path(id.Device), err)
	}
	if names, err := shared.Names(id.Device); err == nil {
		for _, name := range names {
			if s, ok := rdfile.ParseSnapshotSeq(name); ok && s > n {
				n = s
			}
		}
	}
	n++
	h := rdfile.Header{Kind: rdfile.KindSnapshot, Device: id.Device, DeviceName: id.Name, Install: id.Install,
		Seq: n, HLC: uint64(last), CreatedMS: now.UnixMilli(), Changes: rows, Seen: seen}
	// The chain heads it includes (docs/FORMAT.md §5.1): a device that
	// joins from it checks each device's next file against them.
	for d, k := range seen {
		sum, err := st.Sum(d, k)
		if err != nil {
			return res, err
		}
		if sum != "" && k > 0 {
			if h.Heads == nil {
				h.Heads = map[string]string{}
			}
			h.Heads[d] = sum
		}
	}
	for _, t := range tables {
		cols := append([]rdfile.Column(nil), t.Columns...)
		for i := range cols {
			cols[i].Local = t.Local[cols[i].Name]
		}
		h.Tables = append(h.Tables, rdfile.Table{Name: t.Name, Columns: cols, Fingerprint: t.Fingerprint()})
	}
	src, err := os.Open(tmp)
	if err != nil {
		return res, err
	}
	defer src.Close()
	rel := id.Device + "/" + rdfile.SnapshotName(n)
	path := shared.Path(rel)
	h, err = shared.Build(rel, h, src)
	if err != nil {
		return res, fmt.Errorf("publish snapshot %s: %w (check free space and permissions of %s)", path, err, shared.Dir())
	}
	end, err := db.Begin(st.Conn(), "IMMEDIATE")
	if err != nil {
		return res, err
	}
	defer end(&err)
	for k, v := range map[state.Key]any{state.KeySnapSeq: strconv.FormatUint(n, 10), state.KeySnapTotal: sumSeen(seen), state.KeySnapMS: now.UnixMilli()} {
		if err = st.Set(k, v); err != nil {
			return res, err
		}
	}
	return SnapshotResult{File: path, Seq: n, Rows: rows, Bytes: h.PayloadLen, Raw: h.RawLen, Seen: seen}, nil
}

func outboxFiles(ents []os.DirEntry) []string {
	var out []string
	for _, e := range ents {
		if _, ok := rdfile.ParseSeq(e.Name()); ok {
			out = append(out, e.Name())
		}
	}
	return out
}

// copyBase copies base.db into path with the backup API and strips it to
// what a snapshot carries.
func copyBase(ctx context.Context, st *state.Dir, path string, id state.Identity, tables []*schema.Table, app *schema.Full, last hlc.Timestamp, now time.Time) (err error) {
	if err := snapshot(ctx, st.Conn(), path); err != nil {
		return err
	}
	dst, err := sqlite.OpenConn(db.FileURI(path), sqlite.OpenReadWrite|sqlite.OpenURI)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := dst.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("close the snapshot copy %s: %w", path, cerr)
		}
	}()
	// The copy inherits base.db's WAL mode; a snapshot is one
	// self-contained file in rollback mode (FORMAT §14).
	if err := sqlitex.ExecuteTransient(dst, "PRAGMA journal_mode=DELETE", nil); err != nil {
		return fmt.Errorf("take the snapshot copy %s out of WAL mode: %w", path, err)
	}
	mode, err := journalMode(dst)
	if err != nil {
		return fmt.Errorf("take the snapshot copy %s out of WAL mode: %w", path, err)
	}
	if mode != "delete" {
		return fmt.Errorf("take the snapshot copy %s out of WAL mode: it stays in %q mode", path, mode)
	}
	if err := stripCopy(dst, st, id, tables, app, last, now); err != nil {
		return err
	}
	if err := sqlitex.ExecuteTransient(dst, "VACUUM", nil); err != nil {
		return fmt.Errorf("vacuum the snapshot copy: %w", err)
	}
	return nil
}

// stripCopy removes from the copy what is private to this device (conflict
// log, file records, state, tables not synced) and blanks device-local
// columns, in one transaction.
func stripCopy(dst *sqlite.Conn, st *state.Dir, id state.Identity, tables []*schema.Table, app *schema.Full, last hlc.Timestamp, now time.Time) (err error) {
	synced := map[string]*schema.Table{}
	for _, t := range tables {
		synced[t.Name] = t
	}
	// Held table parts go with the snapshot only when there are some: a
	// snapshot without them stays readable by versions that predate them.
	held, err := st.HeldParts()
	if err != nil {
		return err
	}
	type obj struct{ typ, name string }
	var drop []obj
	err = sqlitex.ExecuteTransient(dst, "SELECT type, name FROM main.sqlite_master WHERE type IN ('table','view','trigger','index') AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\'", &sqlitex.ExecOptions{ResultFunc: func(s *sqlite.Stmt) error {
		typ, name := s.ColumnText(0), s.ColumnText(1)
		if typ == "table" && (synced[name] != nil || state.IsSnapshotMetaTable(name) || (name == state.SnapshotHeldTable && len(held) > 0)) {
			return nil
		}
		drop = append(drop, obj{typ, name})
		return nil
	}})
	if err != nil {
		return err
	}
	end, err := db.Begin(dst, "IMMEDIATE")
	if err != nil {
		return err
	}
	defer end(&err)
	for _, o := range drop {
		if err = db.Exec(dst, "DROP "+strings.ToUpper(o.typ)+" IF EXISTS main."+db.Quote(o.name)); err != nil {
			return fmt.Errorf("drop %s %s from the snapshot copy: %w", o.typ, o.name, err)
		}
	}
	// Device-local columns stay on this device: readers treat them as
	// placeholders, so blank them where the table allows it.
	for _, t := range tables {
		for i, c := range t.Columns {
			// The stored key of a table with an identity cannot be NULL
			// (a rowid); readers give a row new to them a fresh one.
			if t.Local[c.Name] && !c.NotNull && i != t.StorageKey() {
				if err = db.Exec(dst, "UPDATE main."+db.Quote(t.Name)+" SET "+db.Quote(c.Name)+"=NULL"); err != nil {
					return fmt.Errorf("blank device-local column %s.%s in the snapshot copy: %w", t.Name, c.Name, err)
				}
			}
		}
	}
	// Metadata of tables not in this snapshot would only confuse readers;
	// this device's own entry says how much of its own files the copy
	// includes.
	next, err := st.Int(state.KeyNextSeq)
	if err != nil {
		return err
	}
	names := make([]string, 0, len(tables))
	for _, t := range tables {
		names = append(names, t.Name)
	}
	if err = state.StripSnapshotMeta(dst, names, state.Device{ID: id.Device, Name: id.Name, Applied: uint64(max(next-1, 0)), LastHLC: last, LastAppliedMS: now.UnixMilli()}); err != nil {
		return err
	}
	if app != nil {
		err = state.PutSnapshotSchema(dst, app)
	}
	return err
}
