package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"io"
	"os"
	"path/filepath"
	"runtime/pprof"
	"sort"
	"time"

	"github.com/klauspost/compress/zstd"
	"zombiezen.com/go/sqlite"
	"zombiezen.com/go/sqlite/sqlitex"

	"github.com/rowdrop/rowdrop/export"
	"github.com/rowdrop/rowdrop/internal/db"
	"github.com/rowdrop/rowdrop/internal/folder"
)

// p1 measures the export of one-row edits against a full session diff of
// the same database, and returns the device (rowdrop still open on it) so
// P2 can use it as the remote device. withP3 also measures P3 on it.
func (b *bench) p1(ctx context.Context, intKey bool, n int, withP3 bool) (*device, error) {
	kind := "TEXT"
	if intKey {
		kind = "INTEGER"
	}
	label := fmt.Sprintf("%s keys, %s rows", kind, rowsLabel(n))
	b.logf("P1 %s: generating", label)
	d, err := b.newDevice(fmt.Sprintf("p1-%s-%s", kind, rowsLabel(n)), intKey, n, "")
	if err != nil {
		return nil, err
	}
	ok := false
	defer func() {
		if !ok {
			d.remove()
		}
	}()
	d.hints = true
	if err := b.openSyncer(ctx, d); err != nil {
		return nil, err
	}
	// The first export publishes every row: it is the device's first
	// changeset (and installs the hint triggers).
	b.logf("P1 %s: initial export", label)
	t0 := time.Now()
	res, err := d.s.Export(ctx)
	initial := time.Since(t0)
	if err != nil {
		return nil, fmt.Errorf("initial export: %w", err)
	}
	if res.Changes != int64(n) {
		return nil, fmt.Errorf("initial export published %d changes, want %d", res.Changes, n)
	}
	fileSize := fileLen(res.File)
	b.rep.add(Figure{
		ID:       "P1 initial export, " + label,
		Measured: fmt.Sprintf("%s for %d rows (%.0f rows/s), file %s", ms(initial), n, float64(n)/initial.Seconds(), mb(fileSize)),
		Ratio:    "—", Target: "—", Met: "—",
		Values: map[string]float64{"initial_s": initial.Seconds(), "rows": float64(n), "file_bytes": float64(fileSize)},
	})
	// One untimed edit warms the fast path (first use of its statements).
	if err := b.editOne(d); err != nil {
		return nil, err
	}
	if _, err := b.exportOne(ctx, d); err != nil {
		return nil, err
	}
	b.logf("P1 %s: %d timed one-row exports", label, b.o.Reps)
	stopProf := b.profile("p1-export-" + d.name)
	var times []time.Duration
	for range b.o.Reps {
		if err := b.editOne(d); err != nil {
			stopProf()
			return nil, err
		}
		t, err := b.exportOne(ctx, d)
		if err != nil {
			stopProf()
			return nil, err
		}
		times = append(times, t)
	}
	stopProf()
	p50 := median(times)
	sorted := append([]time.Duration(nil), times...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i] < sorted[j] })
	p90 := sorted[len(sorted)*9/10]

	// The denominator: a full sqlite3session_diff of the same table, base
	// copy -> live, after the same kind of one-row edit.
	if err := b.editOne(d); err != nil {
		return nil, err
	}
	reps := b.sz.diffReps
	if n >= 1_000_000 {
		reps = b.sz.diffRepsBig
	}
	b.logf("P1 %s: %d full session diff(s)", label, reps)
	stopProf = b.profile("p1-fulldiff-" + d.name)
	var diffs []time.Duration
	for range reps {
		t, size, err := fullDiff(ctx, d.db, filepath.Join(d.state, "base.db"))
		if err != nil {
			stopProf()
			return nil, fmt.Errorf("full diff: %w", err)
		}
		if size == 0 {
			stopProf()
			return nil, errors.New("full diff found no change after a one-row edit")
		}
		diffs = append(diffs, t)
	}
	stopProf()
	full := median(diffs)
	if _, err := b.exportOne(ctx, d); err != nil { // consume the pending edit
		return nil, err
	}
	ratio := float64(p50) / float64(full)
	target := "p50 ≤ 50 ms"
	met := yesNo(p50 <= 50*time.Millisecond)
	if n >= b.sz.targetRows {
		target = "≤ 1/100, p50 ≤ 50 ms"
		met = yesNo(p50 <= 50*time.Millisecond && ratio <= 0.01)
	}
	b.rep.add(Figure{
		ID: "P1 export, " + label,
		Measured: fmt.Sprintf("p50 %s (p90 %s, n=%d) vs full session diff %s (median of %d)",
			ms(p50), ms(p90), len(times), ms(full), len(diffs)),
		Ratio:  fraction(ratio),
		Target: target, Met: met,
		Values: map[string]float64{"p50_s": p50.Seconds(), "p90_s": p90.Seconds(), "full_diff_s": full.Seconds(), "ratio": ratio, "rows": float64(n)},
	})
	if withP3 {
		if err := b.p3(ctx, d, label); err != nil {
			return nil, fmt.Errorf("P3: %w", err)
		}
	}
	ok = true
	return d, nil
}

