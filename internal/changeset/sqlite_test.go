package changeset

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"zombiezen.com/go/sqlite"
	"zombiezen.com/go/sqlite/sqlitex"
)

// testSchema covers every value kind, a composite primary key declared out
// of column order, a WITHOUT ROWID table with a three-column key, and a
// table that is never changed (so it must not appear in changesets).
const testSchema = `
CREATE TABLE kinds(id INTEGER PRIMARY KEY, i INTEGER, r REAL, t TEXT, b BLOB, n);
CREATE TABLE comp(a TEXT, b INTEGER, c REAL, d, PRIMARY KEY(b, a));
CREATE TABLE wr(x, y BLOB, z TEXT, w, PRIMARY KEY(z, x, y)) WITHOUT ROWID;
CREATE TABLE untouched(k PRIMARY KEY, v);
`

var testTables = []string{"kinds", "comp", "wr", "untouched"}

// baseData is loaded into both the old and the new database.
const baseData = `
INSERT INTO kinds VALUES(1, -1, 1.5, 'hello', x'00ff', NULL);
INSERT INTO kinds VALUES(2, 9223372036854775807, -2.25, '日本語 🎉 ünïcödé', x'', 3);
INSERT INTO kinds VALUES(3, -9223372036854775808, 1e308, 'gone', zeroblob(100), 'x');
INSERT INTO kinds VALUES(4, 0, 0.0, '', x'01', 2.5);
INSERT INTO kinds VALUES(5, 7, 1e-300, 'it''s', x'0a0b', x'ff');
INSERT INTO comp VALUES('a', 1, 1.0, 'one');
INSERT INTO comp VALUES('b', 1, 2.0, 'two');
INSERT INTO comp VALUES('a', 2, 3.0, NULL);
INSERT INTO comp VALUES('ключ', -5, 4.0, x'00');
INSERT INTO wr VALUES(1, x'01', 'p', 'q');
INSERT INTO wr VALUES(2, x'02', 'p', NULL);
INSERT INTO wr VALUES(1.5, x'03', 'r', 3);
INSERT INTO untouched VALUES(1, 1);
`

// newData turns a copy of baseData into the "new" state.
const newData = `
UPDATE kinds SET i = 42, t = 'changed' WHERE id = 1;
UPDATE kinds SET n = NULL WHERE id = 2;
DELETE FROM kinds WHERE id = 3;
UPDATE kinds SET r = 9e999, b = NULL WHERE id = 4;
UPDATE kinds SET r = -9e999, n = -9223372036854775808 WHERE id = 5;
INSERT INTO kinds VALUES(6, NULL, NULL, NULL, NULL, NULL);
INSERT INTO kinds VALUES(-8, -123456789012, 3.141592653589793, 'ẞ🙂', x'deadbeef', 1);
UPDATE comp SET c = 10.5, d = 'uno' WHERE a = 'a' AND b = 1;
DELETE FROM comp WHERE a = 'b' AND b = 1;
INSERT INTO comp VALUES('z', 99, NULL, 'new');
UPDATE comp SET d = 'новый' WHERE b = -5;
UPDATE wr SET w = 'changed' WHERE z = 'p' AND x = 1;
DELETE FROM wr WHERE z = 'r';
INSERT INTO wr VALUES('text-x', x'', 'p', x'0102');
`

// bigData adds a 1 MiB TEXT and a blob larger than the read chunk.
const bigData = `
INSERT INTO kinds VALUES(7, 1, -0.5, printf('%.*c', 1048576, 'x'), randomblob(70000), 'big');
UPDATE kinds SET t = printf('%.*c', 1048576, 'y') || 'é' WHERE id = 1;
`

