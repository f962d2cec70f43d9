package rdfile

import (
	"path"
	"strings"
	"testing"
)

const dev = "abcdefghijklmn23" // a well-formed device id

func TestFileNames(t *testing.T) {
	for _, c := range []struct {
		seq  uint64
		name string
	}{
		{1, "0000000001.rdc"},
		{42, "0000000042.rdc"},
		{MaxSeq, "9999999999.rdc"},
	} {
		if got := FileName(c.seq); got != c.name {
			t.Errorf("FileName(%d) = %q, want %q", c.seq, got, c.name)
		}
		if got, ok := ParseSeq(c.name); !ok || got != c.seq {
			t.Errorf("ParseSeq(%q) = %d, %t", c.name, got, ok)
		}
		if got := RelPath(dev, c.seq); got != dev+"/"+c.name {
			t.Errorf("RelPath = %q", got)
		}
	}
}

func TestParseSeqRejects(t *testing.T) {
	for _, name := range []string{
		"", "0000000000.rdc", // zero is never a sequence number
		"000000001.rdc", "00000000001.rdc", // 9 and 11 digits
		"0000000001.RDC", "0000000001.rdc.tmp", "0000000001", "000000000a.rdc",
		"+000000001.rdc", "-000000001.rdc", " 000000001.rdc", "0000000001 rdc",
		"0000000001.sync-conflict-20261126-101500-ABCDEFG.rdc",
		"0000000001 (Ann's conflicted copy 2026-11-26).rdc",
		".syncthing.0000000001.rdc.tmp", "~syncthing~0000000001.rdc.tmp",
		"０００００００００１.rdc", // full-width digits
	} {
		if s, ok := ParseSeq(name); ok {
			t.Errorf("ParseSeq(%q) = %d, want rejection", name, s)
		}
	}
}

func TestValidDeviceID(t *testing.T) {
	for _, id := range []string{dev, "aaaaaaaaaaaaaaaa", "2345672345672345"} {
		if !ValidDeviceID(id) {
			t.Errorf("%q refused", id)
		}
	}
	for _, id := range []string{"", "abc", "ABCDEFGHIJKLMN23", "abcdefghijklmn2", "abcdefghijklmn234",
		"abcdefghijklmn01", "abcdefghijklmn8a", "abcdefghijklm.23", "abcdefghijklm/23", "..", "abcdefghijklmné"} {
		if ValidDeviceID(id) {
			t.Errorf("%q accepted", id)
		}
	}
}

// Names that sync tools, operating systems and rowdrop itself leave in a
// shared folder: a reader must never read them as changesets.
func TestClassify(t *testing.T) {
	for _, c := range []struct {
		rel  string
		kind NameKind
		seq  uint64
	}{
		{dev + "/0000000001.rdc", NameChangeset, 1},
		{dev + "/0000000123.rdc", NameChangeset, 123},
		// Syncthing
		{".stfolder", NameIgnored, 0},
		{".stfolder/syncthing-folder-abc.txt", NameIgnored, 0},
		{".stignore", NameIgnored, 0},
		{".stversions/" + dev + "/0000000001~20261126-101500.rdc", NameIgnored, 0},
		{dev + "/.syncthing.0000000002.rdc.tmp", NameIgnored, 0},
		{dev + "/~syncthing~0000000002.rdc.tmp", NameIgnored, 0},
		{dev + "/0000000001.sync-conflict-20261126-101500-ABCDEFG.rdc", NameConflictCopy, 0},
		{dev + "/x.sync-conflict-20261126-101500-ABCDEFG.rdc", NameConflictCopy, 0},
		// Dropbox
		{dev + "/0000000001 (Ann's conflicted copy 2026-11-26).rdc", NameConflictCopy, 0},
		{dev + "/x (Ann's conflicted copy 2026-11-26).rdc", NameConflictCopy, 0},
		{".dropbox", NameIgnored, 0},
		{".dropbox.cache/x", NameIgnored, 0},
		// macOS, Windows
		{dev + "/._0000000001.rdc", NameIgnored, 0},
		{"._" + dev, NameIgnored, 0},
		{".DS_Store", NameIgnored, 0},
		{dev + "/.DS_Store", NameIgnored, 0},
		{"desktop.ini", NameIgnored, 0},
		{dev + "/Desktop.ini", NameIgnored, 0},
		{dev + "/Thumbs.db", NameIgnored, 0},
		{dev + "/thumbs.db", NameIgnored, 0},
		// rowdrop's own temp files
		{dev + "/.rowdrop-tmp-0123456789ab", NameIgnored, 0},
		// path traversal and other malformed paths
		{"../x", NameIgnored, 0},
		{"../" + dev + "/0000000001.rdc", NameIgnored, 0},
		{dev + "/../" + dev + "/0000000001.rdc", NameIgnored, 0},
		{"..", NameIgnored, 0},
		{".", NameIgnored, 0},
		{"", NameIgnored, 0},
		{"/" + dev + "/0000000001.rdc", NameIgnored, 0},
		{dev + "//0000000001.rdc", NameIgnored, 0},
		{dev + "/./0000000001.rdc", NameIgnored, 0},
		{dev + "/0000000001.rdc/", NameIgnored, 0},
		{dev + `\0000000001.rdc`, NameIgnored, 0},
		{dev + "/sub/0000000001.rdc", NameIgnored, 0},
		// not a device directory: uppercase or malformed ids are not ours
		{strings.ToUpper(dev) + "/0000000001.rdc", NameIgnored, 0},
		{"abcdefghijklmn2/0000000001.rdc", NameIgnored, 0},
		{"0000000001.rdc", NameIgnored, 0},
		{"README.txt", NameIgnored, 0},
		{dev, NameIgnored, 0},
		// inside a device directory but not a changeset name: reported
		{dev + "/0000000001.RDC", NameUnknown, 0},
		{dev + "/0000000000.rdc", NameUnknown, 0},
		{dev + "/notes.txt", NameUnknown, 0},
		{dev + "/0000000001.rdc.part", NameUnknown, 0},
	} {
		kind, d, seq := Classify(c.rel)
		if kind != c.kind || seq != c.seq {
			t.Errorf("Classify(%q) = %v %q %d, want %v seq %d", c.rel, kind, d, seq, c.kind, c.seq)
			continue
		}
		wantDev := ""
		if kind != NameIgnored {
			wantDev = dev
		}
		if d != wantDev {
			t.Errorf("Classify(%q): device %q, want %q", c.rel, d, wantDev)
		}
	}
}

