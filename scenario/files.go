package scenario

import (
	"os"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"zombiezen.com/go/sqlite"
	"zombiezen.com/go/sqlite/sqlitex"
)

// Helpers that reach a database or folder by its path, for tests that run
// rowdrop the way an app and a sync tool would meet it on disk: each opens
// its own connection and closes it before returning, so it never holds a
// lock across a sync.

// ExecFile runs one statement on the database at path (read-write, 5 s busy
// timeout).
func ExecFile(t testing.TB, path, q string, args ...any) {
	t.Helper()
	conn, err := sqlite.OpenConn(path, sqlite.OpenReadWrite)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetBusyTimeout(5 * time.Second)
	if err := sqlitex.Execute(conn, q, &sqlitex.ExecOptions{Args: args}); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}

// ScriptFile runs a script of statements on the database at path, creating
// it if needed.
func ScriptFile(t testing.TB, path, script string) {
	t.Helper()
	conn, err := sqlite.OpenConn(path)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if err := sqlitex.ExecuteScript(conn, script, nil); err != nil {
		t.Fatal(err)
	}
}

// ValueFile returns the first column of the last row q yields on the
// database at path ("" if none). It opens read-write, so a hot journal
// left by a killed process is rolled back first, as on restart.
func ValueFile(t testing.TB, path, q string, args ...any) string {
	t.Helper()
	conn, err := sqlite.OpenConn(path, sqlite.OpenReadWrite)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetBusyTimeout(5 * time.Second)
	var out string
	err = sqlitex.Execute(conn, q, &sqlitex.ExecOptions{Args: args, ResultFunc: func(s *sqlite.Stmt) error {
		out = s.ColumnText(0)
		return nil
	}})
	if err != nil {
		t.Fatalf("%s on %s: %v", q, path, err)
	}
	return out
}

// RowsFile renders every row q yields on the database at path (opened
// read-only), each column followed by "|", each row by a newline.
func RowsFile(t testing.TB, path, q string) string {
	t.Helper()
	conn, err := sqlite.OpenConn(path, sqlite.OpenReadOnly)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	out := ""
	err = sqlitex.ExecuteTransient(conn, q, &sqlitex.ExecOptions{ResultFunc: func(s *sqlite.Stmt) error {
		for i := 0; i < s.ColumnCount(); i++ {
			out += s.ColumnText(i) + "|"
		}
		out += "\n"
		return nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// ScriptConn runs a script of statements on conn.
func ScriptConn(t testing.TB, conn *sqlite.Conn, script string) {
	t.Helper()
	if err := sqlitex.ExecuteScript(conn, script, nil); err != nil {
		t.Fatalf("%s: %v", script, err)
	}
}

// RelFiles lists the regular files under root, as slash-separated paths
// relative to it, sorted.
func RelFiles(t testing.TB, root string) []string {
	t.Helper()
	var out []string
	filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			rel, _ := filepath.Rel(root, p)
			out = append(out, filepath.ToSlash(rel))
		}
		return nil
	})
	sort.Strings(out)
	return out
}

// CountChangesets counts the changeset files (*.rdc) under folder.
func CountChangesets(t testing.TB, folder string) int {
	t.Helper()
	n := 0
	filepath.WalkDir(folder, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && filepath.Ext(p) == ".rdc" {
			n++
		}
		return nil
	})
	return n
}

// CopyFile copies src to dst, creating dst's directory.
func CopyFile(t testing.TB, src, dst string) {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	os.MkdirAll(filepath.Dir(dst), 0o755)
	if err := os.WriteFile(dst, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// CopyDir copies the files under src that dst lacks (a sync tool catching
// up).
func CopyDir(t testing.TB, src, dst string) {
	t.Helper()
	for _, rel := range RelFiles(t, src) {
		if _, err := os.Stat(filepath.Join(dst, rel)); err == nil {
			continue
		}
		CopyFile(t, filepath.Join(src, rel), filepath.Join(dst, rel))
	}
}
