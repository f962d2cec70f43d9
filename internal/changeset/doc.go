// Package changeset reads and writes SQLite session changesets: the binary
// format produced by sqlite3session_changeset and sqlite3session_diff and
// consumed by sqlite3changeset_apply.
//
// # Format
//
// A changeset is a sequence of table groups. Each group starts with a header
//
//	'T' (0x54)  varint nCol  nCol PK bytes  table name  0x00
//
// and is followed by changes to that table, each of which is
//
//	op byte (INSERT 0x12, DELETE 0x09, UPDATE 0x17)  indirect byte (0 or 1)
//	old record (DELETE, UPDATE)  new record (INSERT, UPDATE)
//
// A record is nCol values; every value is a type byte (see [Kind]) followed
// by an 8-byte big-endian payload for INTEGER and FLOAT, a varint length
// and that many bytes for TEXT and BLOB, and nothing for NULL and undefined.
// Varints are SQLite record varints (see [AppendVarint]).
//
// The PK byte of a column is 0 for non-key columns; for key columns SQLite
// writes the 1-based position of the column within the PRIMARY KEY
// declaration (so PRIMARY KEY(b, a) gives a=2, b=1). [Table.PK] keeps these
// bytes exactly as read so that re-encoding is byte-identical. This matters
// beyond byte equality: sqlite3changeset_apply compares the header's PK
// bytes with the target table's and silently skips the whole table group
// (no error) if they differ, so 0/1 flags for a composite key do not apply.
//
// The Reader is slightly stricter than SQLite's iterator: it rejects an
// indirect byte other than 0 or 1, a table header without any primary key
// column, and undefined values where the format forbids them. It keeps
// values SQLite's iterator hides (old values of UPDATE columns that are
// neither key nor modified), so nothing is lost on re-encoding.
//
// Patchsets (header byte 'P') are a different, lossy format and are rejected
// with [ErrPatchset].
package changeset
