package export

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"

	"zombiezen.com/go/sqlite"
	"zombiezen.com/go/sqlite/sqlitex"

	"github.com/rowdrop/rowdrop/internal/changeset"
	"github.com/rowdrop/rowdrop/internal/db"
	"github.com/rowdrop/rowdrop/internal/rows"
	"github.com/rowdrop/rowdrop/internal/schema"
	"github.com/rowdrop/rowdrop/internal/state"
)

// Recognising the live database (invariant 13b).
//
// Invariant 7 (base + unexported edits = live) holds only while live is the
// file rowdrop last synced. A database restored from a backup, reset by a
// reinstalled app, or replaced by a rename is not: its differences from the
// base copy are not the user's newest intent. So every export and import
// records what identifies the file (state.LiveFile) and every export checks
// it before capturing. The signals, and why:
//
//   - file identity (device and inode; volume and file index on Windows):
//     a rename over the path (VACUUM INTO + mv, most restores, an app that
//     recreates its file) changes it. A stat, no open.
//   - the header's file change counter: it only grows in a file's history
//     (every commit in rollback mode; in WAL mode whenever page 1 is
//     written), so a smaller one is an older copy even when it was copied
//     over the same inode. Read through SQLite (sqlite_dbpage, page 1),
//     never by opening the file around it (invariant 6).
//   - application_id and user_version: another app's database, or one
//     from before a schema migration, is not this file's future.
//   - rowdrop's marker row, in a table rowdrop_marker of the app's
//     database: the device that wrote it and a generation, advanced by
//     every export that publishes and every import that merges (which
//     write live anyway, or just did). It is the only signal that survives
//     every way a backup comes back: copied over the same inode in WAL mode
//     (the counter moves only when page 1 is written), or written into the
//     file through SQLite's backup API (the app's own "restore backup":
//     the counter then grows), so content alone would have to tell, and
//     it cannot (below). Its cost: one small table in the app's schema
//     (rowdrop's own, never synced, like rowdrop_dirty of the hints), one
//     row written per sync that changed something.
//   - a fingerprint of the synced tables: per table, a hash of its first
//     and last row in key order (two index probes). Content alone cannot
//     tell "went backwards" from an ordinary edit without false alarms (an
//     undo brings back an older state too), and a false alarm demotes a
//     real edit, so content is not a trigger by itself: it tells an
//     emptied database (every synced table empty while the base copy has
//     rows) and a replaced file whose content is unchanged (nothing to
//     do). Emptied together with another signal, a table created again
//     (its root page changed) or a file never synced, it is a reset;
//     emptied by the app's deletes in the file last synced, it is an edit,
//     which the mass-change guard judges (massguard.go).
//
// Counter and user_version never move backwards in one file's history and
// the file identity never changes under ordinary edits, so none of the
// triggers fires on the user's own work. Cost per sync: a stat, a read
// transaction on a fresh read-only connection with four pragmas and page 1,
// and two index probes per synced table (see BenchmarkReadLiveFile).
//
// What happens then (Recover): the differences live has from the base copy
// merge at the lowest precedence, as a new device's first export does:
// every value the base copy holds has a clock and wins, so live gets it
// back (an emptied database is refilled, as a device joining would be)
// and the value of the copy that lost goes to the conflict log, restorable
// one by one; a row the base copy deleted is removed again. What the base
// copy never held (a key rowdrop has no clock for: a new row) stays and is
// exported as a new edit. Nothing destructive leaves this device.

// Recognition kinds (state.Recognition.Kind).
const (
	RecognisedReplaced = "replaced"   // another file now has the path
	RecognisedOlder    = "older-copy" // the file's history went backwards
	RecognisedEmptied  = "emptied"    // every synced table is empty, the base copy is not
)

// KindRestoredCopy is the conflict-log kind of a value of a replaced or
// older copy of the live database that lost to the base copy's.
const KindRestoredCopy = "restored-copy"

