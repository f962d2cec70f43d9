package importer

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"zombiezen.com/go/sqlite"
	"zombiezen.com/go/sqlite/sqlitex"

	"github.com/rowdrop/rowdrop/internal/changeset"
	"github.com/rowdrop/rowdrop/internal/folder"
	"github.com/rowdrop/rowdrop/internal/rdfile"
	"github.com/rowdrop/rowdrop/internal/schema"
	"github.com/rowdrop/rowdrop/internal/state"
)

// orderFixture is an importer over real tables a(TEXT key), b(TEXT key)
// and c(INTEGER key), with a state directory for the staging files.
func orderFixture(t *testing.T) (*Importer, map[string]*changeset.Table) {
	t.Helper()
	dir := t.TempDir()
	conn, err := sqlite.OpenConn(filepath.Join(dir, "live.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	err = sqlitex.ExecuteScript(conn, `CREATE TABLE a(id TEXT PRIMARY KEY, v INTEGER);
		CREATE TABLE b(id TEXT PRIMARY KEY, v INTEGER);
		CREATE TABLE c(id INTEGER PRIMARY KEY, v INTEGER);`, nil)
	if err != nil {
		t.Fatal(err)
	}
	tables, _, err := schema.Inspect(conn, "main", schema.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	st, err := state.Open(filepath.Join(dir, "state"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	im := &Importer{State: st, Tables: map[string]*schema.Table{}, Excluded: map[string]bool{}}
	ct := map[string]*changeset.Table{}
	for _, tb := range tables {
		im.Tables[tb.Name] = tb
		ct[tb.Name] = &changeset.Table{Name: tb.Name, PK: []byte{1, 0}}
	}
	return im, ct
}

type orderChange struct {
	tbl string
	key changeset.Value
	v   int64
	op  changeset.Op
}

func (c orderChange) change(ct map[string]*changeset.Table) *changeset.Change {
	row := []changeset.Value{c.key, {Kind: changeset.KindInteger, Int: c.v}}
	ch := &changeset.Change{Table: ct[c.tbl], Op: c.op}
	switch c.op {
	case changeset.OpInsert:
		ch.New = row
	case changeset.OpUpdate:
		ch.Old = []changeset.Value{c.key, {Kind: changeset.KindInteger, Int: c.v - 1}}
		ch.New = []changeset.Value{{}, row[1]}
	case changeset.OpDelete:
		ch.Old = row
	}
	return ch
}

func text(s string) changeset.Value {
	return changeset.Value{Kind: changeset.KindText, Bytes: []byte(s)}
}

// writeOrderFile builds a real changeset file holding changes in the
// given order; changes overrides the header's count when >= 0.
func writeOrderFile(t *testing.T, im *Importer, ct map[string]*changeset.Table, cs []orderChange, changes int64) *rdfile.File {
	t.Helper()
	var buf bytes.Buffer
	w := changeset.NewWriter(&buf)
	for _, c := range cs {
		if err := w.Write(c.change(ct)); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	if changes < 0 {
		changes = int64(len(cs))
	}
	h := rdfile.Header{Device: "aaaaaaaaaaaaaaaa", Install: "x", Seq: 1, HLC: 1, Changes: changes}
	for _, n := range []string{"a", "b", "c"} {
		tb := im.Tables[n]
		h.Tables = append(h.Tables, rdfile.Table{Name: n, Columns: tb.Columns, Fingerprint: tb.Fingerprint()})
	}
	dir, rel := folder.New(t.TempDir(), rdfile.Limits{}), rdfile.RelPath(h.Device, h.Seq)
	if _, err := dir.Build(rel, h, &buf); err != nil {
		t.Fatal(err)
	}
	f, err := dir.Open(rel)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func stagingFiles(t *testing.T, im *Importer) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(im.State.Path, stagePrefix+"*"))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func describe(c *changeset.Change) string {
	rec := c.New
	if c.Op == changeset.OpDelete {
		rec = c.Old
	}
	return c.Table.Name + ":" + c.Key()[0].String() + ":" + c.Op.String() + ":" + rec[1].String()
}

// Staged changes come back grouped by table and in key order, the changes
// to one key and the file-order tables' changes in file order, excluded
// tables left out; every window size gives a valid order, and the staging
// files are gone afterwards.
func TestStagedChangesInKeyOrder(t *testing.T) {
	im, ct := orderFixture(t)
	ins, upd, del := changeset.OpInsert, changeset.OpUpdate, changeset.OpDelete
	in := []orderChange{
		{"a", text("k5"), 1, ins},
		{"c", changeset.Value{Kind: changeset.KindInteger, Int: 9}, 1, ins},
		{"a", text("k1"), 1, ins},
		{"b", text("zz"), 1, ins},
		{"c", changeset.Value{Kind: changeset.KindInteger, Int: -3}, 1, ins},
		{"a", text("k3"), 1, ins},
		{"a", text("k1"), 2, upd},
		{"b", text("aa"), 1, ins},
		{"a", text("k2-with-a-prefix-longer-than-16"), 1, ins},
		{"a", text("k2-with-a-prefix-longer-than-16"), 1, del},
		{"a", text("k1"), 3, upd},
	}
	for _, window := range []int{0, 1, 2, 3, 100} {
		im.orderWindow = window
		f := writeOrderFile(t, im, ct, in, -1)
		s, reason := im.stage(f, map[string]int{"c": 0}, map[string]bool{"b": true})
		if reason != "" || s == nil {
			t.Fatalf("window %d: staged=%v, reason %q", window, s != nil, reason)
		}
		if len(stagingFiles(t, im)) != 2 {
			t.Fatalf("window %d: staging files %v, want payload and index", window, stagingFiles(t, im))
		}
		var got []string
		for {
			c, err := s.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatalf("window %d: %v", window, err)
			}
			got = append(got, describe(c))
		}
		s.Close()
		if left := stagingFiles(t, im); len(left) > 0 {
			t.Fatalf("window %d: staging files left: %v", window, left)
		}
		if window == 0 || window == 100 {
			want := []string{"c:9:INSERT:1", "c:-3:INSERT:1",
				"a:'k1':INSERT:1", "a:'k1':UPDATE:2", "a:'k1':UPDATE:3",
				"a:'k2-with-a-prefix-longer-than-16':INSERT:1", "a:'k2-with-a-prefix-longer-than-16':DELETE:1",
				"a:'k3':INSERT:1", "a:'k5':INSERT:1"}
			if strings.Join(got, " ") != strings.Join(want, " ") {
				t.Fatalf("one window: got\n%v\nwant\n%v", got, want)
			}
			continue
		}
		// Smaller windows: same changes; per key, and for c, file order.
		if len(got) != 9 {
			t.Fatalf("window %d: %d changes, want 9: %v", window, len(got), got)
		}
		order := map[string][]string{}
		for _, g := range got {
			p := strings.SplitN(g, ":", 3)
			k := p[0] + ":" + p[1]
			if p[0] == "c" {
				k = "c"
			}
			order[k] = append(order[k], g)
		}
		for k, want := range map[string]string{
			"a:'k1'":                              "a:'k1':INSERT:1 a:'k1':UPDATE:2 a:'k1':UPDATE:3",
			"c":                                   "c:9:INSERT:1 c:-3:INSERT:1",
			"a:'k2-with-a-prefix-longer-than-16'": "a:'k2-with-a-prefix-longer-than-16':INSERT:1 a:'k2-with-a-prefix-longer-than-16':DELETE:1",
		} {
			if g := strings.Join(order[k], " "); g != want {
				t.Fatalf("window %d: %s in order %s, want %s", window, k, g, want)
			}
		}
	}
}

// A file whose payload disagrees with its header is refused by staging
// as it was by validation, and leaves no staging file behind.
func TestStagingRefusesAndCleansUp(t *testing.T) {
	im, ct := orderFixture(t)
	in := []orderChange{{"a", text("k1"), 1, changeset.OpInsert}, {"a", text("k2"), 1, changeset.OpInsert}}
	f := writeOrderFile(t, im, ct, in, 3)
	s, reason := im.stage(f, nil, nil)
	if s != nil || !strings.Contains(reason, "holds 2 changes, its header says 3") {
		t.Fatalf("staged=%v reason %q, want a refusal naming the count", s != nil, reason)
	}
	if left := stagingFiles(t, im); len(left) > 0 {
		t.Fatalf("staging files left after a refusal: %v", left)
	}
	// More changes than announced: refused as soon as they exceed it.
	f = writeOrderFile(t, im, ct, in, 1)
	if s, reason = im.stage(f, nil, nil); s != nil || !strings.Contains(reason, "holds more changes than the 1 its header says") {
		t.Fatalf("staged=%v reason %q, want a refusal naming the count", s != nil, reason)
	}
	if left := stagingFiles(t, im); len(left) > 0 {
		t.Fatalf("staging files left after a refusal: %v", left)
	}
	// A staging file left by a dead process is removed by the next staging.
	stale := filepath.Join(im.State.Path, stagePrefix+"payload-dead")
	if err := os.WriteFile(stale, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	f = writeOrderFile(t, im, ct, in, -1)
	s, reason = im.stage(f, nil, nil)
	if s == nil || reason != "" {
		t.Fatalf("staged=%v reason %q", s != nil, reason)
	}
	defer s.Close()
	if _, err := os.Stat(stale); !os.IsNotExist(err) {
		t.Fatalf("stale staging file %s still there (%v)", stale, err)
	}
}
