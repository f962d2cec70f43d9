package export

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"zombiezen.com/go/sqlite"
	"zombiezen.com/go/sqlite/sqlitex"

	"github.com/rowdrop/rowdrop/internal/db"
)

// The writer process: TestMain runs it instead of the tests when
// ROWDROP_TEST_WRITER names a database. It keeps the invariant
// meta.n == count(items) in every transaction, so any snapshot that is not
// a committed state shows up as a broken invariant.
const writerEnv = "ROWDROP_TEST_WRITER"

func TestMain(m *testing.M) {
	if path := os.Getenv(writerEnv); path != "" {
		if err := writerMain(path); err != nil {
			fmt.Fprintln(os.Stderr, "writer:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

const concurrentSchema = `
CREATE TABLE items(id TEXT PRIMARY KEY, v TEXT, n INTEGER);
CREATE TABLE meta(k TEXT PRIMARY KEY, n INTEGER NOT NULL);
`

// writerMain writes to the database at path until path+".stop" exists,
// with a 5 s busy timeout like a typical app. Any error fails the test.
func writerMain(path string) error {
	conn, err := sqlite.OpenConn(db.FileURI(path), sqlite.OpenReadWrite|sqlite.OpenURI)
	if err != nil {
		return err
	}
	defer conn.Close()
	conn.SetBusyTimeout(5 * time.Second)
	rng := rand.New(rand.NewPCG(uint64(os.Getpid()), 7))
	commits := 0
	for i := 0; ; i++ {
		if i%16 == 0 {
			if _, err := os.Stat(path + ".stop"); err == nil {
				break
			}
		}
		if err := writerTx(conn, rng, i); err != nil {
			return fmt.Errorf("after %d commits: %w", commits, err)
		}
		commits++
		if rng.IntN(4) == 0 {
			time.Sleep(time.Duration(rng.IntN(2000)) * time.Microsecond)
		}
	}
	fmt.Println("commits", commits)
	return nil
}

func writerTx(conn *sqlite.Conn, rng *rand.Rand, i int) (err error) {
	end, err := db.Begin(conn, "IMMEDIATE")
	if err != nil {
		return err
	}
	defer end(&err)
	switch rng.IntN(5) {
	case 0, 1: // insert a few rows
		k := 1 + rng.IntN(3)
		for j := range k {
			if err = db.Exec(conn, "INSERT INTO items VALUES(?,?,?)", fmt.Sprintf("item-%d-%d", i, j), strings.Repeat("x", rng.IntN(300)), i); err != nil {
				return err
			}
		}
		err = db.Exec(conn, "UPDATE meta SET n=n+? WHERE k='count'", k)
	case 2: // update one
		err = db.Exec(conn, "UPDATE items SET v=?, n=n+1 WHERE id=(SELECT id FROM items ORDER BY random() LIMIT 1)", fmt.Sprint(i))
	case 3: // delete one
		if err = db.Exec(conn, "DELETE FROM items WHERE id=(SELECT id FROM items ORDER BY random() LIMIT 1)"); err != nil {
			return err
		}
		err = db.Exec(conn, "UPDATE meta SET n=n-changes() WHERE k='count'")
	default: // touch the counter row without changing the invariant
		err = db.Exec(conn, "UPDATE meta SET n=(SELECT count(*) FROM items) WHERE k='count'")
	}
	return err
}

func TestExportWhileAnotherProcessWrites(t *testing.T) {
	t.Parallel() // after the serial tests: see TestFastPathEqualsFullDiff
	for _, c := range []struct {
		name       string
		wal, hints bool
	}{
		{"wal", true, false},
		{"rollback-journal", false, false},
		{"wal-hints", true, true},
		{"rollback-journal-hints", false, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			exportWhileWriting(t, c.wal, c.hints)
		})
	}
}

func exportWhileWriting(t *testing.T, wal, hints bool) {
	e := newEnv(t, envOpts{schema: concurrentSchema, wal: wal, hints: hints})
	replica := filepath.Join(e.dir, "replica.db")
	snapshotDB(t, e.live, replica)
	e.exec("INSERT INTO meta VALUES('count', 0); INSERT INTO items VALUES('seed', 'x', 0); UPDATE meta SET n=1;")

	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), writerEnv+"="+e.live)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	stopped := false
	stop := func() error {
		if stopped {
			return nil
		}
		stopped = true
		if err := os.WriteFile(e.live+".stop", nil, 0o644); err != nil {
			t.Fatal(err)
		}
		select {
		case err := <-done:
			return err
		case <-time.After(30 * time.Second):
			cmd.Process.Kill()
			return errors.New("writer did not stop within 30 s")
		}
	}
	t.Cleanup(func() { stop() })

	d := time.Duration(envInt(t, "ROWDROP_CONCURRENT_MS", 1000)) * time.Millisecond
	tabs := e.tables()
	applied, exports := 0, 0
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) || exports < 3 {
		res, err := e.exp.Export(context.Background(), tabs)
		if err != nil {
			stop()
			t.Fatalf("export %d: %v\nwriter stderr: %s", exports+1, err, stderr.String())
		}
		exports++
		if res.File != "" {
			applyFile(t, replica, res.File)
			applied++
			checkInvariant(t, replica, res.File)
		}
		select {
		case err := <-done:
			t.Fatalf("writer exited while exports ran: %v\n%s", err, stderr.String())
		default:
		}
	}
	if err := stop(); err != nil {
		t.Fatalf("writer failed: %v\n%s", err, stderr.String())
	}
	var commits int
	if _, err := fmt.Sscanf(stdout.String(), "commits %d", &commits); err != nil || commits < 20 {
		t.Fatalf("writer made %d commits (output %q): too few to test anything", commits, stdout.String())
	}
	// Whatever the last export missed is captured now; then base, the
	// replica built from the files and live all agree.
	if res := e.export(); res.File != "" {
		applyFile(t, replica, res.File)
		applied++
	}
	checkInvariant(t, e.live, "live")
	live := dumpTables(t, e.live, tabs)
	if b := dumpTables(t, filepath.Join(e.st.Path, "base.db"), tabs); b != live {
		t.Fatalf("base copy differs from live after the final export")
	}
	if r := dumpTables(t, replica, tabs); r != live {
		t.Fatalf("replica built from %d files differs from live", applied)
	}
	t.Logf("%d exports, %d files, writer made %d commits", exports, applied, commits)
}

