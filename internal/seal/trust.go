package seal

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base32"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// TrustDirName is the directory at the top of the shared folder holding
// device approvals, revocations and requests.
const TrustDirName = ".rowdrop-trust"

// Record kinds, also the middle of a record's file name:
// <device>.request, <device>.approved-by-<by>, <device>.revoked-by-<by>.
const (
	RecRequest = "request"
	RecApprove = "approve"
	RecRevoke  = "revoke"
)

// Record is one file of .rowdrop-trust: a device asking to be approved
// (its public key), an approval of it by an approved device, or a
// revocation. Approvals and revocations are signed by By.
type Record struct {
	Type      string `json:"type"`
	Device    string `json:"device"`
	PublicKey []byte `json:"public_key"`
	By        string `json:"by,omitempty"`
	// AfterSeq (revoke): the last changeset of Device still accepted.
	AfterSeq  uint64 `json:"after_seq,omitempty"`
	CreatedMS int64  `json:"created_ms"`
	Sig       []byte `json:"sig,omitempty"`
}

// FileName is the record's name inside .rowdrop-trust.
func (r *Record) FileName() string {
	switch r.Type {
	case RecApprove:
		return r.Device + ".approved-by-" + r.By
	case RecRevoke:
		return r.Device + ".revoked-by-" + r.By
	}
	return r.Device + ".request"
}

func (r *Record) signed() []byte {
	return fmt.Appendf(nil, "rowdrop-seal-v1 trust\x00%s\x00%s\x00%x\x00%s\x00%d\x00%d", r.Type, r.Device, r.PublicKey, r.By, r.AfterSeq, r.CreatedMS)
}

// Sign signs r as s's device.
func (r *Record) Sign(s Signer) {
	r.By = s.Device
	r.Sig = ed25519.Sign(s.Key, r.signed())
}

// Fingerprint is the short form of a public key users compare on both
// screens: 16 base32 characters of its SHA-256, in groups of four.
func Fingerprint(pub ed25519.PublicKey) string {
	s := sha256.Sum256(pub)
	e := base32.StdEncoding.EncodeToString(s[:10])
	return e[0:4] + "-" + e[4:8] + "-" + e[8:12] + "-" + e[12:16]
}

// Trust is who may write into the folder: the devices whose approval
// chains to the key file's root, and how far each revoked one is still
// read. It implements Verifier.
type Trust struct {
	Approved map[string]ed25519.PublicKey
	Revoked  map[string]uint64            // device → last accepted sequence
	Requests map[string]ed25519.PublicKey // devices asking, not approved
	// Problems are records that were ignored, and why (forged, malformed).
	Problems []string
}

// PublicKey implements Verifier.
func (t *Trust) PublicKey(dev string) (ed25519.PublicKey, uint64, error) {
	pub, ok := t.Approved[dev]
	if !ok {
		return nil, 0, fmt.Errorf("device %s is not approved in this folder: if it is yours, run `rowdrop devices approve %s` on an approved device", dev, dev)
	}
	if n, ok := t.Revoked[dev]; ok {
		return pub, n, nil
	}
	return pub, math.MaxUint64, nil
}

// maxRecord bounds a trust file's size.
const maxRecord = 4 << 10

