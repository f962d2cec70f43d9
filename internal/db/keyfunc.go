package db

import (
	"zombiezen.com/go/sqlite"

	"github.com/rowdrop/rowdrop/internal/changeset"
)

// KeyFunc is the SQL function RegisterKeyFunc defines.
const KeyFunc = "rowdrop_key"

// RegisterKeyFunc defines rowdrop_key(v1, v2, ...) on conn: the encoded
// key (changeset.EncodeKey) of its arguments, each read as Column reads a
// result column. It lets set-wise SQL match a table's rows with the
// metadata rows keyed by that encoding (state.RowMeta), without reading
// the rows in Go.
func RegisterKeyFunc(conn *sqlite.Conn) error {
	return conn.CreateFunction(KeyFunc, &sqlite.FunctionImpl{NArgs: -1, Deterministic: true,
		Scalar: func(_ sqlite.Context, args []sqlite.Value) (sqlite.Value, error) {
			vals := make([]changeset.Value, len(args))
			for i, a := range args {
				vals[i] = valueOf(a)
			}
			return sqlite.BlobValue(changeset.EncodeKey(vals)), nil
		}})
}

// valueOf reads a function argument as Column reads a result column (the
// bytes are copied: arguments do not outlive the call).
func valueOf(v sqlite.Value) changeset.Value {
	switch v.Type() {
	case sqlite.TypeInteger:
		return changeset.Value{Kind: changeset.KindInteger, Int: v.Int64()}
	case sqlite.TypeFloat:
		return changeset.Value{Kind: changeset.KindFloat, Float: v.Float()}
	case sqlite.TypeText:
		return changeset.Value{Kind: changeset.KindText, Bytes: []byte(v.Text())}
	case sqlite.TypeBlob:
		return changeset.Value{Kind: changeset.KindBlob, Bytes: append([]byte{}, v.Blob()...)}
	default:
		return changeset.Value{Kind: changeset.KindNull}
	}
}

// ArgOf gives v as an argument of sqlitex.Execute (Args), typed as Bind
// would bind it.
func ArgOf(v changeset.Value) any {
	switch v.Kind {
	case changeset.KindInteger:
		return v.Int
	case changeset.KindFloat:
		return v.Float
	case changeset.KindText:
		return string(v.Bytes)
	case changeset.KindBlob:
		return append([]byte{}, v.Bytes...)
	}
	return nil
}
