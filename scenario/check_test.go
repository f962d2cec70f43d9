package scenario_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rowdrop/rowdrop"
	"github.com/rowdrop/rowdrop/internal/changeset"
	"github.com/rowdrop/rowdrop/internal/check"
	"github.com/rowdrop/rowdrop/internal/folder"
	"github.com/rowdrop/rowdrop/internal/rdfile"
	"github.com/rowdrop/rowdrop/scenario"
)

// checkedFolder is a shared folder made by real syncs of two devices:
// changesets of both, a snapshot, both acks.
type checkedFolder struct {
	dir    string
	a, b   string // device ids
	aLast  uint64 // a's newest changeset
	snap   string // a's snapshot, relative to the folder
	bFirst string // b's first changeset, relative
}

func makeCheckedFolder(t *testing.T) checkedFolder {
	t.Helper()
	dir := t.TempDir()
	a := scenario.NewSharedDevice(t, dir, "a", scenario.SharedOptions{Journal: "wal"})
	b := scenario.NewSharedDevice(t, dir, "b", scenario.SharedOptions{})
	for i := range 3 {
		a.Exec("INSERT INTO notes(id, title, n) VALUES(?, ?, ?)", fmt.Sprintf("a%d", i), "from a", i)
		a.Sync()
		b.Exec("INSERT INTO notes(id, title, n) VALUES(?, ?, ?)", fmt.Sprintf("b%d", i), "from b", i)
		b.Exec("INSERT INTO tags(note, tag) VALUES(?, 'x')", fmt.Sprintf("b%d", i))
		b.Sync()
	}
	if _, err := a.S.Snapshot(context.Background()); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		a.Exec("UPDATE notes SET title = ? WHERE id = 'b0'", fmt.Sprintf("after the snapshot %d", i))
		a.Sync()
	}
	b.Sync()
	a.Sync()
	cf := checkedFolder{dir: dir}
	scan, err := folder.New(dir, rdfile.Limits{}).Scan()
	if err != nil {
		t.Fatal(err)
	}
	for id, d := range scan.Dirs {
		if len(d.Snapshots) > 0 {
			cf.a, cf.snap = id, d.Snapshots[0].Rel
			cf.aLast = d.Changesets[len(d.Changesets)-1].Seq
		} else {
			cf.b, cf.bFirst = id, d.Changesets[0].Rel
		}
		if !d.Ack {
			t.Fatalf("device %s has no ack.json", id)
		}
	}
	if cf.a == "" || cf.b == "" || cf.aLast < 3 {
		t.Fatalf("unexpected folder: %v", scenario.RelFiles(t, dir))
	}
	return cf
}

// runCheck checks dir and fails the test if the folder changed or
// anything was written to the temporary directory.
func runCheck(t *testing.T, dir string, readData bool) *check.Report {
	t.Helper()
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	before := tree(t, dir)
	r, err := check.Run(context.Background(), folder.New(dir, rdfile.Limits{}), check.Options{ReadData: readData})
	if err != nil {
		t.Fatalf("check: %v", err)
	}
	if after := tree(t, dir); after != before {
		t.Fatalf("check changed the folder:\nbefore:\n%s\nafter:\n%s", before, after)
	}
	if ents, _ := os.ReadDir(tmp); len(ents) > 0 {
		t.Fatalf("check wrote %d files into the temporary directory", len(ents))
	}
	return r
}

