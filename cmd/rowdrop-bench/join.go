package main

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"zombiezen.com/go/sqlite"
	"zombiezen.com/go/sqlite/sqlitex"

	"github.com/rowdrop/rowdrop"
	"github.com/rowdrop/rowdrop/internal/rdfile"
)

// joinPhase measures a new device joining a folder that holds a device's
// whole database (issue 18): from its snapshot (set-wise, the default),
// the same join row by row (Config.JoinRowByRow, the merge as it was
// before), by replaying its changeset instead, and `rowdrop restore`
// building the database from the folder alone. Each is a fresh open, sync
// and close into an empty notes table; the anchor is `.backup` of the
// source database (the online backup API, what `sqlite3 .backup` runs),
// timed in the same run on the same data.
func (b *bench) joinPhase(ctx context.Context) error {
	for _, n := range b.sz.textRows {
		if err := b.joinAt(ctx, n); err != nil {
			return fmt.Errorf("TEXT %s rows: %w", rowsLabel(n), err)
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
	return nil
}

func (b *bench) joinAt(ctx context.Context, n int) error {
	label := fmt.Sprintf("TEXT keys, %s rows", rowsLabel(n))
	b.logf("join %s: generating", label)
	a, err := b.newDevice("join-a-"+rowsLabel(n), false, n, "")
	if err != nil {
		return err
	}
	defer a.remove()
	copyPath := filepath.Join(a.dir, "backup.db")
	t0 := time.Now()
	if err := backup(a.db, copyPath); err != nil {
		return fmt.Errorf("backup of %s: %w", a.db, err)
	}
	bk := time.Since(t0)
	for _, p := range []string{copyPath, copyPath + "-wal", copyPath + "-shm"} {
		os.Remove(p)
	}
	b.logf("join %s: the source device syncs and snapshots", label)
	s, err := rowdrop.Open(ctx, rowdrop.Config{DB: a.db, Folder: a.folder, State: a.state, DeviceName: a.name, Logger: b.o.Logger})
	if err != nil {
		return err
	}
	if _, err := s.Sync(ctx); err != nil {
		s.Close()
		return fmt.Errorf("source sync: %w", err)
	}
	snap, err := s.Snapshot(ctx)
	if cerr := s.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("source snapshot: %w", err)
	}

	// join runs one joiner on its own copy of the folder (hard links:
	// the files never change), with or without the snapshot.
	join := func(name string, withSnapshot, rowByRow bool) (time.Duration, rowdrop.Report, error) {
		d, err := b.newDevice("join-"+name+"-"+rowsLabel(n), false, 0, "")
		if err != nil {
			return 0, rowdrop.Report{}, err
		}
		defer d.remove()
		if err := linkTree(a.folder, d.folder, withSnapshot); err != nil {
			return 0, rowdrop.Report{}, err
		}
		stop := b.profile("join-" + name + "-" + rowsLabel(n))
		t0 := time.Now()
		s, err := rowdrop.Open(ctx, rowdrop.Config{DB: d.db, Folder: d.folder, State: d.state, DeviceName: d.name, JoinRowByRow: rowByRow, Logger: b.o.Logger})
		if err != nil {
			stop()
			return 0, rowdrop.Report{}, err
		}
		r, err := s.Sync(ctx)
		if cerr := s.Close(); err == nil {
			err = cerr
		}
		took := time.Since(t0)
		stop()
		if err != nil {
			return 0, r, err
		}
		if err := checkRows(d.db, n); err != nil {
			return 0, r, fmt.Errorf("%s: %w", name, err)
		}
		return took, r, nil
	}
	b.logf("join %s: set-wise join", label)
	set, r, err := join("setwise", true, false)
	if err != nil {
		return fmt.Errorf("set-wise join: %w", err)
	}
	if r.Import.Copied != int64(n) {
		return fmt.Errorf("set-wise join copied %d rows set-wise, want %d", r.Import.Copied, n)
	}
	b.logf("join %s: replaying the changeset", label)
	replay, _, err := join("replay", false, false)
	if err != nil {
		return fmt.Errorf("replay: %w", err)
	}
	b.logf("join %s: row-by-row join", label)
	rowwise, _, err := join("rowbyrow", true, true)
	if err != nil {
		return fmt.Errorf("row-by-row join: %w", err)
	}
	b.rep.add(Figure{
		ID: "J1 join from a snapshot, " + label,
		Measured: fmt.Sprintf("%s (snapshot %s) vs `.backup` %s; replaying the changeset %s; the row-by-row join %s",
			ms(set), mb(snap.Bytes), ms(bk), ms(replay), ms(rowwise)),
		Ratio:  fmt.Sprintf("%.1f× .backup, %.2f× replay, %.2f× row by row", set.Seconds()/bk.Seconds(), set.Seconds()/replay.Seconds(), set.Seconds()/rowwise.Seconds()),
		Target: "≤ 3× .backup",
		Met:    yesNo(set <= 3*bk),
		Values: map[string]float64{"join_s": set.Seconds(), "backup_s": bk.Seconds(), "replay_s": replay.Seconds(), "rowbyrow_s": rowwise.Seconds()},
	})

	b.logf("join %s: restore", label)
	dir := filepath.Join(b.dir, "join-restore-"+rowsLabel(n))
	folder := dir + "-folder"
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if !b.o.Keep {
		defer os.RemoveAll(dir)
		defer os.RemoveAll(folder)
	}
	if err := linkTree(a.folder, folder, true); err != nil {
		return err
	}
	dbPath := filepath.Join(dir, "notes.db")
	stop := b.profile("join-restore-" + rowsLabel(n))
	t0 = time.Now()
	res, err := rowdrop.Restore(ctx, rowdrop.Config{DB: dbPath, Folder: folder, State: filepath.Join(dir, "state"), DeviceName: "restored", Logger: b.o.Logger}, false)
	restore := time.Since(t0)
	stop()
	if err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	if err := checkRows(dbPath, n); err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	b.rep.add(Figure{
		ID:       "J2 restore from the folder, " + label,
		Measured: fmt.Sprintf("%s (%d rows copied set-wise) vs `.backup` %s", ms(restore), res.Report.Import.Copied, ms(bk)),
		Ratio:    fmt.Sprintf("%.1f× .backup", restore.Seconds()/bk.Seconds()),
		Target:   "≤ 3× .backup",
		Met:      yesNo(restore <= 3*bk),
		Values:   map[string]float64{"restore_s": restore.Seconds(), "backup_s": bk.Seconds()},
	})
	return nil
}

// linkTree recreates src's files under dst as hard links (copies where
// links fail), leaving out snapshots unless withSnapshots.
func linkTree(src, dst string, withSnapshots bool) error {
	return filepath.WalkDir(src, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		to := filepath.Join(dst, rel)
		if e.IsDir() {
			return os.MkdirAll(to, 0o755)
		}
		if !e.Type().IsRegular() || (!withSnapshots && strings.HasSuffix(e.Name(), rdfile.SnapshotExt)) {
			return nil
		}
		if err := os.Link(p, to); err == nil {
			return nil
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(to, data, 0o644)
	})
}

// checkRows fails unless the notes table of path holds n rows.
func checkRows(path string, n int) error {
	conn, err := sqlite.OpenConn(path, sqlite.OpenReadOnly)
	if err != nil {
		return err
	}
	defer conn.Close()
	var got int64
	err = sqlitex.ExecuteTransient(conn, "SELECT count(*) FROM notes", &sqlitex.ExecOptions{ResultFunc: func(s *sqlite.Stmt) error {
		got = s.ColumnInt64(0)
		return nil
	}})
	if err != nil {
		return err
	}
	if got != int64(n) {
		return fmt.Errorf("%s holds %d notes, want %d", path, got, n)
	}
	return nil
}
