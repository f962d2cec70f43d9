package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// syncJSON runs `sync --json` for d, expecting exit status code, and
// decodes its report.
func (d *device) syncJSON(t *testing.T, code int) syncReport {
	t.Helper()
	r := exits(t, code, append([]string{"sync", "--json"}, d.flags()...)...)
	var rep syncReport
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
		t.Fatalf("sync --json is not a JSON object: %v\n%s", err, r.stdout)
	}
	return rep
}

// sync --json prints what the text log reports, and the exit status tells
// all applied (0), done but held or broken (3), failure (1), usage (2).
func TestSyncJSONAndExitCodes(t *testing.T) {
	folder := t.TempDir()
	a, b := newDevice(t, folder, "alpha"), newDevice(t, folder, "beta")
	a.exec(t, "INSERT INTO notes(id,title) VALUES('n1','hello')")
	rep := a.syncJSON(t, 0)
	if rep.Device != "alpha" || rep.DeviceID == "" || rep.Database != a.db || rep.Folder != a.folder {
		t.Errorf("sync --json does not name the pair: %+v", rep)
	}
	if rep.InSync || rep.Exported.Seq != 1 || rep.Exported.File == "" || rep.Exported.Changes != 1 || rep.Exported.Pending {
		t.Errorf("first export: %+v", rep.Exported)
	}
	if rep = a.syncJSON(t, 0); !rep.InSync || rep.Exported.Seq != 0 {
		t.Errorf("a sync with nothing to do: %+v", rep)
	}
	if rep = b.syncJSON(t, 0); rep.Imported.Applied != 1 || rep.Imported.Changes != 1 || rep.InSync {
		t.Errorf("import: %+v", rep.Imported)
	}
	// A broken file: the sync did its work, exit status 3, the report counts it.
	junk := filepath.Join(folder, randomDeviceID())
	if err := os.MkdirAll(junk, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(junk, "0000000001.rdc"), []byte("junk!"), 0o644); err != nil {
		t.Fatal(err)
	}
	for i := range 2 { // the file stays broken: every sync says so
		if rep = b.syncJSON(t, 3); rep.Imported.Broken != 1 || rep.InSync {
			t.Errorf("sync %d with a broken file: %+v", i+1, rep.Imported)
		}
	}
	// Failure and usage.
	if r := runRD(t, "sync", "--json", "--db", filepath.Join(folder, "..", "nope.db"), "--folder", folder); r.code != 1 || r.stdout != "" {
		t.Errorf("missing database: exit %d, stdout %q", r.code, r.stdout)
	}
	exits(t, 2, append([]string{"sync", "extra"}, a.flags()...)...)
	// The exit statuses are documented.
	help := ok(t, "help").stdout
	for _, want := range []string{"0  success", "1  failure", "2  bad usage", "3  sync, status: done, but files are held or broken"} {
		if !strings.Contains(help, want) {
			t.Errorf("rowdrop help does not document %q", want)
		}
	}
}
