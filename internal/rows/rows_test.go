package rows_test

import (
	"bytes"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"zombiezen.com/go/sqlite"
	"zombiezen.com/go/sqlite/sqlitex"

	"github.com/rowdrop/rowdrop/internal/changeset"
	"github.com/rowdrop/rowdrop/internal/rows"
	"github.com/rowdrop/rowdrop/internal/schema"
)

// Big BLOBs written by Insert and Update come out exactly as given, in
// every kind of table: plain ones (streamed through blob I/O), with an
// index on the value, a UNIQUE one already holding zeros of the same
// length, expression and partial indexes reading it (never streamed), WITHOUT
// ROWID, and with a trigger, which must see the real value, never the
// zeros a streamed write starts from.
func TestBigBlobs(t *testing.T) {
	ddl := map[string]string{
		"plain":      `CREATE TABLE f(id INTEGER PRIMARY KEY, name TEXT, data BLOB)`,
		"text key":   `CREATE TABLE f(id TEXT PRIMARY KEY, data BLOB, name TEXT)`,
		"indexed":    `CREATE TABLE f(id INTEGER PRIMARY KEY, name TEXT, data BLOB); CREATE INDEX f_data ON f(data)`,
		"unique":     `CREATE TABLE f(id INTEGER PRIMARY KEY, name TEXT, data BLOB UNIQUE); INSERT INTO f VALUES(1, 'other', zeroblob(3145730))`,
		"expression": `CREATE TABLE f(id INTEGER PRIMARY KEY, name TEXT, data BLOB); CREATE INDEX f_head ON f(substr(data, 1, 4))`,
		"partial":    `CREATE TABLE f(id INTEGER PRIMARY KEY, name TEXT, data BLOB); CREATE INDEX f_name ON f(name) WHERE substr(data, 1, 1) = x'01'`,
		"no rowid":   `CREATE TABLE f(id INTEGER PRIMARY KEY, name TEXT, data BLOB) WITHOUT ROWID`,
		"trigger":    `CREATE TABLE f(id INTEGER PRIMARY KEY, name TEXT, data BLOB); CREATE TABLE seen(head BLOB); CREATE TRIGGER f_seen AFTER UPDATE ON f BEGIN INSERT INTO seen VALUES(substr(NEW.data, 1, 8)); END; CREATE TRIGGER f_ins AFTER INSERT ON f BEGIN INSERT INTO seen VALUES(substr(NEW.data, 1, 8)); END`,
		"check":      `CREATE TABLE f(id INTEGER PRIMARY KEY, name TEXT, data BLOB CHECK(substr(data, 1, 1) <> x'00'))`,
		"two values": `CREATE TABLE f(id INTEGER PRIMARY KEY, data BLOB, name TEXT, more BLOB)`,
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for _, fromFile := range []bool{false, true} {
		// fromFile: the values are sections of a file (Value.Src, as the
		// export's passes over its capture file read them), not bytes.
		file, err := os.Create(filepath.Join(t.TempDir(), "values"))
		if err != nil {
			t.Fatal(err)
		}
		defer file.Close()
		val := func(n int) changeset.Value {
			b := make([]byte, n)
			for i := range b {
				b[i] = byte(rng.IntN(255) + 1) // no zero byte: a CHECK can tell
			}
			if !fromFile {
				return changeset.Blob(b)
			}
			off, err := file.Seek(0, io.SeekEnd)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := file.Write(b); err != nil {
				t.Fatal(err)
			}
			return changeset.Value{Kind: changeset.KindBlob, Src: io.NewSectionReader(file, off, int64(n))}
		}
		testBigBlobs(t, ddl, val, fromFile)
	}
}

func testBigBlobs(t *testing.T, ddl map[string]string, val func(int) changeset.Value, fromFile bool) {
	for name, q := range ddl {
		if fromFile {
			name += " from a file"
		}
		t.Run(name, func(t *testing.T) {
			conn, err := sqlite.OpenConn(filepath.Join(t.TempDir(), "x.db"), sqlite.OpenReadWrite|sqlite.OpenCreate)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			if err := sqlitex.ExecuteScript(conn, q, nil); err != nil {
				t.Fatal(err)
			}
			tables, _, err := schema.Inspect(conn, "main", schema.Filter{})
			if err != nil {
				t.Fatal(err)
			}
			var tb *schema.Table
			for _, x := range tables {
				if x.Name == "f" {
					tb = x
				}
			}
			r := rows.Open(conn, "main", tb)
			defer r.Close()
			row := make([]changeset.Value, len(tb.Columns))
			var blobs []int
			for i, c := range tb.Columns {
				switch {
				case c.Name == "id" && c.Type == "TEXT":
					row[i] = changeset.Text("k1")
				case c.Name == "id":
					row[i] = changeset.Int(7)
				case c.Name == "name":
					row[i] = changeset.Text("photo")
				default:
					row[i] = val(3<<20 + i)
					blobs = append(blobs, i)
				}
			}
			check := func(what string) {
				t.Helper()
				got, err := r.Get(rows.Key(tb, row))
				if err != nil {
					t.Fatal(err)
				}
				for i := range row {
					want := row[i]
					if want.Src != nil {
						b, err := want.Data()
						if err != nil {
							t.Fatal(err)
						}
						want = changeset.Blob(b)
					}
					if !got[i].Equal(want) {
						t.Fatalf("%s: column %s differs (%d bytes, want %d)", what, tb.Columns[i].Name, len(got[i].Bytes), len(want.Bytes))
					}
				}
				var ok string
				sqlitex.ExecuteTransient(conn, "PRAGMA integrity_check", &sqlitex.ExecOptions{ResultFunc: func(s *sqlite.Stmt) error { ok = s.ColumnText(0); return nil }})
				if ok != "ok" {
					t.Fatalf("%s: integrity_check: %s", what, ok)
				}
			}
			if err := sqlitex.ExecuteTransient(conn, "BEGIN", nil); err != nil {
				t.Fatal(err)
			}
			if err := r.Insert(row); err != nil {
				t.Fatal(err)
			}
			check("insert")
			var cols []int
			var vals []changeset.Value
			for _, i := range blobs {
				row[i] = val(2<<20 + i)
				cols, vals = append(cols, i), append(vals, row[i])
			}
			if err := r.Update(rows.Key(tb, row), cols, vals); err != nil {
				t.Fatal(err)
			}
			check("update")
			if err := sqlitex.ExecuteTransient(conn, "COMMIT", nil); err != nil {
				t.Fatal(err)
			}
			check("commit")
			if name == "trigger" {
				n := 0
				err := sqlitex.ExecuteTransient(conn, "SELECT head FROM seen", &sqlitex.ExecOptions{ResultFunc: func(s *sqlite.Stmt) error {
					n++
					if b := make([]byte, 8); s.ColumnBytes(0, b) != 8 || bytes.Contains(b, []byte{0}) {
						t.Errorf("the trigger saw %x, not the value", b)
					}
					return nil
				}})
				if err != nil || n != 2 {
					t.Fatalf("trigger rows %d (%v), want 2", n, err)
				}
			}
		})
	}
}
