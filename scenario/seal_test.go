package scenario_test

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/rowdrop/rowdrop"
	"github.com/rowdrop/rowdrop/scenario"
)

const sealSchema = `CREATE TABLE secretnotes_tbl(id TEXT PRIMARY KEY, secretcol_title TEXT, body TEXT);`

// sealedPair is two devices with encryption on and one synced row each way.
func sealedPair(t *testing.T) (*scenario.World, *scenario.Device, *scenario.Device) {
	w := scenario.NewWorld(t, sealSchema)
	a := w.AddDevice(scenario.Options{Name: "a", Initialised: true})
	b := w.AddDevice(scenario.Options{Name: "b", Initialised: true})
	w.Seal()
	return w, a, b
}

// walk returns every regular file under dir.
func walk(t *testing.T, dir string) map[string][]byte {
	out := map[string][]byte{}
	filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
		if err == nil && info.Mode().IsRegular() {
			data, _ := os.ReadFile(p)
			out[p] = data
		}
		return nil
	})
	return out
}

// With a key set, no file in the folder holds a synced value, a table
// name or a column name, and the rows still arrive.
func TestSealedFolderHidesContent(t *testing.T) {
	w, a, b := sealedPair(t)
	a.Exec(`INSERT INTO secretnotes_tbl VALUES('id-MARKERID', 'MARKER-TITLE-7f3a', 'MARKER-BODY-99c1')`)
	a.Sync()
	w.Mirror(a, b)
	b.Import()
	if got := b.Value(`SELECT body FROM secretnotes_tbl WHERE id='id-MARKERID'`); got != "MARKER-BODY-99c1" {
		t.Fatalf("b did not get the row through the sealed folder: %q", got)
	}
	b.Exec(`UPDATE secretnotes_tbl SET body='MARKER-EDIT-b2' WHERE id='id-MARKERID'`)
	b.Sync()
	b.Snapshot()
	b.S.WriteAck(true)
	w.Mirror(b, a)
	a.Import()
	if got := a.Value(`SELECT body FROM secretnotes_tbl WHERE id='id-MARKERID'`); got != "MARKER-EDIT-b2" {
		t.Fatalf("a did not get b's edit: %q", got)
	}
	files := 0
	for _, dev := range []*scenario.Device{a, b} {
		for p, data := range walk(t, dev.Folder) {
			files++
			for _, m := range []string{"MARKER", "secretnotes_tbl", "secretcol_title", "MARKERID", "body"} {
				if bytes.Contains(data, []byte(m)) {
					t.Errorf("%s contains %q", p, m)
				}
			}
		}
	}
	if files < 6 {
		t.Fatalf("only %d files in the folders: the test saw too little", files)
	}
}

// The wrong passphrase fails cleanly and leaves no key behind.
func TestSealWrongPassphrase(t *testing.T) {
	w := scenario.NewWorld(t, sealSchema)
	a := w.AddDevice(scenario.Options{Name: "a", Initialised: true})
	w.Seal()
	b := w.AddDevice(scenario.Options{Name: "b"})
	_ = b
	c := w.AddDevice(scenario.Options{Name: "c"})
	// c drops its key and tries again with a wrong passphrase.
	c.S.Close()
	c.S = nil
	os.Remove(filepath.Join(c.State, "seal.json"))
	cfg := c.Config()
	cfg.Passphrase = []byte("wrong")
	_, err := rowdrop.Open(t.Context(), cfg)
	if err == nil || !strings.Contains(err.Error(), "wrong passphrase") {
		t.Fatalf("open with a wrong passphrase: %v", err)
	}
	if _, err := os.Stat(filepath.Join(c.State, "seal.json")); err == nil {
		t.Fatal("a wrong passphrase left a key in the state directory")
	}
	cfg.Passphrase = nil
	if _, err := rowdrop.Open(t.Context(), cfg); err == nil || !strings.Contains(err.Error(), "rowdrop key unlock") {
		t.Fatalf("open without the key: %v", err)
	}
	_ = a
}

// fileStatus is what dev reports of the file rel ("" if nothing).
func fileStatus(d *scenario.Device, rel string) string {
	for _, f := range d.Status().Files {
		if f.Path == rel {
			return f.Status + ": " + f.Reason
		}
	}
	return ""
}

