package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"zombiezen.com/go/sqlite"
	"zombiezen.com/go/sqlite/sqlitex"

	"github.com/rowdrop/rowdrop/export"
	"github.com/rowdrop/rowdrop/internal/db"
	"github.com/rowdrop/rowdrop/internal/folder"
)

// p2 measures merging remote updates (device A's file applied by device
// B through Syncer.Import) against a raw sqlite3changeset_apply of the
// same changeset into a copy of B's database, and, while B's first import
// runs, the write-lock figure P6 with an app process writing to B's DB.
func (b *bench) p2(ctx context.Context, a *device) error {
	n, m := b.sz.mergeRows, b.sz.mergeUpdates
	label := fmt.Sprintf("%s updates into TEXT %s rows", rowsLabel(m), rowsLabel(n))
	if a == nil {
		b.logf("P2: generating device A (%d rows)", n)
		var err error
		if a, err = b.newDevice("p2-A", false, n, ""); err != nil {
			return err
		}
		a.hints = true
		if err := b.openSyncer(ctx, a); err != nil {
			a.remove()
			return err
		}
		if _, err := a.s.Export(ctx); err != nil {
			a.remove()
			return err
		}
	}
	defer a.remove()

	// Device B starts with the same (empty) schema plus the app's own
	// table, and receives A's rows the ordinary way: by importing A's
	// initial file.
	bd, err := b.newDevice("p2-B", false, 0, a.folder, appEventsSchema)
	if err != nil {
		return err
	}
	defer func() {
		bd.close()
		if !b.o.Keep {
			os.RemoveAll(bd.dir) // the folder is A's
		}
	}()
	bd.n, bd.keys = a.n, a.keys
	if err := b.openSyncer(ctx, bd); err != nil {
		return err
	}
	// The app alone first: its commits' latencies on this disk with no
	// import running, the yardstick for its latencies during the import.
	alone := 10 * time.Second
	if n < 500_000 {
		alone = 2 * time.Second
	}
	b.logf("P6: the app process writes alone for %v", alone)
	app, err := startApp(bd.db)
	if err != nil {
		return err
	}
	select {
	case <-time.After(alone):
	case <-ctx.Done():
	}
	var base appResult
	if _, err := app.finish(&base); err != nil {
		return fmt.Errorf("app writer alone: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if base.Errors > 0 || base.Commits == 0 {
		return fmt.Errorf("app writer alone: %d commits, %d failed (first: %s)", base.Commits, base.Errors, base.FirstError)
	}
	b.logf("P2/P6: device B imports A's %d rows while an app process writes", n)
	if app, err = startApp(bd.db); err != nil {
		return err
	}
	stopProf := b.profile("p2-initial-import")
	t0 := time.Now()
	ires, ierr := bd.s.Import(ctx)
	initial := time.Since(t0)
	stopProf()
	time.Sleep(50 * time.Millisecond) // let the app commit once more after the import
	var ar appResult
	_, aerr := app.finish(&ar)
	if ierr != nil {
		return fmt.Errorf("initial import on B: %w", ierr)
	}
	if aerr != nil {
		return fmt.Errorf("app writer: %w", aerr)
	}
	if ires.Changes < int64(n) {
		return fmt.Errorf("initial import on B applied %d changes, want at least %d", ires.Changes, n)
	}
	b.rep.add(Figure{
		ID:       "P2 setup: B's initial import, TEXT " + rowsLabel(n) + " rows",
		Measured: fmt.Sprintf("%s for %d changes in %d files (%.0f rows/s), while the app wrote", ms(initial), ires.Changes, ires.Applied, float64(ires.Changes)/initial.Seconds()),
		Ratio:    "—", Target: "—", Met: "—",
		Values: map[string]float64{"initial_import_s": initial.Seconds(), "changes": float64(ires.Changes)},
	})
	lockOK := ires.MaxLock <= 100*time.Millisecond && ar.MaxMS <= 100 && ar.Errors == 0
	appErr := ""
	if ar.Errors > 0 {
		appErr = fmt.Sprintf(", first error: %s", ar.FirstError)
	}
	b.rep.add(Figure{
		ID: "P6 lock during an import (B's initial import)",
		Measured: fmt.Sprintf("import's longest write transaction %s, %d of %d over 100 ms; "+
			"app's worst commit %.1f ms (p99 %.1f, p50 %.1f) over %d commits, %d failed%s; its longest wait for the lock %.1f ms (p99 %.1f); "+
			"the app alone before the import: worst commit %.1f ms (p99 %.1f, p50 %.1f) over %d commits",
			ms(ires.MaxLock), ires.LongLocks, ires.Locks, ar.MaxMS, ar.P99MS, ar.P50MS, ar.Commits, ar.Errors, appErr, ar.WaitMaxMS, ar.WaitP99MS,
			base.MaxMS, base.P99MS, base.P50MS, base.Commits),
		Ratio: "—", Target: "≤ 100 ms (both; no app failure)", Met: yesNo(lockOK),
		Values: map[string]float64{"max_lock_ms": float64(ires.MaxLock) / float64(time.Millisecond), "locks": float64(ires.Locks), "long_locks": float64(ires.LongLocks),
			"app_max_ms": ar.MaxMS, "app_p99_ms": ar.P99MS, "app_wait_max_ms": ar.WaitMaxMS, "app_wait_p99_ms": ar.WaitP99MS,
			"app_alone_max_ms": base.MaxMS, "app_alone_p99_ms": base.P99MS,
			"app_commits": float64(ar.Commits), "app_errors": float64(ar.Errors)},
	})

	// A edits m rows and publishes them in one file.
	b.logf("P2: device A updates %d rows and exports them", m)
	if err := b.editMany(a, m); err != nil {
		return err
	}
	stopProf = b.profile("p2-export-edits")
	t0 = time.Now()
	eres, err := a.s.Export(ctx)
	exportTook := time.Since(t0)
	stopProf()
	if err != nil {
		return err
	}
	if eres.Changes != int64(m) {
		return fmt.Errorf("device A exported %d changes, want %d", eres.Changes, m)
	}
	b.rep.add(Figure{
		ID:       fmt.Sprintf("P2 setup: A's export of %s edits", rowsLabel(m)),
		Measured: fmt.Sprintf("%s (%s path, %.0f rows/s), file %s", ms(exportTook), eres.Mode, float64(m)/exportTook.Seconds(), mb(fileLen(eres.File))),
		Ratio:    "—", Target: "—", Met: "—",
		Values: map[string]float64{"export_s": exportTook.Seconds()},
	})
	if eres.Mode != export.ModeFast {
		b.rep.Notes = append(b.rep.Notes, "P2: A's export of many edits did not take the fast path")
	}

	// The raw baseline: the same changeset, decompressed, applied by
	// sqlite3changeset_apply into a backup-API copy of B's database.
	shared, rel := folder.At(eres.File)
	f, err := shared.Open(rel)
	if err != nil {
		return err
	}
	rc, err := f.Changeset()
	if err != nil {
		return err
	}
	raw, err := io.ReadAll(rc)
	rc.Close()
	if err != nil {
		return err
	}
	copyPath := filepath.Join(bd.dir, "copy.db")
	b.logf("P2: backup copy of B for the raw apply")
	if err := backup(bd.db, copyPath); err != nil {
		return fmt.Errorf("copy B's database: %w", err)
	}
	rawTook, conflicts, err := rawApply(copyPath, raw)
	if err != nil {
		return fmt.Errorf("raw apply: %w", err)
	}
	b.logf("P2: raw apply %s; rowdrop import", ms(rawTook))
	stopProf = b.profile("p2-merge-import")
	t0 = time.Now()
	mres, err := bd.s.Import(ctx)
	mergeTook := time.Since(t0)
	stopProf()
	if err != nil {
		return fmt.Errorf("import of A's edits on B: %w", err)
	}
	if mres.Applied != 1 || mres.Changes != int64(m) {
		return fmt.Errorf("device B imported %d files / %d changes, want 1 / %d", mres.Applied, mres.Changes, m)
	}
	// Both sides must have done the same work.
	diff, err := countDiffering(bd.db, copyPath)
	if err != nil {
		return err
	}
	if diff != 0 || conflicts != 0 || mres.Conflicts != 0 {
		b.rep.Notes = append(b.rep.Notes, fmt.Sprintf("P2: %d rows differ between rowdrop's merge and the raw apply; raw apply conflicts %d, rowdrop conflicts %d", diff, conflicts, mres.Conflicts))
	}
	rowdropRate := float64(m) / mergeTook.Seconds()
	rawRate := float64(m) / rawTook.Seconds()
	r := rowdropRate / rawRate
	b.rep.add(Figure{
		ID: "P2 merge, " + label,
		Measured: fmt.Sprintf("rowdrop import %.0f rows/s (%s, longest lock %s) vs raw changeset apply %.0f rows/s (%s)",
			rowdropRate, ms(mergeTook), ms(mres.MaxLock), rawRate, ms(rawTook)),
		Ratio: fmt.Sprintf("%.2f", r), Target: "≥ 0.7", Met: yesNo(r >= 0.7),
		Values: map[string]float64{"rowdrop_rows_s": rowdropRate, "raw_rows_s": rawRate, "ratio": r, "merge_s": mergeTook.Seconds(), "raw_s": rawTook.Seconds(),
			"max_lock_ms": float64(mres.MaxLock) / float64(time.Millisecond)},
	})
	return nil
}

// backup copies src to dst with the online backup API.
func backup(src, dst string) error {
	s, err := sqlite.OpenConn(src, sqlite.OpenReadOnly)
	if err != nil {
		return err
	}
	defer s.Close()
	d, err := sqlite.OpenConn(dst, sqlite.OpenReadWrite|sqlite.OpenCreate)
	if err != nil {
		return err
	}
	defer d.Close()
	bk, err := sqlite.NewBackup(d, "main", s, "main")
	if err != nil {
		return err
	}
	if _, err := bk.Step(-1); err != nil {
		bk.Close()
		return err
	}
	if err := bk.Close(); err != nil {
		return err
	}
	return sqlitex.ExecuteTransient(d, "PRAGMA journal_mode=WAL", nil)
}

// rawApply applies a changeset with sqlite3changeset_apply and returns its
// time and the number of conflicts reported (each omitted).
func rawApply(path string, cs []byte) (time.Duration, int, error) {
	conn, err := sqlite.OpenConn(path, sqlite.OpenReadWrite)
	if err != nil {
		return 0, 0, err
	}
	defer conn.Close()
	conflicts := 0
	t0 := time.Now()
	err = conn.ApplyChangeset(bytes.NewReader(cs), nil, func(sqlite.ConflictType, *sqlite.ChangesetIterator) sqlite.ConflictAction {
		conflicts++
		return sqlite.ChangesetOmit
	})
	return time.Since(t0), conflicts, err
}

// countDiffering counts notes rows that differ between two databases.
func countDiffering(a, b string) (int, error) {
	conn, err := sqlite.OpenConn(a, sqlite.OpenReadOnly|sqlite.OpenURI)
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	if err := db.Exec(conn, "ATTACH DATABASE ? AS other", db.FileURI(b)+"?mode=ro"); err != nil {
		return 0, err
	}
	n := 0
	err = sqlitex.ExecuteTransient(conn, `SELECT (SELECT count(*) FROM main.notes x LEFT JOIN other.notes y USING(id)
		WHERE y.id IS NULL OR x.title IS NOT y.title OR x.body IS NOT y.body OR x.created_at IS NOT y.created_at OR x.updated_at IS NOT y.updated_at)
		+ abs((SELECT count(*) FROM main.notes) - (SELECT count(*) FROM other.notes))`,
		&sqlitex.ExecOptions{ResultFunc: func(s *sqlite.Stmt) error { n = s.ColumnInt(0); return nil }})
	return n, err
}

// startApp starts the app-writer child on db and waits for its first
// commit.
func startApp(db string) (*child, error) {
	app, err := startChild("app", childArgs{DB: db})
	if err != nil {
		return nil, fmt.Errorf("start app writer: %w", err)
	}
	if line, err := app.waitLine(); err != nil || line != "ready" {
		app.finish(&appResult{})
		return nil, fmt.Errorf("app writer did not start: %q %v", line, err)
	}
	return app, nil
}
