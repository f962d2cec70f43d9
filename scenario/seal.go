package scenario

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/rowdrop/rowdrop"
	"github.com/rowdrop/rowdrop/internal/folder"
	"github.com/rowdrop/rowdrop/internal/seal"
)

// TestKDF is a cheap Argon2id cost for tests (the real one takes a
// quarter of a second per unlock).
var TestKDF = rowdrop.KDF{Time: 1, MemoryKiB: 1 << 10, Threads: 1}

// TestPassphrase is the passphrase sealed worlds use.
var TestPassphrase = []byte("correct horse battery staple")

// sealAll reports whether the harness seals every world (ROWDROP_SEAL=1):
// the whole-product tests then run with encryption on.
func sealAll() bool { return os.Getenv("ROWDROP_SEAL") == "1" }

// Seal turns encryption on for the world: its first device creates the
// folder key, every other device unlocks it and is approved by the
// first, and every folder copy gets the key file and the approvals.
func (w *World) Seal() {
	t := w.T
	t.Helper()
	if len(w.Devs) == 0 {
		t.Fatal("Seal: no device")
	}
	root := w.Devs[0]
	if _, err := root.S.KeyInit(context.Background(), TestPassphrase, TestKDF); err != nil {
		t.Fatalf("%s: key init: %v", root.Name, err)
	}
	w.sealed = true
	for _, d := range w.Devs[1:] {
		w.join(d)
	}
}

// join unlocks the key on d and approves it from the world's first device.
func (w *World) join(d *Device) {
	t := w.T
	t.Helper()
	root := w.Devs[0]
	CopyFile(t, filepath.Join(root.Folder, seal.KeyFileName), filepath.Join(d.Folder, seal.KeyFileName))
	d.ReopenWith(func(c *rowdrop.Config) { c.Passphrase = TestPassphrase })
	w.ShareTrust()
	info, err := d.S.KeyState()
	if err != nil {
		t.Fatalf("%s: %v", d.Name, err)
	}
	if err := root.S.ApproveDevice(d.ID, info.Fingerprint); err != nil {
		t.Fatalf("%s: approve %s: %v", root.Name, d.Name, err)
	}
	w.ShareTrust()
}

// ShareTrust is the sync tool carrying the key file and the trust
// records: every folder copy gets every device's records.
func (w *World) ShareTrust() {
	t := w.T
	t.Helper()
	for _, from := range w.Devs {
		ents, _ := os.ReadDir(filepath.Join(from.Folder, seal.TrustDirName))
		for _, to := range w.Devs {
			if to == from {
				continue
			}
			if _, err := os.Stat(filepath.Join(to.Folder, seal.KeyFileName)); err != nil {
				CopyFile(t, filepath.Join(from.Folder, seal.KeyFileName), filepath.Join(to.Folder, seal.KeyFileName))
			}
			for _, e := range ents {
				dst := filepath.Join(to.Folder, seal.TrustDirName, e.Name())
				if _, err := os.Stat(dst); err == nil {
					continue
				}
				os.MkdirAll(filepath.Dir(dst), 0o755)
				CopyFile(t, filepath.Join(from.Folder, seal.TrustDirName, e.Name()), dst)
			}
		}
	}
}

// Config is the device's configuration, as its Syncer was opened with.
func (d *Device) Config() rowdrop.Config { return d.cfg }

// worldRing is the sealing context of a World device's folder copy
// (<dir>/folder, with its state directory in <dir>/state), nil when the
// folder is not sealed.
func worldRing(f *folder.Folder) *seal.Ring {
	kf, err := f.ReadKeyFile()
	if err != nil {
		return nil
	}
	local, err := seal.LoadLocal(filepath.Join(filepath.Dir(f.Dir()), "state"))
	if err != nil || local == nil {
		return nil
	}
	r, err := seal.NewRing(local, kf, f.Dir())
	if err != nil {
		return nil
	}
	return r
}

// SealShared turns encryption on for devices sharing one real folder
// (the crash harness), when ROWDROP_SEAL=1: the first creates the key,
// the others unlock it and are approved. cfgs are the devices' pairs,
// each already initialised.
func SealShared(t testing.TB, cfgs ...rowdrop.Config) {
	t.Helper()
	if !sealAll() {
		return
	}
	ctx := context.Background()
	open := func(c rowdrop.Config) *rowdrop.Syncer {
		s, err := rowdrop.Open(ctx, c)
		if err != nil {
			t.Fatalf("seal: open %s: %v", c.DB, err)
		}
		return s
	}
	root := open(cfgs[0])
	defer root.Close()
	if _, err := root.KeyInit(ctx, TestPassphrase, TestKDF); err != nil {
		t.Fatalf("seal: key init: %v", err)
	}
	for _, c := range cfgs[1:] {
		c.Passphrase = TestPassphrase
		s := open(c)
		info, err := s.KeyState()
		s.Close()
		if err != nil {
			t.Fatal(err)
		}
		if err := root.ApproveDevice(info.Device, info.Fingerprint); err != nil {
			t.Fatalf("seal: approve: %v", err)
		}
	}
	t.Logf("ROWDROP_SEAL=1: the folder is encrypted")
}