// A bit flipped anywhere in a sealed file makes it refused and
// reported; other devices' files still apply, and the file applies once
// it is whole again (with the same device's later ones).
func TestSealBitFlipRefused(t *testing.T) {
	w := scenario.NewWorld(t, sealSchema)
	a := w.AddDevice(scenario.Options{Name: "a", Initialised: true})
	b := w.AddDevice(scenario.Options{Name: "b", Initialised: true})
	c := w.AddDevice(scenario.Options{Name: "c", Initialised: true})
	w.Seal()
	w.MirrorAll()
	a.Import()
	b.Exec(`INSERT INTO secretnotes_tbl VALUES('b1', 'from b', 'x')`)
	b.Sync()
	seq := b.Published()[len(b.Published())-1]
	orig, err := os.ReadFile(b.FilePath(seq))
	if err != nil {
		t.Fatal(err)
	}
	rel := b.ID + "/" + filepath.Base(b.FilePath(seq))
	dst := filepath.Join(a.Folder, filepath.FromSlash(rel))
	os.MkdirAll(filepath.Dir(dst), 0o755)
	n := 0
	for pos := 0; pos < len(orig); pos += max(1, len(orig)/23) {
		for _, p := range []int{pos, len(orig) - 1 - pos%7} {
			bad := bytes.Clone(orig)
			bad[p] ^= 0x10
			os.Remove(dst)
			os.WriteFile(dst, bad, 0o644)
			c.Exec(`INSERT OR REPLACE INTO secretnotes_tbl VALUES('c1', 'from c', ?)`, p)
			c.Sync()
			w.DeliverAll(c, a)
			a.Import()
			if got := a.Value(`SELECT count(*) FROM secretnotes_tbl WHERE id='b1'`); got != "0" {
				t.Fatalf("byte %d flipped: the row of the damaged file reached the database", p)
			}
			if got := a.Value(`SELECT body FROM secretnotes_tbl WHERE id='c1'`); got != strconv.Itoa(p) {
				t.Fatalf("byte %d flipped: c's file did not apply behind it (body %q)", p, got)
			}
			if st := fileStatus(a, rel); !strings.Contains(st, "refused") && !strings.HasPrefix(st, "broken") {
				t.Fatalf("byte %d flipped: not reported as refused: %q", p, st)
			}
			n++
		}
	}
	os.Remove(dst)
	os.WriteFile(dst, orig, 0o644)
	b.Exec(`INSERT INTO secretnotes_tbl VALUES('b2', 'later', 'y')`)
	b.Sync()
	w.DeliverAll(b, a)
	a.Import()
	if got := a.Value(`SELECT count(*) FROM secretnotes_tbl WHERE id IN ('b1','b2')`); got != "2" {
		t.Fatalf("the repaired file and the one after it did not apply: %s", got)
	}
	t.Logf("%d flipped bits refused", n)
}

// A valid file renamed to another sequence number, or moved into another
// device's directory, is refused.
func TestSealRenameRefused(t *testing.T) {
	w := scenario.NewWorld(t, sealSchema)
	a := w.AddDevice(scenario.Options{Name: "a", Initialised: true})
	b := w.AddDevice(scenario.Options{Name: "b", Initialised: true})
	c := w.AddDevice(scenario.Options{Name: "c", Initialised: true})
	w.Seal()
	w.MirrorAll()
	a.Import()
	applied := a.Value(`SELECT count(*) FROM secretnotes_tbl`)
	b.Exec(`INSERT INTO secretnotes_tbl VALUES('b1', 'one', 'x')`)
	b.Sync()
	b.Exec(`INSERT INTO secretnotes_tbl VALUES('b2', 'two', 'x')`)
	b.Sync()
	pub := b.Published()
	last := pub[len(pub)-1]
	// b's last file, under the name of its previous one.
	scenario.CopyFile(t, b.FilePath(last), filepath.Join(a.Folder, b.ID, filepath.Base(b.FilePath(last-1))))
	// b's last file, in c's directory under the number c uses next.
	cnext := uint64(len(c.Published()) + 1)
	scenario.CopyFile(t, b.FilePath(last), filepath.Join(a.Folder, c.ID, filepath.Base(c.FilePath(cnext))))
	for _, s := range pub[:len(pub)-2] {
		w.Deliver(b, s, a)
	}
	a.Import()
	if got := a.Value(`SELECT count(*) FROM secretnotes_tbl WHERE id IN ('b1','b2')`); got != "0" {
		t.Fatalf("a renamed file was applied (%s rows; %s before)", got, applied)
	}
	for _, rel := range []string{b.ID + "/" + filepath.Base(b.FilePath(last-1)), c.ID + "/" + filepath.Base(c.FilePath(cnext))} {
		if st := fileStatus(a, rel); !strings.Contains(st, "renamed") && !strings.Contains(st, "directory of") {
			t.Errorf("%s: not reported as renamed: %q", rel, st)
		}
	}
}

