package state

import (
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"zombiezen.com/go/sqlite"
	"zombiezen.com/go/sqlite/sqlitex"

	"github.com/rowdrop/rowdrop/internal/db"
	"github.com/rowdrop/rowdrop/internal/hlc"
)

func openDir(t *testing.T) *Dir {
	t.Helper()
	d, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

func mustExec(t *testing.T, conn *sqlite.Conn, q string, args ...any) {
	t.Helper()
	if err := db.Exec(conn, q, args...); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}

func TestKeys(t *testing.T) {
	d := openDir(t)
	if v, err := d.Value(KeyRebasedFrom); err != nil || v != "" {
		t.Fatalf("unset value: %q %v", v, err)
	}
	if n, err := d.Int(KeyNextSeq); err != nil || n != 0 {
		t.Fatalf("unset int: %d %v", n, err)
	}
	if err := d.Set(KeyNextSeq, "42"); err != nil {
		t.Fatal(err)
	}
	if err := d.Set(KeyLastGCMS, int64(7)); err != nil {
		t.Fatal(err)
	}
	if n, err := d.Int(KeyNextSeq); err != nil || n != 42 {
		t.Fatalf("next_seq: %d %v", n, err)
	}
	if n, err := d.Int(KeyLastGCMS); err != nil || n != 7 {
		t.Fatalf("last_gc_ms: %d %v", n, err)
	}
	// Written by the old code under its literal name: the same key.
	mustExec(t, d.Conn(), "INSERT INTO rowdrop_state(k,v) VALUES('rebased_from','dev/x')")
	if v, err := d.Value(KeyRebasedFrom); err != nil || v != "dev/x" {
		t.Fatalf("rebased_from: %q %v", v, err)
	}
	if err := d.Set(KeyHLC, "not a number"); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Int(KeyHLC); err == nil || !strings.Contains(err.Error(), "hlc") {
		t.Fatalf("a malformed number must be an error naming the key, got %v", err)
	}
}

// A read that fails is an error, not an empty value that would look like
// "unset" (a fresh device, nothing in flight, nothing applied).
func TestReadErrorsSurface(t *testing.T) {
	d := openDir(t)
	mustExec(t, d.Conn(), "DROP TABLE rowdrop_state")
	mustExec(t, d.Conn(), "DROP TABLE rowdrop_devices")
	mustExec(t, d.Conn(), "DROP TABLE rowdrop_files")
	mustExec(t, d.Conn(), "DROP TABLE rowdrop_forgotten")
	mustExec(t, d.Conn(), "DROP TABLE rowdrop_conflicts")
	checks := map[string]func() error{
		"Value":           func() error { _, err := d.Value(KeyDevice); return err },
		"Int":             func() error { _, err := d.Int(KeyNextSeq); return err },
		"Set":             func() error { return d.Set(KeyNextSeq, 1) },
		"CurrentInflight": func() error { _, err := d.CurrentInflight(); return err },
		"Identity":        func() error { _, err := d.Identity("x"); return err },
		"Applied":         func() error { _, err := d.Applied(); return err },
		"Imported":        func() error { _, err := d.Imported(); return err },
		"DeviceNames":     func() error { _, err := d.DeviceNames(); return err },
		"LastClocks":      func() error { _, err := d.LastClocks(); return err },
		"MarkApplied":     func() error { return d.MarkApplied(AppliedFiles{Dev: "a", Seq: 1}) },
		"Forgotten":       func() error { _, err := d.Forgotten(); return err },
		"Forget":          func() error { return d.Forget("a", 1) },
		"FileStatuses":    func() error { _, err := d.FileStatuses(); return err },
		"RecordFileStatus": func() error {
			return d.RecordFileStatus("a/x", "a", 1, "waiting", "r", 1)
		},
		"ClearFileStatus": func() error { return d.ClearFileStatus("a/x") },
		"OpenConflicts":   func() error { _, err := d.OpenConflicts(); return err },
		"MarkRestored":    func() error { return d.MarkRestored("x", 1) },
	}
	for name, f := range checks {
		if err := f(); err == nil {
			t.Errorf("%s: no error on a missing table", name)
		}
	}
}

func TestInflight(t *testing.T) {
	d := openDir(t)
	if in, err := d.CurrentInflight(); err != nil || in != (Inflight{}) || in.Kind != InflightNone {
		t.Fatalf("fresh: %+v %v", in, err)
	}
	for _, in := range []Inflight{
		{Kind: InflightChangeset, Name: "aaaaaaaaaaaaaaaa/0000000001.rdc"},
		{Kind: InflightSnapshot, Name: "aaaaaaaaaaaaaaaa/snap-0000000001.rds"},
		{Kind: InflightUnique},
	} {
		if err := d.BeginInflight(in); err != nil {
			t.Fatalf("begin %+v: %v", in, err)
		}
		if got, err := d.CurrentInflight(); err != nil || got != in {
			t.Fatalf("current: %+v %v, want %+v", got, err, in)
		}
		if err := d.EndInflight(); err != nil {
			t.Fatal(err)
		}
		if got, err := d.CurrentInflight(); err != nil || got.Kind != InflightNone {
			t.Fatalf("after end: %+v %v", got, err)
		}
	}
	for _, bad := range []Inflight{
		{Kind: InflightChangeset},
		{Kind: InflightChangeset, Name: "a/snap-1.rds"},
		{Kind: InflightChangeset, Name: "unique-clashes"},
		{Kind: InflightSnapshot, Name: "a/1.rdc"},
		{Kind: InflightUnique, Name: "x"},
		{Kind: InflightNone},
	} {
		if err := d.BeginInflight(bad); err == nil {
			t.Errorf("begin %+v: no error", bad)
		}
	}
}

// A state directory written by an older version stored the marker as a
// bare string: a file's path, a snapshot's path or "unique-clashes". It
// reads as the matching kind, and the marker is still stored that way.
func TestInflightOldFormat(t *testing.T) {
	d := openDir(t)
	for stored, want := range map[string]Inflight{
		"aaaaaaaaaaaaaaaa/0000000003.rdc":      {Kind: InflightChangeset, Name: "aaaaaaaaaaaaaaaa/0000000003.rdc"},
		"aaaaaaaaaaaaaaaa/snap-0000000002.rds": {Kind: InflightSnapshot, Name: "aaaaaaaaaaaaaaaa/snap-0000000002.rds"},
		"unique-clashes":                       {Kind: InflightUnique},
		"":                                     {},
	} {
		mustExec(t, d.Conn(), "INSERT INTO rowdrop_state(k,v) VALUES('inflight',?) ON CONFLICT(k) DO UPDATE SET v=excluded.v", stored)
		if got, err := d.CurrentInflight(); err != nil || got != want {
			t.Errorf("stored %q: %+v %v, want %+v", stored, got, err, want)
		}
		if want.Kind == InflightNone {
			continue
		}
		if err := d.BeginInflight(want); err != nil {
			t.Fatal(err)
		}
		if v, err := d.Value("inflight"); err != nil || v != stored {
			t.Errorf("%+v is stored as %q, older versions read %q", want, v, stored)
		}
	}
}

func TestMarkApplied(t *testing.T) {
	d := openDir(t)
	if ok, err := d.Imported(); err != nil || ok {
		t.Fatalf("fresh: imported %v %v", ok, err)
	}
	// A device's own changeset: its name is authoritative, its clock and
	// causal context go to the file log.
	seen := map[string]uint64{"a": 1, "b": 4}
	if err := d.MarkApplied(AppliedFiles{Dev: "a", Name: "laptop", Seq: 1, HLC: 100, AtMS: 5, Seen: seen}); err != nil {
		t.Fatal(err)
	}
	if err := d.MarkApplied(AppliedFiles{Dev: "a", Name: "new name", Seq: 2, HLC: 90, AtMS: 6, Seen: seen}); err != nil {
		t.Fatal(err)
	}
	if ok, err := d.Imported(); err != nil || !ok {
		t.Fatalf("imported %v %v", ok, err)
	}
	f, err := d.FileByClock("a", 90)
	if err != nil || f == nil || f.Seq != 2 || !reflect.DeepEqual(f.Seen, seen) {
		t.Fatalf("file log: %+v %v", f, err)
	}
	// A snapshot: the name fills in only an unknown one, applied never goes
	// back, the file log is left alone, and the records of the changesets
	// it includes go (not those of snapshots, nor of later files).
	for _, r := range []struct {
		path string
		seq  uint64
	}{{"b/0000000002.rdc", 2}, {"b/0000000005.rdc", 5}, {"b/snap-0000000001.rds", 1}, {"a/0000000003.rdc", 3}} {
		if err := d.RecordFileStatus(r.path, r.path[:1], r.seq, "waiting", "why", 1); err != nil {
			t.Fatal(err)
		}
	}
	for _, a := range []AppliedFiles{
		{Dev: "a", Name: "second-hand", Seq: 1, HLC: 120, AtMS: 7, FromSnapshot: true},
		{Dev: "b", Name: "phone", Seq: 4, HLC: 50, AtMS: 7, FromSnapshot: true},
	} {
		if err := d.MarkApplied(a); err != nil {
			t.Fatal(err)
		}
	}
	applied, err := d.Applied()
	if err != nil || !reflect.DeepEqual(applied, map[string]uint64{"a": 2, "b": 4}) {
		t.Fatalf("applied: %v %v", applied, err)
	}
	names, err := d.DeviceNames()
	if err != nil || !reflect.DeepEqual(names, map[string]string{"a": "new name", "b": "phone"}) {
		t.Fatalf("names: %v %v", names, err)
	}
	clocks, err := d.LastClocks()
	if err != nil || !reflect.DeepEqual(clocks, map[string]hlc.Timestamp{"a": 120, "b": 50}) {
		t.Fatalf("last clocks: %v %v", clocks, err)
	}
	if f, err := d.FileByClock("b", 50); err != nil || f != nil {
		t.Fatalf("a snapshot wrote the file log: %+v %v", f, err)
	}
	var left []string
	fs, err := d.FileStatuses()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fs {
		left = append(left, f.Path)
	}
	if want := []string{"a/0000000003.rdc", "b/0000000005.rdc", "b/snap-0000000001.rds"}; !reflect.DeepEqual(left, want) {
		t.Fatalf("records left: %v, want %v", left, want)
	}
	// A device recorded with nothing applied counts as recorded, not as
	// imported.
	d2 := openDir(t)
	if err := d2.MarkApplied(AppliedFiles{Dev: "c", Seq: 0, FromSnapshot: true}); err != nil {
		t.Fatal(err)
	}
	if applied, err := d2.Applied(); err != nil || !reflect.DeepEqual(applied, map[string]uint64{"c": 0}) {
		t.Fatalf("applied: %v %v", applied, err)
	}
	if ok, err := d2.Imported(); err != nil || ok {
		t.Fatalf("imported %v %v", ok, err)
	}
}

func TestForgotten(t *testing.T) {
	d := openDir(t)
	if got, err := d.Forgotten(); err != nil || got == nil || len(got) != 0 {
		t.Fatalf("fresh: %#v %v", got, err)
	}
	for _, id := range []string{"b", "a", "b"} {
		if err := d.Forget(id, 1); err != nil {
			t.Fatal(err)
		}
	}
	if got, err := d.Forgotten(); err != nil || !reflect.DeepEqual(got, []string{"a", "b"}) {
		t.Fatalf("forgotten: %v %v", got, err)
	}
}

func TestFileStatuses(t *testing.T) {
	d := openDir(t)
	if err := d.RecordFileStatus("b/0000000002.rdc", "b", 2, "waiting", "first", 10); err != nil {
		t.Fatal(err)
	}
	if err := d.RecordFileStatus("a/0000000001.rdc", "a", 1, "broken", "bad", 11); err != nil {
		t.Fatal(err)
	}
	if err := d.RecordFileStatus("b/0000000002.rdc", "b", 2, "held", "second", 20); err != nil {
		t.Fatal(err)
	}
	if err := d.RewordFileStatus("b/0000000002.rdc", "waiting", "not applied: status differs"); err != nil {
		t.Fatal(err)
	}
	if err := d.RewordFileStatus("a/0000000001.rdc", "broken", "reworded"); err != nil {
		t.Fatal(err)
	}
	got, err := d.FileStatuses()
	want := []FileStatus{
		{Path: "a/0000000001.rdc", Dev: "a", Seq: 1, Status: "broken", Reason: "reworded", FirstMS: 11, LastMS: 11},
		{Path: "b/0000000002.rdc", Dev: "b", Seq: 2, Status: "held", Reason: "second", FirstMS: 10, LastMS: 20},
	}
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("statuses:\n%+v %v\nwant\n%+v", got, err, want)
	}
	if err := d.ClearFileStatus("a/0000000001.rdc"); err != nil {
		t.Fatal(err)
	}
	if got, err := d.FileStatuses(); err != nil || len(got) != 1 || got[0].Path != "b/0000000002.rdc" {
		t.Fatalf("after clear: %+v %v", got, err)
	}
}