// tree lists every path under dir with its size, mode and modification time.
func tree(t *testing.T, dir string) string {
	t.Helper()
	var b strings.Builder
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		st, err := os.Lstat(p)
		if err != nil {
			return err
		}
		fmt.Fprintf(&b, "%s %d %v %d\n", p, st.Size(), st.Mode(), st.ModTime().UnixNano())
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// TestCheckCleanFolder: a folder made by real syncs passes, with and
// without --read-data, and its devices are described.
func TestCheckCleanFolder(t *testing.T) {
	cf := makeCheckedFolder(t)
	for _, readData := range []bool{false, true} {
		r := runCheck(t, cf.dir, readData)
		if !r.OK || len(r.Problems) > 0 {
			t.Fatalf("read-data %v: a clean folder has problems: %+v", readData, r.Problems)
		}
		if r.Snapshots != 1 || r.Acks != 2 || r.Changesets < 6 || len(r.Devices) != 2 {
			t.Fatalf("read-data %v: counted %+v", readData, r)
		}
		if !strings.HasPrefix(r.Summary, "no problems: 2 devices") {
			t.Fatalf("summary: %s", r.Summary)
		}
		for _, d := range r.Devices {
			if d.Name != "a" && d.Name != "b" || !d.Ack || d.First != 1 {
				t.Fatalf("device %+v", d)
			}
		}
	}
}

// TestCheckEveryDamage: every kind of damage the reliability tests
// create, each on its own copy of a real folder, is reported as one
// problem naming the file, of the right kind, with something to do.
func TestCheckEveryDamage(t *testing.T) {
	cf := makeCheckedFolder(t)
	aFile := func(seq uint64) string { return rdfile.RelPath(cf.a, seq) }
	flip := func(rel string, at func(size int) int) func(t *testing.T, dir string) {
		return func(t *testing.T, dir string) {
			p := filepath.Join(dir, rel)
			data := readFile(t, p)
			data[at(len(data))] ^= 0x40
			writeFile(t, p, data)
		}
	}
	cases := []struct {
		name     string
		damage   func(t *testing.T, dir string)
		file     string
		kind     check.Kind
		what     string
		readData bool // only --read-data finds it
	}{
		{name: "truncated changeset", file: aFile(2), kind: check.Incomplete, what: "bytes",
			damage: func(t *testing.T, dir string) {
				p := filepath.Join(dir, aFile(2))
				data := readFile(t, p)
				writeFile(t, p, data[:len(data)-7])
			}},
		{name: "payload bit flip", file: aFile(2), kind: check.Incomplete, what: "payload checksum",
			damage: flip(aFile(2), func(n int) int { return n - 3 })},
		{name: "header bit flip", file: aFile(1), kind: check.Incomplete, what: "header checksum",
			damage: flip(aFile(1), func(int) int { return 30 })},
		{name: "bytes appended", file: aFile(1), kind: check.Damaged, what: "longer than",
			damage: func(t *testing.T, dir string) {
				p := filepath.Join(dir, aFile(1))
				writeFile(t, p, append(readFile(t, p), "tail"...))
			}},
		{name: "foreign file under a changeset name", file: aFile(2), kind: check.Foreign, what: "not a rowdrop file",
			damage: func(t *testing.T, dir string) {
				writeFile(t, filepath.Join(dir, aFile(2)), []byte("this is not a rowdrop file at all"))
			}},
		{name: "newer format", file: aFile(1), kind: check.TooNew, what: "format version",
			damage: func(t *testing.T, dir string) {
				p := filepath.Join(dir, aFile(1))
				data := readFile(t, p)
				binary.BigEndian.PutUint16(data[4:6], rdfile.Version+1)
				writeFile(t, p, data)
			}},
		{name: "hostile header: another device", file: aFile(2), kind: check.Damaged, what: "header says device",
			damage: func(t *testing.T, dir string) {
				os.Remove(filepath.Join(dir, aFile(2)))
				plant(t, dir, cf.a, 2, rdfile.Header{Device: "zzzzzzzzzzzzzzzz", Tables: []rdfile.Table{notesTable()}}, []*changeset.Change{insertNote("t1", "traversal")})
			}},
		{name: "hostile header: a snapshot's kind under a changeset name", file: aFile(2), kind: check.Damaged, what: "kind",
			damage: func(t *testing.T, dir string) {
				os.Remove(filepath.Join(dir, aFile(2)))
				plant(t, dir, cf.a, 2, rdfile.Header{Kind: rdfile.KindSnapshot, Tables: []rdfile.Table{notesTable()}}, []*changeset.Change{insertNote("k1", "kind")})
			}},
		{name: "payload changes an undeclared table", file: aFile(2), kind: check.Damaged, what: "does not list", readData: true,
			damage: func(t *testing.T, dir string) {
				os.Remove(filepath.Join(dir, aFile(2)))
				plant(t, dir, cf.a, 2, rdfile.Header{Tables: []rdfile.Table{notesTable()}},
					[]*changeset.Change{insertNote("u1", "ok"), {Table: &changeset.Table{Name: "tags", PK: []byte{2, 1}}, Op: changeset.OpInsert, New: []changeset.Value{changeset.Text("n"), changeset.Text("x")}}})
			}},
		{name: "payload shape differs from header", file: aFile(2), kind: check.Damaged, what: "columns", readData: true,
			damage: func(t *testing.T, dir string) {
				os.Remove(filepath.Join(dir, aFile(2)))
				plant(t, dir, cf.a, 2, rdfile.Header{Tables: []rdfile.Table{notesTable()}},
					[]*changeset.Change{{Table: &changeset.Table{Name: "notes", PK: []byte{1, 0}}, Op: changeset.OpInsert, New: []changeset.Value{changeset.Text("s"), changeset.Text("x")}}})
			}},
		{name: "payload is not a changeset", file: aFile(2), kind: check.Damaged, what: "does not decode", readData: true,
			damage: func(t *testing.T, dir string) {
				os.Remove(filepath.Join(dir, aFile(2)))
				h := rdfile.Header{Device: cf.a, Seq: 2, HLC: 1 << 16, Changes: 1, Tables: []rdfile.Table{notesTable()}}
				if _, err := rdfile.Build(filepath.Join(dir, aFile(2)), h, strings.NewReader("\x54garbage that is no changeset")); err != nil {
					t.Fatal(err)
				}
			}},
		{name: "gap", file: aFile(cf.aLast - 1), kind: check.Missing, what: fmt.Sprintf("changeset %d of device", cf.aLast-1),
			damage: func(t *testing.T, dir string) { remove(t, dir, aFile(cf.aLast-1)) }},
		{name: "gap among files a snapshot includes", file: aFile(2), kind: check.Missing, what: "changeset 2 of device",
			damage: func(t *testing.T, dir string) { remove(t, dir, aFile(2)) }},
		{name: "files a snapshot includes collected", file: "", kind: "",
			damage: func(t *testing.T, dir string) {
				remove(t, dir, aFile(1))
				remove(t, dir, aFile(2))
			}},
		{name: "missing newest file", file: aFile(cf.aLast), kind: check.Missing, what: "/ack.json)",
			damage: func(t *testing.T, dir string) { remove(t, dir, aFile(cf.aLast)) }},
		{name: "first file missing, no snapshot includes it", file: cf.bFirst, kind: check.Missing, what: "no sound snapshot",
			damage: func(t *testing.T, dir string) {
				remove(t, dir, cf.bFirst)
				remove(t, dir, cf.snap)
			}},
		{name: "a device's directory lost", file: cf.bFirst, kind: check.Missing, what: "changesets 1 to",
			damage: func(t *testing.T, dir string) {
				if err := os.RemoveAll(filepath.Join(dir, cf.b)); err != nil {
					t.Fatal(err)
				}
				remove(t, dir, cf.snap)
			}},
		{name: "identical conflict copy", file: cf.a + "/0000000001.sync-conflict-20261126-101500-ABCDEFG.rdc", kind: check.ConflictCopy, what: "identical",
			damage: func(t *testing.T, dir string) {
				scenario.CopyFile(t, filepath.Join(dir, aFile(1)), filepath.Join(dir, cf.a, "0000000001.sync-conflict-20261126-101500-ABCDEFG.rdc"))
			}},
		{name: "conflict copy with other content", file: cf.a + "/0000000001 (Ann's conflicted copy 2026-11-26).rdc", kind: check.ConflictCopy, what: "other content",
			damage: func(t *testing.T, dir string) {
				scenario.CopyFile(t, filepath.Join(dir, aFile(2)), filepath.Join(dir, cf.a, "0000000001 (Ann's conflicted copy 2026-11-26).rdc"))
			}},
		{name: "conflict copy of an ack", file: cf.b + "/ack.sync-conflict-20261126-101500-ABCDEFG.json", kind: check.ConflictCopy, what: "ack.json",
			damage: func(t *testing.T, dir string) {
				scenario.CopyFile(t, filepath.Join(dir, cf.b, "ack.json"), filepath.Join(dir, cf.b, "ack.sync-conflict-20261126-101500-ABCDEFG.json"))
			}},
		{name: "bad ack", file: cf.b + "/ack.json", kind: check.Damaged, what: "ack.json",
			damage: func(t *testing.T, dir string) {
				writeFile(t, filepath.Join(dir, cf.b, "ack.json"), []byte(`{"device":"`+cf.b+`","applied":{}}`))
			}},
		{name: "ack in the wrong directory", file: cf.b + "/ack.json", kind: check.Damaged, what: "lies in the directory",
			damage: func(t *testing.T, dir string) {
				scenario.CopyFile(t, filepath.Join(dir, cf.a, "ack.json"), filepath.Join(dir, cf.b, "ack.json"))
			}},
		{name: "snapshot bit flip", file: cf.snap, kind: check.Incomplete, what: "checksum",
			damage: flip(cf.snap, func(n int) int { return n - 10 })},
		{name: "snapshot truncated", file: cf.snap, kind: check.Incomplete, what: "bytes",
			damage: func(t *testing.T, dir string) {
				p := filepath.Join(dir, cf.snap)
				data := readFile(t, p)
				writeFile(t, p, data[:len(data)/2])
			}},
		{name: "snapshot payload not SQLite", file: cf.snap, kind: check.Damaged, what: "not a SQLite database",
			damage: func(t *testing.T, dir string) {
				rebuildSnapshot(t, dir, cf.snap, func([]byte) []byte { return []byte(strings.Repeat("garbage ", 1000)) })
			}},
		{name: "snapshot database corrupt", file: cf.snap, kind: check.Damaged, what: "integrity_check", readData: true,
			damage: func(t *testing.T, dir string) {
				rebuildSnapshot(t, dir, cf.snap, func(db []byte) []byte {
					// Scramble every page after the first: the header still
					// says SQLite, the b-trees are garbage.
					rng := rand.New(rand.NewPCG(1, 2))
					for i := 4096; i < len(db); i++ {
						db[i] = byte(rng.IntN(256))
					}
					return db
				})
			}},
		{name: "snapshot header names another number", file: cf.snap, kind: check.Damaged, what: "header says",
			damage: func(t *testing.T, dir string) {
				patchHeader(t, filepath.Join(dir, cf.snap), func(h *rdfile.Header) { h.Seq = 7 })
			}},
		{name: "unknown name", file: cf.a + "/notes.txt", kind: check.Foreign, what: "never writes",
			damage: func(t *testing.T, dir string) { writeFile(t, filepath.Join(dir, cf.a, "notes.txt"), []byte("hello")) }},
		{name: "symlink under a changeset name", file: aFile(cf.aLast + 1), kind: check.Foreign, what: "not a regular file",
			damage: func(t *testing.T, dir string) {
				if err := os.Symlink(filepath.Join(dir, aFile(1)), filepath.Join(dir, aFile(cf.aLast+1))); err != nil {
					t.Fatal(err)
				}
			}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			scenario.CopyDir(t, cf.dir, dir)
			tc.damage(t, dir)
			for _, readData := range []bool{false, true} {
				r := runCheck(t, dir, readData)
				if tc.readData && !readData || tc.kind == "" {
					for _, p := range r.Problems {
						// A changeset rebuilt with other content is
						// another file under its name: the hash chain
						// (its successor's prev) tells without reading
						// the payload.
						if tc.kind != "" && p.File == tc.file && p.Kind == check.Replaced && strings.Contains(p.What, "predecessor") {
							continue
						}
						t.Fatalf("without --read-data: %+v", r.Problems)
					}
					continue
				}
				var found *check.Problem
				for i, p := range r.Problems {
					if p.File == tc.file {
						if found == nil || p.Kind == tc.kind { // a rebuilt changeset is also replaced (see above)
							found = &r.Problems[i]
						}
					} else if tc.name != "symlink under a changeset name" {
						t.Errorf("read-data %v: another problem: %s", readData, p)
					}
				}
				if found == nil {
					t.Fatalf("read-data %v: nothing reported for %s: %+v", readData, tc.file, r.Problems)
				}
				t.Logf("%s", found)
				if found.Kind != tc.kind || !strings.Contains(found.What, tc.what) || found.Fix == "" {
					t.Fatalf("read-data %v: got %s, want kind %s saying %q", readData, found, tc.kind, tc.what)
				}
				if r.OK || !strings.HasPrefix(r.Summary, fmt.Sprintf("%d problem", len(r.Problems))) {
					t.Fatalf("summary %q with %d problems", r.Summary, len(r.Problems))
				}
			}
		})
	}
}

