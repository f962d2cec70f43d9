package importer

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"zombiezen.com/go/sqlite"
	"zombiezen.com/go/sqlite/sqlitex"

	"github.com/rowdrop/rowdrop/internal/changeset"
	"github.com/rowdrop/rowdrop/internal/db"
	"github.com/rowdrop/rowdrop/internal/folder"
	"github.com/rowdrop/rowdrop/internal/fsx"
	"github.com/rowdrop/rowdrop/internal/hlc"
	"github.com/rowdrop/rowdrop/internal/rdfile"
	"github.com/rowdrop/rowdrop/internal/schema"
	"github.com/rowdrop/rowdrop/internal/state"
	"github.com/rowdrop/rowdrop/merge"
)

// Snapshot is a validated snapshot, decompressed into the state directory
// and opened read-only.
type Snapshot struct {
	Entry  folder.Entry
	Header rdfile.Header
	Conn   *sqlite.Conn
	// Tables are the local synced tables it carries (same shape).
	Tables map[string]*schema.Table
	// Knows is, per device, the clock of the last file of it the
	// snapshot includes (the writer: its latest clock).
	Knows map[string]hlc.Timestamp
	// Names are the device names it knows.
	Names map[string]string
	// MaxClock is the latest clock in its metadata.
	MaxClock hlc.Timestamp
	path     string
}

// Close closes and removes the decompressed copy.
func (s *Snapshot) Close() {
	if s.Conn != nil {
		s.Conn.Close()
	}
	os.Remove(s.path)
}

// SnapshotHeader reads a snapshot's header only (cheap): for choosing
// among snapshots before validating one fully.
func (im *Importer) SnapshotHeader(e folder.Entry) (rdfile.Header, string, string) {
	f, err := im.openFile(e.Rel)
	if err != nil {
		return rdfile.Header{}, classify(err), err.Error()
	}
	h := f.Header
	if h.Kind != rdfile.KindSnapshot {
		return h, StatusBroken, fmt.Sprintf("%s: header says kind %q under a snapshot name: refused", e.Rel, h.Kind)
	}
	if h.Device != e.Device || h.Seq != e.Seq {
		return h, StatusBroken, fmt.Sprintf("%s: header says device %s snapshot %d, its name says %s/%d: refused", e.Rel, h.Device, h.Seq, e.Device, e.Seq)
	}
	return h, "", ""
}

// OpenSnapshot validates a snapshot completely before anything of it
// can reach a database: header (kind, name, clock, tables against the
// local ones), payload checksum, then the decompressed SQLite file
// (integrity check, nothing but the expected tables, every table's shape,
// every row's key, values and clocks). A non-empty status says why it
// can't be used (StatusWaiting: incomplete, retry later; StatusHeld: not
// yet, e.g. another schema; StatusBroken: never); err is reserved for
// local failures.
func (im *Importer) OpenSnapshot(ctx context.Context, e folder.Entry) (snap *Snapshot, status, reason string, err error) {
	h, status, reason := im.SnapshotHeader(e)
	if status != "" {
		return nil, status, reason, nil
	}
	if far, ahead := im.Clock.TooFarAhead(hlc.Timestamp(h.HLC)); far {
		return nil, StatusHeld, fmt.Sprintf("%s: its clock is %s ahead of this device's (more than %s): held until this device's time catches up, or fix the clock of device %s (%s)",
			e.Rel, ahead.Round(time.Second), hlc.MaxDrift, h.Device, h.DeviceName), nil
	}
	carried := map[string]rdfile.Table{}
	for _, t := range h.Tables {
		if kind, reason := im.checkTable(t, h); kind != "" && kind != state.PartExcluded {
			return nil, StatusHeld, e.Rel + ": " + reason, nil
		}
		if l := im.Tables[t.Name]; l != nil && l.Fingerprint() != t.Fingerprint {
			return nil, StatusHeld, fmt.Sprintf("%s: table %s has another shape in the snapshot than here: held until both devices run the same app version", e.Rel, t.Name), nil
		}
		carried[t.Name] = t
	}
	for name := range im.Tables {
		if _, ok := carried[name]; !ok {
			return nil, StatusHeld, fmt.Sprintf("%s: the snapshot does not carry table %s, which this device syncs (the device that wrote it excludes the table or lacks it): not usable here", e.Rel, name), nil
		}
	}
	f, err := im.openFile(e.Rel)
	if err != nil {
		return nil, classify(err), err.Error(), nil
	}
	if err := f.Verify(); err != nil {
		return nil, classify(err), err.Error(), nil
	}
	tmp, status, reason, err := im.decompress(f, e)
	if status != "" || err != nil {
		return nil, status, reason, err
	}
	snap = &Snapshot{Entry: e, Header: h, path: tmp, Tables: map[string]*schema.Table{}, Knows: map[string]hlc.Timestamp{}, Names: map[string]string{}}
	defer func() {
		if snap != nil && (status != "" || err != nil) {
			snap.Close()
			snap = nil
		}
	}()
	snap.Conn, err = sqlite.OpenConn(db.FileURI(tmp)+"?mode=ro&immutable=1", sqlite.OpenReadOnly|sqlite.OpenURI)
	if err != nil {
		return snap, StatusBroken, fmt.Sprintf("%s: not a SQLite database: %v", e.Rel, err), nil
	}
	if why := im.checkSnapshotDB(ctx, snap, carried); why != "" {
		return snap, StatusBroken, e.Rel + ": " + why + ": refused, nothing applied", nil
	}
	return snap, "", "", nil
}

