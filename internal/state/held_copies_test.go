package state

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// A held copy stays while a part names it and is recorded; an unrecorded
// one (an import cut short before its commit) and one whose last part
// went are swept; a changed byte is ErrHeldCopyDamaged, naming the copy.
func TestHeldCopyLifecycle(t *testing.T) {
	d := openDir(t)
	list := func() []string {
		ents, _ := os.ReadDir(d.HeldCopyDir())
		var out []string
		for _, e := range ents {
			out = append(out, e.Name())
		}
		return out
	}
	const rel1, rel2 = "devaaaaaaaaaaaaa/0000000001.rdc", "devaaaaaaaaaaaaa/0000000002.rdc"
	c1, err := d.WriteHeldCopy(rel1, strings.NewReader("file one"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.WriteHeldCopy(rel2, strings.NewReader("file two")); err != nil {
		t.Fatal(err)
	}
	if err := d.HoldPart(HeldPart{Dev: "devaaaaaaaaaaaaa", Table: "notes", Seq: 1, Path: rel1, Kind: PartHeld, Reason: "r"}); err != nil {
		t.Fatal(err)
	}
	if err := d.RecordHeldCopy(c1); err != nil {
		t.Fatal(err)
	}
	// rel2's copy was never recorded: swept.
	if err := d.SweepHeldCopies(); err != nil {
		t.Fatal(err)
	}
	if got := list(); !slices.Equal(got, []string{filepath.Base(c1.File)}) {
		t.Fatalf("after the sweep: %v, want only %s", got, filepath.Base(c1.File))
	}
	cs, err := d.HeldCopies()
	if err != nil || cs[rel1] != c1 {
		t.Fatalf("recorded copies: %+v (%v), want %+v", cs, err, c1)
	}
	if err := CheckHeldCopy(c1); err != nil {
		t.Fatalf("intact copy: %v", err)
	}
	if n, b, err := d.HeldCopyUsage(); err != nil || n != 1 || b != int64(len("file one")) {
		t.Fatalf("usage: %d files, %d bytes, %v", n, b, err)
	}
	if err := os.WriteFile(c1.File, []byte("file 0ne"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := CheckHeldCopy(c1); !errors.Is(err, ErrHeldCopyDamaged) || !strings.Contains(err.Error(), c1.File) {
		t.Fatalf("damaged copy: %v, want ErrHeldCopyDamaged naming %s", err, c1.File)
	}
	// The last part goes: so do the record and, at the sweep, the file.
	if err := d.ReleasePart("devaaaaaaaaaaaaa", "notes", 1); err != nil {
		t.Fatal(err)
	}
	if err := d.SweepHeldCopies(); err != nil {
		t.Fatal(err)
	}
	if cs, _ := d.HeldCopies(); len(cs) != 0 || len(list()) != 0 {
		t.Fatalf("after the last part went: records %v, files %v", cs, list())
	}
}
