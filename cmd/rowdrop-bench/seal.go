package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"zombiezen.com/go/sqlite"
	"zombiezen.com/go/sqlite/sqlitex"

	"github.com/rowdrop/rowdrop"
)

// sealPair is two devices sharing one folder, encrypted or not.
type sealPair struct {
	a, b   *rowdrop.Syncer
	adb    string
	folder string
}

func (b *bench) newSealPair(ctx context.Context, name string, rows int, sealed bool) (*sealPair, error) {
	dir := filepath.Join(b.dir, name)
	p := &sealPair{folder: filepath.Join(dir, "folder"), adb: filepath.Join(dir, "a.db")}
	os.MkdirAll(p.folder, 0o755)
	bdb := filepath.Join(dir, "b.db")
	for _, path := range []string{p.adb, bdb} {
		c, err := sqlite.OpenConn(path)
		if err != nil {
			return nil, err
		}
		err = sqlitex.ExecuteScript(c, `CREATE TABLE notes(id INTEGER PRIMARY KEY, title TEXT, body TEXT);`, nil)
		if err == nil && path == p.adb {
			err = sqlitex.ExecuteTransient(c, fmt.Sprintf(`WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM n WHERE i<%d)
				INSERT INTO notes SELECT i, 'title '||i, hex(randomblob(200)) FROM n`, rows), nil)
		}
		c.Close()
		if err != nil {
			return nil, err
		}
	}
	cfg := func(db, st string) rowdrop.Config {
		return rowdrop.Config{DB: db, Folder: p.folder, State: filepath.Join(dir, st), DeviceName: st}
	}
	var err error
	if p.a, err = rowdrop.Open(ctx, cfg(p.adb, "a")); err != nil {
		return nil, err
	}
	if sealed {
		if _, err := p.a.KeyInit(ctx, []byte("bench passphrase"), rowdrop.DefaultKDF); err != nil {
			return nil, err
		}
	}
	bc := cfg(bdb, "b")
	bc.Passphrase = []byte("bench passphrase")
	if p.b, err = rowdrop.Open(ctx, bc); err != nil {
		return nil, err
	}
	if sealed {
		info, err := p.b.KeyState()
		if err != nil {
			return nil, err
		}
		if err := p.a.ApproveDevice(info.Device, info.Fingerprint); err != nil {
			return nil, err
		}
	}
	if _, err := p.a.Sync(ctx); err != nil {
		return nil, err
	}
	_, err = p.b.Sync(ctx)
	return p, err
}

// round edits k rows on a, and times a's export and b's merge of it.
func (p *sealPair) round(ctx context.Context, rep, k int) (exp, merge time.Duration, bytes int64, err error) {
	c, err := sqlite.OpenConn(p.adb)
	if err != nil {
		return 0, 0, 0, err
	}
	err = sqlitex.ExecuteTransient(c, fmt.Sprintf(`UPDATE notes SET body='edit %d '||id WHERE id %% 97 = %d AND id <= %d`, rep, rep%97, k*97), nil)
	c.Close()
	if err != nil {
		return 0, 0, 0, err
	}
	t0 := time.Now()
	res, err := p.a.Export(ctx)
	exp = time.Since(t0)
	if err != nil {
		return 0, 0, 0, err
	}
	if res.File != "" {
		bytes = fileLen(res.File)
	}
	t0 = time.Now()
	_, err = p.b.Import(ctx)
	return exp, time.Since(t0), bytes, err
}

func (p *sealPair) close() { p.a.Close(); p.b.Close() }

// sealPhase measures P1 (export), P2 (merge) and P3 (bytes per file) with
// encryption on as ratios to off, in the same run, rounds interleaved so
// the machine's load falls on both alike.
func (b *bench) sealPhase(ctx context.Context) error {
	rows, k := 100_000, 1000
	if b.o.Quick {
		rows, k = 5_000, 50
	}
	off, err := b.newSealPair(ctx, "seal-off", rows, false)
	if err != nil {
		return err
	}
	defer off.close()
	on, err := b.newSealPair(ctx, "seal-on", rows, true)
	if err != nil {
		return err
	}
	defer on.close()
	var expOff, expOn, mOff, mOn []time.Duration
	var bOff, bOn int64
	reps := max(5, b.o.Reps)
	for r := 0; r < reps; r++ {
		for _, side := range []bool{false, true} {
			p := off
			if side {
				p = on
			}
			e, m, n, err := p.round(ctx, r, k)
			if err != nil {
				return err
			}
			if side {
				expOn, mOn, bOn = append(expOn, e), append(mOn, m), bOn+n
			} else {
				expOff, mOff, bOff = append(expOff, e), append(mOff, m), bOff+n
			}
		}
	}
	ratio := func(id string, on, off []time.Duration) {
		r := float64(median(on)) / float64(median(off))
		met := "yes"
		if r > 1.1 {
			met = "no"
		}
		b.rep.add(Figure{ID: fmt.Sprintf("%s, encryption on vs off, %d of %d rows", id, k, rows), Measured: fmt.Sprintf("%s vs %s (median of %d)", ms(median(on)), ms(median(off)), reps),
			Ratio: fmt.Sprintf("%.2f×", r), Target: "≤ 1.1×", Met: met, Values: map[string]float64{"on_s": median(on).Seconds(), "off_s": median(off).Seconds()}})
	}
	ratio("P1 seal export", expOn, expOff)
	ratio("P2 seal merge", mOn, mOff)
	extra := float64(bOn-bOff) / float64(reps)
	met := "yes"
	if extra > 64 {
		met = "no (a 64-byte Ed25519 signature alone; docs/ENCRYPTION.md)"
	}
	b.rep.add(Figure{ID: fmt.Sprintf("P3 seal bytes per file, %d of %d rows", k, rows), Measured: fmt.Sprintf("%.0f vs %.0f bytes per file", float64(bOn)/float64(reps), float64(bOff)/float64(reps)),
		Ratio: fmt.Sprintf("+%.0f bytes", extra), Target: "≤ +64 bytes", Met: met, Values: map[string]float64{"extra_bytes": extra}})
	return nil
}
