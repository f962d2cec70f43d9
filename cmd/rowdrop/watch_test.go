package main

import (
	"path/filepath"
	"testing"

	"github.com/rowdrop/rowdrop/internal/rdfile"
	"github.com/rowdrop/rowdrop/watcher"
)

// TestFolderFileKind: what watch tells the watcher about each name in the
// shared folder. Another device's acknowledgement starts nothing: it
// changes after each of that device's imports, so reacting to it echoed
// every sync back as a call (issue 18: the echo delayed the next edit by a
// quiet period).
func TestFolderFileKind(t *testing.T) {
	own, peer := "aaaaaaaaaaaaaaaa", "bbbbbbbbbbbbbbbb"
	if !rdfile.ValidDeviceID(own) || !rdfile.ValidDeviceID(peer) {
		t.Fatalf("test device ids are not valid ids (want %d characters)", rdfile.DeviceIDLen)
	}
	for _, c := range []struct {
		rel  string
		want watcher.FileKind
	}{
		{peer + "/" + rdfile.FileName(7), watcher.FileComplete},
		{peer + "/" + rdfile.SnapshotName(7), watcher.FileComplete},
		{peer + "/" + rdfile.AckName, watcher.FileIgnored},
		{own + "/" + rdfile.FileName(7), watcher.FileOwn},
		{own + "/" + rdfile.AckName, watcher.FileOwn},
		{peer + "/notes.txt", watcher.FileOther},
		{"README", watcher.FileOther},
	} {
		if got := folderFileKind(filepath.FromSlash(c.rel), own); got != c.want {
			t.Errorf("%s: kind %d, want %d", c.rel, got, c.want)
		}
	}
	// Before the first step knows the device's id nothing is its own.
	if got := folderFileKind(filepath.FromSlash(own+"/"+rdfile.FileName(7)), ""); got != watcher.FileComplete {
		t.Errorf("own file before the id is known: kind %d, want FileComplete", got)
	}
}
