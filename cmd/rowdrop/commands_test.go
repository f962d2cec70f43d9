package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/spf13/cobra"
)

// commandPaths lists every command of the tree as its arguments
// (["conflicts", "show"]), hidden ones included.
func commandPaths(c *cobra.Command, prefix []string) [][]string {
	var out [][]string
	for _, sub := range c.Commands() {
		p := append(slices.Clone(prefix), sub.Name())
		out = append(out, p)
		out = append(out, commandPaths(sub, p)...)
	}
	return out
}

// Every command answers --help on stdout, exit 0, with its description,
// its synopsis and its examples; rowdrop's own commands all have them.
func TestEveryCommandHasHelp(t *testing.T) {
	root := newRootCmd(&app{})
	paths := commandPaths(root, nil)
	if len(paths) < 15 {
		t.Fatalf("only %d commands in the tree: %q", len(paths), paths)
	}
	for _, p := range paths {
		c, _, err := root.Find(p)
		if err != nil {
			t.Fatalf("%q: %v", p, err)
		}
		// cobra's own: help, completion and its shells.
		ours := p[0] != "help" && p[0] != "completion"
		if ours && (c.Short == "" || c.Long == "" || c.Example == "") {
			t.Errorf("rowdrop %s lacks a Short, Long or Example", strings.Join(p, " "))
		}
		r := ok(t, append(p, "--help")...)
		if r.stderr != "" {
			t.Errorf("rowdrop %s --help wrote on stderr: %q", strings.Join(p, " "), r.stderr)
		}
		want := []string{"Usage:", "rowdrop " + strings.Join(p, " ")}
		if ours {
			want = append(want, strings.SplitN(c.Long, "\n", 2)[0], "Examples:", strings.SplitN(strings.TrimSpace(c.Example), "\n", 2)[0])
		}
		for _, w := range want {
			if !strings.Contains(r.stdout, w) {
				t.Errorf("rowdrop %s --help lacks %q:\n%s", strings.Join(p, " "), w, r.stdout)
			}
		}
		// -h is the same.
		if h := ok(t, append(p, "-h")...); h.stdout != r.stdout {
			t.Errorf("rowdrop %s -h differs from --help", strings.Join(p, " "))
		}
	}
	// Pair commands list the pair flags in their help, double-dash.
	for _, name := range []string{"sync", "watch", "status", "conflicts", "restore", "snapshot", "devices", "gc", "adopt", "revert"} {
		r := ok(t, name, "--help")
		for _, f := range []string{"--db", "--folder", "--state", "--device", "--config", "--create-folder"} {
			if !strings.Contains(r.stdout, f+" ") {
				t.Errorf("rowdrop %s --help does not list %s", name, f)
			}
		}
	}
	if r := ok(t, "conflicts", "show", "--help"); !strings.Contains(r.stdout, "--db ") || !strings.Contains(r.stdout, "--json") {
		t.Errorf("conflicts show --help does not list the pair flags and --json:\n%s", r.stdout)
	}
	if r := ok(t, "watch", "--help"); !strings.Contains(r.stdout, "--debounce duration") || !strings.Contains(r.stdout, "(default 300ms)") {
		t.Errorf("watch --help does not list --debounce with its default:\n%s", r.stdout)
	}
	// `rowdrop help sync` is `rowdrop sync --help`.
	if a, b := ok(t, "help", "sync").stdout, ok(t, "sync", "--help").stdout; a != b {
		t.Errorf("rowdrop help sync differs from rowdrop sync --help")
	}
}

