package schema

import (
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"zombiezen.com/go/sqlite"
	"zombiezen.com/go/sqlite/sqlitex"

	"github.com/rowdrop/rowdrop/internal/rdfile"
)

func openDB(t *testing.T, script string) *sqlite.Conn {
	t.Helper()
	conn, err := sqlite.OpenConn(filepath.Join(t.TempDir(), "app.db"), sqlite.OpenReadWrite|sqlite.OpenCreate)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	if err := sqlitex.ExecuteScript(conn, script, nil); err != nil {
		t.Fatal(err)
	}
	return conn
}

const appSchema = `
CREATE TABLE notes(id TEXT PRIMARY KEY, title TEXT, body TEXT);
CREATE TABLE tags(note TEXT NOT NULL, tag TEXT NOT NULL, PRIMARY KEY(tag, note)) WITHOUT ROWID;
CREATE TABLE counters(id INTEGER PRIMARY KEY AUTOINCREMENT, n INTEGER);
CREATE TABLE log(msg TEXT);
CREATE TABLE gen(id INTEGER PRIMARY KEY, a INTEGER, b INTEGER GENERATED ALWAYS AS (a * 2) VIRTUAL);
CREATE VIRTUAL TABLE notes_fts USING fts5(title, body, content='notes', content_rowid='rowid');
CREATE VIRTUAL TABLE places USING rtree(id, minx, maxx);
CREATE TABLE rowdrop_dirty(tbl TEXT NOT NULL, k1);
CREATE TABLE "Odd ""Name"""("the key" TEXT PRIMARY KEY, v);
INSERT INTO counters(n) VALUES(1);
`

func inspect(t *testing.T, conn *sqlite.Conn, f Filter) (map[string]*Table, map[string]Skipped) {
	t.Helper()
	tabs, skipped, err := Inspect(conn, "main", f)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]*Table{}
	for _, tb := range tabs {
		got[tb.Name] = tb
	}
	sk := map[string]Skipped{}
	for _, s := range skipped {
		if _, dup := got[s.Name]; dup {
			t.Errorf("%s both synced and skipped", s.Name)
		}
		sk[s.Name] = s
	}
	return got, sk
}

func keys[M ~map[string]V, V any](m M) string {
	var k []string
	for n := range m {
		k = append(k, n)
	}
	sort.Strings(k)
	return strings.Join(k, ",")
}

func TestInspectClassifies(t *testing.T) {
	conn := openDB(t, appSchema)
	synced, skipped := inspect(t, conn, Filter{})
	if got := keys(synced); got != `Odd "Name",counters,notes,tags` {
		t.Fatalf("synced: %s", got)
	}
	// Every table of the database is accounted for, with a reason.
	want := map[string]string{
		"log":               "unsyncable:PRIMARY KEY",
		"gen":               "unsyncable:generated columns",
		"notes_fts":         "excluded:virtual table",
		"notes_fts_data":    "excluded:shadow table of virtual table notes_fts",
		"notes_fts_idx":     "excluded:shadow table",
		"notes_fts_docsize": "excluded:shadow table",
		"notes_fts_config":  "excluded:shadow table",
		"places":            "excluded:virtual table",
		"places_node":       "excluded:shadow table of virtual table places",
		"places_rowid":      "excluded:shadow table",
		"places_parent":     "excluded:shadow table",
		"sqlite_sequence":   "excluded:SQLite internal",
		"rowdrop_dirty":     "excluded:rowdrop's own",
	}
	for name, w := range want {
		kind, reason, _ := strings.Cut(w, ":")
		s, ok := skipped[name]
		if !ok {
			t.Errorf("%s not reported as skipped", name)
			continue
		}
		if s.Kind != kind || !strings.Contains(s.Reason, reason) {
			t.Errorf("%s: %s %q, want %s containing %q", name, s.Kind, s.Reason, kind, reason)
		}
	}
	if len(skipped) != len(want) {
		t.Errorf("skipped %s, want %d tables", keys(skipped), len(want))
	}
	// Shapes: columns in order, declared types, key positions.
	tags := synced["tags"]
	if len(tags.Columns) != 2 || tags.Columns[0].Name != "note" || tags.Columns[0].PK != 2 || tags.Columns[1].PK != 1 || !tags.Columns[0].NotNull {
		t.Fatalf("tags columns: %+v", tags.Columns)
	}
	if pk := tags.PKCols(); len(pk) != 2 || pk[0] != 1 || pk[1] != 0 {
		t.Fatalf("tags key order: %v (want tag, note)", pk)
	}
	if tags.ColIndex("TAG") != 1 || tags.ColIndex("nope") != -1 {
		t.Fatal("ColIndex")
	}
	if n := synced["notes"]; n.Columns[0].Type != "TEXT" || n.Columns[0].PK != 1 || n.Columns[1].PK != 0 {
		t.Fatalf("notes columns: %+v", n.Columns)
	}
}

