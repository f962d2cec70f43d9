package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rowdrop/rowdrop/internal/rdfile"
)

// deviceWithFile is the id of the device whose directory in folder holds
// changeset seq.
func deviceWithFile(t *testing.T, folder string, seq uint64) string {
	t.Helper()
	for _, e := range mustReadDir(t, folder) {
		if _, err := os.Stat(filepath.Join(folder, e, rdfile.FileName(seq))); err == nil {
			return e
		}
	}
	t.Fatalf("no device in %s has file %d", folder, seq)
	return ""
}

// A device joining after a file it needs was deleted from the folder
// (collected, or removed by hand) is told to have a snapshot taken on an
// up-to-date device, as docs/INTERNALS.md promises (issue 21, smaller items).
func TestCLIJoinerMissingDeletedFileGetsSnapshotAdvice(t *testing.T) {
	folder := t.TempDir()
	a := newDevice(t, folder, "alpha")
	a.exec(t, "INSERT INTO notes(id,title) VALUES('n1','one')")
	a.sync(t)
	a.exec(t, "INSERT INTO notes(id,title) VALUES('n2','two')")
	a.sync(t)
	a.exec(t, "INSERT INTO notes(id,title) VALUES('n3','three')")
	a.sync(t)
	aID := deviceWithFile(t, folder, 3)
	// The lowest file gone (as collection deletes), and one between two
	// that are still there.
	for _, tc := range []struct {
		name   string
		delete uint64
	}{{"lowest", 1}, {"between", 2}} {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(folder, aID, rdfile.FileName(tc.delete))
			data, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			os.Remove(p)
			defer os.WriteFile(p, data, 0o644)
			c := newDevice(t, folder, "gamma")
			syncAny(t, c)
			st, reason := fileStatus(t, c, aID+"/"+rdfile.FileName(tc.delete))
			if st != "waiting" || !strings.Contains(reason, "run `rowdrop snapshot` on a device that is up to date") {
				t.Fatalf("joiner missing file %d: status %q %q, want waiting with the advice to run `rowdrop snapshot` on an up-to-date device", tc.delete, st, reason)
			}
		})
	}
}

// A tampered snapshot next to a valid older one is reported, not
// silently skipped (docs/FORMAT.md §14.3: "reports and skips"), on the
// sync that used the older one and on the next.
func TestCLITamperedSnapshotIsReported(t *testing.T) {
	folder := t.TempDir()
	a := newDevice(t, folder, "alpha")
	a.exec(t, "INSERT INTO notes(id,title) VALUES('n1','one')")
	a.sync(t)
	ok(t, append([]string{"snapshot"}, a.flags()...)...)
	a.exec(t, "INSERT INTO notes(id,title) VALUES('n2','two')")
	a.sync(t)
	ok(t, append([]string{"snapshot"}, a.flags()...)...)
	aID := deviceWithFile(t, folder, 2)
	snap2 := filepath.Join(folder, aID, "snap-0000000002"+rdfile.SnapshotExt)
	data, err := os.ReadFile(snap2)
	if err != nil {
		t.Fatal(err)
	}
	data[len(data)-10] ^= 0xff // inside the payload: its checksum no longer matches
	if err := os.WriteFile(snap2, data, 0o644); err != nil {
		t.Fatal(err)
	}
	c := newDevice(t, folder, "gamma")
	for i := 0; i < 2; i++ {
		syncAny(t, c)
		if got := c.dump(t); !strings.Contains(got, "'two'") {
			t.Fatalf("joiner did not catch up:\n%s", got)
		}
		st, reason := fileStatus(t, c, "snap-0000000002")
		if st == "" || !strings.Contains(reason, "snap-0000000002") {
			t.Fatalf("sync %d: the tampered snapshot is not reported (status %q %q)", i+1, st, reason)
		}
		t.Logf("sync %d: %s: %s", i+1, st, reason)
	}
}

// A device whose clock is slow (a year behind) is not called silent
// right after it publishes: silence is judged by when its files arrive
// here, not by the times its own clock wrote into them.
func TestCLISlowClockDeviceNotSilentAfterPublishing(t *testing.T) {
	folder := t.TempDir()
	a, b := newDevice(t, folder, "alpha"), newDevice(t, folder, "beta")
	a.exec(t, "INSERT INTO notes(id,title) VALUES('n1','one')")
	a.sync(t)
	var notes rdfile.Table
	for _, tb := range headerOf(t, filepath.Join(folder, deviceWithFile(t, folder, 1), rdfile.FileName(1))).Tables {
		if tb.Name == "notes" {
			notes = tb
		}
	}
	const slow = "ssssssssssssssss"
	slowMS := time.Date(2025, 1, 1, 12, 0, 0, 0, time.UTC).UnixMilli()
	publish := func(seq uint64, id string) {
		ms := slowMS + int64(seq)*60_000
		handMade(t, folder, slow, seq, rdfile.Header{DeviceName: "slowpoke", CreatedMS: ms, HLC: uint64(ms) << 16, Tables: []rdfile.Table{notes}}, 1,
			rawChangeset(notes, rawChange{op: 0x12, new: []any{id, "from the slow device", "", 0}}))
	}
	silent := func() string {
		t.Helper()
		r := runRD(t, append([]string{"status", "--json"}, b.flags()...)...)
		var st map[string]any
		if err := json.Unmarshal([]byte(r.stdout), &st); err != nil {
			t.Fatalf("status --json: %v\n%s", err, r.stdout)
		}
		ws, _ := st["warnings"].([]any)
		for _, w := range ws {
			if s, _ := w.(string); strings.Contains(s, slow) && strings.Contains(s, "silent") {
				return s
			}
		}
		return ""
	}
	publish(1, "s1")
	syncAny(t, b) // first sight: its own clock is all there is to go by
	publish(2, "s2")
	syncAny(t, b)
	if !strings.Contains(b.dump(t), "'s2'") {
		t.Fatalf("the slow device's file was not applied:\n%s", b.dump(t))
	}
	if w := silent(); w != "" {
		t.Fatalf("right after it published, the slow device is called silent: %s", w)
	}
}

