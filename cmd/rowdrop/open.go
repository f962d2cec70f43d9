package main

// Opening a pair: from its layered configuration to the library's Syncer.

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/rowdrop/rowdrop"
	"github.com/rowdrop/rowdrop/internal/db"
	"github.com/rowdrop/rowdrop/internal/state"

	"zombiezen.com/go/sqlite"
	"zombiezen.com/go/sqlite/sqlitex"
)

// label is the short name of a pair in logs and messages.
func (p pairConfig) label() string { return filepath.Base(p.DB) }

// config turns a pair into the library's Config.
func (p pairConfig) config(log *slog.Logger, progress func(done, total int, file string)) rowdrop.Config {
	c := p.Config
	c.Logger = log.With("db", p.label())
	c.Progress = progress
	return c
}

// lockWait is how long a command waits for a state directory another
// rowdrop process (typically `watch`, in the middle of a step) holds.
const lockWait = 2 * time.Minute

// open opens a pair, checking the paths first so the message names the
// flag to fix, and waiting (up to wait) while another rowdrop process holds
// the state directory: `watch` holds it only for the length of one step.
func (a *app) open(ctx context.Context, p pairConfig, wait time.Duration, progress func(int, int, string)) (*rowdrop.Syncer, error) {
	if st, err := os.Stat(p.DB); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("database %s does not exist: give the path of the app's SQLite file (--db, or db: in the config); on a new machine, build it from the shared folder with `rowdrop restore --db %s --folder %s`", p.DB, p.DB, p.Folder)
		}
		return nil, fmt.Errorf("database %s: %w (check the --db path and its permissions)", p.DB, err)
	} else if st.IsDir() {
		return nil, fmt.Errorf("database %s is a directory: give the path of the app's SQLite file (--db, or db: in the config)", p.DB)
	}
	if a.name == "sync" || a.name == "watch" {
		if n, err := appTables(p.DB); err == nil && n == 0 {
			return nil, fmt.Errorf("database %s has no tables: on a new machine, build it from the shared folder with `rowdrop restore --db %s --folder %s` (restore accepts an empty file), or start the app once so it creates its tables", p.DB, p.DB, p.Folder)
		}
	}
	start := time.Now()
	logged := false
	for {
		s, err := rowdrop.Open(ctx, p.config(a.log, progress))
		if err == nil {
			return s, nil
		}
		if !errors.Is(err, state.ErrLocked) {
			return nil, err
		}
		if time.Since(start) >= wait {
			return nil, fmt.Errorf("%w (waited %s)", err, wait.Round(time.Second))
		}
		if !logged && time.Since(start) > time.Second {
			a.log.Info("waiting: another rowdrop process is using this pair's state directory (a sync step in progress)", "db", p.label())
			logged = true
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("%w (gave up waiting: %w)", err, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// appTables counts the tables of the database at path besides rowdrop's
// own: none means the app never created its schema there.
func appTables(path string) (int, error) {
	conn, err := sqlite.OpenConn(db.FileURI(path)+"?mode=ro", sqlite.OpenReadOnly|sqlite.OpenURI)
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	n := 0
	err = sqlitex.ExecuteTransient(conn, `SELECT count(*) FROM main.sqlite_master WHERE type='table' AND name NOT LIKE 'rowdrop\_%' ESCAPE '\'`,
		&sqlitex.ExecOptions{ResultFunc: func(s *sqlite.Stmt) error { n = s.ColumnInt(0); return nil }})
	return n, err
}