// LoadTrust reads dir (a folder's .rowdrop-trust) and computes who is
// approved: the root, then every device approved by an approved device
// whose signature verifies, until nothing changes; then revocations
// signed by an approved device. Approvals signed by a revoked device do
// not count: whoever it approved must be approved again by another
// device (Revoke does that for the devices the revoker still trusts).
func LoadTrust(dir string, kf *KeyFile) (*Trust, error) {
	ents, err := os.ReadDir(dir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("read %s: %w", dir, err)
	}
	t := &Trust{Requests: map[string]ed25519.PublicKey{}, Revoked: map[string]uint64{}}
	var recs []*Record
	for _, e := range ents {
		if !e.Type().IsRegular() || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		p := filepath.Join(dir, e.Name())
		r, err := readRecord(p)
		if err != nil {
			t.Problems = append(t.Problems, fmt.Sprintf("%s: %v: ignored", p, err))
			continue
		}
		if r.FileName() != e.Name() {
			t.Problems = append(t.Problems, fmt.Sprintf("%s: holds a %s record of %s by %s, which belongs under another name: ignored", p, r.Type, r.Device, r.By))
			continue
		}
		recs = append(recs, r)
	}
	sort.Slice(recs, func(i, j int) bool { return recs[i].FileName() < recs[j].FileName() })
	approve := func(revoked map[string]uint64) map[string]ed25519.PublicKey {
		ok := map[string]ed25519.PublicKey{kf.Root: ed25519.PublicKey(kf.RootKey)}
		for changed := true; changed; {
			changed = false
			for _, r := range recs {
				if r.Type != RecApprove || ok[r.Device] != nil {
					continue
				}
				if _, rev := revoked[r.By]; rev {
					continue
				}
				if by := ok[r.By]; by != nil && ed25519.Verify(by, r.signed(), r.Sig) {
					ok[r.Device] = r.PublicKey
					changed = true
				}
			}
		}
		return ok
	}
	all := approve(nil)
	for _, r := range recs {
		if r.Type != RecRevoke {
			continue
		}
		by := all[r.By]
		if by == nil || !ed25519.Verify(by, r.signed(), r.Sig) {
			t.Problems = append(t.Problems, fmt.Sprintf("%s: revocation not signed by an approved device: ignored", r.FileName()))
			continue
		}
		if n, ok := t.Revoked[r.Device]; !ok || r.AfterSeq < n {
			t.Revoked[r.Device] = r.AfterSeq
		}
	}
	t.Approved = approve(t.Revoked)
	// A revoked device stays known (its earlier files are still read).
	for d := range t.Revoked {
		if all[d] != nil {
			t.Approved[d] = all[d]
		}
	}
	for _, r := range recs {
		switch {
		case r.Type == RecRequest && t.Approved[r.Device] == nil:
			t.Requests[r.Device] = r.PublicKey
		case r.Type == RecApprove && t.Approved[r.Device] == nil:
			if _, rev := t.Revoked[r.By]; !rev {
				t.Problems = append(t.Problems, fmt.Sprintf("%s: approval not signed by an approved device (forged, or its approver is unknown): ignored", r.FileName()))
			}
		}
	}
	return t, nil
}

func readRecord(p string) (*Record, error) {
	st, err := os.Lstat(p)
	if err != nil {
		return nil, err
	}
	if st.Size() > maxRecord {
		return nil, fmt.Errorf("%d bytes, more than a trust record may have (%d)", st.Size(), maxRecord)
	}
	data, err := os.ReadFile(p)
	if err != nil {
		return nil, err
	}
	var r Record
	if err := json.Unmarshal(data, &r); err != nil {
		return nil, err
	}
	switch {
	case r.Type != RecRequest && r.Type != RecApprove && r.Type != RecRevoke:
		return nil, fmt.Errorf("unknown record type %q", r.Type)
	case len(r.Device) != DeviceLen || len(r.PublicKey) != ed25519.PublicKeySize && r.Type != RecRevoke:
		return nil, errors.New("malformed device id or public key")
	case r.Type != RecRequest && (len(r.By) != DeviceLen || len(r.Sig) != ed25519.SignatureSize):
		return nil, errors.New("unsigned")
	}
	return &r, nil
}

// Marshal encodes a record.
func (r *Record) Marshal() ([]byte, error) { return json.MarshalIndent(r, "", "  ") }

// String names a record for messages.
func (r *Record) String() string {
	return r.Type + " " + r.Device + " by " + r.By + " after " + strconv.FormatUint(r.AfterSeq, 10)
}
