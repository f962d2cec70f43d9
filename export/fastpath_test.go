package export

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"zombiezen.com/go/sqlite"
	"zombiezen.com/go/sqlite/sqlitex"

	"github.com/rowdrop/rowdrop/internal/schema"
)

// The fast path must produce exactly what the full diff produces. Every
// seed builds a small database with hints on, makes random edits of every
// kind a hint trigger has to notice (including the ones SQLite performs
// behind the app's back: REPLACE deleting a row that collides on a UNIQUE
// column, foreign-key cascades, app triggers), and compares the fast
// capture with the full diff of the same base and live, round after round.
//
// ROWDROP_SEED=n reruns one seed; ROWDROP_SEEDS=n runs n seeds (default 100).

const fastSchema = `
CREATE TABLE a(id TEXT PRIMARY KEY, x, y TEXT, z REAL);
CREATE TABLE b(id INTEGER PRIMARY KEY, u TEXT UNIQUE, v);
CREATE TABLE c(k1 INTEGER, k2 TEXT, v BLOB, w, PRIMARY KEY(k2, k1)) WITHOUT ROWID;
CREATE TABLE d(k TEXT PRIMARY KEY COLLATE NOCASE, v, UNIQUE(v) ON CONFLICT REPLACE);
CREATE TABLE e(k REAL PRIMARY KEY, v);
CREATE TABLE f(id INTEGER PRIMARY KEY, a_id TEXT REFERENCES a(id) ON DELETE CASCADE ON UPDATE CASCADE, n INTEGER);
CREATE TABLE g(p TEXT, q INTEGER, r, PRIMARY KEY(p, q), UNIQUE(q, r));
CREATE TABLE log(msg TEXT);
CREATE TRIGGER a_gone AFTER DELETE ON a BEGIN DELETE FROM c WHERE k2 = OLD.id; INSERT INTO log VALUES('del ' || OLD.id); END;
CREATE TRIGGER b_touch AFTER UPDATE OF v ON b BEGIN UPDATE e SET v = coalesce(v, 0) + 1 WHERE k = NEW.id % 4; END;
`

var fastTables = []string{"a", "b", "c", "d", "e", "f", "g"}

func seeds(t *testing.T, def int) []uint64 {
	t.Helper()
	if s := envInt(t, "ROWDROP_SEED", -1); s >= 0 {
		return []uint64{uint64(s)}
	}
	n := envInt(t, "ROWDROP_SEEDS", def)
	out := make([]uint64, n)
	for i := range out {
		out[i] = uint64(i + 1)
	}
	return out
}

func TestFastPathEqualsFullDiff(t *testing.T) {
	// Parallel tests start after the serial ones, so crashHook (set by the
	// crash tests) is never active while this runs.
	t.Parallel()
	// Seeds run four at a time whatever -parallel says: they mostly wait
	// for fsync, not for a CPU.
	work := make(chan uint64)
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for seed := range work {
				ok := t.Run("seed="+strconv.FormatUint(seed, 10), func(t *testing.T) { fastVsFull(t, seed) })
				if !ok {
					t.Logf("rerun with ROWDROP_SEED=%d go test ./export -run TestFastPathEqualsFullDiff", seed)
				}
			}
		}()
	}
	for _, seed := range seeds(t, 100) {
		work <- seed
	}
	close(work)
	wg.Wait()
}

