package export

import (
	"bufio"
	"bytes"
	"context"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"

	"zombiezen.com/go/sqlite"
	"zombiezen.com/go/sqlite/sqlitex"

	"github.com/rowdrop/rowdrop/internal/changeset"
	"github.com/rowdrop/rowdrop/internal/db"
	"github.com/rowdrop/rowdrop/internal/folder"
	"github.com/rowdrop/rowdrop/internal/hlc"
	"github.com/rowdrop/rowdrop/internal/rdfile"
	"github.com/rowdrop/rowdrop/internal/schema"
	"github.com/rowdrop/rowdrop/internal/state"
)

// env is one device: a live database, a shared folder and a state
// directory, wired into an Exporter the way the root package does it.
type env struct {
	t      *testing.T
	dir    string
	live   string // live database path
	folder string
	st     *state.Dir
	exp    *Exporter
	filter schema.Filter
}

type envOpts struct {
	schema string
	wal    bool // journal_mode=WAL (else the default rollback journal)
	hints  bool
	filter schema.Filter
	// memFS puts the files on /dev/shm when it exists: for tests where
	// durability is not under test, fsync-free storage makes many seeds
	// affordable.
	memFS bool
}

// tempDir returns a fresh directory removed at the end of the test.
func tempDir(t *testing.T, memFS bool) string {
	t.Helper()
	if memFS {
		if st, err := os.Stat("/dev/shm"); err == nil && st.IsDir() {
			d, err := os.MkdirTemp("/dev/shm", "rowdrop-export-test-")
			if err == nil {
				t.Cleanup(func() { os.RemoveAll(d) })
				return d
			}
		}
	}
	return t.TempDir()
}

// newEnv creates the live database with opts.schema and an Exporter for it.
func newEnv(t *testing.T, o envOpts) *env {
	t.Helper()
	dir := tempDir(t, o.memFS)
	e := &env{t: t, dir: dir, live: filepath.Join(dir, "live.db"), folder: filepath.Join(dir, "folder"), filter: o.filter}
	if err := os.Mkdir(e.folder, 0o755); err != nil {
		t.Fatal(err)
	}
	conn := openRW(t, e.live, true)
	mode := "DELETE"
	if o.wal {
		mode = "WAL"
	}
	if err := sqlitex.ExecuteTransient(conn, "PRAGMA journal_mode="+mode, nil); err != nil {
		t.Fatal(err)
	}
	if err := sqlitex.ExecuteScript(conn, o.schema, nil); err != nil {
		t.Fatal(err)
	}
	conn.Close()
	e.open(o.hints)
	return e
}

// open (re)opens the state directory and builds the Exporter, as a
// restarted process would.
func (e *env) open(hints bool) {
	t := e.t
	t.Helper()
	st, err := state.Open(filepath.Join(e.dir, "state"))
	if err != nil {
		t.Fatal(err)
	}
	id, err := st.Identity("test device")
	if err != nil {
		t.Fatal(err)
	}
	e.st = st
	e.exp = &Exporter{LivePath: e.live, Folder: folder.New(e.folder, rdfile.Limits{}), State: st, ID: id,
		Clock: hlc.New(nil, hlc.Timestamp(stateInt(t, st, state.KeyHLC))), Hints: hints}
	if hints {
		live, err := db.OpenLive(e.live, false)
		if err != nil {
			t.Fatal(err)
		}
		e.exp.Live = live
	}
	t.Cleanup(e.close)
}

func (e *env) close() {
	if e.exp != nil && e.exp.Live != nil {
		e.exp.Live.Close()
		e.exp.Live = nil
	}
	if e.st != nil {
		e.st.Close()
		e.st = nil
	}
}

// tables reads the synced tables of the live database.
func (e *env) tables() []*schema.Table {
	e.t.Helper()
	conn := openRO(e.t, e.live)
	defer conn.Close()
	tabs, _, err := schema.Inspect(conn, "main", e.filter)
	if err != nil {
		e.t.Fatal(err)
	}
	return tabs
}

// export runs one Export and fails the test on error.
func (e *env) export() Result {
	e.t.Helper()
	res, err := e.exp.Export(context.Background(), e.tables())
	if err != nil {
		e.t.Fatalf("export: %v", err)
	}
	return res
}

// exec runs a script on the live database through a fresh connection, as
// the app would.
func (e *env) exec(script string, args ...any) {
	e.t.Helper()
	execDB(e.t, e.live, script, args...)
}

