package seal

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"io"
	"math"
	"os"
	"path/filepath"
	"testing"
)

type oneDevice struct{ s Signer }

func (o oneDevice) PublicKey(dev string) (ed25519.PublicKey, uint64, error) {
	if dev != o.s.Device {
		return nil, 0, errors.New("not approved")
	}
	return o.s.Public(), math.MaxUint64, nil
}

const dev = "abcdefghijklmnop"

func sealed(t testing.TB, plain []byte, k *Key, s Signer) []byte {
	out, err := SealBytes(plain, KindChangeset, 7, k, s)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// A sealed file reads back whole; its overhead is the head, a tag per
// chunk and the signature.
func TestSealRoundTrip(t *testing.T) {
	k, s := GenerateKey(), NewSigner(dev)
	for _, n := range []int{0, 1, ChunkSize - 1, ChunkSize, ChunkSize + 1, 3*ChunkSize + 5} {
		plain := bytes.Repeat([]byte{byte(n)}, n)
		data := sealed(t, plain, k, s)
		got, err := OpenBytes(data, Expect{Device: dev, Kind: KindChangeset, Seq: 7}, k, oneDevice{s})
		if err != nil || !bytes.Equal(got, plain) {
			t.Fatalf("%d bytes: %v", n, err)
		}
		if want := HeadLen + n + int(chunks(int64(n), ChunkSize))*TagLen + SigLen; len(data) != want {
			t.Fatalf("%d bytes sealed to %d, want %d", n, len(data), want)
		}
	}
}

// Every flipped bit, a wrong name, another key or another signer is refused.
func TestSealRefusals(t *testing.T) {
	k, s := GenerateKey(), NewSigner(dev)
	plain := bytes.Repeat([]byte("x"), 2*ChunkSize+100)
	data := sealed(t, plain, k, s)
	e := Expect{Device: dev, Kind: KindChangeset, Seq: 7}
	for i := 0; i < len(data); i += 97 {
		for _, bit := range []byte{1, 0x80} {
			bad := bytes.Clone(data)
			bad[i] ^= bit
			if _, err := OpenBytes(bad, e, k, oneDevice{s}); !errors.Is(err, ErrRefused) && !errors.Is(err, ErrNotSealed) {
				t.Fatalf("byte %d bit %x flipped: %v", i, bit, err)
			}
		}
	}
	for name, e := range map[string]Expect{"seq": {Device: dev, Kind: KindChangeset, Seq: 8}, "device": {Device: "bbbbbbbbbbbbbbbb", Seq: 7}, "kind": {Device: dev, Kind: KindSnapshot, Seq: 7}} {
		if _, err := OpenBytes(data, e, k, oneDevice{s}); !errors.Is(err, ErrRefused) {
			t.Errorf("renamed (%s): %v", name, err)
		}
	}
	if _, err := OpenBytes(data, e, GenerateKey(), oneDevice{s}); !errors.Is(err, ErrRefused) {
		t.Errorf("another folder key: %v", err)
	}
	if _, err := OpenBytes(data, e, k, oneDevice{NewSigner(dev)}); !errors.Is(err, ErrRefused) {
		t.Errorf("another signing key: %v", err)
	}
	if _, err := OpenBytes(data[:len(data)-1], e, k, oneDevice{s}); !errors.Is(err, ErrIncomplete) {
		t.Errorf("truncated: %v", err)
	}
}

func TestKeyFileWrongPassphrase(t *testing.T) {
	k, s := GenerateKey(), NewSigner(dev)
	kdf := KDF{Time: 1, MemoryKiB: 1024, Threads: 1}
	kf, err := NewKeyFile(k, []byte("right"), kdf, dev, s.Public(), nil)
	if err != nil {
		t.Fatal(err)
	}
	data, _ := kf.Marshal()
	kf2, err := ParseKeyFile(data)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kf2.Unlock([]byte("wrong")); !errors.Is(err, ErrPassphrase) {
		t.Fatalf("wrong passphrase: %v", err)
	}
	got, err := kf2.Unlock([]byte("right"))
	if err != nil || !bytes.Equal(got.Raw(), k.Raw()) {
		t.Fatalf("right passphrase: %v", err)
	}
	kf2.Root = "bbbbbbbbbbbbbbbb"
	if err := kf2.Check(k); err == nil {
		t.Fatal("a key file with another root passed its MAC")
	}
}

// FuzzSealedReader: whatever bytes lie under a sealed file's name, the
// reader never panics and never returns plaintext it did not verify.
func FuzzSealedReader(f *testing.F) {
	k := &Key{}
	copy(k.k[:], bytes.Repeat([]byte{7}, KeyLen))
	k, _ = NewKey(k.k[:])
	s := Signer{Device: dev, Key: ed25519.NewKeyFromSeed(bytes.Repeat([]byte{9}, ed25519.SeedSize))}
	good, _ := SealBytes([]byte("a small plaintext"), KindChangeset, 7, k, s)
	f.Add(good)
	// A sealed version-4 changeset, as rowdrop writes them now.
	v4, err := os.ReadFile(filepath.Join("..", "rdfile", "testdata", "example-v4.rdc"))
	if err != nil {
		f.Fatal(err)
	}
	sealedV4, _ := SealBytes(v4, KindChangeset, 7, k, s)
	f.Add(sealedV4)
	f.Add(good[:HeadLen])
	f.Add([]byte(Magic))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := Open(bytes.NewReader(data), int64(len(data)), Expect{Device: dev, Seq: 7}, k, oneDevice{s}, nil)
		if err != nil {
			return
		}
		got, err := io.ReadAll(r)
		if err == nil && !bytes.Equal(got, []byte("a small plaintext")) && !bytes.Equal(got, v4) {
			t.Fatalf("verified a plaintext that was never sealed: %q", got)
		}
	})
}
