package export

import (
	"bytes"
	"crypto/sha256"
	"path/filepath"
	"testing"

	"zombiezen.com/go/sqlite"
	"zombiezen.com/go/sqlite/sqlitex"

	"github.com/rowdrop/rowdrop/internal/changeset"
	"github.com/rowdrop/rowdrop/internal/db"
)

// hashRow, which reads big values in place, hashes exactly what
// EncodeKey of the copied values gave (recorded fingerprints stay valid).
func TestHashRowMatchesEncodeKey(t *testing.T) {
	conn, err := sqlite.OpenConn(filepath.Join(t.TempDir(), "x.db"), sqlite.OpenReadWrite|sqlite.OpenCreate)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	err = sqlitex.ExecuteScript(conn, `CREATE TABLE t(a, b, c, d, e, f);
		INSERT INTO t VALUES(1, 2.5, 'text', randomblob(3000000), NULL, x'');`, nil)
	if err != nil {
		t.Fatal(err)
	}
	var got, want []byte
	err = sqlitex.ExecuteTransient(conn, "SELECT * FROM t", &sqlitex.ExecOptions{ResultFunc: func(s *sqlite.Stmt) error {
		h := sha256.New()
		hashRow(h, s)
		got = h.Sum(nil)
		vals := make([]changeset.Value, s.ColumnCount())
		for i := range vals {
			vals[i] = db.Column(s, i)
		}
		w := sha256.Sum256(changeset.EncodeKey(vals))
		want = w[:]
		return nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("hashRow %x, EncodeKey hash %x", got, want)
	}
}