func fastVsFull(t *testing.T, seed uint64) {
	rng := rand.New(rand.NewPCG(seed, 0x726f7764726f70))
	e := newEnv(t, envOpts{schema: fastSchema, wal: seed%2 == 0, hints: true, memFS: true})
	w := &workload{t: t, rng: rng, conn: openRW(t, e.live, false)}
	defer w.conn.Close()
	w.exec("PRAGMA foreign_keys=ON")
	w.exec("PRAGMA synchronous=OFF") // test speed: durability of the app's writes is not under test
	for range 20 + rng.IntN(20) {
		w.step()
	}
	if r := e.export(); r.Mode != ModeFull || r.Seq != 1 {
		t.Fatalf("seed %d: first export %+v, want a full diff installing the hints", seed, r)
	}
	w.ops = nil
	tabs := e.tables()
	basePath := filepath.Join(e.st.Path, "base.db")
	for round := 1; round <= 3; round++ {
		for range 1 + rng.IntN(25) {
			w.step()
		}
		var full, fast bytes.Buffer
		_, fxFull, err := captureFull(context.Background(), e.live, basePath, e.st.Path, tabs, &full)
		if err != nil {
			t.Fatalf("seed %d round %d: full: %v", seed, round, err)
		}
		_, fxFast, err := captureFast(context.Background(), e.live, basePath, tabs, &fast)
		if err != nil {
			t.Fatalf("seed %d round %d: fast: %v", seed, round, err)
		}
		want := decodeChanges(t, withFixups(t, &full, fxFull, tabs))
		got := decodeChanges(t, withFixups(t, &fast, fxFast, tabs))
		if strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Logf("seed %d round %d: operations since the last export:\n%s", seed, round, strings.Join(w.ops, "\n"))
		}
		sameChanges(t, fmt.Sprintf("seed %d round %d: fast capture vs full diff", seed, round), got, want)
		r := e.export()
		if len(want) > 0 && (r.Mode != ModeFast || r.Changes != int64(len(want))) {
			t.Fatalf("seed %d round %d: export %+v, want fast with %d changes", seed, round, r, len(want))
		}
		// d's key is COLLATE NOCASE: a key renamed only in case stays the
		// same row, under the key base has (see exact.go).
		fold := map[string]string{"d": "lower(k), v"}
		if b, l := dumpTablesSel(t, basePath, tabs, fold), dumpTablesSel(t, e.live, tabs, fold); b != l {
			t.Fatalf("seed %d round %d: base differs from live after export:\n%s\nchanges:\n%s\nops:\n%s", seed, round, lineDiff(b, l), strings.Join(want, "\n"), strings.Join(w.ops, "\n"))
		}
		w.ops = nil
	}
}

// workload makes random edits through one app connection.
type workload struct {
	t    *testing.T
	rng  *rand.Rand
	conn *sqlite.Conn
	ops  []string
}

func (w *workload) exec(q string, args ...any) {
	w.t.Helper()
	w.ops = append(w.ops, fmt.Sprintf("%s %v", q, args))
	if err := sqlitex.Execute(w.conn, q, &sqlitex.ExecOptions{Args: args}); err != nil {
		if strings.Contains(err.Error(), "constraint failed") {
			w.ops[len(w.ops)-1] += " -- " + err.Error()
			return // a refused edit is a normal outcome
		}
		w.t.Fatalf("%s %v: %v", q, args, err)
	}
}

// value draws from a small pool so keys collide and values repeat,
// mixing storage classes (1 and 1.0 are different values to a diff).
func (w *workload) value() any {
	switch w.rng.IntN(8) {
	case 0:
		return nil
	case 1:
		return int64(w.rng.IntN(5))
	case 2:
		return float64(w.rng.IntN(5))
	case 3:
		return float64(w.rng.IntN(5)) + 0.5
	case 4:
		return []byte{byte(w.rng.IntN(3))}
	case 5:
		return strings.Repeat("é", w.rng.IntN(3))
	default:
		return fmt.Sprintf("v%d", w.rng.IntN(6))
	}
}

func (w *workload) key() string {
	ks := []string{"k0", "k1", "K1", "k2", "ключ", "🦊", "k3", "k4"}
	return ks[w.rng.IntN(len(ks))]
}

