package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
)

// Tests that drive the real apps by their own commands, two devices
// syncing through `rowdrop sync`: calibre (calibredb) and buku, from
// Debian; they skip when the app is not installed (.ci/run installs it).

// Read before TestMain clears ROWDROP_* (they would steer the binary).
var (
	appTests      = os.Getenv("ROWDROP_APP_TESTS") == "1"
	identityMerge = os.Getenv("ROWDROP_IDENTITY_MERGE") != ""
)

// appDevice is a device whose database an app made.
func appDevice(t *testing.T, db, folder, name string) *device {
	return &device{name: name, db: db, state: filepath.Join(t.TempDir(), "state"), folder: folder}
}

func need(t *testing.T, cmd string) {
	t.Helper()
	if _, err := exec.LookPath(cmd); err != nil {
		t.Skipf("%s is not installed (apt-get install %s)", cmd, cmd)
	}
}

// appRun runs an app's command and returns its stdout.
func appRun(t *testing.T, env []string, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdin = strings.NewReader("")
	out, err := cmd.Output()
	if err != nil {
		stderr := ""
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = string(ee.Stderr)
		}
		t.Fatalf("%s %s: %v\n%s\n%s", name, strings.Join(args, " "), err, out, stderr)
	}
	return string(out)
}

type calibreBook struct {
	ID      int      `json:"id"`
	Title   string   `json:"title"`
	UUID    string   `json:"uuid"`
	Authors string   `json:"authors"`
	Tags    []string `json:"tags"`
	Series  string   `json:"series"`
	Sort    string   `json:"template"`
}

type calibreLib struct {
	dir string
	env []string
}

func (l calibreLib) db(t *testing.T, args ...string) string {
	t.Helper()
	return appRun(t, l.env, "calibredb", append([]string{"--with-library", l.dir}, args...)...)
}

// list is `calibredb list`, by title.
func (l calibreLib) list(t *testing.T) map[string]calibreBook {
	t.Helper()
	out := l.db(t, "list", "--fields", "title,uuid,authors,tags,series,template", "--template", "{sort}", "--for-machine")
	var books []calibreBook
	if err := json.Unmarshal([]byte(out), &books); err != nil {
		t.Fatalf("calibredb list: %v\n%s", err, out)
	}
	m := map[string]calibreBook{}
	for _, b := range books {
		m[b.Title] = b
	}
	return m
}