// Joplin keeps an FTS4 index, a module modernc.org/sqlite lacks: its
// virtual table and shadow tables must be recognised from sqlite_master
// alone, without ever being opened.
func TestInspectFTS4WithoutTheModule(t *testing.T) {
	conn := openDB(t, `
		CREATE TABLE notes(id TEXT PRIMARY KEY, body TEXT);
		CREATE TABLE notes_fts_segments(blockid INTEGER PRIMARY KEY, block BLOB);
		CREATE TABLE notes_fts_segdir(level INTEGER, idx INTEGER, start_block INTEGER, leaves_end_block INTEGER, end_block INTEGER, root BLOB, PRIMARY KEY(level, idx));
		CREATE TABLE notes_fts_docsize(docid INTEGER PRIMARY KEY, size BLOB);
		CREATE TABLE notes_fts_stat(id INTEGER PRIMARY KEY, value BLOB);
		CREATE TABLE notes_fts_extra(id INTEGER PRIMARY KEY); -- not a shadow suffix: an ordinary table
		PRAGMA writable_schema=ON;
		INSERT INTO sqlite_master VALUES('table','notes_fts','notes_fts',0,'CREATE VIRTUAL TABLE notes_fts USING fts4(content="notes", body)');
		PRAGMA writable_schema=OFF;`)
	// The row written into sqlite_master is read with the schema: a
	// connection opened after it sees the virtual table (this one keeps
	// the schema it loaded, which has no notes_fts at all).
	var path string
	if err := sqlitex.ExecuteTransient(conn, "SELECT file FROM pragma_database_list WHERE name='main'", &sqlitex.ExecOptions{
		ResultFunc: func(st *sqlite.Stmt) error { path = st.ColumnText(0); return nil }}); err != nil {
		t.Fatal(err)
	}
	conn, err := sqlite.OpenConn(path, sqlite.OpenReadWrite)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	if err := sqlitex.ExecuteTransient(conn, "SELECT * FROM notes_fts", nil); err == nil || !strings.Contains(err.Error(), "no such module") {
		t.Skipf("this engine has FTS4 after all (%v): the test's premise is gone", err)
	}
	synced, skipped := inspect(t, conn, Filter{})
	if got := keys(synced); got != "notes,notes_fts_extra" {
		t.Fatalf("synced: %s", got)
	}
	for _, n := range []string{"notes_fts", "notes_fts_segments", "notes_fts_segdir", "notes_fts_docsize", "notes_fts_stat"} {
		if skipped[n].Kind != "excluded" {
			t.Errorf("%s: %+v", n, skipped[n])
		}
	}
}