func openDB(t testing.TB, path string, script string) *sqlite.Conn {
	t.Helper()
	conn, err := sqlite.OpenConn(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	if err := sqlitex.ExecScript(conn, script); err != nil {
		t.Fatalf("script: %v", err)
	}
	return conn
}

// diffChangeset returns the changeset that turns the database at oldPath into
// newConn's main database, computed by SQLite (sqlite3session_diff).
func diffChangeset(t testing.TB, newConn *sqlite.Conn, oldPath string, tables []string) []byte {
	t.Helper()
	if err := sqlitex.ExecuteTransient(newConn, "ATTACH DATABASE ? AS old", &sqlitex.ExecOptions{Args: []any{oldPath}}); err != nil {
		t.Fatal(err)
	}
	defer sqlitex.ExecuteTransient(newConn, "DETACH DATABASE old", nil)
	s, err := newConn.CreateSession("main")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Delete()
	for _, tb := range tables {
		if err := s.Attach(tb); err != nil {
			t.Fatal(err)
		}
		if err := s.Diff("old", tb); err != nil {
			t.Fatal(err)
		}
	}
	var buf bytes.Buffer
	if err := s.WriteChangeset(&buf); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// recordChangeset records a session on conn while running script and
// returns SQLite's changeset (and patchset).
func recordChangeset(t testing.TB, conn *sqlite.Conn, script string) (changeset, patchset []byte) {
	t.Helper()
	s, err := conn.CreateSession("main")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Delete()
	if err := s.Attach(""); err != nil {
		t.Fatal(err)
	}
	if err := sqlitex.ExecScript(conn, script); err != nil {
		t.Fatal(err)
	}
	var cs, ps bytes.Buffer
	if err := s.WriteChangeset(&cs); err != nil {
		t.Fatal(err)
	}
	if err := s.WritePatchset(&ps); err != nil {
		t.Fatal(err)
	}
	return cs.Bytes(), ps.Bytes()
}

// fromSQLite converts a value returned by zombiezen's ChangesetIterator.
// The iterator returns a Value with a nil sqlite3_value pointer for an
// undefined column, which Type() reports as NULL; the only way to tell it
// from a real NULL is that pointer, read here via reflection.
func fromSQLite(v sqlite.Value) Value {
	if reflect.ValueOf(v).FieldByName("ptrOrType").Uint() == 0 {
		return Value{}
	}
	switch v.Type() {
	case sqlite.TypeInteger:
		return Int(v.Int64())
	case sqlite.TypeFloat:
		return Float(v.Float())
	case sqlite.TypeText:
		return Text(v.Text())
	case sqlite.TypeBlob:
		// Value.Blob aliases SQLite's memory (modernc's libc.GoBytes does
		// not copy), which is freed by the iterator's next step.
		return Blob(bytes.Clone(v.Blob()))
	case sqlite.TypeNull:
		return Null()
	}
	panic(fmt.Sprintf("unexpected type %v", v.Type()))
}

// sqliteChanges decodes data with SQLite's own changeset iterator. PK holds
// 0/1 flags because sqlite3changeset_pk only exposes booleans.
func sqliteChanges(t testing.TB, data []byte) ([]*Change, error) {
	t.Helper()
	iter, err := sqlite.NewChangesetIterator(bytes.NewReader(data))
	if err != nil {
		return nil, err
	}
	defer iter.Close()
	var out []*Change
	for {
		ok, err := iter.Next()
		if err != nil {
			return out, err
		}
		if !ok {
			return out, nil
		}
		op, err := iter.Operation()
		if err != nil {
			return out, err
		}
		pk, err := iter.PrimaryKey()
		if err != nil {
			return out, err
		}
		tb := &Table{Name: op.TableName, PK: make([]byte, len(pk))}
		for i, b := range pk {
			if b {
				tb.PK[i] = 1
			}
		}
		c := &Change{Table: tb, Indirect: op.Indirect}
		switch op.Type {
		case sqlite.OpInsert:
			c.Op = OpInsert
		case sqlite.OpDelete:
			c.Op = OpDelete
		case sqlite.OpUpdate:
			c.Op = OpUpdate
		default:
			t.Fatalf("unexpected op %v", op.Type)
		}
		if c.Op != OpInsert {
			for i := range op.NumColumns {
				v, err := iter.Old(i)
				if err != nil {
					return out, err
				}
				c.Old = append(c.Old, fromSQLite(v))
			}
		}
		if c.Op != OpDelete {
			for i := range op.NumColumns {
				v, err := iter.New(i)
				if err != nil {
					return out, err
				}
				c.New = append(c.New, fromSQLite(v))
			}
		}
		out = append(out, c)
	}
}

// decodeAll reads every change of data with Limits lim.
func decodeAll(data []byte, lim Limits) ([]*Change, error) {
	r := NewReader(bytes.NewReader(data), lim)
	var out []*Change
	for {
		c, err := r.Next()
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return out, err
		}
		out = append(out, c)
	}
}

func encodeAll(t testing.TB, changes []*Change) []byte {
	t.Helper()
	var buf bytes.Buffer
	w := NewWriter(&buf)
	for _, c := range changes {
		if err := w.Write(c); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func pkFlags(pk []byte) []byte {
	out := make([]byte, len(pk))
	for i, b := range pk {
		if b != 0 {
			out[i] = 1
		}
	}
	return out
}

func valuesEqual(a, b []Value) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !a[i].Equal(b[i]) {
			return false
		}
	}
	return true
}

// diffChange describes how got differs from want, or returns "".
// If flagsOnly, PK bytes are compared as booleans.
func diffChange(got, want *Change, flagsOnly bool) string {
	var d []string
	gpk, wpk := got.Table.PK, want.Table.PK
	if flagsOnly {
		gpk, wpk = pkFlags(gpk), pkFlags(wpk)
	}
	if got.Table.Name != want.Table.Name || !bytes.Equal(gpk, wpk) {
		d = append(d, fmt.Sprintf("table %q %v, want %q %v", got.Table.Name, gpk, want.Table.Name, wpk))
	}
	if got.Op != want.Op {
		d = append(d, fmt.Sprintf("op %v, want %v", got.Op, want.Op))
	}
	if got.Indirect != want.Indirect {
		d = append(d, fmt.Sprintf("indirect %v, want %v", got.Indirect, want.Indirect))
	}
	if !valuesEqual(got.Old, want.Old) {
		d = append(d, fmt.Sprintf("old %v, want %v", got.Old, want.Old))
	}
	if !valuesEqual(got.New, want.New) {
		d = append(d, fmt.Sprintf("new %v, want %v", got.New, want.New))
	}
	return strings.Join(d, "; ")
}

func compareChanges(t testing.TB, got, want []*Change, flagsOnly bool) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got %d changes, want %d", len(got), len(want))
	}
	for i := range got {
		if d := diffChange(got[i], want[i], flagsOnly); d != "" {
			t.Errorf("change %d (%v %s): %s", i, want[i].Op, want[i].Table.Name, d)
		}
	}
}

