package rowdrop

// Encryption of the shared folder (docs/ENCRYPTION.md): the folder key,
// this device's signing key, and device approval. The sealing itself is
// internal/seal, applied by internal/folder.

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sort"

	"github.com/rowdrop/rowdrop/internal/seal"
)

// ErrNoKey: the folder is encrypted and this device has not unlocked its key.
var ErrNoKey = errors.New("the shared folder is encrypted and this device has no folder key")

// KDF is the Argon2id cost of a folder key's passphrase.
type KDF = seal.KDF

// DefaultKDF is the cost key init uses unless told otherwise.
var DefaultKDF = seal.DefaultKDF

// KeyInfo describes this device's keys after key init or unlock.
type KeyInfo struct {
	Device      string
	Fingerprint string // this device's signing key, to compare on both screens
	Approved    bool   // this device's files are accepted by the others
	Snapshot    string // key init on a folder with files: the sealed snapshot published
}

// ring loads the sealing context for the syncer's folder: nil when the
// folder has no key file. A folder with a key file and a state directory
// without the unlocked key is ErrNoKey, unless cfg.Passphrase unlocks it.
func (s *Syncer) ring() (*seal.Ring, error) {
	kf, err := s.shared.ReadKeyFile()
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	local, err := seal.LoadLocal(s.st.Path)
	if err != nil {
		return nil, err
	}
	if local == nil {
		if s.cfg.Passphrase == nil {
			return nil, fmt.Errorf("%w: run `rowdrop key unlock` (it asks for the folder's passphrase; or --passphrase-file, ROWDROP_PASSPHRASE)", ErrNoKey)
		}
		if local, err = s.unlock(kf, s.cfg.Passphrase); err != nil {
			return nil, err
		}
	}
	if local.Self.Device != s.id.Device {
		return nil, fmt.Errorf("%s in %s holds the key of device %s, this state directory is device %s: remove it and run `rowdrop key unlock`", seal.LocalFileName, s.st.Path, local.Self.Device, s.id.Device)
	}
	return seal.NewRing(local, kf, s.cfg.Folder)
}

// useRing turns sealing on for every reader and writer of the folder.
func (s *Syncer) useRing(r *seal.Ring) {
	s.shared = s.shared.WithRing(r, s.st.Path)
	s.exp.Folder, s.im.Folder = s.shared, s.shared
}

// unlock opens kf with passphrase, stores the key with a new signing key
// (or the one this device already has) and asks for approval.
func (s *Syncer) unlock(kf *seal.KeyFile, passphrase []byte) (*seal.Local, error) {
	k, err := kf.Unlock(passphrase)
	if errors.Is(err, seal.ErrPassphrase) {
		return nil, fmt.Errorf("the passphrase does not open %s (wrong passphrase; nothing was changed): try again", s.shared.KeyFilePath())
	}
	if err != nil {
		return nil, err
	}
	local := &seal.Local{Key: k, Self: seal.NewSigner(s.id.Device)}
	if old, err := seal.LoadLocal(s.st.Path); err == nil && old != nil && old.Self.Device == s.id.Device {
		local.Self = old.Self
	}
	if err := seal.SaveLocal(s.st.Path, local); err != nil {
		return nil, fmt.Errorf("store the folder key in %s: %w", s.st.Path, err)
	}
	if kf.Root != s.id.Device {
		req := &seal.Record{Type: seal.RecRequest, Device: s.id.Device, PublicKey: local.Self.Public(), CreatedMS: s.cfg.Now().UnixMilli()}
		if err := s.shared.WriteTrust(req); err != nil {
			return nil, err
		}
	}
	return local, nil
}

// KeyInit creates the folder key, wraps it under passphrase into the
// folder's key file and makes this device the trust root. A folder that
// already holds files keeps them readable (they are listed as older than
// the key) and gets a sealed snapshot, so devices joining later need no
// plaintext.
func (s *Syncer) KeyInit(ctx context.Context, passphrase []byte, kdf KDF) (KeyInfo, error) {
	if _, err := s.shared.ReadKeyFile(); err == nil {
		return KeyInfo{}, fmt.Errorf("%s already has a folder key (%s): use `rowdrop key unlock` here, or `rowdrop key change-passphrase`", s.cfg.Folder, s.shared.KeyFilePath())
	} else if !errors.Is(err, os.ErrNotExist) {
		return KeyInfo{}, err
	}
	scan, err := s.shared.Scan()
	if err != nil {
		return KeyInfo{}, err
	}
	before := map[string]uint64{}
	for dev, files := range scan.Files {
		before[dev] = files[len(files)-1].Seq
	}
	local := &seal.Local{Key: seal.GenerateKey(), Self: seal.NewSigner(s.id.Device)}
	kf, err := seal.NewKeyFile(local.Key, passphrase, kdf, s.id.Device, local.Self.Public(), before)
	if err != nil {
		return KeyInfo{}, err
	}
	if err := seal.SaveLocal(s.st.Path, local); err != nil {
		return KeyInfo{}, fmt.Errorf("store the folder key in %s: %w", s.st.Path, err)
	}
	if err := s.shared.WriteKeyFile(kf); err != nil {
		return KeyInfo{}, fmt.Errorf("write %s: %w", s.shared.KeyFilePath(), err)
	}
	r, err := seal.NewRing(local, kf, s.cfg.Folder)
	if err != nil {
		return KeyInfo{}, err
	}
	s.useRing(r)
	info := KeyInfo{Device: s.id.Device, Fingerprint: seal.Fingerprint(local.Self.Public()), Approved: true}
	if len(before) > 0 {
		res, err := s.Snapshot(ctx)
		if err != nil {
			return info, fmt.Errorf("the key is set, but the sealed snapshot for devices joining later failed (run `rowdrop snapshot`): %w", err)
		}
		info.Snapshot = res.File
	}
	return info, nil
}