// ReadLiveFile reads what identifies the live database at path now, for
// the synced tables.
func ReadLiveFile(path string, tables []*schema.Table) (f state.LiveFile, err error) {
	if f.FileID, err = FileID(path); err != nil {
		return f, fmt.Errorf("identify database file %s: %w", path, err)
	}
	conn, err := db.OpenLive(path, true)
	if err != nil {
		return f, err
	}
	defer conn.Close()
	end, err := db.Begin(conn, "DEFERRED")
	if err != nil {
		return f, fmt.Errorf("read identity of %s: %w", path, err)
	}
	defer end(&err)
	ints := []struct {
		q   string
		dst *int64
	}{{"PRAGMA page_count", &f.Pages}, {"PRAGMA application_id", &f.AppID}, {"PRAGMA user_version", &f.UserVersion}, {"PRAGMA schema_version", &f.SchemaVersion}}
	for _, p := range ints {
		if err = sqlitex.ExecuteTransient(conn, p.q, &sqlitex.ExecOptions{ResultFunc: func(s *sqlite.Stmt) error {
			*p.dst = s.ColumnInt64(0)
			return nil
		}}); err != nil {
			return f, fmt.Errorf("read %s of %s: %w", p.q, path, err)
		}
	}
	// Offset 24 of page 1: the file change counter (big-endian).
	if err = sqlitex.ExecuteTransient(conn, "SELECT substr(data, 25, 4) FROM sqlite_dbpage('main') WHERE pgno=1", &sqlitex.ExecOptions{ResultFunc: func(s *sqlite.Stmt) error {
		b := make([]byte, 4)
		if s.ColumnBytes(0, b) == 4 {
			f.Counter = binary.BigEndian.Uint32(b)
		}
		return nil
	}}); err != nil {
		return f, fmt.Errorf("read the header of %s: %w", path, err)
	}
	if f.Marker, f.Token, err = readMarker(conn); err != nil {
		return f, fmt.Errorf("read rowdrop's marker in %s: %w", path, err)
	}
	synced := map[string]bool{}
	for _, t := range tables {
		synced[t.Name] = true
	}
	f.Roots = map[string]int64{}
	if err = sqlitex.ExecuteTransient(conn, "SELECT name, rootpage FROM main.sqlite_master WHERE type='table'", &sqlitex.ExecOptions{ResultFunc: func(s *sqlite.Stmt) error {
		if synced[s.ColumnText(0)] {
			f.Roots[s.ColumnText(0)] = s.ColumnInt64(1)
		}
		return nil
	}}); err != nil {
		return f, fmt.Errorf("read the schema of %s: %w", path, err)
	}
	f.Rows = map[string]string{}
	for _, t := range tables {
		if f.Rows[t.Name], err = edgeRows(conn, "main", t); err != nil {
			return f, fmt.Errorf("fingerprint table %s of %s: %w", t.Name, path, err)
		}
	}
	return f, nil
}

// markerTable holds rowdrop's marker row in the app's database.
const markerTable = "rowdrop_marker"

// readMarker reads the marker row (0, "" when there is none).
func readMarker(conn *sqlite.Conn) (gen int64, token string, err error) {
	has := false
	err = sqlitex.ExecuteTransient(conn, "SELECT 1 FROM main.sqlite_master WHERE type='table' AND name='"+markerTable+"'", &sqlitex.ExecOptions{ResultFunc: func(*sqlite.Stmt) error {
		has = true
		return nil
	}})
	if err != nil || !has {
		return 0, "", err
	}
	err = sqlitex.ExecuteTransient(conn, "SELECT gen, token FROM main."+markerTable+" WHERE id=1", &sqlitex.ExecOptions{ResultFunc: func(s *sqlite.Stmt) error {
		gen, token = s.ColumnInt64(0), s.ColumnText(1)
		return nil
	}})
	return gen, token, err
}