// decompress writes the payload into a private file in the state
// directory; the reader is bounded by the header and Limits.
func (im *Importer) decompress(f *rdfile.File, e folder.Entry) (string, string, string, error) {
	rc, err := f.Changeset()
	if err != nil {
		return "", classify(err), err.Error(), nil
	}
	defer rc.Close()
	out, err := os.CreateTemp(im.State.Path, fsx.TempPrefix+"snapin-")
	if err != nil {
		return "", "", "", fmt.Errorf("create snapshot copy in state directory %s: %w", im.State.Path, err)
	}
	_, cerr := io.Copy(out, rc)
	if err := out.Close(); err != nil && cerr == nil {
		cerr = err
	}
	if cerr != nil {
		os.Remove(out.Name())
		if strings.Contains(cerr.Error(), "no space") {
			return "", "", "", fmt.Errorf("decompress snapshot %s into %s: %w", e.Rel, im.State.Path, cerr)
		}
		return "", StatusBroken, fmt.Sprintf("%s: payload: %v", e.Rel, cerr), nil
	}
	var magic [16]byte
	if fh, err := os.Open(out.Name()); err == nil {
		_, _ = io.ReadFull(fh, magic[:])
		fh.Close()
	}
	if !bytes.Equal(magic[:], []byte("SQLite format 3\x00")) {
		os.Remove(out.Name())
		return "", StatusBroken, e.Rel + ": the payload is not a SQLite database: refused", nil
	}
	return out.Name(), "", "", nil
}

