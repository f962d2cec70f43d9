package changeset

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"slices"
	"strconv"
)

// Op is the operation of a [Change]. The numeric values are the op bytes of
// the changeset format (SQLITE_INSERT, SQLITE_DELETE, SQLITE_UPDATE).
type Op byte

// Operations.
const (
	OpInsert Op = 18
	OpDelete Op = 9
	OpUpdate Op = 23
)

// String returns "INSERT", "DELETE" or "UPDATE", or "Op(n)" for other bytes.
func (o Op) String() string {
	switch o {
	case OpInsert:
		return "INSERT"
	case OpDelete:
		return "DELETE"
	case OpUpdate:
		return "UPDATE"
	}
	return "Op(" + strconv.Itoa(int(o)) + ")"
}

// valid reports whether o is one of the three operations.
func (o Op) valid() bool { return o == OpInsert || o == OpDelete || o == OpUpdate }

// Table describes the table a change applies to, as recorded in a changeset
// table header.
type Table struct {
	// Name is the unqualified table name.
	Name string
	// PK has one byte per column, in declaration order: 0 for columns that
	// are not part of the primary key, otherwise nonzero. SQLite writes the
	// column's 1-based position within the PRIMARY KEY clause; the bytes are
	// kept exactly as stored.
	PK []byte
}

// NumCols returns the number of columns of the table.
func (t *Table) NumCols() int { return len(t.PK) }

// PKCols returns the indices of the primary key columns in primary key order,
// that is, ordered by their PK byte (ties, such as all-1 flags written by
// other encoders, keep declaration order).
func (t *Table) PKCols() []int {
	var cols []int
	for i, b := range t.PK {
		if b != 0 {
			cols = append(cols, i)
		}
	}
	slices.SortStableFunc(cols, func(i, j int) int { return int(t.PK[i]) - int(t.PK[j]) })
	return cols
}

// sameAs reports whether t and u describe the same table header.
func (t *Table) sameAs(u *Table) bool {
	return t == u || (t != nil && u != nil && t.Name == u.Name && string(t.PK) == string(u.PK))
}

// Change is one row change of a changeset.
type Change struct {
	// Table is the table the change applies to. Changes decoded from the
	// same table group share one *Table; treat it as read-only.
	Table *Table
	// Op is the operation.
	Op Op
	// Indirect is the "indirect change" flag (set by SQLite for changes
	// made by triggers or foreign key actions).
	Indirect bool
	// Old holds the old row for DELETE and UPDATE (len = NumCols, nil for
	// INSERT). For UPDATE, columns that are neither primary key columns nor
	// modified are KindUndefined.
	Old []Value
	// New holds the new row for INSERT and UPDATE (len = NumCols, nil for
	// DELETE). For UPDATE, unmodified columns (including the primary key
	// columns) are KindUndefined.
	New []Value
	// OldSums is set by a Reader with [Reader.SumBigOld] on an UPDATE: by
	// column, the length and SHA-256 of each big non-key old value whose
	// bytes it did not keep (that Old entry has its Kind and nil Bytes).
	// Compare old values with [Change.OldEqual].
	OldSums map[int]Sum
}

// Sum stands for a TEXT or BLOB value's bytes: their length and SHA-256.
type Sum struct {
	N      int
	SHA256 [sha256.Size]byte
}

// OldEqual reports whether old value i equals v (Value.Equal), for an old
// value kept whole or only as its Sum.
func (c *Change) OldEqual(i int, v Value) bool {
	sum, ok := c.OldSums[i]
	if !ok {
		return c.Old[i].Equal(v)
	}
	return v.Kind == c.Old[i].Kind && len(v.Bytes) == sum.N && sha256.Sum256(v.Bytes) == sum.SHA256
}

// Key returns the primary key values of the changed row in primary key
// order (see [Table.PKCols]): from Old for DELETE and UPDATE, from New for
// INSERT. It returns nil if the change has no table or lacks the record.
func (c *Change) Key() []Value {
	if c.Table == nil {
		return nil
	}
	rec := c.Old
	if c.Op == OpInsert {
		rec = c.New
	}
	cols := c.Table.PKCols()
	key := make([]Value, 0, len(cols))
	for _, i := range cols {
		if i >= len(rec) {
			return nil
		}
		key = append(key, rec[i])
	}
	return key
}

// ErrCorrupt is matched (via errors.Is) by every error that reports
// malformed, truncated or over-limit input. The concrete error is a
// *CorruptError carrying the byte offset.
var ErrCorrupt = errors.New("changeset: corrupt input")