// Mark writes the next generation of rowdrop's marker into live, after
// an export published or an import merged, and notes it in f (what
// RecordLiveFile then records). A failure is logged, not fatal: the
// marker in the file and in f stay as they were, consistent.
func (e *Exporter) Mark(f *state.LiveFile) {
	if e.Live == nil {
		return
	}
	gen := f.Marker + 1
	err := func() (err error) {
		end, err := db.Begin(e.Live, "IMMEDIATE")
		if err != nil {
			return err
		}
		defer end(&err)
		if err = db.Exec(e.Live, "CREATE TABLE IF NOT EXISTS main."+markerTable+"(id INTEGER PRIMARY KEY CHECK(id=1), gen INTEGER NOT NULL, token TEXT NOT NULL)"); err != nil {
			return err
		}
		return db.Exec(e.Live, "INSERT INTO main."+markerTable+"(id,gen,token) VALUES(1,?,?) ON CONFLICT(id) DO UPDATE SET gen=excluded.gen, token=excluded.token", gen, e.ID.Device)
	}()
	if err != nil {
		e.logger().Warn("could not update rowdrop's marker in the live database (a restored copy of it may then go unrecognised)", "db", e.LivePath, "table", markerTable, "err", err)
		return
	}
	f.Marker, f.Token = gen, e.ID.Device
}

// edgeRows fingerprints a table by its first and last row in key order
// ("" when it is empty). Both are probes of the primary key's index.
func edgeRows(conn *sqlite.Conn, dbName string, t *schema.Table) (string, error) {
	var pk, desc, cols []string
	for _, i := range t.PKCols() {
		pk = append(pk, db.Quote(t.Columns[i].Name))
		desc = append(desc, db.Quote(t.Columns[i].Name)+" DESC")
	}
	for _, c := range t.Columns {
		if !t.Local[c.Name] {
			cols = append(cols, db.Quote(c.Name))
		}
	}
	h := sha256.New()
	found := false
	for _, order := range []string{strings.Join(pk, ","), strings.Join(desc, ",")} {
		q := fmt.Sprintf("SELECT %s FROM %s.%s ORDER BY %s LIMIT 1", strings.Join(cols, ","), db.Quote(dbName), db.Quote(t.Name), order)
		err := sqlitex.ExecuteTransient(conn, q, &sqlitex.ExecOptions{ResultFunc: func(s *sqlite.Stmt) error {
			found = true
			hashRow(h, s)
			return nil
		}})
		if err != nil {
			return "", err
		}
	}
	if !found {
		return "", nil
	}
	return hex.EncodeToString(h.Sum(nil)[:12]), nil
}

// hashRow writes the result row of s to h as changeset.EncodeKey of its
// values would encode it, reading TEXT and BLOB values in place: a big
// value is not copied (recognition runs before every capture and merge).
func hashRow(h io.Writer, s *sqlite.Stmt) {
	n := s.ColumnCount()
	h.Write(changeset.AppendVarint(nil, uint64(n)))
	var buf []byte
	for i := 0; i < n; i++ {
		switch s.ColumnType(i) {
		case sqlite.TypeText, sqlite.TypeBlob:
			kind := changeset.KindBlob
			if s.ColumnType(i) == sqlite.TypeText {
				kind = changeset.KindText
			}
			buf = changeset.AppendVarint(append(buf[:0], byte(kind)), uint64(s.ColumnLen(i)))
			h.Write(buf)
			s.ColumnReader(i).WriteTo(h)
		default:
			buf = changeset.AppendValue(buf[:0], db.Column(s, i))
			h.Write(buf)
		}
	}
}

// baseHasRows reports whether any synced table of the base copy has a row.
func baseHasRows(base *sqlite.Conn, tables []*schema.Table) (bool, error) {
	for _, t := range tables {
		has := false
		err := sqlitex.ExecuteTransient(base, fmt.Sprintf("SELECT 1 FROM main.%s LIMIT 1", db.Quote(t.Name)), &sqlitex.ExecOptions{ResultFunc: func(*sqlite.Stmt) error {
			has = true
			return nil
		}})
		if err != nil {
			return false, fmt.Errorf("read base copy of %s: %w", t.Name, err)
		}
		if has {
			return true, nil
		}
	}
	return false, nil
}

