package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"zombiezen.com/go/sqlite"
	"zombiezen.com/go/sqlite/sqlitex"

	"github.com/rowdrop/rowdrop"
)

// filesSchema is P7's table: an app that keeps files (attachments,
// images) as BLOBs.
const filesSchema = `CREATE TABLE files(id INTEGER PRIMARY KEY, name TEXT NOT NULL, data BLOB)`

// p7 measures the peak RSS of syncing one big BLOB edit, as a ratio to
// the value's size: A's export of the edit, B's import of it, and B's
// import of another edit of the same value while B has its own
// unexported edit of it (a conflict: the log keeps both values). Each
// step runs in a process of its own, whose VmHWM is the figure.
func (b *bench) p7(ctx context.Context) error {
	size := b.sz.bigValue
	dir := filepath.Join(b.dir, "p7")
	if !b.o.Keep {
		defer os.RemoveAll(dir)
	}
	folder := filepath.Join(dir, "folder")
	if err := os.MkdirAll(folder, 0o755); err != nil {
		return err
	}
	dev := func(name string) childArgs {
		return childArgs{DB: filepath.Join(dir, name+".db"), Folder: folder, State: filepath.Join(dir, name+".state")}
	}
	exec := func(a childArgs, q string, args ...any) error {
		conn, err := sqlite.OpenConn(a.DB, sqlite.OpenReadWrite|sqlite.OpenCreate|sqlite.OpenWAL)
		if err != nil {
			return err
		}
		defer conn.Close()
		return sqlitex.Execute(conn, q, &sqlitex.ExecOptions{Args: args})
	}
	a, bd := dev("a"), dev("b")
	for _, d := range []childArgs{a, bd} {
		if err := exec(d, "PRAGMA journal_mode=WAL"); err != nil {
			return err
		}
		if err := exec(d, filesSchema); err != nil {
			return err
		}
	}
	if err := exec(a, "INSERT INTO files VALUES(1, 'photo.jpg', x'00')"); err != nil {
		return err
	}
	for _, d := range []childArgs{a, bd} { // both devices hold the small row
		s, err := rowdrop.Open(ctx, rowdrop.Config{DB: d.DB, Folder: d.Folder, State: d.State, Logger: b.o.Logger})
		if err != nil {
			return err
		}
		_, err = s.Sync(ctx)
		s.Close()
		if err != nil {
			return err
		}
	}
	if b.o.PprofDir != "" {
		if err := os.MkdirAll(b.o.PprofDir, 0o755); err != nil {
			return err
		}
	}
	step := func(d childArgs, op, name string) (importResult, error) {
		d.Op, d.Name, d.PprofDir = op, name, b.o.PprofDir
		c, err := startChild("sync", d)
		if err != nil {
			return importResult{}, err
		}
		var r importResult
		if _, err := c.finish(&r); err != nil {
			return r, err
		}
		if r.Error != "" {
			return r, fmt.Errorf("%s child: %s", op, r.Error)
		}
		return r, nil
	}
	b.logf("P7: a %s BLOB edit: export, import, import with a conflict", mb(int64(size)))
	if err := exec(a, "UPDATE files SET data = randomblob(?) WHERE id = 1", size); err != nil {
		return err
	}
	exp, err := step(a, "export", "p7-export")
	if err != nil {
		return err
	}
	imp, err := step(bd, "import", "p7-import")
	if err != nil {
		return err
	}
	if imp.Changes != 1 {
		return fmt.Errorf("P7 import: %d changes, want 1", imp.Changes)
	}
	// Both edit the value; B's edit is not exported: A's import to B
	// conflicts with it (B's local edit stays, A's value goes to the log).
	if err := exec(a, "UPDATE files SET data = randomblob(?) WHERE id = 1", size); err != nil {
		return err
	}
	if err := exec(bd, "UPDATE files SET data = randomblob(?) WHERE id = 1", size); err != nil {
		return err
	}
	if _, err := step(a, "export", "p7-export2"); err != nil {
		return err
	}
	conf, err := step(bd, "import", "p7-conflict")
	if err != nil {
		return err
	}
	if conf.Conflicts < 1 {
		return fmt.Errorf("P7 conflict import logged %d conflicts, want 1", conf.Conflicts)
	}
	ratio := func(r importResult) float64 { return float64(r.VmHWMKB<<10) / float64(size) }
	worst := max(ratio(exp), ratio(imp), ratio(conf))
	b.rep.add(Figure{
		ID: fmt.Sprintf("P7 memory, syncing a %s BLOB edit", mb(int64(size))),
		Measured: fmt.Sprintf("peak RSS: export %s (%.1f×; Go %s of it), import %s (%.1f×; Go %s; longest lock %.0f ms), import with a conflict %s (%.1f×; Go %s; longest lock %.0f ms); the rest is SQLite's",
			mb(exp.VmHWMKB<<10), ratio(exp), mb(exp.GoSysKB<<10), mb(imp.VmHWMKB<<10), ratio(imp), mb(imp.GoSysKB<<10), imp.MaxLockMS,
			mb(conf.VmHWMKB<<10), ratio(conf), mb(conf.GoSysKB<<10), conf.MaxLockMS),
		Ratio: fmt.Sprintf("%.1f", worst), Target: "≤ 4× the value", Met: yesNo(worst <= 4),
		Values: map[string]float64{"value_bytes": float64(size), "export_rss_bytes": float64(exp.VmHWMKB << 10), "import_rss_bytes": float64(imp.VmHWMKB << 10),
			"conflict_rss_bytes": float64(conf.VmHWMKB << 10), "ratio": worst},
	})
	return nil
}
