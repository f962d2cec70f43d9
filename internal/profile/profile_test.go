package profile

import (
	"slices"
	"testing"
)

func TestBuiltinProfilesParse(t *testing.T) {
	all, err := Builtin()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, p := range all {
		names = append(names, p.Name)
	}
	if !slices.Equal(names, []string{"buku", "calibre", "joplin"}) {
		t.Fatalf("profiles %v", names)
	}
}

func TestParseRefusesUnknownKeys(t *testing.T) {
	if _, err := Parse([]byte("name: x\ndetect: {t: [a]}\nexlude: [y]\n")); err == nil {
		t.Fatal("a misspelt key was accepted")
	}
}

// The user's include brings back a table the profile excludes; what this
// version of the app lacks is dropped; the user's maps win per key.
func TestUnder(t *testing.T) {
	p := &Profile{Name: "x", Exclude: []string{"settings", "gone"}, LocalColumns: []string{"notes.path", "gone.c"},
		StandIns: map[string]string{"f": "identity"}, AfterApply: map[string]string{"notes": "A", "gone": "B"}}
	cols := Columns{"notes": {"id": true, "path": true}, "settings": {"k": true}}
	u := p.Under(User{}, cols)
	if !slices.Equal(u.Exclude, []string{"settings"}) || !slices.Equal(u.LocalColumns, []string{"notes.path"}) || len(u.AfterApply) != 1 {
		t.Fatalf("profile alone: %+v", u)
	}
	u = p.Under(User{Include: []string{"settings", "notes"}, Exclude: []string{"other"}, StandIns: map[string]string{"f": "null"}}, cols)
	if len(u.Exclude) != 1 || u.Exclude[0] != "other" || u.StandIns["f"] != "null" {
		t.Fatalf("under the user's: %+v", u)
	}
}

func TestDetect(t *testing.T) {
	all, err := Builtin()
	if err != nil {
		t.Fatal(err)
	}
	buku := Columns{"bookmarks": {"id": true, "url": true, "metadata": true, "tags": true, "desc": true, "flags": true, "new_in_v9": true}}
	if p := Detect(all, buku); p == nil || p.Name != "buku" {
		t.Fatalf("buku with an extra column: %v", p)
	}
	delete(buku["bookmarks"], "flags")
	if p := Detect(all, buku); p != nil {
		t.Fatalf("a bookmarks table without buku's columns: %v", p.Name)
	}
}
