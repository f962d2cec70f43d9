package schema

import (
	"strings"
	"testing"
)

const identitySchema = `
CREATE TABLE bookmarks(id integer PRIMARY KEY, URL text NOT NULL UNIQUE, title text, maybe text UNIQUE, plain text NOT NULL);
CREATE TABLE pairs(id INTEGER PRIMARY KEY, a TEXT NOT NULL, b TEXT NOT NULL, UNIQUE(a, b));
CREATE TABLE texts(id TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE);
CREATE TABLE parent(id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);
CREATE TABLE child(id INTEGER PRIMARY KEY, parent_id INTEGER REFERENCES parent(id));
`

// An identity keys the table by its columns and makes the stored key a
// device-local column; Storage keeps the table as SQLite keys it.
func TestIdentityKeysTheTable(t *testing.T) {
	conn := openDB(t, identitySchema)
	got, _ := inspect(t, conn, Filter{Identity: map[string][]string{"bookmarks": {"URL"}, "pairs": {"b", "a"}}})
	bm := got["bookmarks"]
	if !bm.HasIdentity() || len(bm.PKCols()) != 1 || bm.Columns[bm.PKCols()[0]].Name != "URL" || bm.Columns[1].PK != 1 || bm.Columns[0].PK != 0 {
		t.Fatalf("bookmarks keyed by %v, columns %+v", bm.PKCols(), bm.Columns)
	}
	if !bm.Local["id"] || bm.StorageKey() != 0 {
		t.Fatalf("the stored key should be device-local: local %v, storage key %d", bm.Local, bm.StorageKey())
	}
	if st := bm.Storage(); st.HasIdentity() || st.PKCols()[0] != 0 || st.Columns[0].PK != 1 || st.Local["id"] {
		t.Fatalf("storage view: %+v", st)
	}
	if bm.Fingerprint() == bm.Storage().Fingerprint() {
		t.Fatal("the identity must show in the fingerprint (devices must agree on it)")
	}
	if p := got["pairs"]; len(p.PKCols()) != 2 || p.Columns[p.PKCols()[0]].Name != "b" {
		t.Fatalf("pairs keyed by %v, want b, a in the config's order", p.PKCols())
	}
	if got["texts"].HasIdentity() || got["texts"].Storage() != got["texts"] {
		t.Fatal("a table without identity is its own storage")
	}
}

// A config that cannot identify rows is refused, naming the table, the
// columns and what to do.
func TestIdentityRefused(t *testing.T) {
	conn := openDB(t, identitySchema)
	for _, c := range []struct {
		table string
		cols  []string
		want  string
	}{
		{"bookmarks", []string{"title"}, "column title may be NULL"},
		{"bookmarks", []string{"plain"}, "no UNIQUE index or constraint"},
		{"bookmarks", []string{"maybe"}, "column maybe may be NULL"},
		{"bookmarks", []string{"nope"}, "has no column nope"},
		{"bookmarks", nil, "name at least one column"},
		{"bookmarks", []string{"URL", "plain"}, "no UNIQUE index or constraint"},
		{"pairs", []string{"a"}, "no UNIQUE index or constraint"},
		{"texts", []string{"name"}, "not a single INTEGER PRIMARY KEY"},
		{"parent", []string{"name"}, "table child references its primary key id through a foreign key"},
		{"missing", []string{"x"}, "the database has no such table"},
	} {
		_, _, err := Inspect(conn, "main", Filter{Identity: map[string][]string{c.table: c.cols}})
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "identity of table "+c.table) {
			t.Errorf("identity %s %v: got %v, want an error with %q", c.table, c.cols, err, c.want)
		}
	}
	// An excluded table's identity is ignored, not refused.
	if _, _, err := Inspect(conn, "main", Filter{Exclude: []string{"parent"}, Identity: map[string][]string{"parent": {"nope"}}}); err != nil {
		t.Errorf("identity of an excluded table: %v", err)
	}
}
