package main

import (
	"path/filepath"
	"strings"
	"testing"

	"zombiezen.com/go/sqlite"
	"zombiezen.com/go/sqlite/sqlitex"
)

// schemaDevice is a device whose database has the given schema.
func schemaDevice(t *testing.T, folder, name, schema string) *device {
	t.Helper()
	dir := t.TempDir()
	d := &device{name: name, db: filepath.Join(dir, name+".db"), state: filepath.Join(dir, "state"), folder: folder}
	conn, err := sqlite.OpenConn(d.db)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if err := sqlitex.ExecuteScript(conn, "PRAGMA journal_mode=WAL;"+schema, nil); err != nil {
		t.Fatal(err)
	}
	return d
}

// render runs q on d's database and renders its rows, one a line.
func (d *device) render(t *testing.T, q string) string {
	t.Helper()
	conn, err := sqlite.OpenConn(d.db, sqlite.OpenReadOnly)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var b strings.Builder
	err = sqlitex.Execute(conn, q, &sqlitex.ExecOptions{ResultFunc: func(s *sqlite.Stmt) error {
		for i := 0; i < s.ColumnCount(); i++ {
			if i > 0 {
				b.WriteString(" ")
			}
			b.WriteString(s.ColumnText(i))
		}
		b.WriteString("\n")
		return nil
	}})
	if err != nil {
		t.Fatalf("%s: %s: %v", d.name, q, err)
	}
	return b.String()
}

// Two devices insert different books under id 1, each with links, and
// sync with `rowdrop sync`: both books and all their links survive on both,
// each link with its own book, with the app's cascade kept by a trigger or
// declared (issue #14).
func TestSyncRekeyKeepsCascadedLinks(t *testing.T) {
	for name, schema := range map[string]string{
		"trigger": `CREATE TABLE books(id INTEGER PRIMARY KEY, title TEXT);
CREATE TABLE links(book INTEGER, tag TEXT, PRIMARY KEY(book, tag));
CREATE TRIGGER books_cascade AFTER DELETE ON books BEGIN DELETE FROM links WHERE book = OLD.id; END;`,
		"declared": `CREATE TABLE books(id INTEGER PRIMARY KEY, title TEXT);
CREATE TABLE links(book INTEGER REFERENCES books(id) ON DELETE CASCADE, tag TEXT, PRIMARY KEY(book, tag));`,
	} {
		t.Run(name, func(t *testing.T) {
			folder := t.TempDir()
			a, b := schemaDevice(t, folder, "alpha", schema), schemaDevice(t, folder, "beta", schema)
			a.sync(t)
			b.sync(t)
			a.execScript(t, "INSERT INTO books VALUES(1, 'A-book'); INSERT INTO links VALUES(1, 'a1'), (1, 'a2');")
			b.execScript(t, "INSERT INTO books VALUES(1, 'B-book'); INSERT INTO links VALUES(1, 'b1');")
			a.sync(t)
			b.sync(t)
			a.sync(t)
			b.sync(t)
			q := `SELECT coalesce(b.title, '<dangling>'), l.tag FROM links l LEFT JOIN books b ON b.id = l.book ORDER BY 1, 2`
			want := "A-book a1\nA-book a2\nB-book b1\n"
			for _, d := range []*device{a, b} {
				if got := d.render(t, "SELECT title FROM books ORDER BY title"); got != "A-book\nB-book\n" {
					t.Errorf("%s: books:\n%s", d.name, got)
				}
				if got := d.render(t, q); got != want {
					t.Errorf("%s: links:\n%s\nwant:\n%s", d.name, got, want)
				}
			}
			if ra, rb := a.render(t, "SELECT * FROM books ORDER BY id"), b.render(t, "SELECT * FROM books ORDER BY id"); ra != rb {
				t.Errorf("books differ:\n%s\n%s", ra, rb)
			}
		})
	}
}

// A link table checked by the app's BEFORE triggers, whose name sorts
// before its parent's: a file inserting parents and links, and a later one
// deleting them all, apply through `rowdrop sync` (issue #14).
func TestSyncTriggerCheckedParents(t *testing.T) {
	schema := `CREATE TABLE books(id INTEGER PRIMARY KEY, title TEXT);
CREATE TABLE tags(id INTEGER PRIMARY KEY, name TEXT);
CREATE TABLE books_tags_link(id INTEGER PRIMARY KEY, book INTEGER NOT NULL, tag INTEGER NOT NULL, UNIQUE(book, tag));
CREATE TRIGGER books_tags_link_check BEFORE INSERT ON books_tags_link BEGIN
  SELECT RAISE(ABORT, 'no such book') WHERE NOT EXISTS (SELECT 1 FROM books WHERE id = NEW.book);
  SELECT RAISE(ABORT, 'no such tag') WHERE NOT EXISTS (SELECT 1 FROM tags WHERE id = NEW.tag);
END;
CREATE TRIGGER tags_restrict BEFORE DELETE ON tags BEGIN
  SELECT RAISE(ABORT, 'tag still linked') WHERE EXISTS (SELECT 1 FROM books_tags_link WHERE tag = OLD.id);
END;
CREATE TRIGGER books_restrict BEFORE DELETE ON books BEGIN
  SELECT RAISE(ABORT, 'book still linked') WHERE EXISTS (SELECT 1 FROM books_tags_link WHERE book = OLD.id);
END;`
	folder := t.TempDir()
	a, b := schemaDevice(t, folder, "alpha", schema), schemaDevice(t, folder, "beta", schema)
	a.sync(t)
	b.sync(t)
	a.execScript(t, "INSERT INTO books VALUES(1, 'Dune'); INSERT INTO tags VALUES(7, 'sf'); INSERT INTO books_tags_link VALUES(1, 1, 7);")
	a.sync(t)
	b.sync(t)
	q := "SELECT b.title, t.name FROM books_tags_link l JOIN books b ON b.id = l.book JOIN tags t ON t.id = l.tag"
	if got := b.render(t, q); got != "Dune sf\n" {
		t.Fatalf("beta after the insert file: %q\nstatus: %v", got, b.status(t)["files"])
	}
	a.execScript(t, "DELETE FROM books_tags_link; DELETE FROM tags; DELETE FROM books;")
	a.sync(t)
	b.sync(t)
	if got := b.render(t, "SELECT (SELECT count(*) FROM books) + (SELECT count(*) FROM tags) + (SELECT count(*) FROM books_tags_link)"); got != "0\n" {
		t.Fatalf("beta after the delete file: %q rows left\nstatus: %v", got, b.status(t)["files"])
	}
	if files := b.status(t)["files"]; files != nil && len(files.([]any)) > 0 {
		t.Fatalf("files not applied: %v", files)
	}
}