func TestConflictCountAndRestore(t *testing.T) {
	d := openDir(t)
	// The same two writes logged twice (a merge run again) are one entry;
	// another pair of writes is another.
	for _, c := range []*Conflict{
		{AtMS: 1, Kind: "cell", Table: "notes", PK: []byte{1}, PKText: "1", Cols: `["body"]`, WinnerDev: "a", WinnerHLC: 5, LoserDev: "b", LoserHLC: 4},
		{AtMS: 1, Kind: "cell", Table: "notes", PK: []byte{1}, PKText: "1", Cols: `["body"]`, WinnerDev: "a", WinnerHLC: 5, LoserDev: "b", LoserHLC: 4},
		{AtMS: 2, Kind: "cell", Table: "notes", PK: []byte{1}, PKText: "1", Cols: `["body"]`, WinnerDev: "a", WinnerHLC: 7, LoserDev: "b", LoserHLC: 4},
	} {
		if err := d.AddConflict(c); err != nil {
			t.Fatal(err)
		}
	}
	if n, err := d.OpenConflicts(); err != nil || n != 2 {
		t.Fatalf("open: %d %v", n, err)
	}
	cs, err := d.Conflicts(ConflictFilter{})
	if err != nil || len(cs) != 2 {
		t.Fatalf("conflicts: %v %v", cs, err)
	}
	if err := d.MarkRestored(cs[0].ID, 99); err != nil {
		t.Fatal(err)
	}
	if n, err := d.OpenConflicts(); err != nil || n != 1 {
		t.Fatalf("open after restore: %d %v", n, err)
	}
	if c, err := d.Conflict(cs[0].ID); err != nil || c.Restored != 99 {
		t.Fatalf("restored: %+v %v", c, err)
	}
	if c, err := d.Conflict(strconv.FormatInt(cs[1].Seq, 10)); err != nil || c.ID != cs[1].ID {
		t.Fatalf("by local number %d: %+v %v", cs[1].Seq, c, err)
	}
	if err := d.DismissConflict(cs[1].ID, 5); err != nil {
		t.Fatal(err)
	}
	if got, err := d.Conflicts(ConflictFilter{}); err != nil || len(got) != 1 || got[0].ID != cs[0].ID {
		t.Fatalf("after dismiss: %+v %v", got, err)
	}
	if n, err := d.PruneConflicts(2); err != nil || n != 1 {
		t.Fatalf("prune before 2: %d %v", n, err)
	}
	if got, err := d.Conflicts(ConflictFilter{Dismissed: true}); err != nil || len(got) != 1 || got[0].AtMS != 2 {
		t.Fatalf("after prune: %+v %v", got, err)
	}
}

