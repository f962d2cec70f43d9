package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// key init, key unlock (wrong, then right passphrase), devices approve
// and a sync through the encrypted folder, all through the binary.
func TestKeyInitUnlockApproveSync(t *testing.T) {
	folder := t.TempDir()
	a, b := newDevice(t, folder, "alpha"), newDevice(t, folder, "beta")
	a.exec(t, "INSERT INTO notes(id,title,body,updated_at) VALUES('n1','PLAINMARK before the key','x',1)")
	a.sync(t)
	b.sync(t)
	pass := filepath.Join(t.TempDir(), "pass")
	os.WriteFile(pass, []byte("hunter2 hunter2\n"), 0o600)
	wrong := filepath.Join(t.TempDir(), "wrong")
	os.WriteFile(wrong, []byte("nope\n"), 0o600)

	r := ok(t, append([]string{"key", "init", "--passphrase-file", pass}, a.flags()...)...)
	if !strings.Contains(r.stdout, "sealed snapshot") {
		t.Fatalf("key init on a folder with files published no sealed snapshot:\n%s", r.stdout)
	}
	// b without the key: every command says what to do.
	if r := runRD(t, append([]string{"sync"}, b.flags()...)...); r.code == 0 || !strings.Contains(r.stderr, "rowdrop key unlock") {
		t.Fatalf("sync without the key: exit %d\n%s", r.code, r.stderr)
	}
	if r := runRD(t, append([]string{"key", "unlock", "--passphrase-file", wrong}, b.flags()...)...); r.code == 0 || !strings.Contains(r.stderr, "wrong passphrase") {
		t.Fatalf("unlock with a wrong passphrase: exit %d\n%s", r.code, r.stderr)
	}
	r = ok(t, append([]string{"key", "unlock", "--passphrase-file", pass}, b.flags()...)...)
	m := regexp.MustCompile(`device is ([a-z2-7]{16}), fingerprint ([A-Z2-7-]{19})`).FindStringSubmatch(r.stdout)
	if m == nil {
		t.Fatalf("unlock did not show the device and fingerprint:\n%s", r.stdout)
	}
	pend := ok(t, append([]string{"devices", "pending"}, a.flags()...)...)
	if !strings.Contains(pend.stdout, m[1]+"  "+m[2]) {
		t.Fatalf("pending does not list %s with %s:\n%s", m[1], m[2], pend.stdout)
	}
	if r := runRD(t, append([]string{"devices", "approve", m[1], "--fingerprint", "AAAA-AAAA-AAAA-AAAA"}, a.flags()...)...); r.code == 0 {
		t.Fatal("approve with a wrong fingerprint succeeded")
	}
	ok(t, append([]string{"devices", "approve", m[1], "--fingerprint", m[2]}, a.flags()...)...)
	a.exec(t, "INSERT INTO notes(id,title,body,updated_at) VALUES('n2','SECRETMARK after the key','y',2)")
	a.sync(t)
	b.sync(t)
	if d := b.dump(t); !strings.Contains(d, "SECRETMARK") {
		t.Fatalf("b did not get the row written after the key:\n%s", d)
	}
	b.exec(t, "UPDATE notes SET body='BSECRET' WHERE id='n2'")
	b.sync(t)
	a.sync(t)
	if d := a.dump(t); !strings.Contains(d, "BSECRET") {
		t.Fatalf("a did not get b's sealed edit:\n%s", d)
	}
	filepath.Walk(folder, func(p string, info os.FileInfo, err error) error {
		if err == nil && info.Mode().IsRegular() {
			data, _ := os.ReadFile(p)
			for _, mark := range []string{"SECRETMARK", "BSECRET"} {
				if strings.Contains(string(data), mark) {
					t.Errorf("%s holds %s in the clear", p, mark)
				}
			}
		}
		return nil
	})
	ok(t, append([]string{"key", "change-passphrase", "--passphrase-file", pass}, a.flags()...)...)
}

// check and restore read an encrypted folder given its passphrase.
func TestCheckAndRestoreSealed(t *testing.T) {
	folder := t.TempDir()
	a := newDevice(t, folder, "alpha")
	pass := filepath.Join(t.TempDir(), "pass")
	os.WriteFile(pass, []byte("hunter2 hunter2\n"), 0o600)
	ok(t, append([]string{"key", "init", "--passphrase-file", pass}, a.flags()...)...)
	a.exec(t, "INSERT INTO notes(id,title,body,updated_at) VALUES('n1','SEALEDROW','x',1)")
	a.sync(t)
	ok(t, append([]string{"snapshot"}, a.flags()...)...)
	ok(t, "check", "--folder", folder, "--read-data", "--passphrase-file", pass)
	// A flipped byte in a's changeset: check reports it.
	ents, _ := filepath.Glob(filepath.Join(folder, "*", "0000000001.rdc"))
	if len(ents) != 1 {
		t.Fatalf("changeset not found: %v", ents)
	}
	orig, _ := os.ReadFile(ents[0])
	bad := append([]byte{}, orig...)
	bad[len(bad)/2] ^= 1
	os.WriteFile(ents[0], bad, 0o644)
	if r := runRD(t, "check", "--folder", folder, "--passphrase-file", pass); r.code != exitCheckProblems || !strings.Contains(r.stdout, "authenticate") {
		t.Fatalf("check of a tampered sealed file: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	os.WriteFile(ents[0], orig, 0o644)
	dir := t.TempDir()
	db := filepath.Join(dir, "new.db")
	ok(t, "restore", "--db", db, "--folder", folder, "--state", filepath.Join(dir, "state"), "--device", "gamma", "--passphrase-file", pass)
	d := &device{name: "gamma", db: db, state: filepath.Join(dir, "state"), folder: folder}
	if got := d.dump(t); !strings.Contains(got, "SEALEDROW") {
		t.Fatalf("restore from the sealed folder lacks the row:\n%s", got)
	}
}