// TestCheckHostileFilesNeverCrash: every truncation of a real changeset
// and of a snapshot, and random bit flips and overwrites of either, give
// a report (never a panic or an error), and every damaged file is named.
func TestCheckHostileFilesNeverCrash(t *testing.T) {
	cf := makeCheckedFolder(t)
	rng := rand.New(rand.NewPCG(uint64(seedOf(t)), 17))
	for _, rel := range []string{rdfile.RelPath(cf.a, 2), cf.snap} {
		orig := readFile(t, filepath.Join(cf.dir, rel))
		var variants [][]byte
		for n := 0; n < len(orig); n += 1 + len(orig)/97 {
			variants = append(variants, orig[:n])
		}
		for range 60 {
			v := bytes.Clone(orig)
			for range 1 + rng.IntN(4) {
				v[rng.IntN(len(v))] ^= byte(1 + rng.IntN(255))
			}
			variants = append(variants, v)
		}
		dir := t.TempDir()
		scenario.CopyDir(t, cf.dir, dir)
		for i, v := range variants {
			writeFile(t, filepath.Join(dir, rel), v)
			r, err := check.Run(context.Background(), folder.New(dir, rdfile.Limits{}), check.Options{ReadData: i%2 == 0})
			if err != nil {
				t.Fatalf("%s variant %d: %v", rel, i, err)
			}
			if bytes.Equal(v, orig) {
				continue
			}
			named := false
			for _, p := range r.Problems {
				named = named || p.File == rel
			}
			if !named {
				t.Fatalf("%s variant %d (%d bytes) not reported: %+v", rel, i, len(v), r.Problems)
			}
		}
	}
}

