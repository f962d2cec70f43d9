package scenario_test

import (
	"context"
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"zombiezen.com/go/sqlite"
	"zombiezen.com/go/sqlite/sqlitex"

	"github.com/rowdrop/rowdrop"
	"github.com/rowdrop/rowdrop/internal/changeset"
	"github.com/rowdrop/rowdrop/merge"
	"github.com/rowdrop/rowdrop/scenario"
)

const bmSchema = `CREATE TABLE bm(id TEXT PRIMARY KEY, url TEXT NOT NULL UNIQUE, title TEXT);`

func uniqueConflicts(d *scenario.Device, key string) []*rowdrop.Conflict {
	var out []*rowdrop.Conflict
	for _, c := range d.Conflicts() {
		if c.Kind == "unique" && (key == "" || c.Key == key) {
			out = append(out, c)
		}
	}
	return out
}

// A device inserts a row that clashes on a UNIQUE value with a row
// another device already published, and imports before exporting its
// own: its row (a local change, which would be exported later and lose)
// is taken out of the app's table and kept in the conflict log, nothing is
// held, nothing is exported for it, and restoring it works once the value
// is free.
func TestUniqueLocalUnexportedRowLoses(t *testing.T) {
	w := scenario.NewWorld(t, bmSchema)
	a := w.AddDevice(scenario.Options{Name: "a", Initialised: true})
	b := w.AddDevice(scenario.Options{Name: "b", Initialised: true, WAL: true})
	c := w.AddDevice(scenario.Options{Name: "c", Initialised: true})
	w.Tick(1000)
	a.Exec(`INSERT INTO bm VALUES('a1', 'https://same', 'from a')`)
	a.Export()
	w.Tick(1000)
	b.Exec(`INSERT INTO bm VALUES('b1', 'https://same', 'from b'), ('b2', 'https://other', 'kept')`)
	w.DeliverAll(a, b)
	if r := b.Import(); r.Applied != 1 || r.Held != 0 {
		t.Fatalf("b: import %+v", r)
	}
	if got := b.Query(`SELECT id FROM bm ORDER BY id`); fmt.Sprint(got) != "[[a1] [b2]]" {
		t.Fatalf("b: %v", got)
	}
	lost := uniqueConflicts(b, "'b1'")
	if len(lost) != 1 || lost[0].Loser["title"] != "'from b'" || lost[0].Winner["id"] != "'a1'" {
		t.Fatalf("b's conflict log: %+v", lost)
	}
	w.Tick(1000)
	w.Quiesce(6)
	w.AssertConverged()
	if got := c.Query(`SELECT id FROM bm ORDER BY id`); fmt.Sprint(got) != "[[a1] [b2]]" {
		t.Fatalf("c: %v", got)
	}
	// Restoring it while a1 holds the URL is refused with the fix named.
	err := b.S.RestoreConflict(context.Background(), lost[0].ID)
	if err == nil || !strings.Contains(err.Error(), "change or delete that row") {
		t.Fatalf("restore while the value is taken: %v", err)
	}
	// Once the URL is free, it comes back and travels.
	b.Exec(`UPDATE bm SET url='https://moved' WHERE id='a1'`)
	if err := b.S.RestoreConflict(context.Background(), lost[0].ID); err != nil {
		t.Fatal(err)
	}
	w.Tick(1000)
	w.Quiesce(6)
	w.AssertConverged()
	if got := a.Query(`SELECT id, url FROM bm ORDER BY id`); fmt.Sprint(got) != "[[a1 https://moved] [b1 https://same] [b2 https://other]]" {
		t.Fatalf("a after restore: %v", got)
	}
}

