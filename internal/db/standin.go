package db

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"maps"
	"slices"
	"strings"

	"zombiezen.com/go/sqlite"
)

// RegisterStandIns defines each named SQL function (name to kind:
// identity, null, lower, upper or uuid) on conn. They stand in for
// functions the app registers on its own connections and its triggers
// call, so those triggers can run when rowdrop writes the live database.
// Names are registered in sorted order, so an unknown kind is reported the
// same way every time.
func RegisterStandIns(conn *sqlite.Conn, standIns map[string]string) error {
	for _, name := range slices.Sorted(maps.Keys(standIns)) {
		if err := RegisterStandIn(conn, name, standIns[name]); err != nil {
			return err
		}
	}
	return nil
}

// RegisterStandIn defines one substitute SQL function on conn. uuid makes
// a value from nothing (a random version-4 UUID, for uuid4() or
// random_uuid()), whatever it is passed. The others are functions of their
// first argument: identity returns it, null returns NULL, lower and upper
// change the case of text and return other values unchanged; identity,
// lower and upper take one argument or more, so a call without any (the
// app's function makes a value) fails to prepare, and the change that ran
// it is held with advice, instead of NULL being written where the app
// writes a value. null takes any number.
func RegisterStandIn(conn *sqlite.Conn, name, kind string) error {
	var f func(sqlite.Value) sqlite.Value
	switch kind {
	case "uuid":
		return conn.CreateFunction(name, &sqlite.FunctionImpl{NArgs: -1, AllowIndirect: true,
			Scalar: func(sqlite.Context, []sqlite.Value) (sqlite.Value, error) {
				u, err := randomUUID()
				if err != nil {
					return sqlite.Value{}, fmt.Errorf("stand-in %s (uuid): %w", name, err)
				}
				return sqlite.TextValue(u), nil
			}})
	case "identity":
		f = func(v sqlite.Value) sqlite.Value { return v }
	case "title_sort":
		f = func(v sqlite.Value) sqlite.Value {
			if v.Type() != sqlite.TypeText {
				return v
			}
			return sqlite.TextValue(TitleSort(v.Text()))
		}
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
		return fmt.Errorf("stand-in for function %s: unknown kind %q (use identity, null, lower, upper, title_sort, or uuid for a function called without arguments that makes a value, like uuid4())", name, kind)
	}
	impl := &sqlite.FunctionImpl{NArgs: -1, AllowIndirect: true, Deterministic: true,
		Scalar: func(_ sqlite.Context, args []sqlite.Value) (sqlite.Value, error) {
			if len(args) == 0 {
				return sqlite.Value{}, nil
			}
			return copyValue(f(args[0])), nil
		}}
	if kind == "null" {
		return conn.CreateFunction(name, impl)
	}
	// One to maxFunctionArgs arguments, not any number. (An error returned
	// by a Go function does not fail the statement in this driver, so the
	// refusal has to come from SQLite's arity check.)
	for n := 1; n <= maxFunctionArgs; n++ {
		impl.NArgs = n
		if err := conn.CreateFunction(name, impl); err != nil {
			return err
		}
	}
	return nil
}

// TitleSort is calibre's default title sort (English): a leading "A",
// "An" or "The" moves to the end after a comma ("The Hobbit" -> "Hobbit,
// The"), and a leading quotation mark is dropped.
func TitleSort(title string) string {
	title = strings.TrimSpace(title)
	if r, size := firstRune(title); isIgnoredStart(r) {
		title = title[size:]
	}
	for _, art := range []string{"a", "the", "an"} {
		if len(title) <= len(art) || !strings.EqualFold(title[:len(art)], art) {
			continue
		}
		rest := title[len(art):]
		trimmed := strings.TrimLeft(rest, " \t\n\r\f\v")
		if len(trimmed) == len(rest) {
			continue // "Anthem": no article
		}
		title = trimmed + ", " + title[:len(art)]
		if r, size := firstRune(title); isIgnoredStart(r) {
			title = title[size:]
		}
		break
	}
	return strings.TrimSpace(title)
}

func firstRune(s string) (rune, int) {
	for _, r := range s {
		return r, len(string(r))
	}
	return 0, 0
}

// isIgnoredStart: the quotation marks calibre skips at a title's start.
func isIgnoredStart(r rune) bool {
	return r == '\'' || r == '"' || (r >= 0x2018 && r < 0x201e) || r == 0x2032 || r == 0x2033
}

// maxFunctionArgs is SQLite's default limit on a function's arguments
// (SQLITE_MAX_FUNCTION_ARG).
const maxFunctionArgs = 127

// randomUUID returns a random (version 4) UUID in its text form.
func randomUUID() (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:], nil
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