// TestCheckHostilePlantedFiles: the files the hostile-input test
// plants (traversal, sqlite_master, undeclared table, quoted identifiers,
// decompression bomb, symlink, garbage, truncated) are each reported.
func TestCheckHostilePlantedFiles(t *testing.T) {
	dir := t.TempDir()
	const (
		devTraversal = "aaaaaaaaaaaaaaaa"
		devUndecl    = "cccccccccccccccc"
		devBomb      = "dddddddddddddddd"
		devSymlink   = "eeeeeeeeeeeeeeee"
		devGood      = "ffffffffffffffff"
		devGarbage   = "hhhhhhhhhhhhhhhh"
		devTrunc     = "iiiiiiiiiiiiiiii"
	)
	plant(t, dir, devTraversal, 1, rdfile.Header{Device: "zzzzzzzzzzzzzzzz", Tables: []rdfile.Table{notesTable()}}, []*changeset.Change{insertNote("t1", "traversal")})
	plant(t, dir, devUndecl, 1, rdfile.Header{Tables: []rdfile.Table{notesTable()}},
		[]*changeset.Change{insertNote("u1", "ok"), {Table: &changeset.Table{Name: "tags", PK: []byte{2, 1}}, Op: changeset.OpInsert, New: []changeset.Value{changeset.Text("n"), changeset.Text("x")}}})
	bomb := plant(t, dir, devBomb, 1, rdfile.Header{Tables: []rdfile.Table{notesTable()}}, []*changeset.Change{insertNote("b1", strings.Repeat("x", 8<<20))})
	// The bomb's header lies about its size: the reader stops at the
	// announced length.
	patchHeader(t, bomb, func(h *rdfile.Header) { h.RawLen = 1 << 10 })
	outside := plant(t, t.TempDir(), devSymlink, 1, rdfile.Header{Tables: []rdfile.Table{notesTable()}}, []*changeset.Change{insertNote("s1", "via symlink")})
	os.MkdirAll(filepath.Join(dir, devSymlink), 0o755)
	if err := os.Symlink(outside, filepath.Join(dir, devSymlink, rdfile.FileName(1))); err != nil {
		t.Fatal(err)
	}
	os.MkdirAll(filepath.Join(dir, devGarbage), 0o755)
	writeFile(t, filepath.Join(dir, devGarbage, rdfile.FileName(1)), []byte("this is not a rowdrop file at all"))
	tr := plant(t, dir, devTrunc, 1, rdfile.Header{Tables: []rdfile.Table{notesTable()}}, []*changeset.Change{insertNote("tr", "truncated")})
	data := readFile(t, tr)
	writeFile(t, tr, data[:len(data)-7])
	writeFile(t, filepath.Join(dir, ".syncthing.0000000001.rdc.tmp"), []byte("x"))
	writeFile(t, filepath.Join(dir, devGood+".rdc"), []byte("x"))
	plant(t, dir, devGood, 1, rdfile.Header{Tables: []rdfile.Table{notesTable()}}, []*changeset.Change{insertNote("g1", "good")})

	r := runCheck(t, dir, true)
	byDev := map[string]check.Kind{}
	for _, p := range r.Problems {
		t.Logf("%s", p)
		byDev[p.Device] = p.Kind
	}
	want := map[string]check.Kind{devTraversal: check.Damaged, devUndecl: check.Damaged, devBomb: check.Damaged,
		devSymlink: check.Foreign, devGarbage: check.Foreign, devTrunc: check.Incomplete}
	for dev, k := range want {
		if byDev[dev] != k {
			t.Errorf("device %s: got %q, want %q", dev, byDev[dev], k)
		}
	}
	if _, bad := byDev[devGood]; bad || len(byDev) != len(want) {
		t.Errorf("reported %v, want exactly %v", byDev, want)
	}
}