// fraction renders a ratio below 1 as 1/N.
func fraction(r float64) string {
	if r < 1 {
		return fmt.Sprintf("1/%.0f", 1/r)
	}
	return fmt.Sprintf("%.1f", r)
}

// exportOne times one export that must take the fast path and publish
// exactly one change.
func (b *bench) exportOne(ctx context.Context, d *device) (time.Duration, error) {
	t0 := time.Now()
	res, err := d.s.Export(ctx)
	took := time.Since(t0)
	if err != nil {
		return 0, err
	}
	if res.Mode != export.ModeFast || res.Changes != 1 {
		return 0, fmt.Errorf("one-row edit exported in mode %q with %d changes, want fast with 1", res.Mode, res.Changes)
	}
	return took, nil
}

// fullDiff runs sqlite3session_diff of the notes table, base -> live, the
// way a capture without hints does, and returns its time and size.
func fullDiff(ctx context.Context, live, base string) (time.Duration, int64, error) {
	conn, err := sqlite.OpenConn(db.FileURI(live)+"?mode=ro", sqlite.OpenReadOnly|sqlite.OpenURI)
	if err != nil {
		return 0, 0, err
	}
	defer conn.Close()
	conn.SetInterrupt(ctx.Done())
	if err := db.Exec(conn, "ATTACH DATABASE ? AS base", db.FileURI(base)+"?mode=ro"); err != nil {
		return 0, 0, err
	}
	t0 := time.Now()
	end, err := db.Begin(conn, "DEFERRED")
	if err != nil {
		return 0, 0, err
	}
	sess, err := conn.CreateSession("main")
	if err == nil {
		defer sess.Delete()
		if err = sess.Attach("notes"); err == nil {
			err = sess.Diff("base", "notes")
		}
	}
	var cw countWriter
	if err == nil {
		err = sess.WriteChangeset(&cw)
	}
	end(&err)
	return time.Since(t0), cw.n, err
}

type countWriter struct{ n int64 }

func (c *countWriter) Write(p []byte) (int, error) { c.n += int64(len(p)); return len(p), nil }

func fileLen(path string) int64 {
	st, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return st.Size()
}

// syncBlock is the block size a file-level sync tool transfers
// (Syncthing's smallest; it uses larger blocks for large files, so this
// bound favours file-level sync).
const syncBlock = 128 << 10

var hashSeed = maphash.MakeSeed()

// blockHashes hashes a file in syncBlock blocks (nil if it does not
// exist). It reads the benchmark's own generated database files, with no
// transaction in progress, to count what a file-level sync tool would
// transfer; rowdrop itself never does this to a user's database.
func blockHashes(path string) ([]uint64, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []uint64
	buf := make([]byte, syncBlock)
	for {
		n, err := io.ReadFull(f, buf)
		if n > 0 {
			out = append(out, maphash.Bytes(hashSeed, buf[:n]))
		}
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
	}
}

// changedBlocks counts blocks of after that are new or differ from before.
func changedBlocks(before, after []uint64) int {
	n := 0
	for i, h := range after {
		if i >= len(before) || before[i] != h {
			n++
		}
	}
	return n
}

type fileState struct{ db, wal []uint64 }

func snapshotBlocks(path string) (fileState, error) {
	var s fileState
	var err error
	if s.db, err = blockHashes(path); err != nil {
		return s, err
	}
	s.wal, err = blockHashes(path + "-wal")
	return s, err
}

