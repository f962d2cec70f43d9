package main

import (
	"bytes"
	"context"
	"runtime/debug"
	"strings"
	"testing"
)

func TestVersionText(t *testing.T) {
	info := &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Path: "example.org/rowdrop", Version: "v1.2.3"},
		Settings: []debug.BuildSetting{{Key: "vcs.revision", Value: "0123abcd"}, {Key: "vcs.time", Value: "2026-12-01T10:00:00Z"}, {Key: "vcs.modified", Value: "true"}}}
	got := versionText(info, true)
	for _, want := range []string{"rowdrop v1.2.3", "module example.org/rowdrop", "revision 0123abcd (modified) of 2026-12-01T10:00:00Z", "go1.26.8"} {
		if !strings.Contains(got, want) {
			t.Errorf("versionText = %q, lacks %q", got, want)
		}
	}
	if got := versionText(&debug.BuildInfo{Main: debug.Module{Path: "github.com/rowdrop/rowdrop"}}, true); !strings.Contains(got, "rowdrop (devel)") || !strings.Contains(got, "revision unknown") {
		t.Errorf("versionText without version or VCS = %q", got)
	}
	if got := versionText(nil, false); !strings.Contains(got, "no build information") {
		t.Errorf("versionText without build info = %q", got)
	}
}

func TestVersionFlag(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run(context.Background(), []string{"--version"}, &out, &errb); code != 0 {
		t.Fatalf("rowdrop --version: exit %d, stderr %q", code, errb.String())
	}
	if !strings.HasPrefix(out.String(), "rowdrop ") || !strings.Contains(out.String(), "revision") {
		t.Fatalf("rowdrop --version printed %q", out.String())
	}
}
