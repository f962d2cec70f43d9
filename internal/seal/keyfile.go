package seal

import (
	"bytes"
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"

	"golang.org/x/crypto/argon2"
	"golang.org/x/crypto/chacha20poly1305"
)

// KeyFileName is the folder key's file at the top of the shared folder.
const KeyFileName = ".rowdrop-key"

// KDF is the Argon2id cost a key file's passphrase is stretched with; it
// is stored in the file, so readers use whatever the writer chose.
type KDF struct {
	Time      uint32 `json:"time"`
	MemoryKiB uint32 `json:"memory_kib"`
	Threads   uint8  `json:"threads"`
}

// DefaultKDF is RFC 9106's second recommended setting (t=3, 64 MiB, p=4):
// about a quarter of a second on a laptop, once per unlock.
var DefaultKDF = KDF{Time: 3, MemoryKiB: 64 << 10, Threads: 4}

// Bounds a reader accepts from a key file (a hostile one could ask for
// terabytes of memory).
const (
	maxKDFMemoryKiB = 4 << 20 // 4 GiB
	maxKDFTime      = 100
)

// ErrPassphrase: the passphrase does not open the key file (or the file
// was altered).
var ErrPassphrase = errors.New("wrong passphrase")

// KeyFile is the content of .rowdrop-key: the folder key wrapped under a
// passphrase, and what every key holder checks with the key itself (the
// trust root, and which plaintext files predate the key).
type KeyFile struct {
	Version int    `json:"version"`
	KDFName string `json:"kdf"` // "argon2id"
	KDF     KDF    `json:"kdf_params"`
	Salt    []byte `json:"salt"`
	Nonce   []byte `json:"nonce"`
	Wrapped []byte `json:"wrapped"` // XChaCha20-Poly1305 of the folder key
	KeyID   string `json:"key_id"`  // hex of Key.ID
	// Root is the device that ran `key init`, and its public key: the
	// anchor every approval chains to.
	Root    string `json:"root"`
	RootKey []byte `json:"root_key"`
	// PlaintextUpTo is, per device, the last plaintext changeset that was
	// in the folder when the key was set (migration): those are still
	// read, any other plaintext file is refused.
	PlaintextUpTo map[string]uint64 `json:"plaintext_up_to,omitempty"`
	// MAC is HMAC-SHA256 under a key derived from the folder key over
	// the members above except the wrapping: a key holder checks them
	// without the passphrase.
	MAC []byte `json:"mac"`
}

// bound is the canonical bytes the MAC covers.
func (f *KeyFile) bound() []byte {
	var b bytes.Buffer
	b.WriteString("rowdrop-seal-v1 keyfile\x00")
	b.WriteString(f.KeyID + "\x00" + f.Root + "\x00")
	b.Write(f.RootKey)
	b.WriteByte(0)
	devs := make([]string, 0, len(f.PlaintextUpTo))
	for d := range f.PlaintextUpTo {
		devs = append(devs, d)
	}
	sort.Strings(devs)
	for _, d := range devs {
		b.WriteString(d + "=" + strconv.FormatUint(f.PlaintextUpTo[d], 10) + "\x00")
	}
	return b.Bytes()
}

func (f *KeyFile) mac(k *Key) []byte {
	m := hmac.New(sha256.New, k.derive(nil, "rowdrop-seal-v1 keyfile mac"))
	m.Write(f.bound())
	return m.Sum(nil)
}

// NewKeyFile wraps folder key k under passphrase, naming root (the
// device running key init, with public key pub) as the trust anchor.
func NewKeyFile(k *Key, passphrase []byte, kdf KDF, root string, pub ed25519.PublicKey, plaintext map[string]uint64) (*KeyFile, error) {
	f := &KeyFile{Version: 1, KDFName: "argon2id", Root: root, RootKey: pub, PlaintextUpTo: plaintext}
	f.KeyID = fmt.Sprintf("%x", k.id)
	f.MAC = f.mac(k)
	if err := f.Rewrap(k, passphrase, kdf); err != nil {
		return nil, err
	}
	return f, nil
}

