package folder_test

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/rowdrop/rowdrop/internal/ack"
	"github.com/rowdrop/rowdrop/internal/folder"
	"github.com/rowdrop/rowdrop/internal/fsx"
	"github.com/rowdrop/rowdrop/internal/rdfile"
)

const (
	devA = "aaaaaaaaaaaaaaaa"
	devB = "bbbbbbbbbbbbbbbb"
)

func write(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// build writes a real rowdrop file as rel in dir.
func build(t *testing.T, dir, rel string, h rdfile.Header) {
	t.Helper()
	if _, err := folder.New(dir, rdfile.Limits{}).Build(rel, h, strings.NewReader(strings.Repeat("x", 100))); err != nil {
		t.Fatal(err)
	}
}

func names(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		out = append(out, e.Name())
	}
	return out
}

// Acknowledgements and snapshots live in device directories next to the
// changesets: the scan must neither report them as unknown nor hand them
// out as changesets.
func TestScanKnowsAckAndSnapshots(t *testing.T) {
	dir := t.TempDir()
	for _, n := range []string{rdfile.FileName(1), rdfile.AckName, rdfile.SnapshotName(1), "notes.txt"} {
		write(t, filepath.Join(dir, devA, n), "x")
	}
	s, err := folder.New(dir, rdfile.Limits{}).Scan()
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Unknown) != 1 || s.Unknown[0] != devA+"/notes.txt" {
		t.Errorf("unknown: %v, want only %s/notes.txt", s.Unknown, devA)
	}
	if l := s.Files[devA]; len(l) != 1 || l[0].Seq != 1 {
		t.Errorf("changesets: %+v", l)
	}
	if l := s.Snapshots; len(l) != 1 || l[0].Rel != devA+"/"+rdfile.SnapshotName(1) || l[0].Device != devA || l[0].Seq != 1 {
		t.Errorf("snapshots: %+v", l)
	}
	if d := s.Dirs[devA]; d == nil || !d.Ack || d.Bytes != 4 {
		t.Errorf("device directory: %+v", d)
	}
}