// status prints one verdict line first, and --json carries it: up to date,
// files waiting for another device, files not applied here yet, a file
// broken, the folder unavailable.
func TestStatusVerdict(t *testing.T) {
	folder := t.TempDir()
	a, b := newDevice(t, folder, "alpha"), newDevice(t, folder, "beta")
	firstLine := func(d *device, code int) string {
		t.Helper()
		r := exits(t, code, append([]string{"status"}, d.flags()...)...)
		var st struct {
			Verdict string `json:"verdict"`
		}
		if err := json.Unmarshal([]byte(exits(t, code, append([]string{"status", "--json"}, d.flags()...)...).stdout), &st); err != nil {
			t.Fatal(err)
		}
		line, _, _ := strings.Cut(r.stdout, "\n")
		if line != st.Verdict {
			t.Errorf("%s: status says %q first, --json verdict %q", d.name, line, st.Verdict)
		}
		return line
	}
	ok(t, append([]string{"sync"}, b.flags()...)...)
	ok(t, append([]string{"sync"}, a.flags()...)...)
	if v := firstLine(a, 0); !strings.HasPrefix(v, "up to date as of the last sync") {
		t.Errorf("before any edit: %q", v)
	}
	a.exec(t, "INSERT INTO notes(id,title) VALUES('n1','hello')")
	a.exec(t, "INSERT INTO notes(id,title) VALUES('n2','world')")
	ok(t, append([]string{"sync"}, a.flags()...)...)
	if v := firstLine(a, 0); v != "1 file waiting for device beta" {
		t.Errorf("alpha after publishing: %q", v)
	}
	if v := firstLine(b, 0); v != "1 file from device alpha not applied here yet" {
		t.Errorf("beta before its sync: %q", v)
	}
	ok(t, append([]string{"sync"}, b.flags()...)...)
	for _, d := range []*device{a, b} {
		if v := firstLine(d, 0); !strings.HasPrefix(v, "up to date as of the last sync") {
			t.Errorf("%s after both synced: %q", d.name, v)
		}
	}
	junk := filepath.Join(folder, randomDeviceID())
	if err := os.MkdirAll(junk, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(junk, "0000000001.rdc"), []byte("junk!"), 0o644); err != nil {
		t.Fatal(err)
	}
	exits(t, 3, append([]string{"sync"}, b.flags()...)...)
	if v := firstLine(b, 3); !strings.HasPrefix(v, "1 file broken: ") || !strings.Contains(v, "0000000001.rdc") {
		t.Errorf("beta with a broken file: %q", v)
	}
	if err := os.Rename(folder, folder+".gone"); err != nil {
		t.Fatal(err)
	}
	defer os.Rename(folder+".gone", folder)
	if v := firstLine(a, 0); !strings.HasPrefix(v, "folder unavailable: "+folder) {
		t.Errorf("alpha with the folder gone: %q", v)
	}
}

// A held file is told once per sync: by name when the import holds it, and
// in the count of the exit line, not again in a summary warning.
func TestHeldFileToldOncePerSync(t *testing.T) {
	folder := t.TempDir()
	a, b := newDevice(t, folder, "alpha"), newDevice(t, folder, "beta")
	ok(t, append([]string{"sync"}, b.flags()...)...)
	// alpha's app is newer: its notes have a column beta's lack.
	a.exec(t, "ALTER TABLE notes ADD COLUMN extra TEXT")
	a.exec(t, "INSERT INTO notes(id,title,extra) VALUES('n1','hello','x')")
	ok(t, append([]string{"sync"}, a.flags()...)...)
	for i := range 2 {
		r := exits(t, 3, append([]string{"sync"}, b.flags()...)...)
		lines := strings.Split(strings.TrimSpace(r.stderr), "\n")
		var named, told int
		for _, l := range lines {
			if strings.Contains(l, "0000000001.rdc") {
				named++
			}
			if strings.Contains(l, "held") {
				told++
			}
		}
		if named != 1 || told != 2 || !strings.Contains(lines[len(lines)-1], "1 held") {
			t.Errorf("sync %d: the held file is named %d times, held told %d times (want 1 and 2: the import's line and the exit line):\n%s", i+1, named, told, r.stderr)
		}
	}
}