func TestCalibreTwoLibraries(t *testing.T) {
	need(t, "calibredb")
	folder := t.TempDir()
	env := []string{"CALIBRE_CONFIG_DIRECTORY=" + t.TempDir(), "HOME=" + t.TempDir()}
	libA := calibreLib{filepath.Join(t.TempDir(), "A"), env}
	libB := calibreLib{filepath.Join(t.TempDir(), "B"), env}
	libA.db(t, "add", "--empty", "--title", "The Hobbit", "--authors", "J. R. R. Tolkien", "--tags", "fantasy,classic", "--series", "Middle-earth")
	libB.db(t, "list") // creates B's empty library
	a := appDevice(t, filepath.Join(libA.dir, "metadata.db"), folder, "a")
	b := appDevice(t, filepath.Join(libB.dir, "metadata.db"), folder, "b")
	a.sync(t)
	b.sync(t)
	if got := b.status(t)["app"]; got != "calibre" {
		t.Fatalf("status names app %v, want calibre", got)
	}

	want := libA.list(t)["The Hobbit"]
	got, found := libB.list(t)["The Hobbit"]
	if !found {
		t.Fatalf("calibredb list on B lacks The Hobbit: %v", libB.list(t))
	}
	if got.UUID != want.UUID || got.Sort != "Hobbit, The" || got.Sort != want.Sort || got.Authors != want.Authors || got.Series != want.Series {
		t.Fatalf("on B: %+v, on A: %+v (want the same uuid, title sort Hobbit, The)", got, want)
	}
	sort.Strings(got.Tags)
	if strings.Join(got.Tags, ",") != "classic,fantasy" {
		t.Fatalf("tags on B: %v", got.Tags)
	}

	// Edits the other way: a book added on B gets calibre's title sort on
	// A (the trigger's title_sort runs there through the stand-in).
	libB.db(t, "add", "--empty", "--title", "A Wizard of Earthsea", "--authors", "Ursula K. Le Guin", "--tags", "fantasy")
	b.sync(t)
	a.sync(t)
	w, found := libA.list(t)["A Wizard of Earthsea"]
	if !found || w.Sort != "Wizard of Earthsea, A" || w.Authors != "Ursula K. Le Guin" || w.UUID != libB.list(t)["A Wizard of Earthsea"].UUID {
		t.Fatalf("on A: %+v (found %v), want title sort Wizard of Earthsea, A and B's uuid", w, found)
	}

	// Offline on both: each adds a book under the same next id.
	libA.db(t, "add", "--empty", "--title", "Dune", "--authors", "Frank Herbert", "--tags", "scifi")
	libB.db(t, "add", "--empty", "--title", "Solaris", "--authors", "Stanislaw Lem", "--tags", "classic-scifi")
	a.sync(t)
	b.sync(t)
	a.sync(t)
	for _, lib := range []calibreLib{libA, libB} {
		books := lib.list(t)
		if books["Dune"].Authors != "Frank Herbert" || books["Solaris"].Authors != "Stanislaw Lem" ||
			strings.Join(books["Dune"].Tags, ",") != "scifi" || strings.Join(books["Solaris"].Tags, ",") != "classic-scifi" {
			t.Fatalf("%s after an offline id clash: %+v", lib.dir, books)
		}
	}

	// A delete syncs.
	libA.db(t, "remove", itoa(libA.list(t)["The Hobbit"].ID))
	a.sync(t)
	b.sync(t)
	if _, still := libB.list(t)["The Hobbit"]; still {
		t.Fatalf("The Hobbit deleted on A is still listed on B")
	}

	// Each library keeps its own library_id.
	idA := queryStrings(t, a.db, "SELECT uuid FROM library_id")
	idB := queryStrings(t, b.db, "SELECT uuid FROM library_id")
	if len(idA) != 1 || len(idB) != 1 || idA[0] == idB[0] {
		t.Fatalf("library_id uuids: A %v, B %v (want one each, different)", idA, idB)
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

// buku is one device's buku, its database in its own data directory.
type buku struct{ env []string }

func (b buku) run(t *testing.T, args ...string) string {
	t.Helper()
	return appRun(t, b.env, "buku", append([]string{"--nostdin", "--tacit", "--np"}, args...)...)
}

// titles reads buku's bookmarks as URL -> title.
func (b buku) titles(t *testing.T) map[string]string {
	t.Helper()
	var marks []struct {
		URI   string `json:"uri"`
		Title string `json:"title"`
	}
	out := b.run(t, "-p", "-j")
	if err := json.Unmarshal([]byte(out), &marks); err != nil {
		t.Fatalf("buku -p -j: %v\n%s", err, out)
	}
	m := map[string]string{}
	for _, x := range marks {
		m[x.URI] = x.Title
	}
	return m
}

func newBuku(t *testing.T, folder, name string) (buku, *device) {
	data := t.TempDir()
	b := buku{env: []string{"XDG_DATA_HOME=" + data, "HOME=" + t.TempDir()}}
	return b, appDevice(t, filepath.Join(data, "buku", "bookmarks.db"), folder, name)
}

func TestBukuRenumberedIDs(t *testing.T) {
	need(t, "buku")
	folder := t.TempDir()
	ba, a := newBuku(t, folder, "a")
	bb, b := newBuku(t, folder, "b")
	for _, u := range []string{"https://one.example/", "https://two.example/", "https://three.example/"} {
		ba.run(t, "-a", u, "--title", "title of "+u)
	}
	bb.run(t, "-p") // creates B's database
	a.sync(t)
	b.sync(t)
	if got := b.status(t)["app"]; got != "buku" {
		t.Fatalf("status names app %v, want buku", got)
	}
	if got := bb.titles(t); len(got) != 3 {
		t.Fatalf("B after the first sync: %v", got)
	}
	// Matching rows by URL is the identity merge of #15 (natkey's part);
	// until it lands, merging by the renumbered id loses B's title.
	if !identityMerge {
		t.Skip("identity by natural key is not merged yet: set ROWDROP_IDENTITY_MERGE=1 to run the renumbering case")
	}
	// A deletes the first bookmark: buku moves the last one (three) into
	// its id. B, meanwhile, retitles three.
	ba.run(t, "-d", "1")
	bb.run(t, "-u", "3", "--title", "retitled on B")
	a.sync(t)
	b.sync(t)
	a.sync(t)
	for name, bk := range map[string]buku{"a": ba, "b": bb} {
		got := bk.titles(t)
		if got["https://three.example/"] != "retitled on B" || got["https://two.example/"] != "title of https://two.example/" {
			t.Errorf("device %s: %v (want B's new title on three, two untouched)", name, got)
		}
		if _, still := got["https://one.example/"]; still {
			t.Errorf("device %s: one deleted on A is still there: %v", name, got)
		}
	}
}

// joplin is one Joplin terminal client profile. The client comes from npm
// and takes minutes to install, so its test runs only with
// ROWDROP_APP_TESTS=1 and JOPLIN_DIR naming the folder where
//
//	echo '{"name":"j","private":true,"overrides":{"@joplin/renderer":"3.5.1","@joplin/lib":"3.5.1","@joplin/utils":"3.5.1"}}' > package.json
//	npm install joplin@3.5.1     # needs libsecret-1-dev
//
// ran.
type joplin struct{ dir, profile string }

func (j joplin) run(t *testing.T, args ...string) string {
	t.Helper()
	return appRun(t, nil, "node", append([]string{filepath.Join(j.dir, "node_modules", "joplin", "main.js"), "--profile", j.profile}, args...)...)
}

// search runs Joplin's own search engine (testdata/joplin-search.js): it
// indexes what item_changes logged since its last run, as the app does.
func (j joplin) search(t *testing.T, pattern string) []string {
	t.Helper()
	script, err := filepath.Abs("testdata/joplin-search.js")
	if err != nil {
		t.Fatal(err)
	}
	out := appRun(t, nil, "node", script, filepath.Join(j.dir, "node_modules", "joplin", "main.js"), j.profile, pattern)
	var titles []string
	if err := json.Unmarshal([]byte(lastLine(out)), &titles); err != nil {
		t.Fatalf("joplin search %q: %v\n%s", pattern, err, out)
	}
	return titles
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}

func TestJoplinTwoProfiles(t *testing.T) {
	if !appTests || os.Getenv("JOPLIN_DIR") == "" {
		t.Skip("set ROWDROP_APP_TESTS=1 and JOPLIN_DIR (see the joplin type) to drive the Joplin terminal client")
	}
	need(t, "node")
	folder := t.TempDir()
	ja := joplin{os.Getenv("JOPLIN_DIR"), filepath.Join(t.TempDir(), "A")}
	jb := joplin{os.Getenv("JOPLIN_DIR"), filepath.Join(t.TempDir(), "B")}
	ja.run(t, "mkbook", "travel")
	ja.run(t, "use", "travel")
	ja.run(t, "mknote", "packing list")
	ja.run(t, "set", "packing list", "body", "passport and zebra socks")
	ja.run(t, "tag", "add", "todo", "packing list")
	// B has run and indexed its (empty) notes: from now on its search
	// engine reads only item_changes, as a profile in use does.
	if got := jb.search(t, "zebra"); len(got) != 0 {
		t.Fatalf("B found %v before any sync", got)
	}
	a := appDevice(t, filepath.Join(ja.profile, "database.sqlite"), folder, "a")
	b := appDevice(t, filepath.Join(jb.profile, "database.sqlite"), folder, "b")
	a.sync(t)
	b.sync(t)
	if got := b.status(t)["app"]; got != "joplin" {
		t.Fatalf("status names app %v, want joplin", got)
	}
	jb.run(t, "use", "travel")
	if out := jb.run(t, "ls"); !strings.Contains(out, "packing list") {
		t.Fatalf("joplin ls on B: %q", out)
	}
	if out := jb.run(t, "tag", "list", "todo"); !strings.Contains(out, "packing list") {
		t.Fatalf("joplin tag list todo on B: %q", out)
	}
	if got := jb.search(t, "zebra"); !slices.Equal(got, []string{"packing list"}) {
		t.Fatalf("Joplin's search on B finds %v for a note written on A", got)
	}

	// The other way: B retitles the note and writes a new one.
	jb.run(t, "set", "packing list", "title", "packing list v2")
	jb.run(t, "mknote", "hotel")
	jb.run(t, "set", "hotel", "body", "booked near the quay")
	b.sync(t)
	a.sync(t)
	if out := ja.run(t, "ls"); !strings.Contains(out, "packing list v2") || !strings.Contains(out, "hotel") {
		t.Fatalf("joplin ls on A: %q", out)
	}
	if got := ja.search(t, "quay"); !slices.Equal(got, []string{"hotel"}) {
		t.Fatalf("Joplin's search on A finds %v for a note written on B", got)
	}

	// A note deleted on A leaves B's list and search.
	ja.run(t, "rmnote", "-f", "-p", "hotel")
	a.sync(t)
	b.sync(t)
	if out := jb.run(t, "ls"); strings.Contains(out, "hotel") {
		t.Fatalf("joplin ls on B after the delete: %q", out)
	}
	if got := jb.search(t, "quay"); len(got) != 0 {
		t.Fatalf("Joplin's search on B still finds %v after the delete", got)
	}

	// Each profile keeps its own clientId.
	ida := queryStrings(t, a.db, "SELECT value FROM settings WHERE key = 'clientId'")
	idb := queryStrings(t, b.db, "SELECT value FROM settings WHERE key = 'clientId'")
	if len(ida) != 1 || len(idb) != 1 || ida[0] == idb[0] {
		t.Fatalf("clientIds: A %v, B %v (want one each, different)", ida, idb)
	}
}

func TestInspectCommand(t *testing.T) {
	db, err := filepath.Abs("../../internal/inspect/testdata/calibre.db")
	if err != nil {
		t.Fatal(err)
	}
	r := ok(t, "inspect", "--db", db, "--json")
	var rep struct {
		App    string `json:"app"`
		Tables []struct{ Name, Action string }
	}
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
		t.Fatalf("inspect --json: %v\n%s", err, r.stdout)
	}
	if rep.App != "calibre" || len(rep.Tables) < 20 {
		t.Fatalf("inspect --json: %+v", rep)
	}
	if r := ok(t, "inspect", "--db", db); !strings.Contains(r.stdout, "library_id") || !strings.Contains(r.stdout, "config snippet") {
		t.Fatalf("inspect: %s", r.stdout)
	}
	if r := exits(t, 2, "inspect"); !strings.Contains(r.stderr, "--db is required") {
		t.Fatalf("inspect without --db: %s", r.stderr)
	}
	if r := exits(t, 2, "inspect", "--db", db, "--app", "nosuch"); !strings.Contains(r.stderr, "no such profile") {
		t.Fatalf("inspect --app nosuch: %s", r.stderr)
	}
}

// The same URL added on both devices: one bookmark stays, the other's
// values are in the conflict log.
func TestBukuSameURLOnBoth(t *testing.T) {
	need(t, "buku")
	folder := t.TempDir()
	ba, a := newBuku(t, folder, "a")
	bb, b := newBuku(t, folder, "b")
	ba.run(t, "-a", "https://shared.example/", "--title", "from A")
	bb.run(t, "-a", "https://shared.example/", "--title", "from B")
	a.sync(t)
	b.sync(t)
	a.sync(t)
	for name, bk := range map[string]buku{"a": ba, "b": bb} {
		got := bk.titles(t)
		if len(got) != 1 || (got["https://shared.example/"] != "from A" && got["https://shared.example/"] != "from B") {
			t.Errorf("device %s: %v (want one bookmark)", name, got)
		}
	}
	if ba.titles(t)["https://shared.example/"] != bb.titles(t)["https://shared.example/"] {
		t.Errorf("the devices disagree: %v, %v", ba.titles(t), bb.titles(t))
	}
	r := ok(t, append([]string{"conflicts", "--json"}, b.flags()...)...)
	r2 := ok(t, append([]string{"conflicts", "--json"}, a.flags()...)...)
	if !strings.Contains(r.stdout+r2.stdout, "from ") {
		t.Errorf("the losing title is in neither conflict log:\nB: %s\nA: %s", r.stdout, r2.stdout)
	}
}