// ErrPatchset is returned when the input contains a patchset table header
// ('P'). Patchsets omit old values and cannot be represented as changes.
var ErrPatchset = errors.New("changeset: input is a patchset, not a changeset")

// CorruptError describes malformed input. errors.Is(err, ErrCorrupt) is true
// for it.
type CorruptError struct {
	// Offset is the byte offset in the input at which the problem was
	// detected.
	Offset int64
	// Reason says what was wrong.
	Reason string
}

// Error implements error.
func (e *CorruptError) Error() string {
	return fmt.Sprintf("%s at byte offset %d: %s", ErrCorrupt.Error(), e.Offset, e.Reason)
}

// Unwrap returns ErrCorrupt.
func (e *CorruptError) Unwrap() error { return ErrCorrupt }

// validate checks that c can be encoded as a changeset change. It mirrors
// the checks the Reader applies, so everything written can be read back.
func (c *Change) validate() error {
	t := c.Table
	if t == nil {
		return errors.New("change has no table")
	}
	if err := t.validate(); err != nil {
		return err
	}
	if !c.Op.valid() {
		return fmt.Errorf("table %q: invalid op %v", t.Name, c.Op)
	}
	n := t.NumCols()
	checkRec := func(name string, rec []Value, want bool) error {
		if !want {
			if len(rec) != 0 {
				return fmt.Errorf("table %q: %v change has %s values", t.Name, c.Op, name)
			}
			return nil
		}
		if len(rec) != n {
			return fmt.Errorf("table %q: %v change has %d %s values, table has %d columns", t.Name, c.Op, len(rec), name, n)
		}
		for i, v := range rec {
			if !v.Kind.valid() {
				return fmt.Errorf("table %q: %v %s column %d: invalid kind %d", t.Name, c.Op, name, i, byte(v.Kind))
			}
		}
		return nil
	}
	if err := checkRec("Old", c.Old, c.Op != OpInsert); err != nil {
		return err
	}
	if err := checkRec("New", c.New, c.Op != OpDelete); err != nil {
		return err
	}
	if err := checkDefined(t, c.Op, c.Old, c.New); err != nil {
		return fmt.Errorf("table %q: %w", t.Name, err)
	}
	return nil
}

// checkDefined enforces the format's rules about what a change may hold,
// which are what an SQLite session can produce (docs/FORMAT.md §7.2): no
// undefined value in an INSERT or DELETE record; every primary-key column
// defined and not NULL where the change identifies its row (SQLite's
// sessions never record a row whose key holds a NULL, so a device that
// joins from a snapshot would never see it); an UPDATE changes at least
// non-key column, and for each one it changes carries the old value.
func checkDefined(t *Table, op Op, old, new []Value) error {
	key := old
	if op == OpInsert {
		key = new
	}
	for i, b := range t.PK {
		if b == 0 {
			continue
		}
		switch key[i].Kind {
		case KindUndefined:
			return fmt.Errorf("%v has undefined primary key column %d", op, i)
		case KindNull:
			return fmt.Errorf("%v has NULL in primary key column %d, which SQLite never records", op, i)
		}
	}
	switch op {
	case OpInsert, OpDelete:
		rec := old
		if op == OpInsert {
			rec = new
		}
		for i, v := range rec {
			if v.Kind == KindUndefined {
				return fmt.Errorf("%v has undefined value in column %d", op, i)
			}
		}
	case OpUpdate:
		changed := false
		for i, v := range new {
			if v.Kind == KindUndefined {
				continue
			}
			if t.PK[i] != 0 {
				// SQLite's diff writes a key that only its collation
				// calls equal (rowdrop's export drops it, §8.2).
				continue
			}
			if old[i].Kind == KindUndefined {
				return fmt.Errorf("UPDATE changes column %d without its old value", i)
			}
			changed = true
		}
		if !changed {
			return fmt.Errorf("UPDATE changes no non-key column")
		}
	}
	return nil
}

// validate checks the parts of a table header the writer cannot encode or
// the reader would reject.
func (t *Table) validate() error {
	if len(t.PK) == 0 {
		return fmt.Errorf("table %q has no columns", t.Name)
	}
	if len(t.Name) >= maxTableName {
		return fmt.Errorf("table name of %d bytes is too long", len(t.Name))
	}
	for i := 0; i < len(t.Name); i++ {
		if t.Name[i] == 0 {
			return fmt.Errorf("table name %q contains a NUL byte", t.Name)
		}
	}
	if !t.hasPK() {
		return fmt.Errorf("table %q has no primary key column", t.Name)
	}
	return nil
}

func (t *Table) hasPK() bool {
	for _, b := range t.PK {
		if b != 0 {
			return true
		}
	}
	return false
}