func TestInspectFilter(t *testing.T) {
	conn := openDB(t, appSchema)
	synced, skipped := inspect(t, conn, Filter{Include: []string{"notes", "tags", "log"}, Exclude: []string{"tags"}, LocalColumns: []string{"notes.body"}})
	if got := keys(synced); got != "notes" {
		t.Fatalf("synced: %s", got)
	}
	if !synced["notes"].Local["body"] || len(synced["notes"].Local) != 1 {
		t.Fatalf("local columns: %v", synced["notes"].Local)
	}
	if s := skipped["tags"]; s.Kind != "excluded" || !strings.Contains(s.Reason, "exclude") {
		t.Errorf("tags: %+v", s)
	}
	if s := skipped["counters"]; s.Kind != "excluded" || !strings.Contains(s.Reason, "include") {
		t.Errorf("counters: %+v", s)
	}
	// Include does not make an unsyncable table syncable.
	if s := skipped["log"]; s.Kind != "unsyncable" {
		t.Errorf("log: %+v", s)
	}
	for _, c := range []struct{ local, want string }{
		{"body", "table.column"},
		{"notes.nope", "no such column"},
		{"notes.id", "primary key"},
	} {
		_, _, err := Inspect(conn, "main", Filter{LocalColumns: []string{c.local}})
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("local column %q: %v, want an error about %q", c.local, err, c.want)
		}
	}
}

// The fingerprint follows the shape, not the spelling of the DDL.
func TestFingerprint(t *testing.T) {
	fp := func(ddl string) string {
		conn := openDB(t, ddl)
		synced, _ := inspect(t, conn, Filter{})
		if synced["t"] == nil {
			t.Fatalf("%s: not synced", ddl)
		}
		if got, want := synced["t"].Fingerprint(), rdfile.Fingerprint("t", synced["t"].Columns); got != want {
			t.Fatalf("schema and rdfile fingerprints differ: %s %s", got, want)
		}
		return synced["t"].Fingerprint()
	}
	base := fp(`CREATE TABLE t(id TEXT PRIMARY KEY, n INTEGER NOT NULL, v)`)
	for _, same := range []string{
		`create table t ( "id" text primary key , [n] integer not null, v )`,
		`CREATE TABLE "t"(id TEXT, n INTEGER NOT NULL, v, PRIMARY KEY(id))`,
		`CREATE TABLE t(id TEXT PRIMARY KEY, n INTEGER NOT NULL DEFAULT 0 CHECK(n >= 0), v UNIQUE)`,
	} {
		if got := fp(same); got != base {
			t.Errorf("%s: fingerprint %s, want %s", same, got, base)
		}
	}
	for _, other := range []string{
		`CREATE TABLE t(id TEXT PRIMARY KEY, n INTEGER, v)`,             // NOT NULL dropped
		`CREATE TABLE t(id TEXT PRIMARY KEY, n BIGINT NOT NULL, v)`,     // type
		`CREATE TABLE t(id TEXT PRIMARY KEY, v, n INTEGER NOT NULL)`,    // order
		`CREATE TABLE t(id TEXT PRIMARY KEY, n INTEGER NOT NULL, v, w)`, // added column
		`CREATE TABLE t(id TEXT, n INTEGER NOT NULL, v, PRIMARY KEY(id, n))`,
		`CREATE TABLE t(ID TEXT PRIMARY KEY, n INTEGER NOT NULL, v)`, // column name case
	} {
		if got := fp(other); got == base {
			t.Errorf("%s: same fingerprint as the original", other)
		}
	}
}