// checkSnapshotDB validates the decompressed database; "" means usable.
func (im *Importer) checkSnapshotDB(ctx context.Context, snap *Snapshot, carried map[string]rdfile.Table) string {
	conn := snap.Conn
	defer db.Interruptible(ctx, conn)()
	// Never run anything the file's schema might bring; a snapshot read
	// without that guarantee is not read at all.
	if err := sqlitex.ExecuteTransient(conn, "PRAGMA trusted_schema=OFF", nil); err != nil {
		return "cannot switch off trusted_schema to read it safely: " + err.Error()
	}
	var problems []string
	err := sqlitex.ExecuteTransient(conn, "PRAGMA integrity_check(20)", &sqlitex.ExecOptions{ResultFunc: func(s *sqlite.Stmt) error {
		if v := s.ColumnText(0); v != "ok" {
			problems = append(problems, v)
		}
		return nil
	}})
	if err != nil {
		return "integrity check failed: " + err.Error()
	}
	if len(problems) > 0 {
		return "integrity check: " + strings.Join(problems, "; ")
	}
	// Nothing but the synced tables, the metadata tables and SQLite's own
	// automatic indexes: no views, triggers, indexes on expressions.
	allowed := map[string]bool{"sqlite_sequence": true}
	for n := range carried {
		allowed[n] = true
	}
	for _, n := range state.SnapshotMetaTables {
		allowed[n] = true
	}
	// Version 2 snapshots also carry the writer's schema (optional: not
	// in version 1).
	allowed[state.SnapshotSchemaTable] = true
	// And the writer's held table parts (optional: not in older ones).
	allowed[state.SnapshotHeldTable] = true
	present := map[string]bool{}
	var bad string
	err = sqlitex.ExecuteTransient(conn, "SELECT type, name, tbl_name, sql IS NULL FROM main.sqlite_master", &sqlitex.ExecOptions{ResultFunc: func(s *sqlite.Stmt) error {
		typ, name, tbl, noSQL := s.ColumnText(0), s.ColumnText(1), s.ColumnText(2), s.ColumnInt(3) != 0
		switch {
		case typ == "table" && allowed[name] && name == tbl:
			present[name] = true
		case typ == "index" && noSQL && strings.HasPrefix(name, "sqlite_autoindex_") && allowed[tbl]:
		default:
			if bad == "" {
				bad = fmt.Sprintf("holds %s %q (on %q), which a snapshot never carries", typ, name, tbl)
			}
		}
		return nil
	}})
	if err != nil {
		return "unreadable schema: " + err.Error()
	}
	if bad != "" {
		return bad
	}
	for n := range allowed {
		if !present[n] && n != "sqlite_sequence" && n != state.SnapshotSchemaTable && n != state.SnapshotHeldTable {
			return fmt.Sprintf("lacks table %s", n)
		}
	}
	// The metadata tables must be laid out as here.
	meta := state.SnapshotMetaTables
	if present[state.SnapshotHeldTable] {
		meta = append(slices.Clip(meta), state.SnapshotHeldTable)
	}
	for _, n := range meta {
		a, err := state.TableLayout(im.State.Conn(), n)
		if err != nil {
			return "unreadable schema: " + err.Error()
		}
		b, err := state.TableLayout(conn, n)
		if err != nil {
			return "unreadable schema: " + err.Error()
		}
		if a != b {
			return fmt.Sprintf("table %s is laid out as (%s), here as (%s): written by another rowdrop version", n, b, a)
		}
	}
	// Every carried table has the shape its header entry says.
	// A table matched by natural key here is announced keyed by it: read
	// the copy the same way (schema/identity.go).
	ident := map[string][]string{}
	for n := range carried {
		if t := im.Tables[n]; t != nil && t.HasIdentity() {
			ident[n] = t.IdentityColumns()
		}
	}
	have, _, err := schema.Inspect(conn, "main", schema.Filter{Identity: ident})
	if err != nil {
		return "unreadable tables: " + err.Error()
	}
	shapes := map[string]*schema.Table{}
	for _, t := range have {
		shapes[t.Name] = t
	}
	for n, ht := range carried {
		st := shapes[n]
		if st == nil || st.Fingerprint() != ht.Fingerprint {
			return fmt.Sprintf("table %s does not have the shape its header announces", n)
		}
		if l := im.Tables[n]; l != nil {
			snap.Tables[n] = l
		}
	}
	return im.checkSnapshotRows(snap, carried, shapes)
}