func execDB(t *testing.T, path, script string, args ...any) {
	t.Helper()
	conn := openRW(t, path, false)
	defer conn.Close()
	var err error
	if len(args) == 0 {
		err = sqlitex.ExecuteScript(conn, script, nil)
	} else {
		err = sqlitex.Execute(conn, script, &sqlitex.ExecOptions{Args: args})
	}
	if err != nil {
		t.Fatalf("%.80s: %v", script, err)
	}
}

// openRW opens a database read-write without switching its journal mode
// (zombiezen's default flags include OpenWAL, which would).
func openRW(t testing.TB, path string, create bool) *sqlite.Conn {
	t.Helper()
	flags := sqlite.OpenReadWrite | sqlite.OpenURI
	if create {
		flags |= sqlite.OpenCreate
	}
	conn, err := sqlite.OpenConn(db.FileURI(path), flags)
	if err != nil {
		t.Fatal(err)
	}
	conn.SetBusyTimeout(db.BusyTimeout)
	return conn
}

func openRO(t testing.TB, path string) *sqlite.Conn {
	t.Helper()
	conn, err := sqlite.OpenConn(db.FileURI(path), sqlite.OpenReadOnly|sqlite.OpenURI)
	if err != nil {
		t.Fatal(err)
	}
	conn.SetBusyTimeout(db.BusyTimeout)
	return conn
}

// snapshotDB copies a database with VACUUM INTO (a consistent copy made
// through SQLite, never a file copy).
func snapshotDB(t *testing.T, src, dst string) {
	t.Helper()
	os.Remove(dst)
	conn := openRO(t, src)
	defer conn.Close()
	if err := sqlitex.ExecuteTransient(conn, "VACUUM INTO ?", &sqlitex.ExecOptions{Args: []any{dst}}); err != nil {
		t.Fatal(err)
	}
}

// sessionDiff is the reference: sqlite3session_diff of every table, from
// the database at beforePath to the one at afterPath, computed
// independently of rowdrop's capture code.
func sessionDiff(t *testing.T, beforePath, afterPath string, tables []string) []byte {
	t.Helper()
	conn := openRO(t, afterPath)
	defer conn.Close()
	if err := sqlitex.ExecuteTransient(conn, "ATTACH DATABASE ? AS before", &sqlitex.ExecOptions{Args: []any{db.FileURI(beforePath) + "?mode=ro"}}); err != nil {
		t.Fatal(err)
	}
	sess, err := conn.CreateSession("main")
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Delete()
	for _, name := range tables {
		if err := sess.Attach(name); err != nil {
			t.Fatal(err)
		}
		if err := sess.Diff("before", name); err != nil {
			t.Fatalf("diff %s: %v", name, err)
		}
	}
	var buf bytes.Buffer
	if err := sess.WriteChangeset(&buf); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// decodeChanges decodes a raw changeset into canonical, sorted strings
// (exact: every value's kind and bytes) so two change lists compare
// independently of SQLite's hash order.
func decodeChanges(t *testing.T, r io.Reader) []string {
	t.Helper()
	rd := changeset.NewReader(bufio.NewReader(r), changeset.Limits{})
	var out []string
	for {
		c, err := rd.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("decode changeset: %v", err)
		}
		out = append(out, canon(c))
	}
	sort.Strings(out)
	return out
}

// canon renders a change exactly. Long values are abbreviated by their
// length and a hex prefix plus a checksum-like suffix of the full bytes, so
// 1 MB values stay comparable without flooding failure messages.
func canon(c *changeset.Change) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s pk=%x %s ind=%t", c.Table.Name, c.Table.PK, c.Op, c.Indirect)
	rec := func(name string, vals []changeset.Value) {
		if vals == nil {
			return
		}
		b.WriteString(" " + name + "[")
		for i, v := range vals {
			if i > 0 {
				b.WriteString(",")
			}
			b.WriteString(canonValue(v))
		}
		b.WriteString("]")
	}
	rec("old", c.Old)
	rec("new", c.New)
	return b.String()
}

func canonValue(v changeset.Value) string {
	enc := changeset.AppendValue(nil, v)
	if len(enc) <= 80 {
		return v.Kind.String() + ":" + hex.EncodeToString(enc)
	}
	h := uint64(14695981039346656037)
	for _, x := range enc {
		h = (h ^ uint64(x)) * 1099511628211
	}
	return fmt.Sprintf("%s:len%d:%x..:%016x", v.Kind, len(enc), enc[:16], h)
}

