package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"zombiezen.com/go/sqlite"

	"github.com/rowdrop/rowdrop/internal/changeset"
	"github.com/rowdrop/rowdrop/internal/hlc"
	"github.com/rowdrop/rowdrop/internal/rdfile"
	"github.com/rowdrop/rowdrop/internal/schema"
	"github.com/rowdrop/rowdrop/internal/state"
)

// p5 measures the peak RSS of a process importing one large changeset
// file (inserts of ~500-byte rows into an empty notes DB). The file is
// written directly in rowdrop's format by a simulated remote device, so
// the figure is the import's alone.
func (b *bench) p5(ctx context.Context) error {
	rows := b.sz.p5Rows
	dir := filepath.Join(b.dir, "p5")
	folder := filepath.Join(b.dir, "p5-folder")
	if !b.o.Keep {
		defer os.RemoveAll(dir)
		defer os.RemoveAll(folder)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	live := filepath.Join(dir, "notes.db")
	if _, err := b.generate(live, textSchema, false, 0); err != nil {
		return err
	}
	conn, err := sqlite.OpenConn(live, sqlite.OpenReadOnly)
	if err != nil {
		return err
	}
	tables, _, err := schema.Inspect(conn, "main", schema.Filter{})
	conn.Close()
	if err != nil {
		return err
	}
	if len(tables) != 1 {
		return fmt.Errorf("expected one synced table, found %d", len(tables))
	}
	t := tables[0]
	b.logf("P5: writing a changeset of %d inserted rows", rows)
	h, err := writeInserts(folder, t, rows, b.sz.p5Body, b.o.Seed+5)
	if err != nil {
		return err
	}
	b.logf("P5: importing %s raw (%s compressed) in a child process", mb(h.RawLen), mb(h.PayloadLen))
	if b.o.PprofDir != "" {
		os.MkdirAll(b.o.PprofDir, 0o755)
	}
	c, err := startChild("import", childArgs{DB: live, Folder: folder, State: filepath.Join(dir, "state"), PprofDir: b.o.PprofDir})
	if err != nil {
		return err
	}
	var r importResult
	maxrss, err := c.finish(&r)
	if err != nil {
		return err
	}
	if r.Error != "" {
		return fmt.Errorf("import child: %s", r.Error)
	}
	if r.Applied != 1 || r.Changes != int64(rows) {
		return fmt.Errorf("import child applied %d files / %d changes, want 1 / %d", r.Applied, r.Changes, rows)
	}
	// VmHWM, read by the child itself, is the figure: the kernel's
	// rusage Maxrss of an exec'd child also counts the parent's peak,
	// because Go starts children with vfork (CLONE_VM) and exec records
	// the shared address space's high-water mark.
	peak := r.VmHWMKB * 1024
	if peak == 0 {
		peak = maxrss * 1024
	}
	b.rep.add(Figure{
		ID: fmt.Sprintf("P5 memory, importing a %s changeset (%s inserted rows of ~%d B)", mb(h.RawLen), rowsLabel(rows), b.sz.p5Body),
		Measured: fmt.Sprintf("peak RSS %s (at the peak: Go runtime %s, of which heap in use %s; the rest is SQLite's); import took %.1f s, %.0f rows/s, longest lock %.0f ms (%d of %d write transactions over 100 ms)",
			mb(peak), mb(r.GoSysKB<<10), mb(r.GoHeapKB<<10), r.TookS, float64(rows)/r.TookS, r.MaxLockMS, r.LongLocks, r.Locks),
		Ratio: "—", Target: "≤ 100 MB", Met: yesNo(peak <= 100e6),
		Values: map[string]float64{"peak_rss_bytes": float64(peak), "go_sys_bytes": float64(r.GoSysKB << 10), "go_heap_bytes": float64(r.GoHeapKB << 10), "raw_bytes": float64(h.RawLen), "import_s": r.TookS, "rows": float64(rows)},
	})
	return nil
}

// writeInserts writes, as a simulated remote device's first file in
// folder, a changeset inserting rows notes rows with bodies of body bytes
// (t is the notes table), and returns its header.
func writeInserts(folder string, t *schema.Table, rows, body int, seed int64) (rdfile.Header, error) {
	dev := state.NewID()
	path := filepath.Join(folder, filepath.FromSlash(rdfile.RelPath(dev, 1)))
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return rdfile.Header{}, err
	}
	h := rdfile.Header{
		Device: dev, DeviceName: "bench-generator", Install: state.NewID(), Seq: 1,
		HLC: uint64(hlc.New(nil, 0).Now()), CreatedMS: time.Now().UnixMilli(), Changes: int64(rows),
		Tables: []rdfile.Table{{Name: t.Name, Columns: t.Columns, Fingerprint: t.Fingerprint()}},
	}
	pr, pw := io.Pipe()
	go func() {
		w := changeset.NewWriter(pw)
		tbl := &changeset.Table{Name: "notes", PK: []byte{1, 0, 0, 0, 0}}
		rng := newRand(seed)
		now := time.Now().UnixMilli()
		var err error
		for i := 0; i < rows && err == nil; i++ {
			ts := now - rng.Int64N(365*24*3600*1000)
			err = w.Write(&changeset.Change{Table: tbl, Op: changeset.OpInsert, New: []changeset.Value{
				changeset.Text(uuidText(rng)), changeset.Text(title(rng)), changeset.Text(bodyOf(rng, body)), changeset.Int(ts), changeset.Int(ts)}})
		}
		if err == nil {
			err = w.Flush()
		}
		pw.CloseWithError(err)
	}()
	h, err := rdfile.Build(path, h, pr)
	pr.Close()
	if err != nil {
		return h, fmt.Errorf("write changeset file: %w", err)
	}
	return h, nil
}