// A device swaps unique values between rows in one transaction (a cycle
// of three, and with batches of one change so the swap spans batches):
// the changeset is ordered by key, not by statement, so some writes clash
// for a moment. Every device ends with the swap, nothing is held, and no
// conflict is logged.
func TestUniqueTransientSwap(t *testing.T) {
	for _, batch := range []int{0, 1} {
		t.Run(fmt.Sprintf("batch%d", batch), func(t *testing.T) {
			w := scenario.NewWorld(t, bmSchema)
			cfg := func(c *rowdrop.Config) { c.MergeBatch = batch }
			a := w.AddDevice(scenario.Options{Name: "a", Initialised: true, Config: cfg})
			b := w.AddDevice(scenario.Options{Name: "b", Initialised: true, Hints: true, Config: cfg})
			a.Exec(`INSERT INTO bm VALUES('x1', 'u1', 'one'), ('x2', 'u2', 'two'), ('x3', 'u3', 'three')`)
			w.Tick(1000)
			w.Quiesce(5)
			w.Tick(1000)
			a.Script(`UPDATE bm SET url='tmp' WHERE id='x1'; UPDATE bm SET url='u1' WHERE id='x3';
				UPDATE bm SET url='u3' WHERE id='x2'; UPDATE bm SET url='u2' WHERE id='x1';`)
			w.Tick(1000)
			w.Quiesce(5)
			w.AssertConverged()
			if got := b.Query(`SELECT id, url FROM bm ORDER BY id`); fmt.Sprint(got) != "[[x1 u2] [x2 u3] [x3 u1]]" {
				t.Fatalf("b: %v", got)
			}
			for _, d := range w.Devs {
				if cs := d.Conflicts(); len(cs) != 0 {
					t.Fatalf("%s logged %+v", d.Name, cs[0])
				}
			}
		})
	}
}

// A composite UNIQUE index made with CREATE UNIQUE INDEX, with a NOCASE
// column: rows clash when both columns are equal (case aside), never when
// one is NULL. The base copy gets the index too.
func TestUniqueCompositeIndex(t *testing.T) {
	for _, order := range []string{"ab", "ba"} {
		t.Run(order, func(t *testing.T) {
			w := scenario.NewWorld(t, `CREATE TABLE tags(id TEXT PRIMARY KEY, folder TEXT, name TEXT, n INTEGER);
				CREATE UNIQUE INDEX tags_folder_name ON tags(folder, name COLLATE NOCASE);`)
			a := w.AddDevice(scenario.Options{Name: "a", Initialised: true})
			b := w.AddDevice(scenario.Options{Name: "b", Initialised: true, Hints: true})
			c := w.AddDevice(scenario.Options{Name: "c", Initialised: true})
			w.Tick(1000)
			a.Exec(`INSERT INTO tags VALUES('a1', 'f', 'Work', 1), ('a2', NULL, 'home', 1), ('a3', 'g', 'work', 1)`)
			a.Export()
			w.Tick(1000)
			b.Exec(`INSERT INTO tags VALUES('b1', 'f', 'WORK', 2), ('b2', NULL, 'home', 2), ('b3', 'h', 'work', 2)`)
			b.Export()
			first, second := a, b
			if order == "ba" {
				first, second = b, a
			}
			w.Send(first, c)
			w.DeliverAll(second, c)
			if r := c.Import(); r.Held != 0 {
				t.Fatalf("c: %+v", r)
			}
			w.Tick(1000)
			w.Quiesce(6)
			w.AssertConverged()
			if got := c.Query(`SELECT id FROM tags ORDER BY id`); fmt.Sprint(got) != "[[a1] [a2] [a3] [b2] [b3]]" {
				t.Fatalf("c: %v", got)
			}
			for _, d := range w.Devs {
				if got := d.Value(`SELECT count(*) FROM sqlite_master WHERE name='tags_folder_name'`); got != "1" {
					t.Fatal("index missing in live")
				}
				if len(uniqueConflicts(d, "'b1'")) == 0 && d != a {
					t.Errorf("%s: b1 not in the conflict log", d.Name)
				}
			}
			if got := indexInBase(t, a); got != 1 {
				t.Fatalf("base copy has %d copies of the index", got)
			}
		})
	}
}