// Junk anywhere in the folder is skipped or reported, never handed out:
// top-level files, directories that are not device ids, artefacts and
// temporary files, conflict copies, symbolic links and directories under
// rowdrop names.
func TestScanSortsJunk(t *testing.T) {
	dir := t.TempDir()
	outside := filepath.Join(t.TempDir(), "target.rdc")
	write(t, outside, "outside")
	for _, rel := range []string{
		"README.txt", ".stfolder/x", "ABCDEFGHIJKLMNOP/" + rdfile.FileName(1), "short/" + rdfile.FileName(1),
		devA + "/.stignore", devA + "/.DS_Store", devA + "/desktop.ini", devA + "/Thumbs.db",
		devA + "/~syncthing~" + rdfile.FileName(4) + ".tmp", devA + "/.syncthing." + rdfile.FileName(4) + ".tmp",
		devA + "/" + fsx.TempPrefix + "0123456789ab",
		devA + "/" + rdfile.FileName(10), devA + "/" + rdfile.FileName(2), devA + "/" + rdfile.FileName(1),
		devA + "/0000000003.sync-conflict-20261126-101500-ABCDEFG.rdc",
		devA + "/0000000003 (Ann's conflicted copy 2026-11-26).rdc",
		devA + "/0000000005.RDC", devA + "/" + rdfile.FileName(5) + ".part",
		devB + "/" + rdfile.SnapshotName(2), devB + "/" + rdfile.SnapshotName(1),
	} {
		write(t, filepath.Join(dir, filepath.FromSlash(rel)), "12345")
	}
	os.MkdirAll(filepath.Join(dir, "cccccccccccccccc"), 0o755) // a device with nothing yet
	os.Symlink(outside, filepath.Join(dir, devA, rdfile.FileName(6)))
	os.Mkdir(filepath.Join(dir, devA, rdfile.FileName(7)), 0o755)
	os.Symlink(outside, filepath.Join(dir, devB, rdfile.SnapshotName(3)))
	os.Symlink(outside, filepath.Join(dir, devB, rdfile.AckName))
	os.Symlink(filepath.Join(dir, devA), filepath.Join(dir, "dddddddddddddddd")) // a device directory that is a link

	s, err := folder.New(dir, rdfile.Limits{}).Scan()
	if err != nil {
		t.Fatal(err)
	}
	var seqs []uint64
	for _, e := range s.Files[devA] {
		seqs = append(seqs, e.Seq)
		if e.Device != devA || e.Rel != devA+"/"+rdfile.FileName(e.Seq) || e.Bytes != 5 {
			t.Errorf("entry %+v", e)
		}
	}
	if !slices.Equal(seqs, []uint64{1, 2, 10}) {
		t.Errorf("changesets of A: %v, want 1 2 10 in order", seqs)
	}
	if len(s.Files) != 1 {
		t.Errorf("devices with changesets: %v", s.Files)
	}
	if got := []string{s.Snapshots[0].Rel, s.Snapshots[1].Rel}; len(s.Snapshots) != 2 || got[0] != devB+"/"+rdfile.SnapshotName(1) || got[1] != devB+"/"+rdfile.SnapshotName(2) {
		t.Errorf("snapshots: %+v", s.Snapshots)
	}
	if len(s.Conflicts) != 2 {
		t.Errorf("conflict copies: %v", s.Conflicts)
	}
	wantUnknown := []string{devA + "/0000000005.RDC", devA + "/" + rdfile.FileName(5) + ".part",
		devA + "/" + rdfile.FileName(6) + " (not a regular file)", devA + "/" + rdfile.FileName(7) + " (not a regular file)"}
	if !slices.Equal(slices.Sorted(slices.Values(s.Unknown)), wantUnknown) {
		t.Errorf("unknown: %q, want %q", s.Unknown, wantUnknown)
	}
	if len(s.Dirs) != 3 || s.Dirs["cccccccccccccccc"] == nil || s.Dirs[devB].Ack {
		t.Errorf("device directories: %v (a symlinked ack or directory does not count)", s.Dirs)
	}
	// Every regular file counts towards the size, artefacts included.
	if d := s.Dirs[devA]; d.Bytes != 5*14 {
		t.Errorf("bytes of A: %d", d.Bytes)
	}
	if _, err := folder.New(filepath.Join(dir, "missing"), rdfile.Limits{}).Scan(); !errors.Is(err, os.ErrNotExist) || !strings.Contains(err.Error(), "is it mounted") {
		t.Errorf("missing folder: %v", err)
	}
}