// KeyState is this device's keys: nil Local when it has none.
func (s *Syncer) KeyState() (KeyInfo, error) {
	r := s.shared.Ring()
	if r == nil {
		return KeyInfo{}, ErrNoKey
	}
	t, err := r.Reload()
	if err != nil {
		return KeyInfo{}, err
	}
	_, approved := t.Approved[s.id.Device]
	return KeyInfo{Device: s.id.Device, Fingerprint: seal.Fingerprint(r.Local.Self.Public()), Approved: approved}, nil
}

// ChangePassphrase re-wraps the folder key under a new passphrase; old
// must open the key file.
func (s *Syncer) ChangePassphrase(old, new []byte, kdf KDF) error {
	kf, err := s.shared.ReadKeyFile()
	if err != nil {
		return fmt.Errorf("%s: %w (no folder key to change: run `rowdrop key init`)", s.shared.KeyFilePath(), err)
	}
	k, err := kf.Unlock(old)
	if errors.Is(err, seal.ErrPassphrase) {
		return fmt.Errorf("the current passphrase does not open %s (wrong passphrase; nothing was changed)", s.shared.KeyFilePath())
	}
	if err != nil {
		return err
	}
	if err := kf.Rewrap(k, new, kdf); err != nil {
		return err
	}
	return s.shared.WriteKeyFile(kf)
}

// Pending is a device asking for approval.
type Pending struct {
	Device      string
	Fingerprint string
}

// trusted is the folder's current trust, for an approved device only.
func (s *Syncer) trusted() (*seal.Ring, *seal.Trust, error) {
	r := s.shared.Ring()
	if r == nil {
		return nil, nil, fmt.Errorf("%w: run `rowdrop key unlock` first", ErrNoKey)
	}
	t, err := r.Reload()
	if err != nil {
		return nil, nil, err
	}
	if _, ok := t.Approved[s.id.Device]; !ok {
		return nil, nil, fmt.Errorf("this device (%s) is not approved itself: approve it from an approved device first", s.id.Device)
	}
	return r, t, nil
}

// PendingDevices lists the devices that unlocked the key and wait for approval.
func (s *Syncer) PendingDevices() ([]Pending, error) {
	_, t, err := s.trusted()
	if err != nil {
		return nil, err
	}
	var out []Pending
	for d, pub := range t.Requests {
		out = append(out, Pending{Device: d, Fingerprint: seal.Fingerprint(pub)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Device < out[j].Device })
	return out, nil
}

// ApproveDevice approves dev, whose request's fingerprint must be
// fingerprint (what the user compared with dev's screen).
func (s *Syncer) ApproveDevice(dev, fingerprint string) error {
	r, t, err := s.trusted()
	if err != nil {
		return err
	}
	if _, ok := t.Approved[dev]; ok {
		return nil
	}
	pub, ok := t.Requests[dev]
	if !ok {
		return fmt.Errorf("device %s has not asked for approval in %s: run `rowdrop key unlock` on it first", dev, s.shared.TrustDir())
	}
	if got := seal.Fingerprint(pub); got != fingerprint {
		return fmt.Errorf("device %s's key has fingerprint %s, not %s: compare again with what `rowdrop key unlock` showed on it; not approved", dev, got, fingerprint)
	}
	rec := &seal.Record{Type: seal.RecApprove, Device: dev, PublicKey: pub, CreatedMS: s.cfg.Now().UnixMilli()}
	rec.Sign(r.Local.Self)
	return s.shared.WriteTrust(rec)
}

// RevokeDevice revokes dev: its files after the last one this device has
// applied are refused by every device. Devices that only dev had
// approved are approved again by this device.
func (s *Syncer) RevokeDevice(dev string) (after uint64, err error) {
	r, t, err := s.trusted()
	if err != nil {
		return 0, err
	}
	if dev == r.KeyFile.Root {
		return 0, fmt.Errorf("device %s created the folder key and anchors every approval: it cannot be revoked (start a new folder key instead)", dev)
	}
	if dev == s.id.Device {
		return 0, fmt.Errorf("a device cannot revoke itself: revoke %s from another approved device", dev)
	}
	if _, ok := t.Approved[dev]; !ok {
		return 0, fmt.Errorf("device %s is not approved here: nothing to revoke", dev)
	}
	applied, err := s.st.Applied()
	if err != nil {
		return 0, err
	}
	after = applied[dev]
	rec := &seal.Record{Type: seal.RecRevoke, Device: dev, AfterSeq: after, CreatedMS: s.cfg.Now().UnixMilli()}
	rec.Sign(r.Local.Self)
	if err := s.shared.WriteTrust(rec); err != nil {
		return 0, err
	}
	now, err := r.Reload()
	if err != nil {
		return after, err
	}
	for d, pub := range t.Approved {
		if _, still := now.Approved[d]; still || d == dev {
			continue
		}
		re := &seal.Record{Type: seal.RecApprove, Device: d, PublicKey: pub, CreatedMS: s.cfg.Now().UnixMilli()}
		re.Sign(r.Local.Self)
		if err := s.shared.WriteTrust(re); err != nil {
			return after, err
		}
	}
	_, err = r.Reload()
	return after, err
}
