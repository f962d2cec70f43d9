package rdfile

import (
	"fmt"
	"path"
	"strconv"
	"strings"
)

// Folder layout: <folder>/<device id>/<seq, 10 digits>.rdc. Device ids are
// 16 characters of lowercase RFC 4648 base32, so every name is short,
// lowercase-only (no case-only clashes on FAT/NTFS/APFS) and free of the
// characters FAT32 and exFAT refuse.

// Ext is the extension of changeset files.
const Ext = ".rdc"

// SnapshotExt is the extension of snapshot files:
// <device>/snap-<seq, 10 digits>.rds, seq counting that device's snapshots.
const SnapshotExt = ".rds"

// AckName is the base name of a device's acknowledgement file: how far it
// has applied every device's files. Its device is its only writer and
// replaces it atomically.
const AckName = "ack.json"

// DeviceIDLen is the length of a device id.
const DeviceIDLen = 16

const seqDigits = 10

// MaxSeq is the largest sequence number a file name can hold.
const MaxSeq = 9_999_999_999

// ValidDeviceID reports whether s has the shape of a device id.
func ValidDeviceID(s string) bool {
	if len(s) != DeviceIDLen {
		return false
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= '2' && c <= '7') {
			return false
		}
	}
	return true
}

// FileName returns the file name (without directory) for a sequence number.
func FileName(seq uint64) string {
	return fmt.Sprintf("%0*d%s", seqDigits, seq, Ext)
}

// RelPath returns the slash-separated path of a changeset in the folder.
func RelPath(device string, seq uint64) string {
	return device + "/" + FileName(seq)
}

// SnapshotName returns the base name of a device's seq-th snapshot.
func SnapshotName(seq uint64) string {
	return fmt.Sprintf("snap-%0*d%s", seqDigits, seq, SnapshotExt)
}

// ParseSnapshotSeq parses a snapshot file name (base name only).
func ParseSnapshotSeq(base string) (uint64, bool) {
	rest, ok := strings.CutPrefix(base, "snap-")
	if !ok || !strings.HasSuffix(rest, SnapshotExt) {
		return 0, false
	}
	return ParseSeq(strings.TrimSuffix(rest, SnapshotExt) + Ext)
}

// NameKind classifies a name found in the shared folder.
type NameKind int

// Kinds of names.
const (
	NameIgnored      NameKind = iota // sync-tool or OS artefact, temp file: not ours to look at
	NameChangeset                    // <device>/<seq>.rdc
	NameConflictCopy                 // a sync tool's conflict copy of one of our files
	NameUnknown                      // something else inside a device directory: reported
	NameSnapshot                     // <device>/snap-<seq>.rds
	NameAck                          // <device>/ack.json
)

// ParseSeq parses a changeset file name (base name only).
func ParseSeq(base string) (uint64, bool) {
	if len(base) != seqDigits+len(Ext) || !strings.HasSuffix(base, Ext) {
		return 0, false
	}
	digits := base[:seqDigits]
	for _, c := range digits {
		if c < '0' || c > '9' {
			return 0, false
		}
	}
	n, err := strconv.ParseUint(digits, 10, 64)
	if err != nil || n == 0 {
		return 0, false
	}
	return n, true
}

// IsArtefact reports names that sync tools and operating systems leave in
// shared folders, and temp files (ours and theirs). They are never read.
func IsArtefact(base string) bool {
	lower := strings.ToLower(base)
	switch {
	case strings.HasPrefix(base, "."): // .stfolder .stignore .syncthing.*.tmp ._* .DS_Store .dropbox.cache and ours
		return true
	case strings.HasPrefix(base, "~syncthing~"):
		return true
	case lower == "desktop.ini" || lower == "thumbs.db":
		return true
	}
	return false
}

// IsConflictCopy reports names that Syncthing and Dropbox give to conflict
// copies: "x.sync-conflict-20261126-101500-ABCDEFG.rdc" and
// "x (Ann's conflicted copy 2026-11-26).rdc".
func IsConflictCopy(base string) bool {
	return strings.Contains(base, ".sync-conflict-") || strings.Contains(base, "conflicted copy")
}

// Classify parses a slash-separated path relative to the folder.
func Classify(rel string) (kind NameKind, device string, seq uint64) {
	if rel == "" || strings.Contains(rel, "\\") || path.Clean(rel) != rel || strings.HasPrefix(rel, "../") || path.IsAbs(rel) {
		return NameIgnored, "", 0
	}
	parts := strings.Split(rel, "/")
	for _, p := range parts {
		if IsArtefact(p) {
			return NameIgnored, "", 0
		}
	}
	if len(parts) != 2 || !ValidDeviceID(parts[0]) {
		return NameIgnored, "", 0
	}
	device, base := parts[0], parts[1]
	if s, ok := ParseSeq(base); ok {
		return NameChangeset, device, s
	}
	if s, ok := ParseSnapshotSeq(base); ok {
		return NameSnapshot, device, s
	}
	if base == AckName {
		return NameAck, device, 0
	}
	if IsConflictCopy(base) {
		return NameConflictCopy, device, 0
	}
	return NameUnknown, device, 0
}