// Rewrap wraps k anew under passphrase (change-passphrase).
func (f *KeyFile) Rewrap(k *Key, passphrase []byte, kdf KDF) error {
	if len(passphrase) == 0 {
		return errors.New("the passphrase is empty")
	}
	f.KDF = kdf
	f.Salt = make([]byte, 16)
	rand.Read(f.Salt)
	f.Nonce = make([]byte, chacha20poly1305.NonceSizeX)
	rand.Read(f.Nonce)
	aead, err := chacha20poly1305.NewX(f.kek(passphrase))
	if err != nil {
		return err
	}
	f.Wrapped = aead.Seal(nil, f.Nonce, k.k[:], f.aad())
	return nil
}

func (f *KeyFile) kek(passphrase []byte) []byte {
	return argon2.IDKey(passphrase, f.Salt, f.KDF.Time, f.KDF.MemoryKiB, f.KDF.Threads, KeyLen)
}

func (f *KeyFile) aad() []byte {
	return fmt.Appendf(nil, "rowdrop-seal-v1 wrap\x00%d\x00%d\x00%d\x00%s", f.KDF.Time, f.KDF.MemoryKiB, f.KDF.Threads, f.KeyID)
}

// Unlock derives the key-encryption key from passphrase and unwraps the
// folder key. A wrong passphrase yields ErrPassphrase.
func (f *KeyFile) Unlock(passphrase []byte) (*Key, error) {
	aead, err := chacha20poly1305.NewX(f.kek(passphrase))
	if err != nil {
		return nil, err
	}
	raw, err := aead.Open(nil, f.Nonce, f.Wrapped, f.aad())
	if err != nil {
		return nil, ErrPassphrase
	}
	k, err := NewKey(raw)
	if err != nil {
		return nil, err
	}
	if err := f.Check(k); err != nil {
		return nil, err
	}
	return k, nil
}

// Check verifies the key file's bound members with the folder key k.
func (f *KeyFile) Check(k *Key) error {
	if fmt.Sprintf("%x", k.id) != f.KeyID {
		return fmt.Errorf("the folder's %s is for another key (id %s; this device holds %x): run rowdrop key unlock", KeyFileName, f.KeyID, k.id)
	}
	if !hmac.Equal(f.mac(k), f.MAC) {
		return fmt.Errorf("the folder's %s was altered (its trust root or migration list does not match its MAC): restore it from another device's copy", KeyFileName)
	}
	return nil
}

// ParseKeyFile reads a key file's JSON and bounds its KDF cost.
func ParseKeyFile(data []byte) (*KeyFile, error) {
	var f KeyFile
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("%s: %w", KeyFileName, err)
	}
	switch {
	case f.Version != 1 || f.KDFName != "argon2id":
		return nil, fmt.Errorf("%s: version %d, kdf %q: this rowdrop reads version 1, argon2id (upgrade rowdrop)", KeyFileName, f.Version, f.KDFName)
	case f.KDF.MemoryKiB == 0 || f.KDF.MemoryKiB > maxKDFMemoryKiB || f.KDF.Time == 0 || f.KDF.Time > maxKDFTime || f.KDF.Threads == 0:
		return nil, fmt.Errorf("%s: Argon2id parameters %+v out of bounds (memory up to %d KiB, time up to %d)", KeyFileName, f.KDF, maxKDFMemoryKiB, maxKDFTime)
	case len(f.Nonce) != chacha20poly1305.NonceSizeX || len(f.Wrapped) != KeyLen+TagLen || len(f.Salt) < 16 || len(f.RootKey) != ed25519.PublicKeySize || len(f.Root) != DeviceLen:
		return nil, fmt.Errorf("%s: malformed (nonce, wrapped key, salt or root)", KeyFileName)
	}
	return &f, nil
}

// Marshal encodes the key file.
func (f *KeyFile) Marshal() ([]byte, error) { return json.MarshalIndent(f, "", "  ") }
