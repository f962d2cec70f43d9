package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"syscall"
	"time"

	"zombiezen.com/go/sqlite"
	"zombiezen.com/go/sqlite/sqlitex"
)

// latency measures what a user of two devices feels: a commit on A until
// the row is in B's database, with `rowdrop watch` running on both over a
// local folder (no sync tool in between). Its floor, measured in the same
// run, is the same edit carried by hand: `rowdrop sync` on A, then on B,
// as soon as the commit returns. Watch can only beat the floor by not
// starting a process per step; it loses to it by waiting.
func (b *bench) latency(ctx context.Context) error {
	edits := 20
	if b.o.Quick {
		edits = 5
	}
	dir := filepath.Join(b.dir, "latency")
	if !b.o.Keep {
		defer os.RemoveAll(dir)
	}
	bin := filepath.Join(dir, "rowdrop")
	b.logf("latency: building the rowdrop command")
	if out, err := exec.CommandContext(ctx, "go", "build", "-o", bin, "github.com/rowdrop/rowdrop/cmd/rowdrop").CombinedOutput(); err != nil {
		return fmt.Errorf("go build of the rowdrop command: %w\n%s", err, out)
	}
	folder := filepath.Join(dir, "folder")
	type dev struct{ name, db, state string }
	devs := []dev{{"a", filepath.Join(dir, "a.db"), filepath.Join(dir, "a-state")}, {"b", filepath.Join(dir, "b.db"), filepath.Join(dir, "b-state")}}
	for _, d := range devs {
		if _, err := b.generate(d.db, textSchema, false, 0); err != nil {
			return err
		}
	}
	if err := os.MkdirAll(folder, 0o755); err != nil {
		return err
	}
	pair := func(d dev) []string {
		return []string{"--db", d.db, "--folder", folder, "--state", d.state, "--device", d.name}
	}
	sync := func(d dev) error {
		out, err := exec.CommandContext(ctx, bin, append([]string{"sync"}, pair(d)...)...).CombinedOutput()
		if err != nil {
			return fmt.Errorf("rowdrop sync on %s: %w\n%s", d.name, err, out)
		}
		return nil
	}
	for _, d := range devs { // join both before measuring
		if err := sync(d); err != nil {
			return err
		}
	}
	a, err := sqlite.OpenConn(devs[0].db, sqlite.OpenReadWrite)
	if err != nil {
		return err
	}
	defer a.Close()
	a.SetBusyTimeout(10 * time.Second)
	bconn, err := sqlite.OpenConn(devs[1].db, sqlite.OpenReadOnly)
	if err != nil {
		return err
	}
	defer bconn.Close()
	bconn.SetBusyTimeout(10 * time.Second)
	seq := 0
	// edit commits one new note on A and returns when it is visible on B.
	edit := func(carry func() error) (time.Duration, error) {
		seq++
		id := fmt.Sprintf("latency-%d", seq)
		t0 := time.Now()
		if err := sqlitex.Execute(a, "INSERT INTO notes(id, title, body, created_at, updated_at) VALUES (?, 'latency', 'one edit', 1, 1)", &sqlitex.ExecOptions{Args: []any{id}}); err != nil {
			return 0, err
		}
		if carry != nil {
			if err := carry(); err != nil {
				return 0, err
			}
		}
		deadline := t0.Add(30 * time.Second)
		for {
			n := 0
			if err := sqlitex.Execute(bconn, "SELECT count(*) FROM notes WHERE id = ?", &sqlitex.ExecOptions{Args: []any{id},
				ResultFunc: func(s *sqlite.Stmt) error { n = s.ColumnInt(0); return nil }}); err != nil {
				return 0, err
			}
			if n == 1 {
				return time.Since(t0), nil
			}
			if time.Now().After(deadline) {
				return 0, fmt.Errorf("note %s committed on A is not on B after 30 s", id)
			}
			time.Sleep(2 * time.Millisecond)
		}
	}

	// The floor: the edit carried by hand.
	var floor []time.Duration
	for range edits {
		d, err := edit(func() error {
			if err := sync(devs[0]); err != nil {
				return err
			}
			return sync(devs[1])
		})
		if err != nil {
			return err
		}
		floor = append(floor, d)
	}

	// Two watch processes.
	var procs []*exec.Cmd
	var logs []*bytes.Buffer
	stop := func() {
		for _, p := range procs {
			if p.Process.Signal(syscall.SIGTERM) != nil {
				_ = p.Process.Kill() // Windows has no SIGTERM
			}
		}
		for _, p := range procs {
			_ = p.Wait()
		}
		procs = nil
	}
	defer stop()
	for _, d := range devs {
		var log bytes.Buffer
		args := append([]string{"watch"}, pair(d)...)
		if b.o.Keep {
			args = append(args, "-v") // debug logs, kept as watch-<device>.log
		}
		p := exec.CommandContext(ctx, bin, args...)
		p.Stdout, p.Stderr = &log, &log
		if err := p.Start(); err != nil {
			return fmt.Errorf("start rowdrop watch on %s: %w", d.name, err)
		}
		procs, logs = append(procs, p), append(logs, &log)
	}
	time.Sleep(2 * time.Second) // both past their startup step
	var watched []time.Duration
	for range edits {
		d, err := edit(nil)
		if err != nil {
			stop()
			return errors.Join(err, fmt.Errorf("watch logs:\nA: %s\nB: %s", logs[0], logs[1]))
		}
		watched = append(watched, d)
		time.Sleep(700 * time.Millisecond) // a quiet period between edits, as a person types
	}
	stop()
	if b.o.Keep {
		for i, d := range devs {
			if err := os.WriteFile(filepath.Join(dir, "watch-"+d.name+".log"), logs[i].Bytes(), 0o644); err != nil {
				return err
			}
		}
	}

	p50, p90 := quantile(watched, 0.5), quantile(watched, 0.9)
	f50, f90 := quantile(floor, 0.5), quantile(floor, 0.9)
	b.rep.add(Figure{
		ID:       fmt.Sprintf("L1 commit-to-visible, two watch on a local folder (%d edits)", edits),
		Measured: fmt.Sprintf("watch p50 %s, p90 %s; by hand (sync A, sync B) p50 %s, p90 %s", msText(p50), msText(p90), msText(f50), msText(f90)),
		Ratio:    fmt.Sprintf("%.2f× (p50)", p50.Seconds()/f50.Seconds()),
		Target:   "p50 ≤ 100 ms",
		Met:      yesNo(p50 <= 100*time.Millisecond),
		Values:   map[string]float64{"watch_p50_s": p50.Seconds(), "watch_p90_s": p90.Seconds(), "floor_p50_s": f50.Seconds(), "floor_p90_s": f90.Seconds()},
	})
	return nil
}

// quantile is the q-quantile of ds (nearest rank).
func quantile(ds []time.Duration, q float64) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	i := int(q*float64(len(s))+0.5) - 1
	return s[max(0, min(i, len(s)-1))]
}

func msText(d time.Duration) string {
	return fmt.Sprintf("%.0f ms", float64(d)/float64(time.Millisecond))
}
