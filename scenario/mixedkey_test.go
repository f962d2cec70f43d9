package scenario_test

import (
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"testing"
	"time"

	"rowdrop/scenario"
)

// A knowledge-base schema mixing INTEGER ids (allocated max+1 by each
// device, so offline devices collide) and text (UUID-like) keys, with
// declared foreign keys between them.
const kbMixedSchema = `
CREATE TABLE notebooks(id INTEGER PRIMARY KEY, uid TEXT NOT NULL, name TEXT);
CREATE TABLE notes(id TEXT PRIMARY KEY, notebook_id INTEGER REFERENCES notebooks(id), title TEXT);
CREATE TABLE tags(id INTEGER PRIMARY KEY AUTOINCREMENT, uid TEXT NOT NULL, label TEXT);
CREATE TABLE note_tags(note_id TEXT NOT NULL REFERENCES notes(id), tag_id INTEGER NOT NULL REFERENCES tags(id), PRIMARY KEY(note_id, tag_id)) WITHOUT ROWID;
`

// TestMixedKeyProperty runs random edits, exports, imports and out-of-order
// deliveries on four devices over kbMixedSchema, then asserts that every
// device holds the same tables, that every notebook and tag ever created
// exists exactly once (none lost to an id collision), and that every note
// and every tagging still points at the row its author chose (identified
// by its immutable uid), whatever ids rowdrop had to move.
//
// Seeds 1..25 by default (5 with -short); ROWDROP_SEED=n runs seed n,
// ROWDROP_SEEDS=N runs N seeds.
func TestMixedKeyProperty(t *testing.T) {
	seeds := []uint64{}
	n := 25
	if testing.Short() {
		n = 5
	}
	if s := os.Getenv("ROWDROP_SEEDS"); s != "" {
		n, _ = strconv.Atoi(s)
	}
	for i := 1; i <= n; i++ {
		seeds = append(seeds, uint64(i))
	}
	if s := os.Getenv("ROWDROP_SEED"); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("ROWDROP_SEED=%q: %v", s, err)
		}
		seeds = []uint64{v}
	}
	t.Logf("seeds %v (rerun one with ROWDROP_SEED=n go test -run TestMixedKeyProperty ./scenario)", seeds[:min(len(seeds), 3)])
	for _, seed := range seeds {
		t.Run(fmt.Sprint(seed), func(t *testing.T) { mixedKeyRun(t, seed) })
	}
}

type tagging struct{ note, tagUID string }