// Classify compares what identifies the live database now (cur) with what
// was recorded (rec; recorded false: never) and returns the recognition
// kind and the signal that decided it, or "" when live is the file last
// synced. baseRows says whether the base copy holds rows.
func Classify(rec state.LiveFile, recorded bool, cur state.LiveFile, baseRows bool) (kind, reason string) {
	if recorded {
		kind, reason = replaced(rec, cur)
	}
	if !baseRows || !cur.Empty() {
		return kind, reason
	}
	// Every synced table is empty where the base copy has rows. Emptied by
	// the app's own deletes in the file last synced, that is an edit (the
	// mass-change guard judges it); emptied together with a new file, a
	// recreated table or no record at all, it is a reset.
	switch {
	case kind != "":
		return RecognisedEmptied, "every synced table is empty and " + reason
	case !recorded:
		return RecognisedEmptied, "every synced table is empty but the base copy has rows, and this file was never synced (the app was reset or reinstalled?)"
	}
	if cur.SchemaVersion != rec.SchemaVersion {
		return RecognisedEmptied, "every synced table is empty and the schema was written since the last sync (the app was reset, its tables created again?)"
	}
	for name, root := range rec.Roots {
		if now, ok := cur.Roots[name]; ok && now != root {
			return RecognisedEmptied, fmt.Sprintf("every synced table is empty and table %s was created again (the app was reset?)", name)
		}
	}
	return "", ""
}

// replaced compares the signals of a file's history (see the top of this
// file) and says how they tell that cur is not the file recorded in rec.
func replaced(rec, cur state.LiveFile) (kind, reason string) {
	switch {
	case rec.AppID != cur.AppID:
		return RecognisedReplaced, fmt.Sprintf("its application_id is %d, the database synced until now had %d (another app's database?)", cur.AppID, rec.AppID)
	case rec.FileID != "" && cur.FileID != "" && rec.FileID != cur.FileID:
		return RecognisedReplaced, fmt.Sprintf("another file now has its path (file id %s, was %s): it was replaced, restored or recreated", cur.FileID, rec.FileID)
	case rec.Marker > 0 && cur.Marker == 0:
		return RecognisedReplaced, "rowdrop's marker (table " + markerTable + ") is gone: the file was replaced or recreated"
	case rec.Marker > 0 && cur.Token != rec.Token:
		return RecognisedReplaced, fmt.Sprintf("rowdrop's marker was written by device %s, not this one: a copy of another device's database?", cur.Token)
	case cur.Marker < rec.Marker:
		return RecognisedOlder, fmt.Sprintf("rowdrop's marker went back from generation %d to %d: an older copy (restored from a backup?)", rec.Marker, cur.Marker)
	case cur.Counter < rec.Counter:
		return RecognisedOlder, fmt.Sprintf("its file change counter went back from %d to %d: an older copy (restored from a backup?)", rec.Counter, cur.Counter)
	case cur.UserVersion < rec.UserVersion:
		return RecognisedOlder, fmt.Sprintf("its user_version went back from %d to %d: a copy from before the app's last upgrade", rec.UserVersion, cur.UserVersion)
	}
	return "", ""
}