// A row held on a UNIQUE clash is inserted again by the app (it is not in
// the table, so the app can) and exported, which writes it to base; then a
// row inserted earlier than that second insert arrives with the same
// value. The greedy choice holds the row again, and it must stay listed
// as held: its stale entry from the first hold was once dropped after
// the row had been held again, leaving it neither in the table nor held.
func TestUniqueHeldRowInsertedAgain(t *testing.T) {
	w := scenario.NewWorld(t, `CREATE TABLE u(id TEXT PRIMARY KEY, v INTEGER UNIQUE, w TEXT);`)
	a := w.AddDevice(scenario.Options{Name: "a", Initialised: true})
	b := w.AddDevice(scenario.Options{Name: "b", Initialised: true})
	c := w.AddDevice(scenario.Options{Name: "c", Initialised: true})
	w.Tick(1000)
	a.Exec(`INSERT INTO u VALUES('k3', 1, 'a')`)
	a.Export()
	w.Tick(1000)
	c.Exec(`INSERT INTO u VALUES('k1', 1, 'c')`)
	c.Export() // delivered to a only after a's second insert of k4
	w.Tick(1000)
	b.Exec(`INSERT INTO u VALUES('k4', 1, 'b')`)
	b.Export()
	w.DeliverAll(b, a)
	a.Import()
	if got := heldKeys(t, a); fmt.Sprint(got) != "['k4']" {
		t.Fatalf("a holds %v after b's file, want k4 (k3 was inserted first)", got)
	}
	w.Tick(1000)
	a.Script(`DELETE FROM u WHERE id='k3'; INSERT INTO u VALUES('k4', 1, 'a again');`)
	a.Export()
	w.DeliverAll(c, a)
	a.Import()
	if got := heldKeys(t, a); fmt.Sprint(got) != "['k4']" {
		t.Fatalf("a holds %v after c's file, want k4 (k1 was inserted before k4's second insert)", got)
	}
	w.Tick(1000)
	w.Quiesce(6)
	w.AssertConverged()
	if got := a.Query(`SELECT id, w FROM u ORDER BY id`); fmt.Sprint(got) != "[[k1 c]]" {
		t.Fatalf("a: %v", got)
	}
	for _, d := range w.Devs {
		if got := heldKeys(t, d); fmt.Sprint(got) != "['k4']" {
			t.Errorf("%s holds %v, want k4", d.Name, got)
		}
		if len(uniqueConflicts(d, "'k4'")) == 0 {
			t.Errorf("%s: held k4 is not in the conflict log", d.Name)
		}
	}
}