// Open reads only rowdrop names, never through a link, and applies the
// folder's limits.
func TestOpen(t *testing.T) {
	dir := t.TempDir()
	rel := devA + "/" + rdfile.FileName(1)
	build(t, dir, rel, rdfile.Header{Device: devA, Install: "i", Seq: 1, HLC: 1 << 16, CreatedMS: 1})
	if _, err := folder.New(dir, rdfile.Limits{MaxRaw: 10}).Open(rel); !errors.Is(err, rdfile.ErrInvalid) || !strings.Contains(err.Error(), "max_changeset") {
		t.Errorf("the folder's limit (10 bytes) was not applied: %v", err)
	}
	f := folder.New(dir, rdfile.Limits{})
	fh, err := f.Open(rel)
	if err != nil {
		t.Fatal(err)
	}
	if fh.Header.Seq != 1 || fh.Path != f.Path(rel) {
		t.Fatalf("opened %+v", fh)
	}
	write(t, filepath.Join(dir, devA, "notes.txt"), "x")
	for _, bad := range []string{"", devA + "/notes.txt", devA + "/" + rdfile.AckName, "../" + rel, devA + "/../" + rel, "/" + rel, devA, devA + "/x/" + rdfile.FileName(1)} {
		if _, err := f.Open(bad); !errors.Is(err, rdfile.ErrInvalid) {
			t.Errorf("Open(%q) = %v, want a refusal", bad, err)
		}
	}
	link := devB + "/" + rdfile.FileName(1)
	os.MkdirAll(filepath.Join(dir, devB), 0o755)
	os.Symlink(f.Path(rel), f.Path(link))
	if _, err := f.Open(link); !errors.Is(err, rdfile.ErrInvalid) {
		t.Errorf("symlink opened: %v", err)
	}
	if _, err := f.Open(devB + "/" + rdfile.FileName(2)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
	g, r := folder.At(f.Path(rel))
	if g.Dir() != dir || r != rel {
		t.Errorf("At: %s %s", g.Dir(), r)
	}
}

// failing is a reader that breaks after some bytes: a publication that
// fails half-way.
type failing struct{ n int }

func (r *failing) Read(p []byte) (int, error) {
	if r.n <= 0 {
		return 0, errors.New("disk on fire")
	}
	n := min(len(p), r.n)
	for i := range p[:n] {
		p[i] = 'x'
	}
	r.n -= n
	return n, nil
}

// A file appears whole under its final name or not at all, and an
// existing file is never replaced.
func TestPublishIsAtomicAndNeverReplaces(t *testing.T) {
	dir := t.TempDir()
	f := folder.New(dir, rdfile.Limits{})
	src := filepath.Join(t.TempDir(), "out.rdc")
	write(t, src, "first")
	rel := devA + "/" + rdfile.FileName(1)
	if err := f.Publish(rel, src); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(f.Path(rel)); string(got) != "first" {
		t.Fatalf("published %q", got)
	}
	if err := f.Publish(rel, src); err != nil {
		t.Fatalf("retry of an identical publication: %v", err)
	}
	other := filepath.Join(t.TempDir(), "other.rdc")
	write(t, other, "second")
	if err := f.Publish(rel, other); !errors.Is(err, os.ErrExist) {
		t.Fatalf("replacing publication: %v", err)
	}
	if got, _ := os.ReadFile(f.Path(rel)); string(got) != "first" {
		t.Fatalf("existing file replaced: %q", got)
	}
	// A copy that fails half-way (the source is a directory) leaves
	// neither the final name nor a temporary file.
	rel2 := devA + "/" + rdfile.FileName(2)
	if err := f.Publish(rel2, t.TempDir()); err == nil {
		t.Fatal("publishing a directory succeeded")
	}
	if _, err := os.Lstat(f.Path(rel2)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("failed publication left %s: %v", rel2, err)
	}
	// So does a build whose payload breaks off.
	rel3 := devA + "/" + rdfile.SnapshotName(1)
	if _, err := f.Build(rel3, rdfile.Header{Kind: rdfile.KindSnapshot, Device: devA, Install: "i", Seq: 1, HLC: 1, CreatedMS: 1}, &failing{n: 1 << 20}); err == nil {
		t.Fatal("build from a failing reader succeeded")
	}
	if got := names(t, filepath.Join(dir, devA)); !slices.Equal(got, []string{rdfile.FileName(1)}) {
		t.Fatalf("after failed publications the device directory holds %v", got)
	}
	build(t, dir, rel3, rdfile.Header{Kind: rdfile.KindSnapshot, Device: devA, Install: "i", Seq: 1, HLC: 1, CreatedMS: 1})
	if _, err := f.Build(rel3, rdfile.Header{Kind: rdfile.KindSnapshot, Device: devA, Install: "i", Seq: 1, HLC: 2, CreatedMS: 1}, strings.NewReader("y")); !errors.Is(err, os.ErrExist) {
		t.Fatalf("build over an existing snapshot: %v", err)
	}
	for _, bad := range []string{devA + "/" + rdfile.AckName, devA + "/notes.txt", "../" + rel} {
		if err := f.Publish(bad, src); err == nil {
			t.Errorf("Publish(%q) accepted", bad)
		}
		if _, err := f.Build(bad, rdfile.Header{}, strings.NewReader("")); err == nil {
			t.Errorf("Build(%q) accepted", bad)
		}
	}
}

func TestRemoveTempsAndNames(t *testing.T) {
	dir := t.TempDir()
	f := folder.New(dir, rdfile.Limits{})
	for _, n := range []string{fsx.TempPrefix + "0123456789ab", fsx.TempPrefix + "payload-1", ".syncthing.x.tmp", rdfile.FileName(1)} {
		write(t, filepath.Join(dir, devA, n), "x")
	}
	f.RemoveTemps(devA)
	got, err := f.Names(devA)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, []string{".syncthing.x.tmp", rdfile.FileName(1)}) {
		t.Fatalf("after RemoveTemps: %v (only rowdrop's own temporary files go)", got)
	}
	if err := f.Available(); err != nil {
		t.Fatal(err)
	}
	if err := folder.New(filepath.Join(dir, devA, rdfile.FileName(1)), rdfile.Limits{}).Available(); err == nil {
		t.Fatal("a file is not an available folder")
	}
}