// Recognise checks the live database before a capture or a merge; when it
// is not the file last synced it recovers (see the top of this file) and
// returns what it found (nil: it is). cur is what identifies the file now,
// for RecordLiveFile once the export or import has committed.
func (e *Exporter) Recognise(ctx context.Context, tables []*schema.Table) (r *state.Recognition, cur state.LiveFile, err error) {
	rec, recorded, err := e.State.LiveFile()
	if err != nil {
		return nil, cur, err
	}
	if cur, err = ReadLiveFile(e.LivePath, tables); err != nil {
		return nil, cur, err
	}
	baseRows, err := baseHasRows(e.State.Conn(), tables)
	if err != nil {
		return nil, cur, err
	}
	kind, reason := Classify(rec, recorded, cur, baseRows)
	if kind == "" {
		return nil, cur, nil
	}
	r = &state.Recognition{Kind: kind, Reason: reason, AtMS: e.now().UnixMilli()}
	if err := e.recover(ctx, tables, r); err != nil {
		return nil, cur, err
	}
	if err := e.State.SetRecognition(*r); err != nil {
		return nil, cur, err
	}
	// The file is recognised from now on: its history continues here.
	if cur, err = ReadLiveFile(e.LivePath, tables); err != nil {
		return nil, cur, err
	}
	if err := e.RecordLiveFile(cur); err != nil {
		return nil, cur, err
	}
	// The hints may not cover what the other file holds: the next export
	// compares everything.
	e.ForceFull = true
	log := e.logger()
	switch kind {
	case RecognisedEmptied:
		log.Warn("the live database is empty where the synced one had rows: treated as a device joining, its rows brought back from the base copy; nothing is deleted on other devices (to delete them everywhere, delete them in the app again)",
			"db", e.LivePath, "reason", reason, "restored_rows", r.Restored, "kept_new_rows", r.Kept)
	default:
		log.Warn("the live database is not the file last synced: its differences merged at the lowest precedence, so every synced edit wins and its losing values are in the conflict log (`rowdrop conflicts`); nothing is deleted on other devices",
			"db", e.LivePath, "kind", kind, "reason", reason, "restored_rows", r.Restored, "reverted_rows", r.Reverted, "kept_new_rows", r.Kept)
	}
	return r, cur, nil
}

// RecordLiveFile records f (from Recognise) as what identifies the live
// database: called once an export or import committed. f is read before
// the capture, so a file replaced meanwhile is still told apart next time;
// rowdrop's own writes since only make the counter it recorded smaller.
func (e *Exporter) RecordLiveFile(f state.LiveFile) error {
	// The schema version after rowdrop's own schema writes (the marker,
	// the hint triggers): only the app's count as a sign of a reset.
	if e.Live != nil {
		_ = sqlitex.ExecuteTransient(e.Live, "PRAGMA schema_version", &sqlitex.ExecOptions{ResultFunc: func(s *sqlite.Stmt) error {
			f.SchemaVersion = s.ColumnInt64(0)
			return nil
		}})
	}
	// Unchanged (a sync with nothing to do): no write, no fsync.
	if rec, ok, err := e.State.LiveFile(); err != nil {
		return err
	} else if ok {
		rec.AtMS = f.AtMS
		if reflect.DeepEqual(rec, f) {
			return nil
		}
	}
	f.AtMS = e.now().UnixMilli()
	return e.State.SetLiveFile(f)
}

// liveFix is one row of live to bring back to the base copy's version.
type liveFix struct {
	t    *schema.Table
	key  []changeset.Value
	want []changeset.Value // the base row (nil: the row must go)
	cols []int             // for an update: the columns to write
}