// `rowdrop completion bash`, sourced in bash, completes subcommands,
// their subcommands and flags (through the binary's hidden __complete).
func TestCompletionBash(t *testing.T) {
	if _, err := exec.LookPath("bash"); err != nil {
		t.Skip("no bash on this machine")
	}
	dir := t.TempDir()
	script := filepath.Join(dir, "rowdrop.bash")
	if err := os.WriteFile(script, []byte(ok(t, "completion", "bash").stdout), 0o644); err != nil {
		t.Fatal(err)
	}
	complete := func(line string) []string {
		t.Helper()
		// COMP_WORDS as bash fills them for the line, with the word under
		// the cursor last ("" after a space).
		words := strings.Fields(line)
		if strings.HasSuffix(line, " ") {
			words = append(words, "")
		}
		quoted := make([]string, len(words))
		for i, w := range words {
			quoted[i] = "'" + w + "'"
		}
		// The script uses bash-completion's _get_comp_words_by_ref, which
		// every distribution's bash-completion package provides; without
		// the package, a minimal stand-in for a line without quotes.
		sh := `compopt() { :; } # the builtin works only inside a completion
if [ -r /usr/share/bash-completion/bash_completion ]; then
  source /usr/share/bash-completion/bash_completion
else
  _get_comp_words_by_ref() {
    words=("${COMP_WORDS[@]}"); cword=$COMP_CWORD
    cur=${COMP_WORDS[COMP_CWORD]}; prev=${COMP_WORDS[COMP_CWORD-1]}
  }
fi
source "$1"
complete -p rowdrop
COMP_WORDS=(` + strings.Join(quoted, " ") + `)
COMP_CWORD=$((${#COMP_WORDS[@]} - 1))
COMP_LINE="$2"
COMP_POINT=${#COMP_LINE}
__start_rowdrop rowdrop "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD-1]}"
printf 'reply:%s\n' "${COMPREPLY[@]}"
`
		cmd := exec.Command("bash", "--norc", "--noprofile", "-c", sh, "bash", script, line)
		cmd.Env = append(os.Environ(), "PATH="+filepath.Dir(bin)+string(os.PathListSeparator)+os.Getenv("PATH"))
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("completing %q: %v\n%s", line, err, out)
		}
		if !strings.Contains(string(out), "complete ") || !strings.Contains(string(out), "__start_rowdrop") {
			t.Fatalf("completion bash did not register __start_rowdrop for rowdrop:\n%s", out)
		}
		var reply []string
		for _, l := range strings.Split(string(out), "\n") {
			if r, ok := strings.CutPrefix(l, "reply:"); ok && r != "" {
				reply = append(reply, strings.TrimSpace(r))
			}
		}
		return reply
	}
	if got := complete("rowdrop s"); !slices.Contains(got, "sync") || !slices.Contains(got, "status") || !slices.Contains(got, "snapshot") || slices.Contains(got, "watch") {
		t.Errorf("rowdrop s<TAB> = %q, want sync, status, snapshot", got)
	}
	if got := complete("rowdrop "); !slices.Contains(got, "watch") || !slices.Contains(got, "conflicts") || slices.Contains(got, "man") {
		t.Errorf("rowdrop <TAB> = %q, want every visible command", got)
	}
	if got := complete("rowdrop conflicts s"); !slices.Contains(got, "show") {
		t.Errorf("rowdrop conflicts s<TAB> = %q, want show", got)
	}
	if got := complete("rowdrop sync --fo"); !slices.Contains(got, "--folder") {
		t.Errorf("rowdrop sync --fo<TAB> = %q, want --folder", got)
	}
	if got := complete("rowdrop demo --touch "); !slices.Equal(got, []string{"always", "when"}) {
		t.Errorf("rowdrop demo --touch <TAB> = %q, want always, when", got)
	}
	// The other shells' scripts are there too.
	for _, sh := range []string{"zsh", "fish", "powershell"} {
		if r := ok(t, "completion", sh); !strings.Contains(r.stdout, "rowdrop") {
			t.Errorf("completion %s printed no script", sh)
		}
	}
}

// `rowdrop man DIR` writes a page per command, from the same definitions
// as --help.
func TestManPages(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "man1")
	ok(t, "man", dir)
	root := newRootCmd(&app{})
	sync, _, _ := root.Find([]string{"sync"})
	for page, want := range map[string][]string{
		"rowdrop.1":                 {`.TH "ROWDROP" "1"`, "Exit status", "rowdrop-sync(1)"},
		"rowdrop-sync.1":            {"--folder", "--confirm-mass-change", "EXAMPLE", strings.SplitN(sync.Long, "\n", 2)[0]},
		"rowdrop-conflicts-show.1":  {"one entry of the conflict log"},
		"rowdrop-devices-forget.1":  {"gone for good"},
		"rowdrop-completion-bash.1": {"bash"},
		"rowdrop-watch.1":           {"--debounce"},
	} {
		b, err := os.ReadFile(filepath.Join(dir, page))
		if err != nil {
			t.Errorf("man page %s: %v", page, err)
			continue
		}
		for _, w := range want {
			if !strings.Contains(string(b), w) {
				t.Errorf("man page %s lacks %q", page, w)
			}
		}
	}
	// The pages are valid troff: groff renders every one without a warning.
	if _, err := exec.LookPath("groff"); err == nil {
		pages, _ := filepath.Glob(filepath.Join(dir, "*.1"))
		if len(pages) < 20 {
			t.Errorf("only %d man pages: %q", len(pages), pages)
		}
		for _, page := range pages {
			out, err := exec.Command("groff", "-man", "-Tutf8", "-z", "-ww", page).CombinedOutput()
			if err != nil || len(out) > 0 {
				t.Errorf("groff %s: %v\n%s", filepath.Base(page), err, out)
			}
		}
	}
	// Hidden commands get no page.
	if _, err := os.Stat(filepath.Join(dir, "rowdrop-man.1")); err == nil {
		t.Errorf("the hidden man command has a page")
	}
	exits(t, 2, "man")
}

// `rowdrop version` and `rowdrop --version` print the same line.
func TestVersionCommand(t *testing.T) {
	a, b := ok(t, "--version").stdout, ok(t, "version").stdout
	if a != b || !strings.HasPrefix(a, "rowdrop ") || !strings.Contains(a, "revision") {
		t.Errorf("--version %q, version %q", a, b)
	}
}