// checkSnapshotRows checks the content: the device vector agrees with the
// header, every metadata row names a carried table and decodes, every
// clock is valid and not later than the header's, and every row of a
// carried table has metadata.
func (im *Importer) checkSnapshotRows(snap *Snapshot, carried map[string]rdfile.Table, shapes map[string]*schema.Table) string {
	conn, h := snap.Conn, snap.Header
	var bad string
	applied := map[string]uint64{}
	devs, err := state.ReadDevices(conn)
	if err != nil {
		return "unreadable rowdrop_devices: " + err.Error()
	}
	for _, d := range devs {
		// Applied is read as unsigned: a negative one is past MaxSeq.
		if !rdfile.ValidDeviceID(d.ID) || d.Applied > rdfile.MaxSeq || uint64(d.LastHLC) > h.HLC {
			bad = fmt.Sprintf("device entry %q is malformed", d.ID)
			continue
		}
		applied[d.ID] = d.Applied
		snap.Knows[d.ID] = d.LastHLC
		snap.Names[d.ID] = d.Name
	}
	if bad != "" {
		return bad
	}
	for d, n := range h.Seen {
		if applied[d] != n {
			return fmt.Sprintf("its header says it includes %d file(s) of device %s, its content says %d", n, d, applied[d])
		}
	}
	for d, n := range applied {
		if h.Seen[d] != n {
			return fmt.Sprintf("its content says it includes %d file(s) of device %s, its header says %d", n, d, h.Seen[d])
		}
	}
	okClock := func(c state.Clock) bool {
		if c.IsZero() {
			return true
		}
		if c.HLC > hlc.Timestamp(h.HLC) || !rdfile.ValidDeviceID(c.Dev) {
			return false
		}
		snap.MaxClock = max(snap.MaxClock, c.HLC)
		return true
	}
	err = state.EachRowMeta(conn, func(tbl string, pk []byte, m *state.RowMeta) error {
		t := shapes[tbl]
		if _, ok := carried[tbl]; !ok || t == nil {
			return fmt.Errorf("metadata names table %q, which the snapshot does not carry", tbl)
		}
		key, err := changeset.DecodeKey(pk)
		if err != nil || len(key) != len(t.PKCols()) {
			return fmt.Errorf("a key of table %s is malformed", tbl)
		}
		if m == nil {
			return fmt.Errorf("metadata of table %s unreadable", tbl)
		}
		for _, c := range []state.Clock{m.Ins, m.WMax, m.Del} {
			if !okClock(c) {
				return fmt.Errorf("a row of table %s has a clock later than the snapshot's own or a malformed device", tbl)
			}
		}
		for col, c := range m.Cells {
			if t.ColIndex(col) < 0 || !okClock(c) {
				return fmt.Errorf("a cell clock of table %s names column %q or is malformed", tbl, col)
			}
		}
		if m.Dead != nil {
			if vals, err := changeset.DecodeKey(m.Dead); err != nil || len(vals) != len(t.Columns) {
				return fmt.Errorf("the kept values of a deleted row of table %s are malformed", tbl)
			}
		}
		return nil
	})
	if err != nil {
		return err.Error()
	}
	// Every row of a carried table has metadata that says it is alive:
	// matched set-wise, by the key encoded in SQL (db.KeyFunc).
	if err := db.RegisterKeyFunc(conn); err != nil {
		return "cannot read it: " + err.Error()
	}
	for n := range carried {
		t := shapes[n]
		var key []string
		for _, i := range t.PKCols() {
			key = append(key, "s."+db.Quote(t.Columns[i].Name))
		}
		missing, err := state.RowsWithoutAliveMeta(conn, n, db.KeyFunc+"("+strings.Join(key, ", ")+")")
		if err != nil {
			return fmt.Sprintf("table %s unreadable: %v", n, err)
		}
		if missing {
			return fmt.Sprintf("table %s holds a row without merge metadata, or one its metadata says is deleted", n)
		}
	}
	return checkSnapshotHistory(conn, h, shapes)
}

// checkSnapshotHistory checks the file log and the re-keying records: a
// joiner routes later references by them, so they must be what rowdrop
// itself would have written.
func checkSnapshotHistory(conn *sqlite.Conn, h rdfile.Header, shapes map[string]*schema.Table) string {
	log, err := state.ReadFileLog(conn)
	if err != nil {
		return "unreadable file log: " + err.Error()
	}
	for _, f := range log {
		var seen map[string]uint64
		switch {
		case !rdfile.ValidDeviceID(f.Dev) || f.Seq < 1 || uint64(f.Seq) > h.Seen[f.Dev] || f.HLC < 0 || uint64(f.HLC) > h.HLC:
			return fmt.Sprintf("file log entry %s/%d is outside what the snapshot includes", f.Dev, f.Seq)
		case json.Unmarshal([]byte(f.Seen), &seen) != nil:
			return fmt.Sprintf("file log entry %s/%d has a malformed seen vector", f.Dev, f.Seq)
		}
		for d, n := range seen {
			if !rdfile.ValidDeviceID(d) || n > rdfile.MaxSeq {
				return fmt.Sprintf("file log entry %s/%d has a malformed seen vector", f.Dev, f.Seq)
			}
		}
	}
	rekeys, err := state.ReadRekeys(conn)
	if err != nil {
		return "unreadable re-keying records: " + err.Error()
	}
	for _, r := range rekeys {
		t := shapes[r.Table]
		if t == nil || !rdfile.ValidDeviceID(r.Keeper.Dev) || !rdfile.ValidDeviceID(r.Mover.Dev) || r.Keeper.Compare(r.Mover) >= 0 ||
			uint64(r.Mover.HLC) > h.HLC || !merge.ValidRekey(t, nonNil(r.OldPK), nonNil(r.NewPK), r.Mover) {
			return fmt.Sprintf("re-keying record for table %q is not one rowdrop would write", r.Table)
		}
	}
	return ""
}

// nonNil reads a NULL key as an empty one, as the check always has.
func nonNil(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}