// CreateIn reproduces a table in another database with the same shape,
// whatever its name looks like.
func TestCreateIn(t *testing.T) {
	conn := openDB(t, `
		CREATE TABLE "we""ird" (k TEXT PRIMARY KEY, v);
		CREATE TABLE IF NOT EXISTS [sq br](k INTEGER PRIMARY KEY) ;
		CREATE TABLE `+"`bq`"+`(a, b, PRIMARY KEY(b, a)) WITHOUT ROWID;
		CREATE TABLE
		  spaced
		  (k PRIMARY KEY);
		CREATE TABLE "ключ 🦊"(k TEXT PRIMARY KEY);
		ATTACH DATABASE ':memory:' AS other;`)
	synced, _ := inspect(t, conn, Filter{})
	if len(synced) != 5 {
		t.Fatalf("synced: %s", keys(synced))
	}
	for _, tb := range synced {
		ddl, err := tb.CreateIn("other")
		if err != nil {
			t.Fatalf("%s: %v", tb.Name, err)
		}
		if err := sqlitex.ExecuteTransient(conn, ddl, nil); err != nil {
			t.Fatalf("%s: %s: %v", tb.Name, ddl, err)
		}
	}
	copies, _, err := Inspect(conn, "other", Filter{})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range copies {
		if synced[c.Name] == nil || synced[c.Name].Fingerprint() != c.Fingerprint() {
			t.Errorf("copy of %s has another shape", c.Name)
		}
	}
	if len(copies) != len(synced) {
		t.Errorf("%d copies of %d tables", len(copies), len(synced))
	}
	bad := &Table{Name: "x", CreateSQL: "CREATE VIEW x AS SELECT 1"}
	if _, err := bad.CreateIn("other"); err == nil {
		t.Error("CreateIn accepted a view definition")
	}
}

// ColumnDef finds a column's declaration as written, through quotes,
// comments, nested parentheses and table constraints, including columns
// SQLite appended with ALTER TABLE ... ADD COLUMN.
func TestColumnDef(t *testing.T) {
	tab := &Table{Name: "t", CreateSQL: `CREATE TABLE IF NOT EXISTS "t"(
		id INTEGER PRIMARY KEY, -- the key, (with a comma
		"we""ird, name" TEXT DEFAULT 'a,b)' /* c, ) */ NOT NULL,
		[br] NUMERIC(10, 2) CHECK (br > (0)),
		unique_x TEXT, ` + "`bt` BLOB" + `,
		CONSTRAINT u UNIQUE (unique_x, br), CHECK (id > 0), FOREIGN KEY (id) REFERENCES p(id)
		, pinned INTEGER NOT NULL DEFAULT 0)`}
	for name, want := range map[string]string{
		"id":           "id INTEGER PRIMARY KEY",
		`we"ird, name`: `"we""ird, name" TEXT DEFAULT 'a,b)' /* c, ) */ NOT NULL`,
		"br":           "[br] NUMERIC(10, 2) CHECK (br > (0))",
		"unique_x":     "unique_x TEXT",
		"bt":           "`bt` BLOB",
		"pinned":       "pinned INTEGER NOT NULL DEFAULT 0",
	} {
		got, err := tab.ColumnDef(name)
		if err != nil || got != want {
			t.Errorf("ColumnDef(%q) = %q, %v; want %q", name, got, err, want)
		}
	}
	if _, err := tab.ColumnDef("u"); err == nil {
		t.Error("a table constraint was taken for a column")
	}
}

func TestDifference(t *testing.T) {
	col := func(name, typ string, pk int) rdfile.Column { return rdfile.Column{Name: name, Type: typ, PK: pk} }
	ours := []rdfile.Column{col("id", "INTEGER", 1), col("body", "TEXT", 0), col("n", "INTEGER", 0)}
	for _, tc := range []struct {
		name   string
		theirs []rdfile.Column
		want   string
	}{
		{"same", ours, ""},
		{"dropped there", ours[:2], "column(s) only here: n INTEGER"},
		{"renamed there", []rdfile.Column{col("id", "INTEGER", 1), col("text", "TEXT", 0), col("n", "INTEGER", 0)},
			"column(s) only on the writing device: text TEXT; column(s) only here: body TEXT"},
		{"type", []rdfile.Column{col("id", "INTEGER", 1), col("body", "BLOB", 0), col("n", "INTEGER", 0)}, `body is "BLOB" there, "TEXT" here`},
		{"key and order", []rdfile.Column{col("id", "INTEGER", 0), col("n", "INTEGER", 0), col("body", "TEXT", 1)},
			"primary key (body) there, (id) here; columns in another order: (id, n, body) there, (id, body, n) here"},
	} {
		if got := Difference(tc.theirs, ours); got != tc.want {
			t.Errorf("%s: Difference = %q, want %q", tc.name, got, tc.want)
		}
	}
}
