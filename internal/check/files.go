package check

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"path"
	"strings"

	"zombiezen.com/go/sqlite"
	"zombiezen.com/go/sqlite/sqlitex"

	"github.com/rowdrop/rowdrop/internal/changeset"
	"github.com/rowdrop/rowdrop/internal/db"
	"github.com/rowdrop/rowdrop/internal/folder"
	"github.com/rowdrop/rowdrop/internal/rdfile"
)

// sqliteMagic opens every SQLite database file.
const sqliteMagic = "SQLite format 3\x00"

// changeset checks one changeset file.
func (c *checker) changeset(ctx context.Context, e folder.Entry) {
	d := c.dev(e.Device)
	d.present = append(d.present, e.Seq)
	c.r.Changesets++
	fix := restoreFix(e.Device)
	f, err := c.f.Open(e.Rel)
	if err != nil {
		c.readErr(e.Rel, e.Device, err, fix)
		return
	}
	h := f.Header
	if what := nameMismatch(h, rdfile.KindChangeset, e); what != "" {
		c.problem(Problem{File: e.Rel, Device: e.Device, Kind: Damaged, What: what,
			Fix: "it is not the file its name promises (copied or renamed by hand?): move it out of the shared folder, then " + fix})
		return
	}
	d.setName(h.DeviceName, h.Seq)
	if err := f.Verify(); err != nil {
		c.readErr(e.Rel, e.Device, err, fix)
		return
	}
	c.r.Bytes += e.Bytes
	if d.payloads == nil {
		d.payloads = map[string]string{}
	}
	d.payloads[path.Base(e.Rel)] = h.PayloadSHA256
	if d.sums == nil {
		d.sums, d.prevs = map[uint64]string{}, map[uint64]string{}
	}
	d.sums[e.Seq], d.prevs[e.Seq] = f.Sum(), h.Prev
	for dev, n := range h.Seen {
		c.sawSeq(dev, n, e.Rel)
	}
	if !c.opt.ReadData {
		return
	}
	if what := decodeChangeset(ctx, f); what != "" {
		c.problem(Problem{File: e.Rel, Device: e.Device, Kind: Damaged, What: what, Fix: fix})
	}
}

// nameMismatch says how a header contradicts the file's name ("" if not).
func nameMismatch(h rdfile.Header, kind string, e folder.Entry) string {
	if h.Kind != kind {
		return fmt.Sprintf("its header says kind %q under a %s's name", h.Kind, kind)
	}
	if h.Device != e.Device || h.Seq != e.Seq {
		return fmt.Sprintf("its header says device %s number %d, its name says %s number %d", h.Device, h.Seq, e.Device, e.Seq)
	}
	return ""
}

// decodeChangeset reads the whole payload and checks it against the
// header (docs/FORMAT.md §7.3): it decodes completely to exactly raw_len
// bytes, holds exactly the announced number of changes, and every table
// group is a table of the header with the same columns and key.
func decodeChangeset(ctx context.Context, f *rdfile.File) string {
	rc, err := f.Changeset()
	if err != nil {
		return "payload: " + detail(f.Path, err)
	}
	defer rc.Close()
	tables := map[string]rdfile.Table{}
	for _, t := range f.Header.Tables {
		tables[t.Name] = t
	}
	rd := changeset.NewReader(rc, changeset.Limits{MaxValueBytes: f.Limits().ValueLimit()})
	var n int64
	var last *changeset.Table
	for {
		ch, err := rd.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return "payload does not decode as a changeset: " + detail(f.Path, err)
		}
		n++
		if n%4096 == 0 && ctx.Err() != nil {
			return "" // cancelled: Run reports ctx's error
		}
		if n > f.Header.Changes {
			return fmt.Sprintf("payload holds more changes than the %d its header announces", f.Header.Changes)
		}
		if ch.Table == last {
			continue
		}
		last = ch.Table
		t, ok := tables[ch.Table.Name]
		if !ok {
			return fmt.Sprintf("payload changes table %q, which its header does not list", ch.Table.Name)
		}
		if what := shapeMismatch(t, ch.Table); what != "" {
			return what
		}
	}
	if n != f.Header.Changes {
		return fmt.Sprintf("payload holds %d changes, its header announces %d", n, f.Header.Changes)
	}
	return ""
}