// recover merges live's differences from the base copy at the lowest
// precedence (see the top of this file): the conflict log first (so a crash
// loses nothing), then live in one write transaction.
func (e *Exporter) recover(ctx context.Context, tables []*schema.Table, r *state.Recognition) (err error) {
	diff, err := e.captureDiff(ctx, tables)
	if err != nil {
		return err
	}
	defer func() { diff.Close(); os.Remove(diff.Name()) }()
	meta, err := e.State.NewMeta()
	if err != nil {
		return err
	}
	defer meta.Close()
	now := e.now().UnixMilli()
	note := "the live database was " + r.Kind + " (" + r.Reason + "): this value of it lost to the synced one"
	var fixes []liveFix
	var conflicts []*state.Conflict
	err = eachCaptured(diff, tables, func(t *schema.Table, c *changeset.Change) error {
		var key []changeset.Value
		if c.Op == changeset.OpInsert {
			key = cloneValues(rows.Key(t, c.New))
		} else {
			key = cloneValues(rows.Key(t, c.Old))
		}
		pk := changeset.EncodeKey(key)
		m, err := meta.Get(t.Name, pk)
		if err != nil {
			return err
		}
		conflict := func(cols []string, winner, loser []changeset.Value, win state.Clock) {
			js, _ := json.Marshal(cols)
			conflicts = append(conflicts, &state.Conflict{AtMS: now, Kind: KindRestoredCopy, Table: t.Name, PK: pk, PKText: keyText(key),
				Cols: string(js), Winner: encodeOpt(winner), WinnerDev: win.Dev, WinnerHLC: uint64(win.HLC),
				Loser: encodeOpt(loser), LoserDev: e.ID.Device, Note: note})
		}
		switch c.Op {
		case changeset.OpInsert:
			if m == nil {
				r.Kept++ // a key rowdrop never saw: a new row, exported as one
				return nil
			}
			// The base copy deleted it (or never had this version alive).
			var names []string
			for _, col := range t.Columns {
				names = append(names, col.Name)
			}
			conflict(names, nil, cloneValues(c.New), m.Del)
			fixes = append(fixes, liveFix{t: t, key: key})
			r.Reverted++
		case changeset.OpDelete:
			fixes = append(fixes, liveFix{t: t, key: key, want: cloneValues(c.Old)})
			r.Restored++
		case changeset.OpUpdate:
			var idx []int
			var names []string
			var win, lose []changeset.Value
			var clock state.Clock
			for i, v := range c.New {
				if v.Kind == changeset.KindUndefined || t.Columns[i].PK > 0 || t.Local[t.Columns[i].Name] {
					continue // device-local values stay this device's
				}
				idx = append(idx, i)
				names = append(names, t.Columns[i].Name)
				win = append(win, c.Old[i])
				lose = append(lose, v)
				if m != nil {
					clock = state.Max(clock, m.CellClock(t.Columns[i].Name))
				}
			}
			if len(idx) == 0 {
				return nil
			}
			conflict(names, cloneValues(win), cloneValues(lose), clock)
			fixes = append(fixes, liveFix{t: t, key: key, want: cloneValues(c.Old), cols: idx})
			r.Reverted++
		}
		return nil
	})
	if err != nil {
		return err
	}
	if len(fixes) == 0 {
		return nil
	}
	if err := e.logConflicts(conflicts); err != nil {
		return err
	}
	return e.fixLive(ctx, fixes)
}

// logConflicts appends entries to the conflict log in one transaction.
func (e *Exporter) logConflicts(cs []*state.Conflict) (err error) {
	if len(cs) == 0 {
		return nil
	}
	end, err := db.Begin(e.State.Conn(), "IMMEDIATE")
	if err != nil {
		return fmt.Errorf("write conflict log: %w", err)
	}
	defer end(&err)
	for _, c := range cs {
		if err = e.State.AddConflict(c); err != nil {
			return fmt.Errorf("write conflict log: %w", err)
		}
	}
	return nil
}