// TestCheckUnreadableFolder: a folder that is not there is an error, not
// a report.
func TestCheckUnreadableFolder(t *testing.T) {
	_, err := check.Run(context.Background(), folder.New(filepath.Join(t.TempDir(), "gone"), rdfile.Limits{}), check.Options{})
	if err == nil || !strings.Contains(err.Error(), "gone") {
		t.Fatalf("got %v", err)
	}
}

func readFile(t *testing.T, p string) []byte {
	t.Helper()
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func writeFile(t *testing.T, p string, data []byte) {
	t.Helper()
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

func remove(t *testing.T, dir, rel string) {
	t.Helper()
	if err := os.Remove(filepath.Join(dir, rel)); err != nil {
		t.Fatal(err)
	}
}

// rebuildSnapshot replaces the snapshot rel by one with the same header
// and the payload edit makes of its database image, with valid checksums.
func rebuildSnapshot(t *testing.T, dir, rel string, edit func([]byte) []byte) {
	t.Helper()
	p := filepath.Join(dir, rel)
	f, err := rdfile.Open(p, rdfile.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	rc, err := f.Changeset()
	if err != nil {
		t.Fatal(err)
	}
	img, err := io.ReadAll(rc)
	rc.Close()
	if err != nil {
		t.Fatal(err)
	}
	remove(t, dir, rel)
	if _, err := rdfile.Build(p, f.Header, bytes.NewReader(edit(img))); err != nil {
		t.Fatal(err)
	}
}

// patchHeader rewrites the header of the file at p as edit says, keeping
// its payload's bytes, with a valid header checksum: a hostile writer's
// file.
func patchHeader(t *testing.T, p string, edit func(*rdfile.Header)) {
	t.Helper()
	data := readFile(t, p)
	f, err := rdfile.Open(p, rdfile.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	payload := data[len(data)-int(f.Header.PayloadLen):]
	h := f.Header
	edit(&h)
	pre, err := rdfile.EncodeHeader(h)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, p, append(pre, payload...))
}

// seedOf is a per-test seed that stays fixed across runs.
func seedOf(t *testing.T) int64 {
	var s int64
	for _, c := range t.Name() {
		s = s*31 + int64(c)
	}
	return s
}

// TestCheckClonedStateDirectory: a state directory cloned to another
// machine (as in TestClonedStateDirectoryDetected) makes both
// installations publish file 2; the sync tool keeps one and makes a
// conflict copy of the other. check names the copy as two installations
// under one device id, and says what to do.
func TestCheckClonedStateDirectory(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	fa, fb := filepath.Join(root, "folder-a"), filepath.Join(root, "folder-b")
	os.MkdirAll(fa, 0o755)
	a := scenario.NewSharedDevice(t, fa, "a", scenario.SharedOptions{Journal: "wal"})
	a.Exec("INSERT INTO notes(id,title) VALUES('n1','one')")
	a.Sync()
	a.S.Close()
	cloneDir := filepath.Join(root, "clone")
	scenario.CopyDir(t, filepath.Dir(a.DB), cloneDir)
	scenario.CopyDir(t, fa, fb)
	cfg := a.Config()
	cfg.DeviceName = a.Name
	sa := a.Open(cfg)
	cloneDB := filepath.Join(cloneDir, "a.db")
	clone := scenario.SharedDevice{T: t, Name: "clone", DB: cloneDB, Folder: fb, State: filepath.Join(cloneDir, "state")}
	sb := clone.Open(clone.Config())
	scenario.ExecFile(t, a.DB, "UPDATE notes SET title='from original' WHERE id='n1'")
	scenario.ExecFile(t, cloneDB, "INSERT INTO notes(id,title) VALUES('n2','written on the clone')")
	for _, s := range []interface {
		Sync(context.Context) (rowdrop.Report, error)
	}{sa, sb} {
		if _, err := s.Sync(ctx); err != nil {
			t.Fatal(err)
		}
	}
	dev := sa.Identity().Device
	conflict := dev + "/0000000002.sync-conflict-20261126-101500-ABCDEFG.rdc"
	scenario.CopyFile(t, filepath.Join(fb, dev, rdfile.FileName(2)), filepath.Join(fa, filepath.FromSlash(conflict)))

	r := runCheck(t, fa, true)
	if len(r.Problems) != 1 {
		t.Fatalf("want the conflict copy alone, got %+v", r.Problems)
	}
	p := r.Problems[0]
	if p.File != conflict || p.Kind != check.ConflictCopy || !strings.Contains(p.What, "other content") || !strings.Contains(p.Fix, "two installations publish as device "+dev) {
		t.Fatalf("got %s", p)
	}
}
