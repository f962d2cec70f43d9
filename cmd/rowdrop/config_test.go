package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

var update = flag.Bool("update", false, "rewrite testdata/resolve.golden")

// TestConfigResolution pins the layering of flags, ROWDROP_* variables, the
// config file's top level and its `databases:` entries: every case's
// resolved pairs (or its error) against testdata/resolve.golden.
func TestConfigResolution(t *testing.T) {
	tmp := t.TempDir()
	t.Chdir(tmp)
	t.Setenv("XDG_CONFIG_HOME", filepath.Join(tmp, "xdg"))
	write := func(name, text string) string {
		p := filepath.Join(tmp, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	full := write("cfg/full.yaml", `
include: [a, "b, c"]
hints: true
state: st
stand_ins: {f: identity, g: lower}
sweep_every: 1h
max_changeset: 5
device_horizon: 720h
rekey_integer_ids: false
log_json: true
databases:
  - db: one.db
    folder: f1
    include: [x]
    exclude: y,z
    local_columns: [t.c]
    hints: false
    stand_ins: {h: upper}
    sweep_every: 5m
    max_changeset: 1000
    device_horizon: 10d
    device: phone
  - db: ~/two.db
    folder: $HOME/f2
`)
	write("cfg/toplevel.yaml", "db: top.db\nfolder: tf\nverbose: true\nrekey_integer_ids: true\n")
	write("cfg/noentrydb.yaml", "databases:\n  - folder: f\n")
	write("cfg/dup.yaml", "databases:\n  - {db: a.db, folder: f}\n  - {db: ./a.db, folder: g}\n")
	write("cfg/badhorizon.yaml", "databases:\n  - {db: a.db, folder: f, device_horizon: soon}\n")
	write("cfg/badtype.yaml", "databases:\n  - {db: a.db, folder: f, hints: maybe}\n")
	write("cfg/nofolder.yaml", "databases:\n  - {db: a.db}\n")
	write("cfg/broken.yaml", "databases: [\n")
	write("cfg/list.yaml", "databases: 3\n")
	write("cfg/watch.yaml", "db: w.db\nfolder: wf\nmax_delay: 10s\nrescan: 0s\nsnapshot_every: 24h\n")
	write("xdg/rowdrop/rowdrop.yaml", "folder: xf\nexclude: [q]\n")
	// Strict config (#17): unknown keys and bad values name the line.
	write("cfg/typo.yaml", "folder: f\nexlude: [ui_state]\nlocal-columns: [t.c]\n")
	write("cfg/entrytypo.yaml", "databases:\n  - db: a.db\n    folder: f\n    exlcude: [ui_state]\n    debounce: 1s\n    colour: blue\n")
	write("cfg/badvalues.yaml", "db: a.db\nfolder: f\ndebounce: fast\nmax_delay: -5s\nrescan: -1s\nsnapshot_every_files: -3\nmax_changeset: lots\nhints: yes\n")
	write("cfg/dupkey.yaml", "db: a.db\nfolder: f\nfolder: g\n")
	write("cfg/badindent.yaml", "device: desk\ndatabases:\n  - db: a.db\n    folder: f\n   exclude: [x]\n")
	write("cfg/tab.yaml", "db: a.db\nfolder: f\n\texclude: [x]\n")
	write("cfg/notmap.yaml", "- db: a.db\n")
	write("cfg/sharedfolder.yaml", "databases:\n  - {db: a.db, folder: f}\n  - {db: b.db, folder: ./f/}\n")
	write("cfg/nestedfolder.yaml", "databases:\n  - {db: a.db, folder: f}\n  - {db: b.db, folder: f/sub}\n")
	write("cfg/toplevelfolder.yaml", "folder: f\ndatabases:\n  - {db: a.db}\n  - {db: b.db}\n")
	write("cfg/linkedfolder.yaml", "databases:\n  - {db: a.db, folder: real}\n  - {db: b.db, folder: link}\n")
	write("cfg/anchors.yaml", "x-common: &common\n  exclude: [ui]\ndatabases:\n  - <<: *common\n    db: a.db\n    folder: fa\n  - {<<: *common, db: b.db, folder: fb, exclude: [ui, cache]}\n")
	write("cfg/badanchor.yaml", "common: &common\n  exlude: [ui]\ndatabases:\n  - <<: *common\n    db: a.db\n    folder: fa\n")
	if err := os.MkdirAll(filepath.Join(tmp, "cfg", "real"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(tmp, "cfg", "real"), filepath.Join(tmp, "cfg", "link")); err != nil {
		t.Fatal(err)
	}

	cases := []struct {
		name string
		env  []string // KEY=VALUE
		args []string
	}{
		{"flags", nil, []string{"--db", "a.db", "--folder", "f", "--device", "d", "--include", "t1, t2", "--exclude", "x", "--local-columns", "t.c,u.d", "--hints", "-v"}},
		{"nothing", nil, nil},
		{"default config file", nil, []string{"--db", "/abs/a.db"}},
		{"config: all entries", nil, []string{"--config", full}},
		{"config: one entry by --db", nil, []string{"--config", full, "--db", "cfg/one.db"}},
		{"config: --db not listed", nil, []string{"--config", full, "--db", "other.db", "--folder", "of"}},
		{"config: env beats entry", []string{"ROWDROP_FOLDER=envf", "ROWDROP_INCLUDE=q,r", "ROWDROP_HINTS=true", "ROWDROP_SWEEP_EVERY=2m", "ROWDROP_MAX_CHANGESET=7", "ROWDROP_DEVICE_HORIZON=3d", "ROWDROP_DEVICE=envdev"}, []string{"--config", full, "--db", "cfg/one.db"}},
		{"config: flag beats env", []string{"ROWDROP_FOLDER=envf", "ROWDROP_STATE=envst"}, []string{"--config", full, "--db", "cfg/one.db", "--folder", "flagf", "--hints=false"}},
		{"config: env stand-ins", []string{"ROWDROP_STAND_INS={\"k\":\"null\"}"}, []string{"--config", full}},
		{"config: env selects", []string{"ROWDROP_CONFIG=" + full, "ROWDROP_DB=" + filepath.Join(tmp, "two.db"), "HOME=" + tmp}, nil},
		{"config: empty env is unset", []string{"ROWDROP_FOLDER=", "ROWDROP_HINTS="}, []string{"--config", full, "--db", "cfg/one.db"}},
		{"config: --folder for many", nil, []string{"--config", full, "--folder", "f"}},
		{"config: --state for many", []string{"ROWDROP_STATE=s"}, []string{"--config", full}},
		{"config: top-level db", nil, []string{"--config", "cfg/toplevel.yaml"}},
		{"config: entry without db", nil, []string{"--config", "cfg/noentrydb.yaml"}},
		{"config: duplicate", nil, []string{"--config", "cfg/dup.yaml"}},
		{"config: bad horizon", nil, []string{"--config", "cfg/badhorizon.yaml"}},
		{"config: bad type", nil, []string{"--config", "cfg/badtype.yaml"}},
		{"config: no folder", nil, []string{"--config", "cfg/nofolder.yaml"}},
		{"config: broken yaml", nil, []string{"--config", "cfg/broken.yaml"}},
		{"config: databases not a list", nil, []string{"--config", "cfg/list.yaml"}},
		{"config: missing file", nil, []string{"--config", "cfg/none.yaml"}},
		{"bad flag", nil, []string{"--nope"}},
		{"strict: unknown top-level keys", nil, []string{"--config", "cfg/typo.yaml", "--db", "a.db"}},
		{"strict: unknown entry keys", nil, []string{"--config", "cfg/entrytypo.yaml"}},
		{"strict: bad values", nil, []string{"--config", "cfg/badvalues.yaml"}},
		{"strict: duplicate key", nil, []string{"--config", "cfg/dupkey.yaml"}},
		{"strict: yaml error names its line", nil, []string{"--config", "cfg/badindent.yaml"}},
		{"strict: tab names its line", nil, []string{"--config", "cfg/tab.yaml"}},
		{"strict: not a mapping", nil, []string{"--config", "cfg/notmap.yaml"}},
		{"strict: negative flag", nil, []string{"watch", "--db", "a.db", "--debounce", "-5s"}},
		{"strict: negative count flag", nil, []string{"watch", "--db", "a.db", "--snapshot-every-files", "-1"}},
		{"strict: rescan off is negative", nil, []string{"watch", "--db", "a.db", "--rescan", "-1s"}},
		{"strict: bad env", []string{"ROWDROP_DEBOUNCE=fast", "ROWDROP_HINTS=maybe"}, []string{"--db", "a.db"}},
		{"strict: two databases, one folder", nil, []string{"--config", "cfg/sharedfolder.yaml"}},
		{"strict: one folder, picked by --db", nil, []string{"--config", "cfg/sharedfolder.yaml", "--db", "cfg/a.db"}},
		{"strict: --db and --folder of another entry", nil, []string{"--config", "cfg/nestedfolder.yaml", "--db", "cfg/b.db", "--folder", "cfg/f"}},
		{"strict: nested folders", nil, []string{"--config", "cfg/nestedfolder.yaml"}},
		{"strict: one top-level folder for two", nil, []string{"--config", "cfg/toplevelfolder.yaml"}},
		{"strict: anchors and merge keys", nil, []string{"--config", "cfg/anchors.yaml"}},
		{"strict: merge keys", nil, []string{"--config", "cfg/badanchor.yaml"}},
		{"strict: folders one through a link", nil, []string{"--config", "cfg/linkedfolder.yaml"}},
		{"watch: defaults", nil, []string{"watch", "--db", "a.db"}},
		{"watch: flags", nil, []string{"watch", "--db", "a.db", "--debounce", "1s", "--max-delay", "9s", "--poll", "2s", "--rescan", "-1s", "--snapshot-every", "0", "--snapshot-every-files", "7"}},
		{"watch: env and file", []string{"ROWDROP_DEBOUNCE=50ms", "ROWDROP_SNAPSHOT_EVERY_FILES=0"}, []string{"watch", "--config", "cfg/watch.yaml"}},
		{"watch: flag only on watch", nil, []string{"--debounce", "1s"}},
		{"positional", nil, []string{"show", "--db", "a.db", "3", "--", "-x", "--folder"}},
	}
	var out strings.Builder
	for _, c := range cases {
		fmt.Fprintf(&out, "== %s\n", c.name)
		t.Run(c.name, func(t *testing.T) {
			for _, kv := range c.env {
				k, v, _ := strings.Cut(kv, "=")
				t.Setenv(k, v)
			}
			out.WriteString(resolveForTest(c.args))
		})
	}
	got := strings.ReplaceAll(out.String(), tmp, "$T")
	if home, err := os.UserHomeDir(); err == nil {
		got = strings.ReplaceAll(got, home, "$HOME")
	}
	golden := filepath.Join(pkgDir, "testdata", "resolve.golden")
	if *update {
		if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("read %s: %v (run go test -run TestConfigResolution -update to create it)", golden, err)
	}
	if got != string(want) {
		t.Errorf("resolved configuration differs from %s:\n%s", golden, lineDiff(string(want), got))
	}
}

// pkgDir is the package directory, read before a test changes the working
// directory.
var pkgDir = func() string {
	wd, _ := os.Getwd()
	return wd
}()

// resolveForTest parses args as a pair command would and renders the
// resolved pairs, or the error.
func resolveForTest(args []string) string {
	a := &app{stdout: io.Discard, stderr: io.Discard}
	name := "sync"
	if len(args) > 0 && args[0] == "watch" {
		name, args = "watch", args[1:]
	}
	root := newRootCmd(a)
	root.SetArgs(append([]string{name}, args...))
	cmd, _, err := root.Find([]string{name})
	if err != nil {
		return renderErr(err)
	}
	var b strings.Builder
	cmd.Args = cobra.ArbitraryArgs
	cmd.RunE = a.action(func(_ context.Context, pos []string) error {
		resolved(&b, a, pos)
		return nil
	})
	if err := root.Execute(); err != nil {
		return b.String() + renderErr(err)
	}
	return b.String()
}

// resolved renders what a.action layered and the pairs it resolves.
func resolved(b *strings.Builder, a *app, pos []string) {
	if pos == nil {
		pos = []string{}
	}
	fmt.Fprintf(b, "pos=%q config=%q logJSON=%v verbose=%v\n", pos, a.opts.configFile, a.opts.logJSON, a.opts.verbose)
	if a.name == "watch" {
		tm := a.opts.watchTimings()
		fmt.Fprintf(b, "watch debounce=%s maxDelay=%s poll=%s rescan=%s snapEvery=%s snapEveryFiles=%d\n",
			tm.debounce, tm.maxDelay, tm.poll, tm.rescan, tm.snapEvery, tm.snapEveryFiles)
	}
	pairs, err := a.pairs()
	if err != nil {
		b.WriteString(renderErr(err))
		return
	}
	for _, p := range pairs {
		c := p.config(slog.New(slog.DiscardHandler), nil)
		var si []string
		for k, v := range c.StandIns {
			si = append(si, k+"="+v)
		}
		slices.Sort(si)
		fmt.Fprintf(b, "db=%s folder=%s state=%s device=%q include=%q exclude=%q local=%q hints=%v sweep=%s max=%d standins=%v norekey=%v horizon=%s\n",
			c.DB, c.Folder, c.State, c.DeviceName, c.Include, c.Exclude, c.LocalColumns, c.Hints, c.SweepEvery, c.MaxChangeset, si, c.NoRekey, c.DeviceHorizon)
	}
}

func renderErr(err error) string {
	var ue *usageError
	return fmt.Sprintf("error usage=%v help=%v: %s\n", errors.As(err, &ue), errors.Is(err, pflag.ErrHelp), err)
}

// lineDiff lists the lines of want and got that differ, by position.
func lineDiff(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	var b strings.Builder
	for i := range max(len(w), len(g)) {
		var wl, gl string
		if i < len(w) {
			wl = w[i]
		}
		if i < len(g) {
			gl = g[i]
		}
		if wl != gl {
			fmt.Fprintf(&b, "line %d\n- %s\n+ %s\n", i+1, wl, gl)
		}
	}
	return b.String()
}
