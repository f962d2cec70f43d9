package scenario_test

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rowdrop/rowdrop/scenario"
)

// TestRestoreProperty: random app edits interleaved with random restores
// of older copies of the database on random devices (copied back in place,
// or renamed over the file; rollback journal and WAL; with and without
// hints), for 100 seeds. Afterwards every device converges, and every
// value written by a device that never restored is on every device, or
// was displaced by a later edit, or is in a conflict log: a restore never
// silently reverts another device's work (invariant 13b).
func TestRestoreProperty(t *testing.T) {
	seeds := propSeeds(t)
	if os.Getenv("ROWDROP_SEEDS") == "" && os.Getenv("ROWDROP_SEED") == "" && len(seeds) > 100 {
		seeds = seeds[:100]
	}
	for _, seed := range seeds {
		t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
			t.Parallel()
			restoreSeed(t, seed)
		})
	}
}

// written is one value a device's app wrote.
type written struct {
	step      int
	dev       int
	id, title string
}

func restoreSeed(t *testing.T, seed uint64) {
	rng := rand.New(rand.NewPCG(seed, 20))
	w := scenario.NewWorld(t, notesSchema)
	w.Quiet = true
	const n = 3
	var devs []*scenario.Device
	for i := 0; i < n; i++ {
		devs = append(devs, w.AddDevice(scenario.Options{Name: fmt.Sprintf("d%d", i), Initialised: true,
			WAL: rng.IntN(2) == 0, Hints: rng.IntN(2) == 0}))
	}
	restored := make([]bool, n)
	backups := make([][]string, n)
	var writes []written
	// touched: the step of the last write or delete of each note, by any
	// device (a later one may displace a value by the merge rules).
	touched := map[string][]int{}
	var log []string
	steps := 30 + rng.IntN(20)
	for step := 0; step < steps; step++ {
		w.Tick(int64(500 + rng.IntN(1500)))
		i := rng.IntN(n)
		d := devs[i]
		id := fmt.Sprintf("n%d", rng.IntN(8))
		switch r := rng.IntN(10); {
		case r < 4: // the app writes a note
			title := fmt.Sprintf("s%d-d%d", step, i)
			d.Exec("INSERT INTO notes VALUES(?,?,'') ON CONFLICT(id) DO UPDATE SET title=excluded.title", id, title)
			writes = append(writes, written{step, i, id, title})
			touched[id] = append(touched[id], step)
			log = append(log, fmt.Sprintf("%d: d%d writes %s=%s", step, i, id, title))
		case r < 5: // the app deletes one
			d.Exec("DELETE FROM notes WHERE id=?", id)
			touched[id] = append(touched[id], step)
			log = append(log, fmt.Sprintf("%d: d%d deletes %s", step, i, id))
		case r < 6: // a backup
			p := filepath.Join(w.Dir, fmt.Sprintf("d%d-backup-%d.db", i, step))
			d.Exec("VACUUM INTO ?", p)
			backups[i] = append(backups[i], p)
			log = append(log, fmt.Sprintf("%d: d%d backed up", step, i))
		case r < 7 && len(backups[i]) > 0: // a restore of an older copy
			src := backups[i][rng.IntN(len(backups[i]))]
			inPlace := !d.Opt.WAL && rng.IntN(2) == 0
			d.WithAppClosed(func(path string) {
				b, err := os.ReadFile(src)
				if err != nil {
					t.Fatal(err)
				}
				if inPlace {
					if err := os.WriteFile(path, b, 0o644); err != nil {
						t.Fatal(err)
					}
					return
				}
				for _, suffix := range []string{"-wal", "-shm"} {
					os.Remove(path + suffix)
				}
				if err := os.WriteFile(path+".restore", b, 0o644); err != nil {
					t.Fatal(err)
				}
				if err := os.Rename(path+".restore", path); err != nil {
					t.Fatal(err)
				}
			})
			if d.Opt.WAL {
				d.Exec("PRAGMA journal_mode=WAL")
			}
			restored[i] = true
			log = append(log, fmt.Sprintf("%d: d%d restored %s (in place %v)", step, i, filepath.Base(src), inPlace))
		default: // a sync, and the folders exchange what they have
			d.Sync()
			w.Flood()
			log = append(log, fmt.Sprintf("%d: d%d syncs", step, i))
		}
	}
	w.Quiesce(10)
	w.AssertConverged()
	final := map[string]string{}
	for _, row := range devs[0].Query("SELECT id, title FROM notes") {
		final[row[0]] = row[1]
	}
	lost := map[string]bool{}
	for _, d := range devs {
		for _, c := range d.Conflicts() {
			for _, v := range c.Loser {
				lost[strings.Trim(v, "'")] = true
			}
		}
	}
	for _, wr := range writes {
		if restored[wr.dev] {
			continue
		}
		later := false
		for _, s := range touched[wr.id] {
			if s > wr.step {
				later = true
			}
		}
		if later || final[wr.id] == wr.title || lost[wr.title] {
			continue
		}
		t.Fatalf("d%d's write %s=%s (step %d) is gone: final %q, not in any conflict log\nrestored %v\n%s",
			wr.dev, wr.id, wr.title, wr.step, final[wr.id], restored, strings.Join(log, "\n"))
	}
}