// dumpTable renders every row of a table, sorted, with exact float bits.
func dumpTable(t testing.TB, conn *sqlite.Conn, table string) []string {
	t.Helper()
	var rows []string
	err := sqlitex.ExecuteTransient(conn, "SELECT * FROM "+table, &sqlitex.ExecOptions{
		ResultFunc: func(stmt *sqlite.Stmt) error {
			var cols []string
			for i := range stmt.ColumnCount() {
				switch stmt.ColumnType(i) {
				case sqlite.TypeInteger:
					cols = append(cols, fmt.Sprintf("i:%d", stmt.ColumnInt64(i)))
				case sqlite.TypeFloat:
					cols = append(cols, fmt.Sprintf("f:%x", math.Float64bits(stmt.ColumnFloat(i))))
				case sqlite.TypeText:
					cols = append(cols, fmt.Sprintf("t:%q", stmt.ColumnText(i)))
				case sqlite.TypeBlob:
					b := make([]byte, stmt.ColumnLen(i))
					stmt.ColumnBytes(i, b)
					cols = append(cols, fmt.Sprintf("b:%x", b))
				default:
					cols = append(cols, "null")
				}
			}
			rows = append(rows, strings.Join(cols, ","))
			return nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(rows)
	return rows
}

func assertSameTables(t testing.TB, got, want *sqlite.Conn, tables []string) {
	t.Helper()
	for _, tb := range tables {
		g, w := dumpTable(t, got, tb), dumpTable(t, want, tb)
		if !reflect.DeepEqual(g, w) {
			t.Errorf("table %s differs:\n got  %d rows %.500q\n want %d rows %.500q", tb, len(g), g, len(w), w)
		}
	}
}

func applyChangeset(t testing.TB, conn *sqlite.Conn, data []byte) {
	t.Helper()
	var conflicts []string
	err := conn.ApplyChangeset(bytes.NewReader(data), nil, func(ct sqlite.ConflictType, _ *sqlite.ChangesetIterator) sqlite.ConflictAction {
		conflicts = append(conflicts, ct.String())
		return sqlite.ChangesetAbort
	})
	if err != nil {
		t.Fatalf("ApplyChangeset: %v (conflicts %v)", err, conflicts)
	}
	if len(conflicts) > 0 {
		t.Fatalf("conflicts: %v", conflicts)
	}
}

// fixture holds a real SQLite diff changeset between two databases.
type fixture struct {
	dir              string
	oldPath, newPath string
	oldConn, newConn *sqlite.Conn
	data             []byte
}

// newFixture builds the fixture; big adds bigData's large values.
func newFixture(t testing.TB, big bool) *fixture {
	t.Helper()
	f := &fixture{dir: t.TempDir()}
	f.oldPath = filepath.Join(f.dir, "old.db")
	f.newPath = filepath.Join(f.dir, "new.db")
	f.oldConn = openDB(t, f.oldPath, testSchema+baseData)
	changes := newData
	if big {
		changes += bigData
	}
	f.newConn = openDB(t, f.newPath, testSchema+baseData+changes)
	f.data = diffChangeset(t, f.newConn, f.oldPath, testTables)
	return f
}

func TestDiffRoundTripAgainstSQLite(t *testing.T) {
	f := newFixture(t, true)
	t.Logf("changeset: %d bytes", len(f.data))
	got, err := decodeAll(f.data, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	want, err := sqliteChanges(t, f.data)
	if err != nil {
		t.Fatal(err)
	}
	compareChanges(t, got, want, true)

	// Exercise every op on every table, and check the header facts.
	seen := map[string]bool{}
	for _, c := range got {
		seen[c.Table.Name+"/"+c.Op.String()] = true
	}
	for _, tb := range []string{"kinds", "comp", "wr"} {
		for _, op := range []Op{OpInsert, OpUpdate, OpDelete} {
			if !seen[tb+"/"+op.String()] {
				t.Errorf("no %v on %s in changeset", op, tb)
			}
		}
	}
	if seen["untouched/INSERT"] || seen["untouched/UPDATE"] || seen["untouched/DELETE"] {
		t.Error("unchanged table appears in changeset")
	}
	wantPK := map[string][]byte{
		"kinds": {1, 0, 0, 0, 0, 0},
		"comp":  {2, 1, 0, 0}, // PRIMARY KEY(b, a): a is 2nd, b is 1st
		"wr":    {2, 3, 1, 0}, // PRIMARY KEY(z, x, y)
	}
	wantPKCols := map[string][]int{"kinds": {0}, "comp": {1, 0}, "wr": {2, 0, 1}}
	for _, c := range got {
		if pk := wantPK[c.Table.Name]; !bytes.Equal(c.Table.PK, pk) {
			t.Errorf("table %s PK bytes %v, want %v", c.Table.Name, c.Table.PK, pk)
		}
		if cols := c.Table.PKCols(); !reflect.DeepEqual(cols, wantPKCols[c.Table.Name]) {
			t.Errorf("table %s PKCols %v, want %v", c.Table.Name, cols, wantPKCols[c.Table.Name])
		}
	}

	// Byte-identical re-encoding.
	again := encodeAll(t, got)
	if !bytes.Equal(again, f.data) {
		t.Fatalf("re-encoded changeset differs from SQLite's: %d vs %d bytes, first difference at %d",
			len(again), len(f.data), firstDiff(again, f.data))
	}
}

func firstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

func TestKeyOfDecodedChanges(t *testing.T) {
	f := newFixture(t, false)
	got, err := decodeAll(f.data, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range got {
		if c.Table.Name != "comp" {
			continue
		}
		k := c.Key()
		// comp's key is (b, a): an INTEGER then a TEXT.
		if len(k) != 2 || k[0].Kind != KindInteger || k[1].Kind != KindText {
			t.Errorf("comp %v key = %v", c.Op, k)
		}
		dk, err := DecodeKey(EncodeKey(k))
		if err != nil || !valuesEqual(dk, k) {
			t.Errorf("key round trip %v -> %v, %v", k, dk, err)
		}
	}
}

func TestRecordedSessionWithIndirectChanges(t *testing.T) {
	dir := t.TempDir()
	conn := openDB(t, filepath.Join(dir, "db"), testSchema+baseData+`
CREATE TABLE log(id INTEGER PRIMARY KEY, what TEXT);
CREATE TRIGGER kinds_ins AFTER INSERT ON kinds BEGIN INSERT INTO log(what) VALUES('ins ' || new.id); END;
CREATE TRIGGER kinds_del AFTER DELETE ON kinds BEGIN DELETE FROM log WHERE what = 'ins ' || old.id; END;
`)
	cs, ps := recordChangeset(t, conn, newData+bigData)
	got, err := decodeAll(cs, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	want, err := sqliteChanges(t, cs)
	if err != nil {
		t.Fatal(err)
	}
	compareChanges(t, got, want, true)
	indirect := 0
	for _, c := range got {
		if c.Indirect {
			indirect++
			if c.Table.Name != "log" {
				t.Errorf("indirect change on %s", c.Table.Name)
			}
		}
	}
	if indirect == 0 {
		t.Error("no indirect changes decoded")
	}
	if again := encodeAll(t, got); !bytes.Equal(again, cs) {
		t.Fatalf("re-encoded changeset differs from SQLite's at byte %d", firstDiff(again, cs))
	}

	// The patchset of the same session is refused.
	_, err = decodeAll(ps, Limits{})
	if !errors.Is(err, ErrPatchset) {
		t.Fatalf("patchset: err = %v, want ErrPatchset", err)
	}
}

func TestWriterOutputAppliesInSQLite(t *testing.T) {
	f := newFixture(t, true)
	changes, err := decodeAll(f.data, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	// Give each change its own *Table copy so the Writer has to detect
	// group boundaries by content.
	for _, c := range changes {
		tb := *c.Table
		c.Table = &tb
	}
	data := encodeAll(t, changes)

	target := openDB(t, filepath.Join(f.dir, "target.db"), testSchema+baseData)
	applyChangeset(t, target, data)
	assertSameTables(t, target, f.newConn, testTables)
}

func TestHandBuiltChangesetApplies(t *testing.T) {
	dir := t.TempDir()
	target := openDB(t, filepath.Join(dir, "target.db"), testSchema+baseData)
	want := openDB(t, filepath.Join(dir, "want.db"), testSchema+baseData+`
INSERT INTO kinds VALUES(100, -7, 0.25, 'héllo', x'c0ffee', NULL);
UPDATE kinds SET t = 'patched', n = 1.5 WHERE id = 2;
DELETE FROM kinds WHERE id = 5;
INSERT INTO comp VALUES('k', 7, NULL, 'seven');
UPDATE comp SET d = 'TWO' WHERE a = 'b' AND b = 1;
DELETE FROM wr WHERE z = 'p' AND x = 2;
INSERT INTO kinds VALUES(101, 1, 2.0, 'after', x'', 0);
`)
	kinds := &Table{Name: "kinds", PK: []byte{1, 0, 0, 0, 0, 0}}
	comp := &Table{Name: "comp", PK: []byte{2, 1, 0, 0}}
	wr := &Table{Name: "wr", PK: []byte{2, 3, 1, 0}}
	u := Value{}
	changes := []*Change{
		{Table: kinds, Op: OpInsert, New: []Value{Int(100), Int(-7), Float(0.25), Text("héllo"), Blob([]byte{0xc0, 0xff, 0xee}), Null()}},
		{Table: kinds, Op: OpUpdate,
			Old: []Value{Int(2), u, u, Text("日本語 🎉 ünïcödé"), u, Int(3)},
			New: []Value{u, u, u, Text("patched"), u, Float(1.5)}},
		{Table: kinds, Op: OpDelete, Old: []Value{Int(5), Int(7), Float(1e-300), Text("it's"), Blob([]byte{10, 11}), Blob([]byte{0xff})}},
		{Table: comp, Op: OpInsert, New: []Value{Text("k"), Int(7), Null(), Text("seven")}},
		{Table: comp, Op: OpUpdate, Old: []Value{Text("b"), Int(1), u, Text("two")}, New: []Value{u, u, u, Text("TWO")}},
		{Table: wr, Op: OpDelete, Old: []Value{Int(2), Blob([]byte{2}), Text("p"), Null()}},
		// Back to an earlier table: needs a second header for kinds.
		{Table: &Table{Name: "kinds", PK: []byte{1, 0, 0, 0, 0, 0}}, Op: OpInsert, New: []Value{Int(101), Int(1), Float(2), Text("after"), Blob(nil), Int(0)}},
	}
	data := encodeAll(t, changes)
	if n := bytes.Count(data, []byte("T\x06\x01\x00\x00\x00\x00\x00kinds\x00")); n != 2 {
		t.Errorf("kinds header written %d times, want 2", n)
	}
	// SQLite's iterator must agree with what we meant to write.
	sq, err := sqliteChanges(t, data)
	if err != nil {
		t.Fatal(err)
	}
	compareChanges(t, changes, sq, true)
	applyChangeset(t, target, data)
	assertSameTables(t, target, want, testTables)
}

// TestPKFlagsMatterToSQLite shows why Table.PK keeps SQLite's bytes: SQLite
// compares the header's PK bytes with the target table's key positions, and
// silently skips a composite-key table whose header uses 0/1 flags.
func TestPKFlagsMatterToSQLite(t *testing.T) {
	dir := t.TempDir()
	target := openDB(t, filepath.Join(dir, "target.db"), testSchema+baseData)
	insert := func(pk []byte) []byte {
		return encodeAll(t, []*Change{{Table: &Table{Name: "comp", PK: pk}, Op: OpInsert, New: []Value{Text("k"), Int(7), Null(), Text("seven")}}})
	}
	abort := func(sqlite.ConflictType, *sqlite.ChangesetIterator) sqlite.ConflictAction {
		return sqlite.ChangesetAbort
	}
	if err := target.ApplyChangeset(bytes.NewReader(insert([]byte{1, 1, 0, 0})), nil, abort); err != nil {
		t.Fatal(err)
	}
	if n := len(dumpTable(t, target, "comp")); n != 4 {
		t.Errorf("0/1 PK flags: comp has %d rows; expected SQLite to skip the table (4 rows)", n)
	}
	applyChangeset(t, target, insert([]byte{2, 1, 0, 0}))
	if n := len(dumpTable(t, target, "comp")); n != 5 {
		t.Errorf("positional PK bytes: comp has %d rows, want 5", n)
	}
}

func TestWriterRejectsInvalidChanges(t *testing.T) {
	tb := &Table{Name: "t", PK: []byte{1, 0}}
	u := Value{}
	cases := map[string]*Change{
		"nil table":           {Op: OpInsert, New: []Value{Int(1), Int(2)}},
		"no columns":          {Table: &Table{Name: "t"}, Op: OpInsert},
		"no pk":               {Table: &Table{Name: "t", PK: []byte{0, 0}}, Op: OpInsert, New: []Value{Int(1), Int(2)}},
		"nul in name":         {Table: &Table{Name: "a\x00b", PK: []byte{1}}, Op: OpInsert, New: []Value{Int(1)}},
		"bad op":              {Table: tb, Op: 7, New: []Value{Int(1), Int(2)}},
		"short new":           {Table: tb, Op: OpInsert, New: []Value{Int(1)}},
		"insert with old":     {Table: tb, Op: OpInsert, Old: []Value{Int(1), Int(2)}, New: []Value{Int(1), Int(2)}},
		"delete with new":     {Table: tb, Op: OpDelete, Old: []Value{Int(1), Int(2)}, New: []Value{Int(1), Int(2)}},
		"insert undefined":    {Table: tb, Op: OpInsert, New: []Value{Int(1), u}},
		"delete undefined":    {Table: tb, Op: OpDelete, Old: []Value{u, Int(1)}},
		"update pk undefined": {Table: tb, Op: OpUpdate, Old: []Value{u, Int(1)}, New: []Value{u, Int(2)}},
		"bad kind":            {Table: tb, Op: OpInsert, New: []Value{Int(1), {Kind: 9}}},
	}
	for name, c := range cases {
		var buf bytes.Buffer
		w := NewWriter(&buf)
		if err := w.Write(c); err == nil {
			t.Errorf("%s: Write succeeded", name)
		}
		if err := w.Flush(); err != nil || buf.Len() != 0 {
			t.Errorf("%s: wrote %d bytes, flush err %v", name, buf.Len(), err)
		}
	}
}