func TestIsArtefact(t *testing.T) {
	for _, n := range []string{".stfolder", ".syncthing.x.tmp", "~syncthing~x.tmp", "._x", ".DS_Store", "desktop.ini", "DESKTOP.INI", "Thumbs.db", ".rowdrop-tmp-1"} {
		if !IsArtefact(n) {
			t.Errorf("IsArtefact(%q) = false", n)
		}
	}
	for _, n := range []string{"0000000001.rdc", dev, "x.sync-conflict-20261126-101500-ABCDEFG.rdc", "syncthing.tmp"} {
		if IsArtefact(n) {
			t.Errorf("IsArtefact(%q) = true", n)
		}
	}
}

// FuzzClassify checks Classify's promises on arbitrary paths: it never
// panics; a changeset name is exactly RelPath(device, seq) of a valid
// device and sequence; no kind but NameIgnored comes from a path that
// escapes the folder or has any other shape than <device>/<name>.
func FuzzClassify(f *testing.F) {
	for _, s := range []string{dev + "/0000000001.rdc", "../x", dev + "/.syncthing.x.tmp",
		dev + "/x.sync-conflict-20261126-101500-ABCDEFG.rdc", dev + "/x (Ann's conflicted copy 2026-11-26).rdc",
		".stfolder", dev + "/Thumbs.db", "/abs", `a\b`, dev + "/../" + dev + "/0000000001.rdc"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, rel string) {
		kind, d, seq := Classify(rel)
		switch kind {
		case NameIgnored:
			if d != "" || seq != 0 {
				t.Fatalf("ignored %q with device %q seq %d", rel, d, seq)
			}
			return
		case NameChangeset:
			if seq == 0 || seq > MaxSeq || RelPath(d, seq) != rel {
				t.Fatalf("changeset %q: device %q seq %d", rel, d, seq)
			}
		case NameConflictCopy, NameUnknown:
			if seq != 0 {
				t.Fatalf("%q: seq %d", rel, seq)
			}
		default:
			t.Fatalf("%q: kind %d", rel, kind)
		}
		dir, base := path.Split(rel)
		if !ValidDeviceID(d) || dir != d+"/" || base == "" || strings.ContainsAny(base, "/\\") || IsArtefact(base) {
			t.Fatalf("%q classified %v under device %q", rel, kind, d)
		}
	})
}

func TestSnapshotAndAckNames(t *testing.T) {
	dev := "abcdefghijklmnop"
	if k, d, s := Classify(dev + "/" + SnapshotName(7)); k != NameSnapshot || d != dev || s != 7 {
		t.Errorf("snapshot name: %v %q %d", k, d, s)
	}
	if k, d, _ := Classify(dev + "/" + AckName); k != NameAck || d != dev {
		t.Errorf("ack name: %v %q", k, d)
	}
	for _, bad := range []string{"snap-0000000000.rds", "snap-12.rds", "snap-0000000001.rdc", "Snap-0000000001.rds"} {
		if k, _, _ := Classify(dev + "/" + bad); k == NameSnapshot {
			t.Errorf("%s classified as a snapshot", bad)
		}
	}
}