// folderFiles lists the changeset files of the folder (relative paths) and
// fails on anything else visible there (temp files, stray names).
func folderFiles(t *testing.T, folder string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(folder, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			return nil
		}
		rel, _ := filepath.Rel(folder, p)
		rel = filepath.ToSlash(rel)
		if k, _, _ := rdfile.Classify(rel); k != rdfile.NameChangeset {
			t.Errorf("unexpected file in the shared folder: %s", rel)
			return nil
		}
		out = append(out, rel)
		return nil
	})
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	sort.Strings(out)
	return out
}

// readFile opens a published file through the documented format and
// returns its header and canonical changes.
func readFile(t *testing.T, path string) (rdfile.Header, []string, []byte) {
	t.Helper()
	shared, rel := folder.At(path)
	f, err := shared.Open(rel)
	if err != nil {
		t.Fatalf("open %s: %v", path, err)
	}
	if err := f.Verify(); err != nil {
		t.Fatalf("verify %s: %v", path, err)
	}
	rc, err := f.Changeset()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	raw, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("read payload of %s: %v", path, err)
	}
	if int64(len(raw)) != f.Header.RawLen {
		t.Fatalf("%s: payload is %d bytes, header says %d", path, len(raw), f.Header.RawLen)
	}
	return f.Header, decodeChanges(t, bytes.NewReader(raw)), raw
}

// sameChanges compares two canonical change lists.
func sameChanges(t *testing.T, what string, got, want []string) {
	t.Helper()
	if len(got) == len(want) {
		eq := true
		for i := range got {
			if got[i] != want[i] {
				eq = false
				break
			}
		}
		if eq {
			return
		}
	}
	gs, ws := map[string]bool{}, map[string]bool{}
	for _, g := range got {
		gs[g] = true
	}
	for _, w := range want {
		ws[w] = true
	}
	var msg strings.Builder
	fmt.Fprintf(&msg, "%s: %d changes, want %d\n", what, len(got), len(want))
	n := 0
	for _, g := range got {
		if !ws[g] && n < 10 {
			fmt.Fprintf(&msg, "  extra:   %s\n", g)
			n++
		}
	}
	n = 0
	for _, w := range want {
		if !gs[w] && n < 10 {
			fmt.Fprintf(&msg, "  missing: %s\n", w)
			n++
		}
	}
	t.Fatal(msg.String())
}

// dumpTables renders the named tables of a database (sorted by primary
// key), exactly, for comparing base with live.
func dumpTables(t *testing.T, path string, tables []*schema.Table) string {
	t.Helper()
	return dumpTablesSel(t, path, tables, nil)
}

// dumpTablesSel is dumpTables with the select list of some tables
// replaced (to fold a case-insensitive key, say).
func dumpTablesSel(t *testing.T, path string, tables []*schema.Table, sel map[string]string) string {
	t.Helper()
	conn := openRO(t, path)
	defer conn.Close()
	var b strings.Builder
	for _, tab := range tables {
		var order []string
		for _, i := range tab.PKCols() {
			order = append(order, db.Quote(tab.Columns[i].Name))
		}
		fmt.Fprintf(&b, "== %s\n", tab.Name)
		cols := "*"
		if c, ok := sel[tab.Name]; ok {
			cols = c
		}
		q := fmt.Sprintf("SELECT %s FROM %s ORDER BY %s", cols, db.Quote(tab.Name), strings.Join(order, ","))
		err := sqlitex.ExecuteTransient(conn, q, &sqlitex.ExecOptions{ResultFunc: func(s *sqlite.Stmt) error {
			for i := 0; i < s.ColumnCount(); i++ {
				b.WriteString(canonValue(db.Column(s, i)))
				b.WriteString("|")
			}
			b.WriteString("\n")
			return nil
		}})
		if err != nil {
			t.Fatalf("dump %s of %s: %v", tab.Name, path, err)
		}
	}
	return b.String()
}

func tableNames(tabs []*schema.Table) []string {
	var out []string
	for _, t := range tabs {
		out = append(out, t.Name)
	}
	return out
}

// envInt reads a positive integer from the environment, or def.
func envInt(t *testing.T, name string, def int) int {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		t.Fatalf("%s=%q: want a non-negative integer", name, v)
	}
	return n
}

// stateInt reads an integer state value, failing the test if it cannot.
func stateInt(t testing.TB, st *state.Dir, k state.Key) int64 {
	t.Helper()
	n, err := st.Int(k)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// stateValue reads a state value, failing the test if it cannot.
func stateValue(t testing.TB, st *state.Dir, k state.Key) string {
	t.Helper()
	v, err := st.Value(k)
	if err != nil {
		t.Fatal(err)
	}
	return v
}
