package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"zombiezen.com/go/sqlite"
	"zombiezen.com/go/sqlite/sqlitex"

	"github.com/rowdrop/rowdrop"
)

type bench struct {
	o     Options
	sz    sizes
	dir   string
	rep   *Report
	rng   *rand.Rand
	start time.Time
}

func newRand(seed int64) *rand.Rand {
	return rand.New(rand.NewPCG(uint64(seed), 0x726f7764726f70)) // "rowdrop"
}

func (b *bench) logf(format string, args ...any) {
	if b.o.Progress == nil {
		return
	}
	fmt.Fprintf(b.o.Progress, "[%7.1fs] %s\n", time.Since(b.start).Seconds(), fmt.Sprintf(format, args...))
}

// The notes schema: the shape of a typical notes app. updated_at is set by
// the "app" (the benchmark), not by a trigger.
const (
	textSchema = `CREATE TABLE notes(id TEXT PRIMARY KEY, title TEXT NOT NULL, body TEXT NOT NULL, created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL)`
	intSchema  = `CREATE TABLE notes(id INTEGER PRIMARY KEY, title TEXT NOT NULL, body TEXT NOT NULL, created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL)`
	// appEventsSchema is the table the simulated app process writes to
	// while an import runs (P6).
	appEventsSchema = `CREATE TABLE app_events(id INTEGER PRIMARY KEY, at INTEGER NOT NULL, payload TEXT NOT NULL)`
)

// words make ~500-byte bodies that compress like prose (about 3x), not
// like random bytes (which would flatter neither side of P3).
var words = strings.Fields(`the of and to in is was that for on with as by at from this be are or an have
not which one had but were all we when there can been has more if will would who so no out up into
what about than them some could time these two may then do first any my now such like our over man
me even most made after also did many before must through back years where much your way well down
should because each just those people how too little state good very make world still own see men work
long get here between both life being under never day same another know while last might us great old
year off come since against go came right used take three note list idea draft plan meeting project
garden recipe travel book chapter review budget market river mountain window kitchen letter music
morning evening winter summer spring autumn coffee paper pencil table chair light shadow color green
blue yellow orange purple silver golden wooden stone glass water fire earth cloud storm quiet loud`)

func (b *bench) body(rng *rand.Rand) string { return bodyOf(rng, 500) }

// bodyOf returns about size bytes of words.
func bodyOf(rng *rand.Rand, size int) string {
	var s strings.Builder
	for s.Len() < size-20 {
		if s.Len() > 0 {
			s.WriteByte(' ')
		}
		s.WriteString(words[rng.IntN(len(words))])
	}
	return s.String()
}

func title(rng *rand.Rand) string {
	return words[rng.IntN(len(words))] + " " + words[rng.IntN(len(words))] + " " + words[rng.IntN(len(words))]
}

func uuidText(rng *rand.Rand) string {
	a, c := rng.Uint64(), rng.Uint64()
	return fmt.Sprintf("%08x-%04x-4%03x-%04x-%012x", a>>32, (a>>16)&0xffff, a&0xfff, 0x8000|(c>>48)&0x3fff, c&0xffffffffffff)
}

// device is one simulated device: a notes DB, a shared folder, a state
// directory and an open Syncer.
type device struct {
	name   string
	dir    string
	db     string
	folder string
	state  string
	intKey bool
	n      int
	keys   []string // TEXT keys (nil for INTEGER keys: 1..n)
	s      *rowdrop.Syncer
	app    *sqlite.Conn // the "app's" own connection: separate from rowdrop's
	hints  bool
	keep   bool // --keep: leave the files for inspection
}

// keyArg returns the key of row i (0-based).
func (d *device) keyArg(i int) any {
	if d.intKey {
		return int64(i + 1)
	}
	return d.keys[i]
}

// openSyncer opens rowdrop on the device.
func (b *bench) openSyncer(ctx context.Context, d *device) error {
	s, err := rowdrop.Open(ctx, rowdrop.Config{DB: d.db, Folder: d.folder, State: d.state, DeviceName: d.name, Hints: d.hints, Logger: b.o.Logger})
	if err != nil {
		return err
	}
	d.s = s
	return nil
}

// appConn returns the app's connection (opened on first use).
func (d *device) appConn() (*sqlite.Conn, error) {
	if d.app != nil {
		return d.app, nil
	}
	c, err := sqlite.OpenConn(d.db, sqlite.OpenReadWrite)
	if err != nil {
		return nil, err
	}
	c.SetBusyTimeout(5 * time.Second)
	d.app = c
	return c, nil
}

func (d *device) close() {
	if d.app != nil {
		d.app.Close()
		d.app = nil
	}
	if d.s != nil {
		d.s.Close()
		d.s = nil
	}
}

func (d *device) remove() {
	d.close()
	if d.keep {
		return
	}
	os.RemoveAll(d.dir)
	os.RemoveAll(d.folder)
}