func indexInBase(t *testing.T, d *scenario.Device) int {
	conn := openBase(t, d)
	defer conn.Close()
	n := 0
	err := sqlitex.ExecuteTransient(conn, `SELECT count(*) FROM sqlite_master WHERE name='tags_folder_name'`, &sqlitex.ExecOptions{ResultFunc: func(s *sqlite.Stmt) error {
		n = s.ColumnInt(0)
		return nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func openBase(t *testing.T, d *scenario.Device) *sqlite.Conn {
	t.Helper()
	conn, err := sqlite.OpenConn(filepath.Join(d.State, "base.db"), sqlite.OpenReadOnly)
	if err != nil {
		t.Fatal(err)
	}
	conn.SetBusyTimeout(5 * time.Second)
	return conn
}

// The row that keeps a UNIQUE value is deleted, or lets go of the value:
// the row it displaced comes back, on every device, whichever order the
// delete and the displaced row's insert arrive in.
func TestUniqueHeldRowComesBack(t *testing.T) {
	for _, how := range []string{"delete", "move"} {
		for _, order := range []string{"insert-first", "release-first"} {
			t.Run(how+"/"+order, func(t *testing.T) {
				w := scenario.NewWorld(t, bmSchema)
				a := w.AddDevice(scenario.Options{Name: "a", Initialised: true})
				b := w.AddDevice(scenario.Options{Name: "b", Initialised: true})
				c := w.AddDevice(scenario.Options{Name: "c", Initialised: true})
				d := w.AddDevice(scenario.Options{Name: "d", Initialised: true})
				w.Tick(1000)
				a.Exec(`INSERT INTO bm VALUES('a1', 'https://same', 'from a')`)
				a.Export()
				w.Tick(1000)
				b.Exec(`INSERT INTO bm VALUES('b1', 'https://same', 'from b')`)
				b.Export()
				// c, having seen a1 only, releases the URL.
				w.DeliverAll(a, c)
				c.Import()
				w.Tick(1000)
				if how == "delete" {
					c.Exec(`DELETE FROM bm WHERE id='a1'`)
				} else {
					c.Exec(`UPDATE bm SET url='https://moved' WHERE id='a1'`)
				}
				c.Export()
				// d gets a1, then b1 and c's change in either order.
				w.DeliverAll(a, d)
				d.Import()
				if order == "insert-first" {
					w.DeliverAll(b, d)
					d.Import()
					w.DeliverAll(c, d)
					d.Import()
				} else {
					w.DeliverAll(c, d)
					d.Import()
					w.DeliverAll(b, d)
					d.Import()
				}
				w.Tick(1000)
				w.Quiesce(6)
				w.AssertConverged()
				want := "[[b1 https://same]]"
				if how == "move" {
					want = "[[a1 https://moved] [b1 https://same]]"
				}
				if got := d.Query(`SELECT id, url FROM bm ORDER BY id`); fmt.Sprint(got) != want {
					t.Fatalf("d: %v, want %s", got, want)
				}
			})
		}
	}
}

// Randomised: three devices insert, edit and delete rows of a table with a
// UNIQUE column over a tiny value domain, exporting and importing at random
// with files delivered late. At the end every device holds the same
// tables, the same rows are held out on every device, and every held row
// is in the conflict log of the device holding it. Seed: ROWDROP_SEED;
// ROWDROP_UNIQUE_SEEDS runs more seeds.
func TestUniqueRandomConverges(t *testing.T) {
	seeds := 12
	if testing.Short() {
		seeds = 4
	}
	if s := os.Getenv("ROWDROP_UNIQUE_SEEDS"); s != "" {
		seeds, _ = strconv.Atoi(s)
	}
	base := time.Now().UnixNano()
	if s := os.Getenv("ROWDROP_SEED"); s != "" {
		v, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			t.Fatal(err)
		}
		base, seeds = v, 1
	}
	for i := 0; i < seeds; i++ {
		seed := base + int64(i)
		t.Run(strconv.FormatInt(seed, 10), func(t *testing.T) {
			t.Logf("seed %d (rerun with ROWDROP_SEED=%d)", seed, seed)
			uniqueRandomRun(t, seed)
		})
	}
}

func uniqueRandomRun(t *testing.T, seed int64) {
	rng := rand.New(rand.NewSource(seed))
	w := scenario.NewWorld(t, `CREATE TABLE u(id TEXT PRIMARY KEY, v INTEGER UNIQUE, w TEXT);`)
	var devs []*scenario.Device
	for i := 0; i < 3; i++ {
		opt := scenario.Options{Name: fmt.Sprintf("d%d", i), Initialised: true, Hints: i == 1, WAL: i == 2}
		if rng.Intn(2) == 0 {
			opt.Config = func(c *rowdrop.Config) { c.MergeBatch = 1 + rng.Intn(3) }
		}
		devs = append(devs, w.AddDevice(opt))
	}
	app := func(d *scenario.Device, q string, args ...any) {
		if err := sqlitex.Execute(d.App, q, &sqlitex.ExecOptions{Args: args}); err != nil {
			if sqlite.ErrCode(err).ToPrimary() != sqlite.ResultConstraint {
				t.Fatalf("%s: %s: %v", d.Name, q, err)
			}
			// the app refuses a duplicate itself
		}
	}
	val := func() any {
		if rng.Intn(6) == 0 {
			return nil
		}
		return rng.Intn(3)
	}
	for step := 0; step < 60; step++ {
		d := devs[rng.Intn(len(devs))]
		w.Tick(int64(1 + rng.Intn(700)))
		id := fmt.Sprintf("k%d", rng.Intn(6))
		switch r := rng.Intn(10); {
		case r < 3:
			app(d, `INSERT INTO u VALUES(?, ?, ?)`, id, val(), fmt.Sprintf("%s@%d", d.Name, step))
		case r < 5:
			app(d, `UPDATE u SET v=? WHERE id=?`, val(), id)
		case r < 6:
			app(d, `UPDATE u SET w=? WHERE id=?`, fmt.Sprintf("%s@%d", d.Name, step), id)
		case r < 7:
			app(d, `DELETE FROM u WHERE id=?`, id)
		case r < 8:
			// swap two values in one transaction
			d.Script(`UPDATE u SET v=-1 WHERE v=0; UPDATE u SET v=0 WHERE v=1; UPDATE u SET v=1 WHERE v=-1;`)
		case r < 9:
			d.Export()
		default:
			from := devs[rng.Intn(len(devs))]
			if from != d {
				if p := from.Published(); len(p) > 0 {
					// a random prefix of from's files: late delivery
					for _, s := range p[:1+rng.Intn(len(p))] {
						w.Deliver(from, s, d)
					}
				}
			}
			d.Import()
		}
	}
	w.Tick(1000)
	w.Quiesce(8)
	w.AssertConverged()
	var heldSets []string
	for _, d := range devs {
		held := heldKeys(t, d)
		heldSets = append(heldSets, strings.Join(held, ","))
		for _, k := range held {
			if len(uniqueConflicts(d, k)) == 0 {
				t.Errorf("%s: held row %s is not in its conflict log", d.Name, k)
			}
		}
	}
	for i := range heldSets {
		if heldSets[i] != heldSets[0] {
			t.Fatalf("held rows differ: %q", heldSets)
		}
	}
	t.Logf("final rows %v, held %s", devs[0].Query(`SELECT id, v FROM u ORDER BY id`), heldSets[0])
}

// heldKeys lists the keys (as the conflict log writes them) of rows held
// out on a UNIQUE clash.
func heldKeys(t *testing.T, d *scenario.Device) []string {
	conn := openBase(t, d)
	defer conn.Close()
	var out []string
	err := sqlitex.ExecuteTransient(conn, `SELECT pk FROM rowdrop_unique_held`, &sqlitex.ExecOptions{ResultFunc: func(s *sqlite.Stmt) error {
		b := make([]byte, s.ColumnLen(0))
		s.ColumnBytes(0, b)
		out = append(out, pkText(t, b))
		return nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(out)
	return out
}

func pkText(t *testing.T, pk []byte) string {
	key, err := changeset.DecodeKey(pk)
	if err != nil {
		t.Fatal(err)
	}
	return merge.KeyText(key)
}

// A snapshot carries a row held out on a UNIQUE clash (alive by its
// clocks, kept out of the table): a device joining from it holds the same
// row out, and brings it back like the others once the value is free.
func TestUniqueJoinFromSnapshot(t *testing.T) {
	w := scenario.NewWorld(t, bmSchema)
	a := w.AddDevice(scenario.Options{Name: "a", Initialised: true})
	b := w.AddDevice(scenario.Options{Name: "b", Initialised: true, Hints: true})
	w.Tick(1000)
	a.Exec(`INSERT INTO bm VALUES('a1', 'https://same', 'from a')`)
	a.Export()
	w.Tick(1000)
	b.Exec(`INSERT INTO bm VALUES('b1', 'https://same', 'from b')`)
	b.Export()
	w.Tick(1000)
	w.Quiesce(6)
	if got := heldKeys(t, a); fmt.Sprint(got) != "['b1']" {
		t.Fatalf("a holds out %v", got)
	}
	snap := a.Snapshot()
	w.Collect(a, snap.Seen[a.ID])
	w.Collect(b, snap.Seen[b.ID])

	c := w.AddDevice(scenario.Options{Name: "c"})
	c.Exec(`INSERT INTO bm VALUES('c1', 'https://c', 'from c')`)
	w.DeliverSnapshots(a, c)
	w.DeliverAll(a, c)
	w.DeliverAll(b, c)
	w.Tick(1000)
	if _, err := c.S.Sync(context.Background()); err != nil {
		t.Fatal(err)
	}
	if st := c.Status(); len(st.Files) > 0 {
		t.Fatalf("c: files not applied after joining: %+v", st.Files)
	}
	w.Tick(1000)
	w.Quiesce(6)
	w.AssertConverged()
	if got := c.Query(`SELECT id FROM bm ORDER BY id`); fmt.Sprint(got) != "[[a1] [c1]]" {
		t.Fatalf("c: %v", got)
	}
	if got := heldKeys(t, c); fmt.Sprint(got) != "['b1']" {
		t.Fatalf("c holds out %v", got)
	}
	if len(uniqueConflicts(c, "'b1'")) == 0 {
		t.Fatal("b1 is not in c's conflict log")
	}
	w.Tick(1000)
	a.Exec(`DELETE FROM bm WHERE id='a1'`)
	w.Tick(1000)
	w.Quiesce(6)
	w.AssertConverged()
	if got := c.Query(`SELECT id FROM bm ORDER BY id`); fmt.Sprint(got) != "[[b1] [c1]]" {
		t.Fatalf("c after a1's delete: %v", got)
	}
}

// A UNIQUE index on an expression: rowdrop cannot tell which row holds the
// value, so a clash on it holds the file, with the index named (never a
// silent loss).
func TestUniqueExpressionIndexHeld(t *testing.T) {
	w := scenario.NewWorld(t, bmSchema+`CREATE UNIQUE INDEX bm_lower ON bm(lower(title));`)
	a := w.AddDevice(scenario.Options{Name: "a", Initialised: true})
	b := w.AddDevice(scenario.Options{Name: "b", Initialised: true})
	w.Tick(1000)
	a.Exec(`INSERT INTO bm VALUES('a1', 'https://a', 'Title')`)
	a.Export()
	b.Exec(`INSERT INTO bm VALUES('b1', 'https://b', 'TITLE')`)
	b.Export()
	w.DeliverAll(b, a)
	if r := a.Import(); r.Held != 1 {
		t.Fatalf("a: %+v", r)
	}
	if got := heldReasons(a); !strings.Contains(got, "bm_lower") {
		t.Fatalf("a: reason %q does not name the index", got)
	}
}

// Two offline devices bookmark the same URL under different ids (a UNIQUE
// column besides the key), and one device swaps the unique values of two
// rows. Nothing may be held forever: every device converges, the same
// way whatever the arrival order, on the earlier-inserted row keeping the
// URL, the other row kept whole in the conflict log.
func TestUniqueClashConverges(t *testing.T) {
	for _, order := range []string{"ab", "ba"} {
		t.Run(order, func(t *testing.T) {
			w := scenario.NewWorld(t, `CREATE TABLE bm(id TEXT PRIMARY KEY, url TEXT NOT NULL UNIQUE, title TEXT);`)
			a := w.AddDevice(scenario.Options{Name: "a", Initialised: true})
			b := w.AddDevice(scenario.Options{Name: "b", Initialised: true, Hints: true})
			c := w.AddDevice(scenario.Options{Name: "c", Initialised: true})
			a.Exec(`INSERT INTO bm VALUES('x1', 'https://one', 'one'), ('x2', 'https://two', 'two')`)
			w.Tick(1000)
			w.Quiesce(5)
			w.Tick(1000)
			a.Exec(`INSERT INTO bm VALUES('a1', 'https://same', 'from a')`)
			w.Tick(1000)
			b.Exec(`INSERT INTO bm VALUES('b1', 'https://same', 'from b')`)
			// a swaps two unique values in one transaction.
			a.Script(`UPDATE bm SET url='tmp' WHERE id='x1'; UPDATE bm SET url='https://one' WHERE id='x2'; UPDATE bm SET url='https://two' WHERE id='x1';`)
			a.Export()
			// A row's insert clock is its export's: without a tick both
			// exports carry the same time and the device ids, random,
			// would decide which row is "earlier".
			w.Tick(1)
			b.Export()
			first, second := a, b
			if order == "ba" {
				first, second = b, a
			}
			w.Send(first, c)
			w.Send(second, c)
			w.Tick(1000)
			w.Quiesce(6)
			w.AssertConverged()
			if got := a.Query(`SELECT id, url FROM bm ORDER BY id`); len(got) != 3 || got[0][0] != "a1" {
				t.Fatalf("want a1 (inserted first) to keep the URL, b1 removed: %v", got)
			}
			if got := a.Query(`SELECT url FROM bm WHERE id IN ('x1','x2') ORDER BY id`); got[0][0] != "https://two" || got[1][0] != "https://one" {
				t.Fatalf("swap: %v", got)
			}
			logged := false
			for _, d := range w.Devs {
				for _, cf := range d.Conflicts() {
					if strings.Contains(cf.Loser["title"], "from b") {
						logged = true
					}
				}
			}
			if !logged {
				t.Fatal("the row that lost the URL is in no conflict log")
			}
		})
	}
}

// A row held on a UNIQUE clash whose value is freed comes back to live,
// but the app's rules refuse it there for a reason other than a deleted
// parent (here a trigger of b's app refuses it for now). Nothing in sight
// says it never can, so it stays held and comes back at a later pass once
// the app accepts it; the file that freed the value applies. Before the
// fix that write had no refusal path and held the file for ever.
func TestUniqueHeldRowRefusedByAppStaysHeld(t *testing.T) {
	w := scenario.NewWorld(t, bmSchema)
	a := w.AddDevice(scenario.Options{Name: "a", Initialised: true})
	b := w.AddDevice(scenario.Options{Name: "b", Initialised: true})
	w.Tick(1000)
	a.Exec(`INSERT INTO bm VALUES('a1', 'https://same', 'from a')`)
	a.Export()
	w.Tick(1000)
	b.Exec(`INSERT INTO bm VALUES('b1', 'https://same', 'from b')`)
	b.Export()
	w.DeliverAll(a, b)
	b.Import()
	if got := heldKeys(t, b); fmt.Sprint(got) != "['b1']" {
		t.Fatalf("b holds %v, want b1 (a1 was inserted first)", got)
	}
	b.Exec(`CREATE TRIGGER bm_closed BEFORE INSERT ON bm WHEN NEW.id = 'b1' BEGIN SELECT RAISE(ABORT, 'bm: b1 is not accepted now'); END`)
	w.Tick(1000)
	a.Exec(`DELETE FROM bm WHERE id='a1'`)
	a.Export()
	w.DeliverAll(a, b)
	if r := b.Import(); r.Held != 0 || r.Applied != 1 {
		t.Fatalf("b: import of a's delete %+v\n%+v", r, b.Status().Files)
	}
	if got := heldKeys(t, b); fmt.Sprint(got) != "['b1']" {
		t.Fatalf("b holds %v while its app refuses b1, want b1", got)
	}
	if got := b.Query(`SELECT id FROM bm`); len(got) != 0 {
		t.Fatalf("b's live table: %v, want empty", got)
	}
	b.Exec(`DROP TRIGGER bm_closed`)
	w.Tick(1000)
	w.Quiesce(6)
	w.AssertConverged()
	for _, d := range w.Devs {
		if got := d.Query(`SELECT id, url FROM bm`); fmt.Sprint(got) != "[[b1 https://same]]" {
			t.Errorf("%s: %v, want b1 back", d.Name, got)
		}
		if got := heldKeys(t, d); len(got) != 0 {
			t.Errorf("%s still holds %v", d.Name, got)
		}
	}
}

// A row the UNIQUE rule takes out of the table (a row inserted earlier
// elsewhere wants its value) that the app's rules will not let go of (a
// BEFORE DELETE trigger refuses while rows reference it): no order of
// the file helps, and rowdrop will not break the app's rule, so the file
// is held with the app's trigger, the table, the key and what it waits
// for named, and it applies once the referencing row is gone.
func TestUniqueDisplacedRowStillReferencedHolds(t *testing.T) {
	w := scenario.NewWorld(t, `
CREATE TABLE tags(id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);
CREATE TABLE links(id INTEGER PRIMARY KEY, tag INTEGER NOT NULL);
CREATE TRIGGER tags_in_use BEFORE DELETE ON tags BEGIN
  SELECT RAISE(ABORT, 'tags: tag in use') WHERE EXISTS (SELECT 1 FROM links WHERE tag = OLD.id);
END;`)
	a := w.AddDevice(scenario.Options{Name: "a", Initialised: true})
	b := w.AddDevice(scenario.Options{Name: "b", Initialised: true})
	w.Tick(1000)
	a.Exec(`INSERT INTO tags VALUES(10, 'x')`)
	a.Export()
	w.Tick(1000)
	b.Exec(`INSERT INTO tags VALUES(20, 'x')`)
	b.Exec(`INSERT INTO links VALUES(1, 20)`)
	b.Export()
	w.DeliverAll(a, b)
	if r := b.Import(); r.Held != 1 {
		t.Fatalf("b: want a's file held: %+v", r)
	}
	reason := ""
	for _, f := range b.Status().Files {
		reason += f.Reason
	}
	for _, want := range []string{"tags_in_use", "delete of table tags, key (20)", "1 row(s) of table links"} {
		if !strings.Contains(reason, want) {
			t.Errorf("reason lacks %q: %s", want, reason)
		}
	}
	b.Exec(`DELETE FROM links`)
	if r := b.Import(); r.Held != 0 || r.Applied != 1 {
		t.Fatalf("b: after the link is deleted: %+v\n%+v", r, b.Status().Files)
	}
	w.Tick(1000)
	w.Quiesce(6)
	w.AssertConverged()
	if got := b.Query(`SELECT id FROM tags`); fmt.Sprint(got) != "[[10]]" {
		t.Errorf("b: tags %v, want 10 (inserted first)", got)
	}
}

// A remote edit gives a row a UNIQUE value a row inserted earlier holds:
// the row is taken out of the table, and so out of live, where the app's
// rules refuse to delete it while a link references it. The same file
// deletes that link, after the edit (one change per batch here): the
// refused delete waits with the file's other refused changes and applies
// once the link is gone, as any change the app's rules refuse in one
// order and accept in another. Before the fix the refusal in the UNIQUE
// fix-up had no retry and held the file for ever.
func TestUniqueHeldRowDeleteWaitsForItsChild(t *testing.T) {
	w := scenario.NewWorld(t, `
CREATE TABLE atags(id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);
CREATE TABLE links(id INTEGER PRIMARY KEY, tag INTEGER NOT NULL);
CREATE TRIGGER atags_in_use BEFORE DELETE ON atags BEGIN
  SELECT RAISE(ABORT, 'atags: tag in use') WHERE EXISTS (SELECT 1 FROM links WHERE tag = OLD.id);
END;`)
	one := func(c *rowdrop.Config) { c.MergeBatch = 1 }
	a := w.AddDevice(scenario.Options{Name: "a", Initialised: true})
	b := w.AddDevice(scenario.Options{Name: "b", Initialised: true, Config: one})
	c := w.AddDevice(scenario.Options{Name: "c", Initialised: true})
	w.Tick(1000)
	a.Exec(`INSERT INTO atags VALUES(10, 'x')`)
	a.Export()
	w.Tick(1000)
	c.Exec(`INSERT INTO atags VALUES(20, 'y')`)
	c.Exec(`INSERT INTO links VALUES(1, 20)`)
	c.Export()
	w.Tick(1000)
	for _, from := range []*scenario.Device{a, c} {
		w.DeliverAll(from, b)
		b.Import()
	}
	// c, which never saw a's x, drops the link and renames its tag to x.
	c.Exec(`DELETE FROM links WHERE id = 1`)
	c.Exec(`UPDATE atags SET name = 'x' WHERE id = 20`)
	c.Export()
	w.DeliverAll(c, b)
	if r := b.Import(); r.Held != 0 || r.Applied != 1 {
		t.Fatalf("b: import of c's edit %+v\n%+v", r, b.Status().Files)
	}
	if got := b.Query(`SELECT id, name FROM atags ORDER BY id`); fmt.Sprint(got) != "[[10 x]]" {
		t.Fatalf("b: tags %v, want only 10 x (20 held: 10 was inserted first)", got)
	}
	w.Tick(1000)
	w.Quiesce(6)
	w.AssertConverged()
}
