package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	"zombiezen.com/go/sqlite"

	"github.com/rowdrop/rowdrop/internal/schema"
)

// appBusyMS is the busy timeout of P6 under load's app: short, as some
// apps set it (issue 21 item 10: such an app lost 10 of 400 inserts).
const appBusyMS = 200

// p6Load measures, on a machine made busy on purpose, whether an app with
// a 200 ms busy timeout loses writes while rowdrop imports: CPU hogs (two
// spinning processes per core) run while a child process imports a file
// of inserts into the app's database and the app child writes one row per
// transaction. The figure is the app's failures (target: none), measured
// from the app's side, and the import's longest write transaction.
func (b *bench) p6Load(ctx context.Context) error {
	rows := b.sz.loadRows
	dir := filepath.Join(b.dir, "p6")
	folder := filepath.Join(b.dir, "p6-folder")
	if !b.o.Keep {
		defer os.RemoveAll(dir)
		defer os.RemoveAll(folder)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	live := filepath.Join(dir, "notes.db")
	if _, err := b.generate(live, textSchema, false, 0, appEventsSchema); err != nil {
		return err
	}
	t, err := notesTable(live)
	if err != nil {
		return err
	}
	b.logf("P6 under load: writing a changeset of %d inserted rows", rows)
	h, err := writeInserts(folder, t, rows, b.sz.loadBody, b.o.Seed+6)
	if err != nil {
		return err
	}
	nHogs := 2 * runtime.NumCPU()
	var hogs []*child
	defer func() {
		for _, c := range hogs {
			var none struct{}
			c.finish(&none)
		}
	}()
	for range nHogs {
		c, err := startChild("hog", childArgs{})
		if err != nil {
			return err
		}
		hogs = append(hogs, c)
	}
	app, err := startChild("app", childArgs{DB: live, BusyMS: appBusyMS})
	if err != nil {
		return err
	}
	if _, err := app.waitLine(); err != nil { // "ready": its first commit
		return fmt.Errorf("app child: %w", err)
	}
	b.logf("P6 under load: importing %s raw with %d CPU hogs running", mb(h.RawLen), nHogs)
	imp, err := startChild("import", childArgs{DB: live, Folder: folder, State: filepath.Join(dir, "state")})
	if err != nil {
		return err
	}
	var r importResult
	_, ierr := imp.finish(&r)
	var ar appResult
	_, aerr := app.finish(&ar)
	if ierr != nil {
		return ierr
	}
	if r.Error != "" {
		return fmt.Errorf("import child: %s", r.Error)
	}
	if aerr != nil && ar.Commits == 0 {
		return fmt.Errorf("app child: %w", aerr)
	}
	if r.Applied != 1 || r.Changes != int64(rows) {
		return fmt.Errorf("import child applied %d files / %d changes, want 1 / %d", r.Applied, r.Changes, rows)
	}
	first := ""
	if ar.FirstError != "" {
		first = fmt.Sprintf(" (first: %q)", ar.FirstError)
	}
	b.rep.add(Figure{
		ID: fmt.Sprintf("P6 under load: an app with a %d ms busy timeout while %s rows are imported, %d CPU hogs", appBusyMS, rowsLabel(rows), nHogs),
		Measured: fmt.Sprintf("app: %d of %d writes failed%s, worst commit %.1f ms (its wait for the lock: worst %.1f, p99 %.1f); import's longest write transaction %.1f ms, %d of %d over 100 ms; import took %.1f s, load average %s",
			ar.Errors, ar.Errors+ar.Commits, first, ar.MaxMS, ar.WaitMaxMS, ar.WaitP99MS, r.MaxLockMS, r.LongLocks, r.Locks, r.TookS, strings.TrimSpace(loadAvg())),
		Ratio: "—", Target: "no app failure (lock ≤ 100 ms)", Met: yesNo(ar.Errors == 0),
		Values: map[string]float64{"app_failures": float64(ar.Errors), "app_commits": float64(ar.Commits), "max_lock_ms": r.MaxLockMS,
			"long_locks": float64(r.LongLocks), "locks": float64(r.Locks), "hogs": float64(nHogs), "rows": float64(rows)},
	})
	return nil
}

// notesTable reads the notes table's shape from the database at path.
func notesTable(path string) (*schema.Table, error) {
	conn, err := sqlite.OpenConn(path, sqlite.OpenReadOnly)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	tables, _, err := schema.Inspect(conn, "main", schema.Filter{})
	if err != nil {
		return nil, err
	}
	for _, t := range tables {
		if t.Name == "notes" {
			return t, nil
		}
	}
	return nil, fmt.Errorf("%s has no notes table", path)
}
