package main

import (
	"fmt"
	"runtime"
	"runtime/debug"
	"strings"
)

// versionText is what `rowdrop --version` prints: the module version the
// binary was built from (set by `go install <path>@<version>`; "(devel)"
// for a build from a checkout) and the VCS revision the go command stamped
// into it (absent when built with -buildvcs=false or outside a checkout).
func versionText(info *debug.BuildInfo, ok bool) string {
	if !ok || info == nil {
		return fmt.Sprintf("rowdrop (no build information) %s %s/%s\n", runtime.Version(), runtime.GOOS, runtime.GOARCH)
	}
	version := info.Main.Version
	if version == "" {
		version = "(devel)"
	}
	var rev, at, modified string
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.time":
			at = s.Value
		case "vcs.modified":
			if s.Value == "true" {
				modified = " (modified)"
			}
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "rowdrop %s", version)
	if info.Main.Path != "" {
		fmt.Fprintf(&b, " (module %s)", info.Main.Path)
	}
	if rev != "" {
		fmt.Fprintf(&b, " revision %s%s", rev, modified)
		if at != "" {
			fmt.Fprintf(&b, " of %s", at)
		}
	} else {
		b.WriteString(" revision unknown")
	}
	goVersion := info.GoVersion
	if goVersion == "" {
		goVersion = runtime.Version()
	}
	fmt.Fprintf(&b, " %s %s/%s\n", goVersion, runtime.GOOS, runtime.GOARCH)
	return b.String()
}