// p3 measures the bytes one one-row edit costs: rowdrop's published file
// versus the edit's own changeset compressed, and versus the blocks a
// file-level sync tool would transfer.
func (b *bench) p3(ctx context.Context, d *device, label string) error {
	b.logf("P3 %s: bytes of one edit", label)
	app, err := d.appConn()
	if err != nil {
		return err
	}
	// Start from a checkpointed database with an empty WAL, so the WAL
	// holds this edit only.
	if err := sqlitex.ExecuteTransient(app, "PRAGMA wal_checkpoint(TRUNCATE)", nil); err != nil {
		return err
	}
	before, err := snapshotBlocks(d.db)
	if err != nil {
		return err
	}
	// The edit's own changeset: a session on the app's connection records
	// exactly this UPDATE.
	sess, err := app.CreateSession("main")
	if err != nil {
		return err
	}
	if err := sess.Attach("notes"); err != nil {
		sess.Delete()
		return err
	}
	if err := b.editOne(d); err != nil {
		sess.Delete()
		return err
	}
	var cs bytes.Buffer
	err = sess.WriteChangeset(&cs)
	sess.Delete()
	if err != nil {
		return err
	}
	after, err := snapshotBlocks(d.db)
	if err != nil {
		return err
	}
	walBlocks, dbBlocks := changedBlocks(before.wal, after.wal), changedBlocks(before.db, after.db)
	// A checkpoint later copies the edit's pages into the database file:
	// a file-level tool transfers those blocks too.
	if err := sqlitex.ExecuteTransient(app, "PRAGMA wal_checkpoint(PASSIVE)", nil); err != nil {
		return err
	}
	ckpt, err := blockHashes(d.db)
	if err != nil {
		return err
	}
	ckptBlocks := changedBlocks(after.db, ckpt)

	res, err := d.s.Export(ctx)
	if err != nil {
		return err
	}
	if res.Changes != 1 {
		return fmt.Errorf("the edit exported %d changes, want 1", res.Changes)
	}
	published := fileLen(res.File)
	if published == 0 {
		return fmt.Errorf("published file %q not found", res.File)
	}
	shared, rel := folder.At(res.File)
	f, err := shared.Open(rel)
	if err != nil {
		return err
	}
	enc, err := zstd.NewWriter(nil) // klauspost default level
	if err != nil {
		return err
	}
	z := int64(len(enc.EncodeAll(cs.Bytes(), nil)))
	enc.Close()
	if f.Header.RawLen != int64(cs.Len()) {
		b.rep.Notes = append(b.rep.Notes, fmt.Sprintf("P3: the published changeset is %d bytes raw, the edit's own session changeset %d", f.Header.RawLen, cs.Len()))
	}
	header := published - f.Header.PayloadLen
	r := float64(published) / float64(z)
	b.rep.add(Figure{
		ID: "P3 bytes per one-row edit, " + label,
		Measured: fmt.Sprintf("published file %d B (header %d B + zstd payload %d B) vs zstd of the edit's changeset %d B (raw %d B)",
			published, header, f.Header.PayloadLen, z, cs.Len()),
		Ratio: fmt.Sprintf("%.2f", r), Target: "≤ 1.2", Met: yesNo(r <= 1.2),
		Values: map[string]float64{"published": float64(published), "header": float64(header), "payload": float64(f.Header.PayloadLen), "zstd_changeset": float64(z), "raw_changeset": float64(cs.Len())},
	})
	fileBytes := int64(walBlocks+dbBlocks) * syncBlock
	fr := float64(fileBytes) / float64(published)
	b.rep.add(Figure{
		ID: "P3 file-level sync vs rowdrop, " + label,
		Measured: fmt.Sprintf("%d changed 128 KiB blocks (WAL %d, DB %d) = %d B, +%d DB blocks at the next checkpoint, vs rowdrop %d B",
			walBlocks+dbBlocks, walBlocks, dbBlocks, fileBytes, ckptBlocks, published),
		Ratio: fmt.Sprintf("%.0f", fr), Target: "≥ 100", Met: yesNo(fr >= 100),
		Values: map[string]float64{"file_level_bytes": float64(fileBytes), "wal_blocks": float64(walBlocks), "db_blocks": float64(dbBlocks), "checkpoint_blocks": float64(ckptBlocks), "rowdrop_bytes": float64(published)},
	})
	return nil
}

// profile starts a CPU profile named name in --pprof-dir (if set) and
// returns its stop function.
func (b *bench) profile(name string) func() {
	if b.o.PprofDir == "" {
		return func() {}
	}
	if err := os.MkdirAll(b.o.PprofDir, 0o755); err != nil {
		b.logf("pprof: %v", err)
		return func() {}
	}
	f, err := os.Create(filepath.Join(b.o.PprofDir, name+".pprof"))
	if err != nil {
		b.logf("pprof: %v", err)
		return func() {}
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		b.logf("pprof: %v", err)
		return func() {}
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}
}