func (w *workload) step() {
	r := w.rng
	n := r.IntN(5)
	switch r.IntN(26) {
	case 0:
		w.exec("INSERT OR IGNORE INTO a VALUES(?,?,?,?)", w.key(), w.value(), w.value(), w.value())
	case 1:
		w.exec("INSERT OR REPLACE INTO a VALUES(?,?,?,?)", w.key(), w.value(), w.value(), w.value())
	case 2:
		w.exec("UPDATE a SET x=?, z=? WHERE id=?", w.value(), w.value(), w.key())
	case 3:
		w.exec("UPDATE OR IGNORE a SET id=? WHERE id=?", w.key(), w.key())
	case 4:
		w.exec("DELETE FROM a WHERE id=?", w.key())
	case 5:
		w.exec("INSERT OR REPLACE INTO b(id,u,v) VALUES(?,?,?)", n, fmt.Sprintf("u%d", r.IntN(4)), w.value())
	case 6:
		w.exec("INSERT INTO b(u,v) VALUES(?,?) ON CONFLICT(u) DO UPDATE SET v=excluded.v", fmt.Sprintf("u%d", r.IntN(4)), w.value())
	case 7:
		w.exec("UPDATE OR REPLACE b SET u=? WHERE id=?", fmt.Sprintf("u%d", r.IntN(4)), n)
	case 8:
		w.exec("UPDATE b SET v=? WHERE id=?", w.value(), n)
	case 9:
		w.exec("INSERT OR REPLACE INTO c VALUES(?,?,?,?)", n, w.key(), w.value(), w.value())
	case 10:
		w.exec("UPDATE OR REPLACE c SET k1=k1+1 WHERE k2=?", w.key())
	case 11:
		w.exec("INSERT INTO d VALUES(?,?)", w.key(), r.IntN(4)) // plain INSERT replaces via the UNIQUE's ON CONFLICT REPLACE
	case 12:
		w.exec("UPDATE d SET v=? WHERE k=?", r.IntN(4), w.key())
	case 13:
		w.exec("INSERT OR REPLACE INTO e VALUES(?,?)", []any{int64(n), float64(n), float64(n) + 0.5}[r.IntN(3)], w.value())
	case 14:
		w.exec("INSERT OR IGNORE INTO f VALUES(?,?,?)", n, w.key(), r.IntN(3))
	case 15:
		w.exec("UPDATE f SET n=n+1 WHERE a_id=?", w.key())
	case 16:
		w.exec("INSERT OR REPLACE INTO g VALUES(?,?,?)", w.key(), n, r.IntN(3))
	case 17:
		w.exec("UPDATE OR REPLACE g SET r=? WHERE p=?", r.IntN(3), w.key())
	case 18:
		if tb := fastTables[r.IntN(len(fastTables))]; tb == "c" {
			w.exec("DELETE FROM c WHERE k1 % 3 = 0")
		} else {
			w.exec("DELETE FROM " + tb + " WHERE rowid % 3 = 0")
		}
	case 19:
		// delete and re-insert the same row: no net change for the diff
		w.exec("SAVEPOINT s")
		w.exec("CREATE TEMP TABLE IF NOT EXISTS keep AS SELECT * FROM a WHERE 0")
		w.exec("DELETE FROM temp.keep")
		w.exec("INSERT INTO temp.keep SELECT * FROM a WHERE id=?", w.key())
		w.exec("DELETE FROM a WHERE id IN (SELECT id FROM temp.keep)")
		w.exec("INSERT INTO a SELECT * FROM temp.keep")
		w.exec("RELEASE s")
	case 20:
		// a rolled-back transaction leaves neither changes nor hints
		w.exec("BEGIN")
		w.exec("INSERT OR REPLACE INTO b(id,u,v) VALUES(?,?,?)", 100+n, "rolled back", 1)
		w.exec("DELETE FROM a")
		w.exec("ROLLBACK")
	case 21:
		w.exec("UPDATE a SET y=y WHERE id=?", w.key()) // a write that changes nothing
	case 22:
		w.exec("UPDATE e SET k=k+10 WHERE k<?", n)
	case 23:
		w.exec("DELETE FROM d WHERE k=?", w.key()) // NOCASE key: 'k1' deletes 'K1'
	case 24:
		w.exec("UPDATE OR REPLACE d SET k=upper(k) WHERE k=?", w.key())
	default:
		w.exec("REPLACE INTO b(id,u,v) VALUES(?,?,?)", 10+n, fmt.Sprintf("u%d", r.IntN(4)), w.value())
	}
}

// lineDiff lists the lines only in a (-) or only in b (+).
func lineDiff(a, b string) string {
	in := func(s string) map[string]bool {
		m := map[string]bool{}
		for _, l := range strings.Split(s, "\n") {
			m[l] = true
		}
		return m
	}
	ia, ib := in(a), in(b)
	var out []string
	for _, l := range strings.Split(a, "\n") {
		if !ib[l] {
			out = append(out, "- "+l)
		}
	}
	for _, l := range strings.Split(b, "\n") {
		if !ia[l] {
			out = append(out, "+ "+l)
		}
	}
	return strings.Join(out, "\n")
}

func withFixups(t *testing.T, raw *bytes.Buffer, fx fixups, tabs []*schema.Table) *bytes.Buffer {
	t.Helper()
	var out bytes.Buffer
	if err := fx.merge(raw, tabs, &out, nil); err != nil {
		t.Fatal(err)
	}
	return &out
}
