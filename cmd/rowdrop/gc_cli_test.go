package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	shared "github.com/rowdrop/rowdrop/internal/folder"
	"github.com/rowdrop/rowdrop/internal/rdfile"
)

// gc and devices through the binary: the dry run explains, the real run
// deletes only this device's files, devices lists and forgets.
func TestGCAndDevicesCommands(t *testing.T) {
	folder := t.TempDir()
	a, b := newDevice(t, folder, "alpha"), newDevice(t, folder, "beta")
	a.exec(t, "INSERT INTO notes(id,title) VALUES('n1','one')")
	a.sync(t)
	b.sync(t)
	a.exec(t, "INSERT INTO notes(id,title) VALUES('n2','two')")
	a.sync(t)
	b.sync(t)
	aID, bID := a.status(t)["device"].(string), b.status(t)["device"].(string)
	gcArgs := func(d *device, extra ...string) []string {
		return append(append([]string{"gc"}, extra...), d.flags()...)
	}

	r := ok(t, gcArgs(a, "--dry-run")...)
	if !strings.Contains(r.stdout, "nothing to delete") || !strings.Contains(r.stdout, "no whole snapshot") {
		t.Fatalf("dry run without a snapshot:\n%s", r.stdout)
	}
	// A real snapshot of beta's, including everything beta applied (gc
	// counts only snapshots a joiner could use).
	ok(t, append([]string{"snapshot"}, b.flags()...)...)
	r = ok(t, gcArgs(a, "--dry-run", "--json")...)
	var rep struct {
		DryRun bool `json:"dry_run"`
		Plan   struct {
			Delete []struct{ Path, Reason string } `json:"delete"`
		} `json:"plan"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
		t.Fatalf("gc --json: %v\n%s", err, r.stdout)
	}
	// Both of alpha's changesets are covered; the newest always stays.
	if !rep.DryRun || len(rep.Plan.Delete) != 1 || !strings.HasPrefix(rep.Plan.Delete[0].Path, aID+"/") {
		t.Fatalf("dry run plan: %+v", rep)
	}
	ents, _ := os.ReadDir(filepath.Join(folder, aID))
	if len(ents) != 3 { // two changesets and the ack
		t.Fatalf("dry run deleted files: %v", ents)
	}
	bBefore, _ := os.ReadDir(filepath.Join(folder, bID))
	r = ok(t, gcArgs(a)...)
	if !strings.Contains(r.stdout, "deleted 1 file(s)") || !strings.Contains(r.stdout, "newest changeset (2) always stays") {
		t.Fatalf("gc:\n%s", r.stdout)
	}
	ents, _ = os.ReadDir(filepath.Join(folder, aID))
	bAfter, _ := os.ReadDir(filepath.Join(folder, bID))
	if len(ents) != 2 || len(bAfter) != len(bBefore) {
		t.Fatalf("after gc: a has %v, b had %d files and has %d", ents, len(bBefore), len(bAfter))
	}

	r = ok(t, append([]string{"devices", "--json"}, a.flags()...)...)
	var devs []struct{ ID, Status string }
	if err := json.Unmarshal([]byte(r.stdout), &devs); err != nil || len(devs) != 2 {
		t.Fatalf("devices --json: %v\n%s", err, r.stdout)
	}
	if devs[0].ID != aID || devs[0].Status != "this device" || devs[1].Status != "active" {
		t.Fatalf("devices: %+v", devs)
	}
	r = runRD(t, append([]string{"devices", "forget", "nosuchdevice"}, a.flags()...)...)
	if r.code != 1 || !strings.Contains(r.stderr, "rowdrop devices") {
		t.Fatalf("forget of a bad id: exit %d, %q", r.code, r.stderr)
	}
	if r := runRD(t, append([]string{"devices", "forget"}, a.flags()...)...); r.code != 2 {
		t.Fatalf("forget without an id: exit %d", r.code)
	}
	ok(t, append([]string{"devices", "forget", bID}, a.flags()...)...)
	r = ok(t, append([]string{"devices"}, a.flags()...)...)
	if !strings.Contains(r.stdout, bID) || !strings.Contains(r.stdout, "RETIRED") {
		t.Fatalf("devices after forget:\n%s", r.stdout)
	}
	if got, _ := shared.New(folder, rdfile.Limits{}).ReadAck(aID); got == nil || len(got.Forgotten) != 1 || got.Forgotten[0] != bID {
		t.Fatalf("a's ack does not carry the retirement: %+v", got)
	}
	// A bad horizon is a usage error naming the key.
	r = runRD(t, append([]string{"status"}, a.flags()...)...)
	if r.code != 0 {
		t.Fatalf("status: %d %s", r.code, r.stderr)
	}
	t.Setenv("ROWDROP_DEVICE_HORIZON", "soon")
	if r := runRD(t, append([]string{"status"}, a.flags()...)...); r.code != 2 || !strings.Contains(r.stderr, "device_horizon") {
		t.Fatalf("bad horizon: exit %d, %q", r.code, r.stderr)
	}
}