func mixedKeyRun(t *testing.T, seed uint64) {
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 0xb00c))
	w := scenario.NewWorld(t, kbMixedSchema)
	w.Quiet = true
	for i := 0; i < 4; i++ {
		w.AddDevice(scenario.Options{Name: fmt.Sprintf("d%d", i), Initialised: true, Hints: rng.IntN(2) == 0, WAL: rng.IntN(2) == 0,
			Skew: time.Duration(rng.IntN(60_000)-30_000) * time.Millisecond})
	}
	devs := w.Devs
	notebookUIDs, tagUIDs := map[string]bool{}, map[string]bool{}
	noteParent := map[string]string{} // note id -> notebook uid its author chose
	var taggings []tagging
	deleted := map[string]bool{}
	pick := func(rows [][]string) []string {
		if len(rows) == 0 {
			return nil
		}
		return rows[rng.IntN(len(rows))]
	}
	steps := 60 + rng.IntN(60)
	for step := 0; step < steps; step++ {
		d := devs[rng.IntN(len(devs))]
		w.Tick(int64(1 + rng.IntN(500)))
		switch op := rng.IntN(20); {
		case op < 3:
			uid := fmt.Sprintf("nb-%d", step)
			d.Exec(`INSERT INTO notebooks(uid, name) VALUES(?, ?)`, uid, "name "+uid)
			notebookUIDs[uid] = true
		case op < 5:
			uid := fmt.Sprintf("tag-%d", step)
			d.Exec(`INSERT INTO tags(uid, label) VALUES(?, ?)`, uid, "label "+uid)
			tagUIDs[uid] = true
		case op < 8:
			nb := pick(d.Query(`SELECT id, uid FROM notebooks ORDER BY uid`))
			if nb == nil {
				continue
			}
			id := fmt.Sprintf("note-%d", step)
			d.Exec(`INSERT INTO notes(id, notebook_id, title) VALUES(?, ?, ?)`, id, nb[0], "title "+id)
			noteParent[id] = nb[1]
		case op < 10:
			n := pick(d.Query(`SELECT id FROM notes ORDER BY id`))
			tg := pick(d.Query(`SELECT id, uid FROM tags ORDER BY uid`))
			if n == nil || tg == nil || deleted[n[0]] {
				continue
			}
			d.Exec(`INSERT OR IGNORE INTO note_tags VALUES(?, ?)`, n[0], tg[0])
			taggings = append(taggings, tagging{n[0], tg[1]})
		case op < 11:
			if nb := pick(d.Query(`SELECT id FROM notebooks ORDER BY uid`)); nb != nil {
				d.Exec(`UPDATE notebooks SET name = ? WHERE id = ?`, fmt.Sprintf("renamed %d", step), nb[0])
			}
		case op < 12:
			if n := pick(d.Query(`SELECT id FROM notes ORDER BY id`)); n != nil {
				d.Exec(`UPDATE notes SET title = ? WHERE id = ?`, fmt.Sprintf("edited %d", step), n[0])
			}
		case op < 13:
			if n := pick(d.Query(`SELECT id FROM notes ORDER BY id`)); n != nil {
				d.Exec(`DELETE FROM notes WHERE id = ?`, n[0])
				deleted[n[0]] = true
			}
		case op < 16:
			d.Export()
		case op < 18:
			d.Import()
		default:
			// Deliver one random published file, possibly out of order.
			from := devs[rng.IntN(len(devs))]
			if pub := from.Published(); len(pub) > 0 && from != d {
				w.Deliver(from, pub[rng.IntN(len(pub))], d)
			}
		}
	}
	w.Quiesce(12)
	w.AssertConverged()
	ref := devs[0]
	count := func(table string) map[string]int {
		out := map[string]int{}
		for _, r := range ref.Query(`SELECT uid FROM ` + table) {
			out[r[0]]++
		}
		return out
	}
	for table, want := range map[string]map[string]bool{"notebooks": notebookUIDs, "tags": tagUIDs} {
		got := count(table)
		for uid := range want {
			if got[uid] != 1 {
				t.Errorf("seed %d: %s %s present %d times, want once", seed, table, uid, got[uid])
			}
		}
		if len(got) != len(want) {
			t.Errorf("seed %d: %s holds %d distinct rows, %d were created", seed, table, len(got), len(want))
		}
	}
	for note, parent := range noteParent {
		if deleted[note] {
			continue
		}
		got := ref.Query(`SELECT coalesce(b.uid, '<dangling>') FROM notes n LEFT JOIN notebooks b ON b.id = n.notebook_id WHERE n.id = ?`, note)
		if len(got) != 1 || got[0][0] != parent {
			t.Errorf("seed %d: note %s: notebook %v, its author chose %s", seed, note, got, parent)
		}
	}
	for _, tg := range taggings {
		if deleted[tg.note] {
			continue
		}
		got := ref.Query(`SELECT count(*) FROM note_tags nt JOIN tags g ON g.id = nt.tag_id WHERE nt.note_id = ? AND g.uid = ?`, tg.note, tg.tagUID)
		if got[0][0] != "1" {
			t.Errorf("seed %d: note %s lost its tag %s", seed, tg.note, tg.tagUID)
		}
	}
	if t.Failed() {
		t.Logf("seed %d failed; rerun: ROWDROP_SEED=%d go test -run TestMixedKeyProperty -v ./scenario", seed, seed)
	}
}
