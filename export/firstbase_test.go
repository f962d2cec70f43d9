package export

import (
	"fmt"
	"path/filepath"
	"testing"

	"zombiezen.com/go/sqlite"
	"zombiezen.com/go/sqlite/sqlitex"

	"github.com/rowdrop/rowdrop/internal/changeset"
	"github.com/rowdrop/rowdrop/internal/db"
)

// TestFirstExportStampsEveryRow: a table's first export writes its rows'
// metadata set-wise (firstbase.go). Every live row must get exactly what
// the per-row path gives a first insert (Ins = WMax = the export's clock,
// nothing else), under the key encoded as Go encodes it (keys of every
// type, composite, NOCASE), base must equal live, and the rows must go on
// as usual: an edit and a delete are exported with their own clocks, and
// a table that joins the sync later is stamped with that export's clock.
func TestFirstExportStampsEveryRow(t *testing.T) {
	e := newEnv(t, envOpts{wal: true, schema: `
CREATE TABLE t(k TEXT COLLATE NOCASE PRIMARY KEY, u INTEGER, v);
CREATE UNIQUE INDEX t_u ON t(u);
CREATE TABLE p(a, b, c, PRIMARY KEY(a, b));`})
	e.exec(`WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM n WHERE i<700)
		INSERT INTO t SELECT 'Key' || i, i, CASE i % 3 WHEN 0 THEN NULL WHEN 1 THEN randomblob(4) ELSE i * 1.5 END FROM n`)
	e.exec(`INSERT INTO p VALUES(1, 'x', 1), (1.5, 'x', 2), ('a', x'00ff', 3), (x'01', 2, 4), (2, 'y', 5)`)
	first := e.export()
	if first.Changes != 705 {
		t.Fatalf("first export: %d changes, want 705", first.Changes)
	}
	want := fmt.Sprintf("%d|%s|%d|%s|0||NULL|NULL", InitialClock, e.exp.ID.Device, InitialClock, e.exp.ID.Device)
	checkStamped(t, e, map[string]string{"t": want, "p": want})
	if l, b := dumpTables(t, e.live, e.tables()), dumpTables(t, filepath.Join(e.dir, "state", "base.db"), e.tables()); l != b {
		t.Fatalf("base differs from live after the first export:\nlive %s\nbase %s", l, b)
	}

	e.exec(`UPDATE t SET v = 'edited' WHERE k = 'key5'`)
	e.exec(`DELETE FROM p WHERE a = 'a'`)
	second := e.export()
	if second.Changes != 2 {
		t.Fatalf("second export: %d changes, want 2", second.Changes)
	}
	base := openRO(t, filepath.Join(e.dir, "state", "base.db"))
	defer base.Close()
	var cells, del string
	sqlitex.ExecuteTransient(base, "SELECT (SELECT hex(cells) FROM rowdrop_rows WHERE tbl='t' AND pk=x'"+keyHex("Key5")+"'), (SELECT del FROM rowdrop_rows WHERE tbl='p' AND del <> 0)", &sqlitex.ExecOptions{ResultFunc: func(s *sqlite.Stmt) error {
		cells, del = s.ColumnText(0), s.ColumnText(1)
		return nil
	}})
	if cells == "" || del == "" || del == fmt.Sprint(InitialClock) {
		t.Fatalf("after an edit and a delete: cell clocks %q, delete clock %q (want both set, after the first export's)", cells, del)
	}
	base.Close()

	// A table new to the sync later is fresh too, with that export's clock.
	e.exec(`CREATE TABLE q(id INTEGER PRIMARY KEY, s TEXT)`)
	e.exec(`INSERT INTO q VALUES(1, 'one'), (2, 'two'), (-7, NULL)`)
	third := e.export()
	if third.Changes != 3 {
		t.Fatalf("third export: %d changes, want 3", third.Changes)
	}
	rf, _, _ := readFile(t, third.File)
	want = fmt.Sprintf("%d|%s|%d|%s|0||NULL|NULL", rf.HLC, e.exp.ID.Device, rf.HLC, e.exp.ID.Device)
	checkStamped(t, e, map[string]string{"q": want})
}

// keyHex is the hex of the encoded one-column TEXT key k.
func keyHex(k string) string {
	return fmt.Sprintf("%X", changeset.EncodeKey([]changeset.Value{{Kind: changeset.KindText, Bytes: []byte(k)}}))
}

// checkStamped fails unless every row of each table has metadata, keyed
// as Go encodes the row's key, rendering as want (ins|ins_dev|wmax|
// wmax_dev|del|del_dev|dead|cells), and no metadata names another row.
func checkStamped(t *testing.T, e *env, want map[string]string) {
	t.Helper()
	live := openRO(t, e.live)
	defer live.Close()
	base := openRO(t, filepath.Join(e.dir, "state", "base.db"))
	defer base.Close()
	for _, tab := range e.tables() {
		w, ok := want[tab.Name]
		if !ok {
			continue
		}
		keys := map[string]bool{}
		var cols string
		for i, c := range tab.PKCols() {
			if i > 0 {
				cols += ", "
			}
			cols += db.Quote(tab.Columns[c].Name)
		}
		err := sqlitex.ExecuteTransient(live, "SELECT "+cols+" FROM "+db.Quote(tab.Name), &sqlitex.ExecOptions{ResultFunc: func(s *sqlite.Stmt) error {
			k := make([]changeset.Value, s.ColumnCount())
			for i := range k {
				k[i] = db.Column(s, i)
			}
			keys[string(changeset.EncodeKey(k))] = true
			return nil
		}})
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		err = sqlitex.Execute(base, "SELECT pk, ins || '|' || ins_dev || '|' || wmax || '|' || wmax_dev || '|' || del || '|' || del_dev || '|' || CASE WHEN dead IS NULL THEN 'NULL' ELSE hex(dead) END || '|' || CASE WHEN cells IS NULL THEN 'NULL' ELSE hex(cells) END FROM rowdrop_rows WHERE tbl = ?", &sqlitex.ExecOptions{Args: []any{tab.Name}, ResultFunc: func(s *sqlite.Stmt) error {
			pk := make([]byte, s.ColumnLen(0))
			s.ColumnBytes(0, pk)
			if !keys[string(pk)] {
				t.Errorf("%s: metadata for key %X, which live does not hold", tab.Name, pk)
			}
			if got := s.ColumnText(1); got != w {
				t.Errorf("%s: key %X has metadata %s, want %s", tab.Name, pk, got, w)
			}
			n++
			return nil
		}})
		if err != nil {
			t.Fatal(err)
		}
		if n != len(keys) {
			t.Errorf("%s: %d rows with metadata, live holds %d", tab.Name, n, len(keys))
		}
	}
}