// The snapshot functions work on any connection holding the metadata
// tables: here a second state directory's database stands in for a
// snapshot copy.
func TestSnapshotMeta(t *testing.T) {
	d := openDir(t)
	conn := d.Conn()
	m, err := NewMetaOn(conn)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range []struct {
		tbl string
		pk  byte
	}{{"notes", 1}, {"notes", 2}, {"tags", 1}} {
		if err := m.Put(r.tbl, []byte{r.pk}, &RowMeta{Ins: Clock{10, "a"}, WMax: Clock{10, "a"}}); err != nil {
			t.Fatal(err)
		}
	}
	m.Close()
	for _, a := range []AppliedFiles{{Dev: "a", Name: "A", Seq: 3, HLC: 10}, {Dev: "b", Name: "B", Seq: 1, HLC: 5}, {Dev: "c", FromSnapshot: true}} {
		if err := d.MarkApplied(a); err != nil {
			t.Fatal(err)
		}
	}
	if err := d.AddRekey(&Rekey{Table: "notes", OldPK: []byte{1}, NewPK: []byte{9}, Keeper: Clock{1, "a"}, Mover: Clock{2, "b"}}); err != nil {
		t.Fatal(err)
	}
	if n, err := CountRowMeta(conn); err != nil || n != 3 {
		t.Fatalf("count: %d %v", n, err)
	}
	self := Device{ID: "a", Name: "me", Applied: 7, LastHLC: 30, LastAppliedMS: 1}
	if err := StripSnapshotMeta(conn, []string{"notes"}, self); err != nil {
		t.Fatal(err)
	}
	var keys []string
	if err := EachRowKey(conn, func(tbl string, pk []byte) error {
		keys = append(keys, tbl+string(rune('0'+pk[0])))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	// Row metadata of tables the copy does not carry goes.
	if len(keys) != 2 || keys[0] != "notes1" || keys[1] != "notes2" {
		t.Fatalf("rows after strip: %v", keys)
	}
	stop := errors.New("stop")
	if err := EachRowKey(conn, func(string, []byte) error { return stop }); err != stop {
		t.Fatalf("a callback's error must come back as is, got %v", err)
	}
	devs, err := ReadDevices(conn)
	if err != nil {
		t.Fatal(err)
	}
	if want := []Device{self, {ID: "b", Name: "B", Applied: 1, LastHLC: 5}}; !reflect.DeepEqual(devs, want) {
		t.Fatalf("devices after strip: %+v, want %+v", devs, want)
	}
	log, err := ReadFileLog(conn)
	if err != nil || len(log) != 2 || log[0] != (FileLogRow{Dev: "a", Seq: 3, HLC: 10, Seen: "{}"}) {
		t.Fatalf("file log: %+v %v", log, err)
	}
	rk, err := ReadRekeys(conn)
	if err != nil || len(rk) != 1 || !reflect.DeepEqual(rk[0].NewPK, []byte{9}) || rk[0].Mover != (Clock{2, "b"}) {
		t.Fatalf("rekeys: %+v %v", rk, err)
	}
	for _, n := range SnapshotMetaTables {
		if !IsSnapshotMetaTable(n) {
			t.Errorf("%s is not a snapshot table", n)
		}
		if _, err := TableLayout(conn, n); err != nil {
			t.Error(err)
		}
	}
	if IsSnapshotMetaTable("rowdrop_state") || IsSnapshotMetaTable("rowdrop_conflicts") {
		t.Error("private tables must not travel in a snapshot")
	}
	other := openDir(t)
	for _, n := range SnapshotMetaTables {
		a, _ := TableLayout(conn, n)
		b, _ := TableLayout(other.Conn(), n)
		if a != b || a == "" {
			t.Errorf("layout of %s: %q vs %q", n, a, b)
		}
	}
}

// Errors on a snapshot connection (a missing table) surface.
func TestSnapshotReadErrors(t *testing.T) {
	conn, err := sqlite.OpenConn(filepath.Join(t.TempDir(), "empty.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if err := sqlitex.ExecuteTransient(conn, "CREATE TABLE x(a)", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := CountRowMeta(conn); err == nil {
		t.Error("CountRowMeta: no error")
	}
	if err := EachRowKey(conn, func(string, []byte) error { return nil }); err == nil {
		t.Error("EachRowKey: no error")
	}
	if _, err := ReadDevices(conn); err == nil {
		t.Error("ReadDevices: no error")
	}
	if _, err := ReadFileLog(conn); err == nil {
		t.Error("ReadFileLog: no error")
	}
	if _, err := ReadRekeys(conn); err == nil {
		t.Error("ReadRekeys: no error")
	}
	if err := StripSnapshotMeta(conn, nil, Device{ID: "a"}); err == nil {
		t.Error("StripSnapshotMeta: no error")
	}
}

// The in-flight key journal: a committed batch's keys are written; a
// batch without its commit record is pending, with the row sums it was
// journaled with, and a journal line from before sums reads without one.
func TestInflightKeysJournal(t *testing.T) {
	d := openDir(t)
	const name = "aaaaaaaaaaaaaaaa/0000000001.rdc"
	if err := d.StartInflightKeys(name); err != nil {
		t.Fatal(err)
	}
	k1, k2, k3 := InflightKeyText("t", []byte("1")), InflightKeyText("t", []byte("2")), InflightKeyText("t", []byte("3"))
	done, err := d.IntendInflightKeys(1, []string{k1}, []string{"s1"})
	if err != nil {
		t.Fatal(err)
	}
	if err := done(nil); err != nil {
		t.Fatal(err)
	}
	if _, err := d.IntendInflightKeys(2, []string{k2, k3}, []string{"s2", ""}); err != nil {
		t.Fatal(err)
	}
	// A line as versions before row sums wrote it.
	f, err := os.OpenFile(d.inflightKeysPath(), os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(f, "I 3 %s ?\nT 3 ?\n", hex.EncodeToString([]byte(InflightKeyText("t", []byte("4")))))
	f.Close()
	j, err := d.InflightWritten(name)
	if err != nil || j == nil {
		t.Fatalf("journal: %+v %v", j, err)
	}
	if !j.Written[k1] || len(j.Written) != 1 {
		t.Errorf("written: %v, want only %q", j.Written, k1)
	}
	if len(j.Pending) != 2 || len(j.Pending[0]) != 2 || len(j.Pending[1]) != 1 {
		t.Fatalf("pending: %q", j.Pending)
	}
	if j.Sums[k2] != "s2" || len(j.Sums) != 1 {
		t.Errorf("sums: %v, want only %q: s2", j.Sums, k2)
	}
	if other, err := d.InflightWritten("bbbbbbbbbbbbbbbb/0000000001.rdc"); err != nil || other != nil {
		t.Errorf("another file's journal: %+v %v", other, err)
	}
}
