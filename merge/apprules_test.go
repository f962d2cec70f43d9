package merge

import (
	"fmt"
	"sort"
	"strings"
	"testing"

	"zombiezen.com/go/sqlite"
	"zombiezen.com/go/sqlite/sqlitex"

	"github.com/rowdrop/rowdrop/internal/schema"
)

func TestTriggerRefs(t *testing.T) {
	conn, err := sqlite.OpenConn(":memory:")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if err := sqlitex.ExecuteScript(conn, `CREATE TABLE books(id INTEGER PRIMARY KEY, title TEXT);
		CREATE TABLE tags(id INTEGER PRIMARY KEY, name TEXT);
		CREATE TABLE books_tags_link(book INTEGER, tag INTEGER, PRIMARY KEY(book, tag));`, nil); err != nil {
		t.Fatal(err)
	}
	list, _, err := schema.Inspect(conn, "main", schema.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	tables := map[string]*schema.Table{}
	for _, tb := range list {
		tables[tb.Name] = tb
	}
	for _, tc := range []struct {
		name, tbl, sql string
		raises         bool
		want           string
	}{
		{"cascade", "books", `CREATE TRIGGER c AFTER DELETE ON books BEGIN DELETE FROM books_tags_link WHERE book = OLD.id; END`, false,
			"books_tags_link.book->books"},
		{"check not exists", "books_tags_link", `CREATE TRIGGER k BEFORE INSERT ON books_tags_link BEGIN
			SELECT RAISE(ABORT, 'no book') WHERE NOT EXISTS (SELECT 1 FROM books WHERE id = NEW.book);
			SELECT RAISE(ABORT, 'no tag') WHERE NOT EXISTS (SELECT 1 FROM "tags" t WHERE t.id = new.tag); END`, true,
			"books_tags_link.book->books books_tags_link.tag->tags"},
		{"check when in", "books_tags_link", `CREATE TRIGGER k BEFORE INSERT ON books_tags_link WHEN NEW.tag NOT IN (SELECT id FROM tags) BEGIN SELECT RAISE(FAIL, 'x'); END`, true,
			"books_tags_link.tag->tags"},
		{"restrict", "books", `CREATE TRIGGER r BEFORE DELETE ON books BEGIN SELECT CASE WHEN (SELECT count(*) FROM books_tags_link WHERE OLD.id = book) > 0 THEN RAISE(ABORT, 'referenced') END; END`, true,
			"books_tags_link.book->books"},
		{"own table only", "books", `CREATE TRIGGER u AFTER UPDATE OF title ON books BEGIN UPDATE books SET title = trim(NEW.title) WHERE id = NEW.id; END`, false, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tr := parseTrigger("t", tc.tbl, tc.sql)
			if tr.raises != tc.raises {
				t.Errorf("raises %v", tr.raises)
			}
			var got []string
			for _, r := range triggerRefs([]appTrigger{tr}, tables) {
				got = append(got, fmt.Sprintf("%s.%s->%s", r.child.Name, r.child.Columns[r.col].Name, r.parent.Name))
			}
			sort.Strings(got)
			if s := strings.Join(got, " "); s != tc.want {
				t.Errorf("refs %q, want %q (pairs %+v)", s, tc.want, tr.pairs)
			}
		})
	}
}