func sampleAck() *ack.Ack {
	return &ack.Ack{Device: devA, Install: "1800000000000-xyz", DeviceName: "laptop", WrittenMS: 1_800_000_000_000,
		Applied: map[string]uint64{devA: 7, devB: 3}, Forgotten: []string{}}
}

func TestAckRoundTrip(t *testing.T) {
	dir := t.TempDir()
	f := folder.New(dir, rdfile.Limits{})
	a := sampleAck()
	if err := f.WriteAck(a); err != nil {
		t.Fatal(err)
	}
	got, err := f.ReadAck(devA)
	if err != nil {
		t.Fatal(err)
	}
	if !ack.Same(a, got) || got.WrittenMS != a.WrittenMS {
		t.Fatalf("read back %+v, wrote %+v", got, a)
	}
	// Replaced in place, atomically: no temp file stays behind.
	a.Applied[devB] = 4
	if err := f.WriteAck(a); err != nil {
		t.Fatal(err)
	}
	if got := names(t, filepath.Join(dir, devA)); len(got) != 1 || got[0] != "ack.json" {
		t.Fatalf("device directory holds %v", got)
	}
	if got, _ := f.ReadAck(devA); got.Applied[devB] != 4 {
		t.Fatalf("not replaced: %+v", got)
	}
	if _, err := f.ReadAck(devB); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("missing ack: %v", err)
	}
}

func TestReadAckRefusesMisplacedAndOddFiles(t *testing.T) {
	dir := t.TempDir()
	f := folder.New(dir, rdfile.Limits{})
	pathA, pathB := f.Path(folder.AckRel(devA)), f.Path(folder.AckRel(devB))
	// B's directory holding A's ack: a copy, not B's word.
	if err := f.WriteAck(sampleAck()); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(pathA)
	write(t, pathB, string(data))
	if _, err := f.ReadAck(devB); !errors.Is(err, ack.ErrInvalid) || !strings.Contains(err.Error(), pathB) {
		t.Fatalf("misplaced ack: %v", err)
	}
	// A directory or a symlink under the name is not read.
	os.Remove(pathB)
	os.Mkdir(pathB, 0o755)
	if _, err := f.ReadAck(devB); !errors.Is(err, ack.ErrInvalid) {
		t.Fatalf("directory as ack: %v", err)
	}
	os.Remove(pathB)
	os.Symlink(pathA, pathB)
	if _, err := f.ReadAck(devB); !errors.Is(err, ack.ErrInvalid) {
		t.Fatalf("symlink as ack: %v", err)
	}
	// An oversized one is refused before it is read.
	os.Remove(pathB)
	write(t, pathB, strings.Repeat(" ", ack.MaxSize+1))
	if _, err := f.ReadAck(devB); !errors.Is(err, ack.ErrInvalid) {
		t.Fatalf("oversized ack: %v", err)
	}
}