// A device that unlocked the key but was never approved writes files
// every approved device refuses.
func TestSealForgedRefused(t *testing.T) {
	w, a, _ := sealedPair(t)
	// x holds the passphrase (so the folder key) but is not approved.
	x := scenario.NewWorld(t, sealSchema).AddDevice(scenario.Options{Name: "x", Initialised: true})
	scenario.CopyFile(t, filepath.Join(a.Folder, ".rowdrop-key"), filepath.Join(x.Folder, ".rowdrop-key"))
	x.ReopenWith(func(c *rowdrop.Config) { c.Passphrase = scenario.TestPassphrase })
	x.Exec(`INSERT INTO secretnotes_tbl VALUES('forged', 'forged', 'x')`)
	x.Sync()
	for _, s := range x.Published() {
		scenario.CopyFile(t, x.FilePath(s), filepath.Join(a.Folder, x.ID, filepath.Base(x.FilePath(s))))
	}
	// Its request reaches the folder too, but nobody approved it.
	scenario.CopyDir(t, filepath.Join(x.Folder, ".rowdrop-trust"), filepath.Join(a.Folder, ".rowdrop-trust"))
	a.Import()
	if got := a.Value(`SELECT count(*) FROM secretnotes_tbl WHERE id='forged'`); got != "0" {
		t.Fatal("a file of a never-approved device was applied")
	}
	rel := x.ID + "/" + filepath.Base(x.FilePath(x.Published()[0]))
	if st := fileStatus(a, rel); !strings.Contains(st, "not approved") {
		t.Fatalf("%s: not reported as from an unapproved device: %q", rel, st)
	}
	_ = w
}

// A revoked device's later files are refused by every device; its
// earlier ones still apply where they had not yet.
func TestSealRevokedRefused(t *testing.T) {
	w := scenario.NewWorld(t, sealSchema)
	a := w.AddDevice(scenario.Options{Name: "a", Initialised: true})
	b := w.AddDevice(scenario.Options{Name: "b", Initialised: true})
	c := w.AddDevice(scenario.Options{Name: "c", Initialised: true})
	w.Seal()
	b.Exec(`INSERT INTO secretnotes_tbl VALUES('before', 'x', 'x')`)
	b.Sync()
	w.DeliverAll(b, a)
	a.Import()
	after, err := a.S.RevokeDevice(b.ID)
	if err != nil {
		t.Fatal(err)
	}
	w.ShareTrust()
	b.Exec(`INSERT INTO secretnotes_tbl VALUES('after', 'x', 'x')`)
	b.Sync()
	w.DeliverAll(b, a)
	w.DeliverAll(b, c)
	a.Import()
	c.Import()
	for _, d := range []*scenario.Device{a, c} {
		if got := d.Value(`SELECT count(*) FROM secretnotes_tbl WHERE id='after'`); got != "0" {
			t.Fatalf("%s applied a file of revoked device b", d.Name)
		}
		rel := b.ID + "/" + filepath.Base(b.FilePath(after+1))
		if st := fileStatus(d, rel); !strings.Contains(st, "revoked") {
			t.Fatalf("%s: %s not reported as revoked: %q", d.Name, rel, st)
		}
	}
	if got := c.Value(`SELECT count(*) FROM secretnotes_tbl WHERE id='before'`); got != "1" {
		t.Fatal("c refused b's file from before the revocation")
	}
	// c keeps working with a: revocation re-approved nobody wrongly.
	c.Exec(`INSERT INTO secretnotes_tbl VALUES('c-after', 'x', 'x')`)
	c.Sync()
	w.DeliverAll(c, a)
	a.Import()
	if got := a.Value(`SELECT count(*) FROM secretnotes_tbl WHERE id='c-after'`); got != "1" {
		t.Fatal("a refused c after revoking b")
	}
}

// A device's files refused before its approval apply once it is approved.
func TestSealApprovedLaterApplies(t *testing.T) {
	w, a, _ := sealedPair(t)
	x := scenario.NewWorld(t, sealSchema).AddDevice(scenario.Options{Name: "x", Initialised: true})
	scenario.CopyFile(t, filepath.Join(a.Folder, ".rowdrop-key"), filepath.Join(x.Folder, ".rowdrop-key"))
	x.ReopenWith(func(c *rowdrop.Config) { c.Passphrase = scenario.TestPassphrase })
	x.Exec(`INSERT INTO secretnotes_tbl VALUES('x1', 'early', 'x')`)
	x.Sync()
	for _, s := range x.Published() {
		scenario.CopyFile(t, x.FilePath(s), filepath.Join(a.Folder, x.ID, filepath.Base(x.FilePath(s))))
	}
	scenario.CopyDir(t, filepath.Join(x.Folder, ".rowdrop-trust"), filepath.Join(a.Folder, ".rowdrop-trust"))
	a.Import()
	if got := a.Value(`SELECT count(*) FROM secretnotes_tbl WHERE id='x1'`); got != "0" {
		t.Fatal("applied before approval")
	}
	info, err := x.S.KeyState()
	if err != nil {
		t.Fatal(err)
	}
	if err := a.S.ApproveDevice(x.ID, info.Fingerprint); err != nil {
		t.Fatal(err)
	}
	a.Import()
	if got := a.Value(`SELECT count(*) FROM secretnotes_tbl WHERE id='x1'`); got != "1" {
		t.Fatalf("x's file was not applied after its approval: %s", fileStatus(a, x.ID+"/"+filepath.Base(x.FilePath(x.Published()[0]))))
	}
	_ = w
}
