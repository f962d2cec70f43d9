package seal

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"

	"github.com/rowdrop/rowdrop/internal/fsx"
)

// LocalFileName is the unlocked folder key and this device's signing key,
// in the state directory (mode 0600; docs/ENCRYPTION.md says why a file
// and what Windows does with the mode).
const LocalFileName = "seal.json"

// Local is what one device holds: the unlocked folder key and its own
// signing key.
type Local struct {
	Key  *Key
	Self Signer
}

type localJSON struct {
	FolderKey []byte `json:"folder_key"`
	Device    string `json:"device"`
	Seed      []byte `json:"signing_seed"`
}

// NewSigner makes a new signing key for device dev.
func NewSigner(dev string) Signer {
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	return Signer{Device: dev, Key: priv}
}

// Public is the signer's public key.
func (s Signer) Public() ed25519.PublicKey { return s.Key.Public().(ed25519.PublicKey) }

// LoadLocal reads the state directory's key file; a missing one yields
// (nil, nil): this device has no key.
func LoadLocal(stateDir string) (*Local, error) {
	p := filepath.Join(stateDir, LocalFileName)
	data, err := os.ReadFile(p)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var j localJSON
	if err := json.Unmarshal(data, &j); err != nil {
		return nil, fmt.Errorf("%s: %w (remove it and run rowdrop key unlock)", p, err)
	}
	k, err := NewKey(j.FolderKey)
	if err != nil || len(j.Seed) != ed25519.SeedSize || len(j.Device) != DeviceLen {
		return nil, fmt.Errorf("%s: malformed (remove it and run rowdrop key unlock)", p)
	}
	return &Local{Key: k, Self: Signer{Device: j.Device, Key: ed25519.NewKeyFromSeed(j.Seed)}}, nil
}

// SaveLocal writes l into the state directory, readable by its owner only.
func SaveLocal(stateDir string, l *Local) error {
	data, err := json.Marshal(localJSON{FolderKey: l.Key.Raw(), Device: l.Self.Device, Seed: l.Self.Key.Seed()})
	if err != nil {
		return err
	}
	return fsx.ReplacePrivate(filepath.Join(stateDir, LocalFileName), data)
}

// Ring is a folder's sealing context: this device's keys, the folder's
// key file and its trust records, re-read by Reload (once per scan).
type Ring struct {
	Local   *Local
	KeyFile *KeyFile
	dir     string // the folder's .rowdrop-trust

	mu    sync.Mutex
	trust *Trust
}

// NewRing checks kf with l's folder key and returns the folder's ring;
// folderDir is the shared folder.
func NewRing(l *Local, kf *KeyFile, folderDir string) (*Ring, error) {
	if err := kf.Check(l.Key); err != nil {
		return nil, err
	}
	return &Ring{Local: l, KeyFile: kf, dir: filepath.Join(folderDir, TrustDirName)}, nil
}

// Reload re-reads the trust records.
func (r *Ring) Reload() (*Trust, error) {
	t, err := LoadTrust(r.dir, r.KeyFile)
	if err != nil {
		return nil, err
	}
	r.mu.Lock()
	r.trust = t
	r.mu.Unlock()
	return t, nil
}

// Trust is the trust last loaded (loading it on first use).
func (r *Ring) Trust() (*Trust, error) {
	r.mu.Lock()
	t := r.trust
	r.mu.Unlock()
	if t != nil {
		return t, nil
	}
	return r.Reload()
}

// PublicKey implements Verifier with the current trust.
func (r *Ring) PublicKey(dev string) (ed25519.PublicKey, uint64, error) {
	t, err := r.Trust()
	if err != nil {
		return nil, 0, err
	}
	return t.PublicKey(dev)
}