// shapeMismatch compares a table group's column count and key columns
// with the header's description of the table.
func shapeMismatch(t rdfile.Table, ct *changeset.Table) string {
	if ct.NumCols() != len(t.Columns) {
		return fmt.Sprintf("payload gives table %s %d columns, its header %d", t.Name, ct.NumCols(), len(t.Columns))
	}
	for i, col := range t.Columns {
		if (ct.PK[i] != 0) != (col.PK > 0) {
			return fmt.Sprintf("payload and header disagree on whether column %s of table %s is part of the key", col.Name, t.Name)
		}
	}
	return ""
}

// snapshot checks one snapshot file; a sound one says which changesets
// may have been collected.
func (c *checker) snapshot(ctx context.Context, e folder.Entry) {
	c.r.Snapshots++
	fix := "joining and re-basing devices skip it: run `rowdrop snapshot` on an up-to-date device to publish a sound one, then delete this one"
	f, err := c.f.Open(e.Rel)
	if err != nil {
		c.readErr(e.Rel, e.Device, err, fix)
		return
	}
	h := f.Header
	if what := nameMismatch(h, rdfile.KindSnapshot, e); what != "" {
		c.problem(Problem{File: e.Rel, Device: e.Device, Kind: Damaged, What: what, Fix: fix})
		return
	}
	c.dev(e.Device).setName(h.DeviceName, 0)
	if err := f.Verify(); err != nil {
		c.readErr(e.Rel, e.Device, err, fix)
		return
	}
	c.r.Bytes += e.Bytes
	if what := c.snapshotData(ctx, f); what != "" {
		c.problem(Problem{File: e.Rel, Device: e.Device, Kind: Damaged, What: what, Fix: fix})
		return
	}
	for dev, n := range h.Seen {
		c.sawSeq(dev, n, e.Rel)
		if d := c.dev(dev); n > d.covered {
			d.covered = n
		}
	}
	for dev, sum := range h.Heads {
		c.claim(dev, h.Seen[dev], sum, e.Rel+" includes it")
	}
}

// snapshotData decompresses a snapshot's payload and checks that it is a
// SQLite database; with ReadData, one that opens and passes PRAGMA
// integrity_check. Everything stays in memory: check writes nothing.
func (c *checker) snapshotData(ctx context.Context, f *rdfile.File) string {
	rc, err := f.Changeset()
	if err != nil {
		return "payload: " + detail(f.Path, err)
	}
	defer rc.Close()
	keep := c.opt.ReadData && f.Header.RawLen <= c.opt.maxSnapshotMemory()
	if c.opt.ReadData && !keep {
		c.r.Notes = append(c.r.Notes, fmt.Sprintf("%s: its database (%d bytes) is larger than the %d bytes checked in memory: integrity not checked",
			f.Path, f.Header.RawLen, c.opt.maxSnapshotMemory()))
	}
	var buf bytes.Buffer
	var w io.Writer = io.Discard
	if keep {
		buf.Grow(int(f.Header.RawLen))
		w = &buf
	}
	var magic [len(sqliteMagic)]byte
	n, err := io.ReadFull(rc, magic[:])
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return "payload: " + detail(f.Path, err)
	}
	if string(magic[:n]) != sqliteMagic {
		return "payload is not a SQLite database"
	}
	w.Write(magic[:])
	if _, err := io.Copy(w, rc); err != nil {
		return "payload: " + detail(f.Path, err)
	}
	if !keep {
		return ""
	}
	return integrity(ctx, buf.Bytes())
}