// fixLive writes the base copy's versions into live, in one write
// transaction: removals first, then updates, then inserts, so UNIQUE
// values move before they are claimed; a write a constraint refuses is
// retried once after the others. What the app's triggers do to the synced
// rows written is then undone, as a merge does (invariant 13a).
func (e *Exporter) fixLive(ctx context.Context, fixes []liveFix) (err error) {
	live := e.Live
	if live == nil { // an Exporter without hints or a merge engine (tests)
		if live, err = db.OpenLive(e.LivePath, false); err != nil {
			return err
		}
		defer live.Close()
	}
	defer db.Interruptible(ctx, live)()
	end, err := db.Begin(live, "IMMEDIATE")
	if err != nil {
		return fmt.Errorf("bring %s back to the synced state: %w", e.LivePath, err)
	}
	defer end(&err)
	acc := map[string]*rows.Table{}
	defer func() {
		for _, a := range acc {
			a.Close()
		}
	}()
	tbl := func(t *schema.Table) *rows.Table {
		if acc[t.Name] == nil {
			acc[t.Name] = rows.Open(live, "main", t)
		}
		return acc[t.Name]
	}
	write := func(f liveFix) error {
		rt := tbl(f.t)
		switch {
		case f.want == nil:
			return rt.Delete(f.key)
		case f.cols != nil:
			vals := make([]changeset.Value, len(f.cols))
			for j, i := range f.cols {
				vals[j] = f.want[i]
			}
			return rt.Update(f.key, f.cols, vals)
		}
		return rt.Insert(f.want)
	}
	var retry []liveFix
	for phase := 0; phase < 3; phase++ {
		for _, f := range fixes {
			p := 2
			if f.want == nil {
				p = 0
			} else if f.cols != nil {
				p = 1
			}
			if p != phase {
				continue
			}
			if werr := write(f); werr != nil {
				if !isConstraint(werr) {
					return fmt.Errorf("bring %s back to the synced state: %w", e.LivePath, werr)
				}
				retry = append(retry, f)
			}
		}
	}
	for _, f := range retry {
		if err = write(f); err != nil {
			return fmt.Errorf("bring a row of %s in %s back to the synced state: %w (fix the row in the app and sync again)", f.t.Name, e.LivePath, err)
		}
	}
	// Undo what triggers did to the rows just written.
	var undo []liveFix
	for _, f := range fixes {
		got, gerr := tbl(f.t).Get(f.key)
		if gerr != nil {
			return gerr
		}
		if f.want == nil {
			continue
		}
		if got == nil {
			undo = append(undo, liveFix{t: f.t, key: f.key, want: f.want})
			continue
		}
		var cols []int
		for i := range f.t.Columns {
			if f.t.Columns[i].PK == 0 && (f.cols == nil || contains(f.cols, i)) && !got[i].Equal(f.want[i]) {
				cols = append(cols, i)
			}
		}
		if len(cols) > 0 {
			undo = append(undo, liveFix{t: f.t, key: f.key, want: f.want, cols: cols})
		}
	}
	if len(undo) > 0 {
		return db.WithoutTriggers(live, func() error {
			for _, f := range undo {
				if err := write(f); err != nil {
					return fmt.Errorf("undo trigger side effects on %s: %w", f.t.Name, err)
				}
			}
			return nil
		})
	}
	return nil
}

func contains(s []int, v int) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

func encodeOpt(v []changeset.Value) []byte {
	if v == nil {
		return nil
	}
	return changeset.EncodeKey(v)
}

func keyText(key []changeset.Value) string {
	parts := make([]string, len(key))
	for i, v := range key {
		parts[i] = v.String()
	}
	return strings.Join(parts, ",")
}

// captureDiff writes every difference between the base copy and live as
// one changeset into a temporary file, rewound.
func (e *Exporter) captureDiff(ctx context.Context, tables []*schema.Table) (*os.File, error) {
	raw, err := os.CreateTemp(e.State.Path, ".capture-")
	if err != nil {
		return nil, fmt.Errorf("create capture file in state directory %s: %w", e.State.Path, err)
	}
	fail := func(err error) (*os.File, error) { raw.Close(); os.Remove(raw.Name()); return nil, err }
	w := bufio.NewWriterSize(raw, 1<<20)
	_, fx, err := captureFull(ctx, e.LivePath, filepath.Join(e.State.Path, "base.db"), e.State.Path, tables, w)
	if err != nil {
		return fail(fmt.Errorf("compare %s with the base copy: %w", e.LivePath, err))
	}
	if err := w.Flush(); err != nil {
		return fail(fmt.Errorf("write capture file: %w", err))
	}
	if _, err := raw.Seek(0, io.SeekStart); err != nil {
		return fail(err)
	}
	if fx.empty() {
		return raw, nil
	}
	fixed, err := os.CreateTemp(e.State.Path, ".capture-")
	if err != nil {
		return fail(fmt.Errorf("create capture file in state directory %s: %w", e.State.Path, err))
	}
	bw := bufio.NewWriterSize(fixed, 1<<20)
	err = fx.merge(raw, tables, bw, nil)
	raw.Close()
	os.Remove(raw.Name())
	if err == nil {
		err = bw.Flush()
	}
	if err == nil {
		_, err = fixed.Seek(0, io.SeekStart)
	}
	if err != nil {
		fixed.Close()
		os.Remove(fixed.Name())
		return nil, fmt.Errorf("write capture file: %w", err)
	}
	return fixed, nil
}