// applyFile applies a published file's changeset to the replica with
// SQLite's own sqlite3changeset_apply; any conflict means the file did not
// describe the step from the previous file's state.
func applyFile(t *testing.T, replica, path string) {
	t.Helper()
	_, _, raw := readFile(t, path)
	conn := openRW(t, replica, false)
	defer conn.Close()
	err := conn.ApplyChangeset(bytes.NewReader(raw), nil, func(ct sqlite.ConflictType, _ *sqlite.ChangesetIterator) sqlite.ConflictAction {
		t.Errorf("%s: conflict %v applying to the replica", path, ct)
		return sqlite.ChangesetAbort
	})
	if err != nil {
		t.Fatalf("apply %s: %v", path, err)
	}
}

func checkInvariant(t *testing.T, path, what string) {
	t.Helper()
	conn := openRO(t, path)
	defer conn.Close()
	var n, count int64 = -1, -2
	err := sqlitex.ExecuteTransient(conn, "SELECT (SELECT n FROM meta WHERE k='count'), (SELECT count(*) FROM items)", &sqlitex.ExecOptions{ResultFunc: func(s *sqlite.Stmt) error {
		n, count = s.ColumnInt64(0), s.ColumnInt64(1)
		return nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	if n != count {
		t.Fatalf("after %s: meta.n=%d but %d items: the export was not a committed snapshot", what, n, count)
	}
}
