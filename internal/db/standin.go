package db

import (
	"bytes"
	"fmt"
	"maps"
	"slices"
	"strings"

	"zombiezen.com/go/sqlite"
)

// RegisterStandIns defines each named SQL function (name to kind:
// identity, null, lower or upper) on conn. They stand in for functions the
// app registers on its own connections and its triggers call, so those
// triggers can run when rowdrop writes the live database. Names are
// registered in sorted order, so an unknown kind is reported the same way
// every time.
func RegisterStandIns(conn *sqlite.Conn, standIns map[string]string) error {
	for _, name := range slices.Sorted(maps.Keys(standIns)) {
		if err := RegisterStandIn(conn, name, standIns[name]); err != nil {
			return err
		}
	}
	return nil
}

// RegisterStandIn defines one substitute SQL function on conn. It takes
// any number of arguments and returns a function of its first (NULL when
// called without one): identity returns it, null returns NULL, lower and
// upper change the case of text and return other values unchanged.
func RegisterStandIn(conn *sqlite.Conn, name, kind string) error {
	var f func(sqlite.Value) sqlite.Value
	switch kind {
	case "identity":
		f = func(v sqlite.Value) sqlite.Value { return v }
	case "null":
		f = func(sqlite.Value) sqlite.Value { return sqlite.Value{} }
	case "lower", "upper":
		conv := strings.ToLower
		if kind == "upper" {
			conv = strings.ToUpper
		}
		f = func(v sqlite.Value) sqlite.Value {
			if v.Type() != sqlite.TypeText {
				return v
			}
			return sqlite.TextValue(conv(v.Text()))
		}
	default:
		return fmt.Errorf("stand-in for function %s: unknown kind %q (use identity, null, lower or upper)", name, kind)
	}
	return conn.CreateFunction(name, &sqlite.FunctionImpl{NArgs: -1, AllowIndirect: true, Deterministic: true,
		Scalar: func(_ sqlite.Context, args []sqlite.Value) (sqlite.Value, error) {
			if len(args) == 0 {
				return sqlite.Value{}, nil
			}
			return copyValue(f(args[0])), nil
		}})
}

// copyValue detaches a value from SQLite's memory, which is reused after
// the call returns.
func copyValue(v sqlite.Value) sqlite.Value {
	switch v.Type() {
	case sqlite.TypeInteger:
		return sqlite.IntegerValue(v.Int64())
	case sqlite.TypeFloat:
		return sqlite.FloatValue(v.Float())
	case sqlite.TypeText:
		return sqlite.TextValue(v.Text())
	case sqlite.TypeBlob:
		return sqlite.BlobValue(bytes.Clone(v.Blob()))
	}
	return sqlite.Value{}
}