// integrity opens a database image in memory and runs PRAGMA
// integrity_check on it.
func integrity(ctx context.Context, image []byte) string {
	// A database written in WAL mode says so in its header (bytes 18 and
	// 19 are 2); an in-memory copy can only be read in rollback mode.
	if len(image) >= 20 && image[18] == 2 && image[19] == 2 {
		image[18], image[19] = 1, 1
	}
	conn, err := sqlite.OpenConn(":memory:", sqlite.OpenReadWrite|sqlite.OpenMemory)
	if err != nil {
		return "cannot open an in-memory database to check it: " + err.Error()
	}
	defer conn.Close()
	defer db.Interruptible(ctx, conn)()
	// Never run anything the file's schema might bring.
	_ = sqlitex.ExecuteTransient(conn, "PRAGMA trusted_schema=OFF", nil)
	if err := conn.Deserialize("main", image); err != nil {
		return "its database does not open: " + err.Error()
	}
	var problems []string
	err = sqlitex.ExecuteTransient(conn, "PRAGMA integrity_check(20)", &sqlitex.ExecOptions{ResultFunc: func(s *sqlite.Stmt) error {
		if v := s.ColumnText(0); v != "ok" {
			problems = append(problems, v)
		}
		return nil
	}})
	if err != nil {
		return "its database fails PRAGMA integrity_check: " + oneLine(strings.TrimPrefix(err.Error(), "sqlite: step: "))
	}
	if len(problems) > 0 {
		return "its database fails PRAGMA integrity_check: " + oneLine(strings.Join(problems, "; "))
	}
	return ""
}

// conflictCopy reports a sync tool's conflict copy: harmless when it is
// the same file as the one it copies, otherwise the mark of two
// installations publishing under one device id.
func (c *checker) conflictCopy(rel string) {
	dev, base, _ := strings.Cut(rel, "/")
	orig := originalName(base)
	p := Problem{File: rel, Device: dev, Kind: ConflictCopy}
	twoInstalls := fmt.Sprintf("two installations publish as device %s (a copied or restored state directory): `rowdrop status` on each tells which one must take a new identity (move its state directory aside and sync again); then delete this copy", dev)
	if orig == rdfile.AckName {
		p.What = "a sync tool's conflict copy of " + rdfile.AckName
		p.Fix = fmt.Sprintf("rowdrop ignores it: delete it (if it keeps coming back, %s)", twoInstalls)
		c.problem(p)
		return
	}
	f, err := c.f.Open(rel)
	if err != nil {
		p.What = fmt.Sprintf("a sync tool's conflict copy of %s, itself unreadable (%s)", orig, detail(c.f.Path(rel), err))
		p.Fix = "rowdrop never applies it: delete it"
		c.problem(p)
		return
	}
	sum := ""
	if err := f.Verify(); err == nil {
		sum = f.Header.PayloadSHA256
	}
	d := c.dev(dev)
	switch theirs, ok := d.payloads[orig]; {
	case !ok:
		p.What = fmt.Sprintf("a sync tool's conflict copy of %s, which is missing or unreadable", orig)
		p.Fix = "rowdrop never applies a conflict copy; if it is whole and " + orig + " is missing, renaming it to " + orig + " restores the file; " + twoInstalls
	case sum != "" && rdfile.SumsMatch(theirs, sum):
		p.What = "a sync tool's conflict copy identical to " + orig
		p.Fix = "harmless: delete it"
	default:
		p.What = fmt.Sprintf("a sync tool's conflict copy of %s with other content: two files claim the same name", orig)
		p.Fix = twoInstalls
	}
	c.problem(p)
}

// originalName is the name a sync tool's conflict copy was made from:
// "x.sync-conflict-20261126-101500-ABCDEFG.rdc" (Syncthing) and
// "x (Ann's conflicted copy 2026-11-26).rdc" (Dropbox) both give "x.rdc".
func originalName(base string) string {
	if i := strings.Index(base, ".sync-conflict-"); i >= 0 {
		return base[:i] + path.Ext(base[i+1:])
	}
	if i := strings.Index(base, " ("); i >= 0 {
		if j := strings.Index(base[i:], ")"); j >= 0 {
			return base[:i] + base[i+j+1:]
		}
	}
	return base
}