// newDevice creates a device directory with a notes DB of n generated rows.
func (b *bench) newDevice(name string, intKey bool, n int, folder string, extraSchema ...string) (*device, error) {
	dir := filepath.Join(b.dir, name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	if folder == "" {
		folder = filepath.Join(b.dir, name+"-folder")
	}
	if err := os.MkdirAll(folder, 0o755); err != nil {
		return nil, err
	}
	d := &device{name: name, dir: dir, db: filepath.Join(dir, "notes.db"), folder: folder, state: filepath.Join(dir, "state"), intKey: intKey, n: n, keep: b.o.Keep}
	schema := textSchema
	if intKey {
		schema = intSchema
	}
	keys, err := b.generate(d.db, schema, intKey, n, extraSchema...)
	if err != nil {
		return nil, fmt.Errorf("generate %s: %w", d.db, err)
	}
	d.keys = keys
	return d, nil
}

// generate creates a WAL-mode notes database with n rows of ~500-byte
// bodies and returns the TEXT keys (nil for INTEGER keys).
func (b *bench) generate(path, schema string, intKey bool, n int, extra ...string) ([]string, error) {
	conn, err := sqlite.OpenConn(path, sqlite.OpenReadWrite|sqlite.OpenCreate|sqlite.OpenWAL)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	// The benchmark's own bulk load: no need to survive a power cut.
	if err := sqlitex.ExecuteTransient(conn, "PRAGMA synchronous=OFF", nil); err != nil {
		return nil, err
	}
	script := schema + ";\n"
	for _, e := range extra {
		script += e + ";\n"
	}
	if err := sqlitex.ExecuteScript(conn, script, nil); err != nil {
		return nil, err
	}
	if n == 0 {
		return nil, nil
	}
	var keys []string
	if !intKey {
		keys = make([]string, n)
		for i := range keys {
			keys[i] = uuidText(b.rng)
		}
	}
	stmt, err := conn.Prepare("INSERT INTO notes(id,title,body,created_at,updated_at) VALUES(?,?,?,?,?)")
	if err != nil {
		return nil, err
	}
	defer stmt.Finalize()
	now := time.Now().UnixMilli()
	const chunk = 50_000
	for lo := 0; lo < n; lo += chunk {
		if err := sqlitex.ExecuteTransient(conn, "BEGIN", nil); err != nil {
			return nil, err
		}
		for i := lo; i < min(lo+chunk, n); i++ {
			if intKey {
				stmt.BindInt64(1, int64(i+1))
			} else {
				stmt.BindText(1, keys[i])
			}
			stmt.BindText(2, title(b.rng))
			stmt.BindText(3, b.body(b.rng))
			t := now - b.rng.Int64N(365*24*3600*1000)
			stmt.BindInt64(4, t)
			stmt.BindInt64(5, t)
			if _, err := stmt.Step(); err != nil {
				return nil, err
			}
			if err := stmt.Reset(); err != nil {
				return nil, err
			}
		}
		if err := sqlitex.ExecuteTransient(conn, "COMMIT", nil); err != nil {
			return nil, err
		}
	}
	if err := sqlitex.ExecuteTransient(conn, "PRAGMA wal_checkpoint(TRUNCATE)", nil); err != nil {
		return nil, err
	}
	return keys, nil
}

// editOne updates one random row's body and updated_at through the app's
// connection, as the app would.
func (b *bench) editOne(d *device) error {
	c, err := d.appConn()
	if err != nil {
		return err
	}
	return sqlitex.Execute(c, "UPDATE notes SET body=?, updated_at=? WHERE id=?",
		&sqlitex.ExecOptions{Args: []any{b.body(b.rng), time.Now().UnixMilli(), d.keyArg(b.rng.IntN(d.n))}})
}

// editMany updates m distinct random rows in one transaction.
func (b *bench) editMany(d *device, m int) error {
	c, err := d.appConn()
	if err != nil {
		return err
	}
	idx := b.rng.Perm(d.n)[:m]
	stmt, err := c.Prepare("UPDATE notes SET body=?, updated_at=? WHERE id=?")
	if err != nil {
		return err
	}
	defer stmt.Finalize()
	if err := sqlitex.ExecuteTransient(c, "BEGIN IMMEDIATE", nil); err != nil {
		return err
	}
	now := time.Now().UnixMilli()
	for _, i := range idx {
		stmt.BindText(1, b.body(b.rng))
		stmt.BindInt64(2, now)
		if d.intKey {
			stmt.BindInt64(3, int64(i+1))
		} else {
			stmt.BindText(3, d.keys[i])
		}
		if _, err := stmt.Step(); err != nil {
			sqlitex.ExecuteTransient(c, "ROLLBACK", nil)
			return err
		}
		stmt.Reset()
	}
	return sqlitex.ExecuteTransient(c, "COMMIT", nil)
}

func median(ds []time.Duration) time.Duration {
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)/2]
}

func ms(d time.Duration) string {
	v := float64(d) / float64(time.Millisecond)
	switch {
	case v >= 10000:
		return fmt.Sprintf("%.1f s", v/1000)
	case v >= 100:
		return fmt.Sprintf("%.0f ms", v)
	default:
		return fmt.Sprintf("%.1f ms", v)
	}
}

func rowsLabel(n int) string {
	switch {
	case n >= 1_000_000 && n%1_000_000 == 0:
		return fmt.Sprintf("%dM", n/1_000_000)
	case n >= 1000 && n%1000 == 0:
		return fmt.Sprintf("%dk", n/1000)
	}
	return fmt.Sprint(n)
}

func yesNo(ok bool) string {
	if ok {
		return "yes"
	}
	return "**no**"
}

func mb(n int64) string { return fmt.Sprintf("%.1f MB", float64(n)/1e6) }
