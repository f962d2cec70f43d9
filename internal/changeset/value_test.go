package changeset

import (
	"bytes"
	"errors"
	"flag"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"
)

var seedFlag = flag.Uint64("seed", 0, "seed for randomized tests (0: time-based)")

// testSeed returns the seed for a randomized test and logs it so that a
// failure can be replayed with -seed.
func testSeed(t *testing.T) uint64 {
	seed := *seedFlag
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	t.Logf("seed %d (rerun with -seed=%d)", seed, seed)
	return seed
}

var specialFloats = []float64{
	0, math.Copysign(0, -1), 1, -1, math.Inf(1), math.Inf(-1), math.NaN(),
	math.Float64frombits(0x7ff8000000000001), // NaN, other payload
	math.Float64frombits(0xfff8000000000000), // negative NaN
	math.Float64frombits(1),                  // smallest subnormal
	math.MaxFloat64, -math.MaxFloat64, math.SmallestNonzeroFloat64,
}

func randValue(rng *rand.Rand) Value {
	switch rng.IntN(6) {
	case 0:
		return Value{}
	case 1:
		switch rng.IntN(4) {
		case 0:
			return Int(int64(rng.IntN(5)) - 2)
		case 1:
			return Int([]int64{math.MinInt64, math.MaxInt64, 0}[rng.IntN(3)])
		}
		return Int(int64(rng.Uint64()))
	case 2:
		if rng.IntN(3) == 0 {
			return Float(specialFloats[rng.IntN(len(specialFloats))])
		}
		if rng.IntN(2) == 0 {
			return Float(math.Float64frombits(rng.Uint64()))
		}
		return Float(float64(rng.IntN(5)) - 2)
	case 3:
		return Text(string(randBytes(rng)))
	case 4:
		return Blob(randBytes(rng))
	}
	return Null()
}

func randBytes(rng *rand.Rand) []byte {
	n := rng.IntN(4)
	if rng.IntN(10) == 0 {
		n = rng.IntN(300)
	}
	b := make([]byte, n)
	for i := range b {
		b[i] = "ab\x00\xff"[rng.IntN(4)]
	}
	return b
}

func TestCompareIsTotalOrder(t *testing.T) {
	rng := rand.New(rand.NewPCG(testSeed(t), 1))
	vals := make([]Value, 400)
	for i := range vals {
		vals[i] = randValue(rng)
	}
	for _, f := range specialFloats {
		vals = append(vals, Float(f))
	}
	for _, a := range vals {
		if Compare(a, a) != 0 {
			t.Fatalf("Compare(%v, itself) != 0", a)
		}
		for _, b := range vals {
			ab, ba := Compare(a, b), Compare(b, a)
			if ab != -ba || ab < -1 || ab > 1 {
				t.Fatalf("Compare(%v, %v) = %d but reverse = %d", a, b, ab, ba)
			}
			if (ab == 0) != a.Equal(b) {
				t.Fatalf("Compare(%v, %v) = %d but Equal = %v", a, b, ab, a.Equal(b))
			}
		}
	}
	// Transitivity: after sorting, every earlier value is <= every later one.
	slices.SortFunc(vals, Compare)
	for i := range vals {
		for j := i + 1; j < len(vals); j++ {
			if Compare(vals[i], vals[j]) > 0 {
				t.Fatalf("not transitive: %v sorted before %v", vals[i], vals[j])
			}
		}
	}
	// Floats follow numeric order where it is defined.
	order := []float64{math.Inf(-1), -math.MaxFloat64, -1, math.Copysign(0, -1), 0, math.SmallestNonzeroFloat64, 1, math.Inf(1)}
	for i := 1; i < len(order); i++ {
		if Compare(Float(order[i-1]), Float(order[i])) >= 0 {
			t.Errorf("Compare(%v, %v) >= 0", order[i-1], order[i])
		}
	}
	if Compare(Int(math.MinInt64), Int(math.MaxInt64)) >= 0 || Compare(Int(5), Float(0)) >= 0 || Compare(Text("z"), Blob(nil)) >= 0 {
		t.Error("unexpected cross-kind or integer order")
	}
}

func TestKeyRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(testSeed(t), 2))
	seen := map[string][]Value{}
	for range 5000 {
		tuple := make([]Value, rng.IntN(4))
		for i := range tuple {
			tuple[i] = randValue(rng)
		}
		key := EncodeKey(tuple)
		got, err := DecodeKey(key)
		if err != nil || !valuesEqual(got, tuple) {
			t.Fatalf("DecodeKey(EncodeKey(%v)) = %v, %v", tuple, got, err)
		}
		if !bytes.Equal(AppendKey([]byte("pre"), tuple)[3:], key) {
			t.Fatalf("AppendKey differs from EncodeKey")
		}
		// Injective and deterministic.
		if prev, ok := seen[string(key)]; ok && !valuesEqual(prev, tuple) {
			t.Fatalf("tuples %v and %v share key %x", prev, tuple, key)
		}
		seen[string(key)] = tuple
		if !bytes.Equal(EncodeKey(slices.Clone(tuple)), key) {
			t.Fatal("EncodeKey not deterministic")
		}
		// Decoded values must not alias the key.
		if len(got) > 0 && (got[0].Kind == KindText || got[0].Kind == KindBlob) && len(got[0].Bytes) > 0 {
			before := slices.Clone(got[0].Bytes)
			clear(key)
			if !bytes.Equal(got[0].Bytes, before) {
				t.Fatal("DecodeKey result aliases its input")
			}
			key = EncodeKey(tuple)
		}
		// Every strict prefix and any extension is rejected.
		for i := range len(key) {
			if _, err := DecodeKey(key[:i]); !errors.Is(err, ErrCorrupt) {
				t.Fatalf("prefix %x of key %x: err = %v", key[:i], key, err)
			}
		}
		if _, err := DecodeKey(append(key, 0)); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("key with trailing byte: err = %v", err)
		}
	}
	// Distinct kinds with "equal" SQL values get distinct keys.
	pairs := [][2]Value{{Int(1), Float(1)}, {Float(0), Float(math.Copysign(0, -1))}, {Text("a"), Blob([]byte("a"))}, {Null(), {}}}
	for _, p := range pairs {
		if bytes.Equal(EncodeKey(p[:1]), EncodeKey(p[1:])) {
			t.Errorf("%v and %v share a key", p[0], p[1])
		}
	}
}

func TestDecodeKeyHostile(t *testing.T) {
	for _, b := range [][]byte{
		nil, {0x80}, {5}, {1, 9}, {1, 3, 0x85}, {1, 3, 10, 'a'},
		AppendVarint(nil, 1<<62), append(AppendVarint(nil, 3), 5, 5),
		{1, 4, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff},
	} {
		if _, err := DecodeKey(b); !errors.Is(err, ErrCorrupt) {
			t.Errorf("DecodeKey(%x) err = %v", b, err)
		}
	}
}

func TestVarint(t *testing.T) {
	cases := []struct {
		v   uint64
		enc string
	}{
		{0, "00"}, {1, "01"}, {127, "7f"}, {128, "8100"}, {16383, "ff7f"}, {16384, "818000"},
		{1 << 20, "c08000"}, {1<<56 - 1, "ffffffffffffff7f"},
		{1 << 56, "80c080808080808000"}, {math.MaxUint64, "ffffffffffffffffff"},
	}
	for _, c := range cases {
		enc := AppendVarint(nil, c.v)
		if got := hexString(enc); got != c.enc {
			t.Errorf("AppendVarint(%d) = %s, want %s", c.v, got, c.enc)
		}
		v, n := Varint(enc)
		if v != c.v || n != len(enc) {
			t.Errorf("Varint(%s) = %d, %d", c.enc, v, n)
		}
		if _, n := Varint(enc[:len(enc)-1]); n != 0 {
			t.Errorf("Varint of truncated %s consumed %d", c.enc, n)
		}
	}
	rng := rand.New(rand.NewPCG(testSeed(t), 3))
	for range 10000 {
		v := rng.Uint64() >> rng.UintN(64)
		if got, n := Varint(AppendVarint(nil, v)); got != v || n == 0 {
			t.Fatalf("round trip %d -> %d", v, got)
		}
	}
}

func hexString(b []byte) string {
	const digits = "0123456789abcdef"
	var sb strings.Builder
	for _, c := range b {
		sb.WriteByte(digits[c>>4])
		sb.WriteByte(digits[c&15])
	}
	return sb.String()
}

func TestValueString(t *testing.T) {
	cases := []struct {
		v    Value
		want string
	}{
		{Value{}, "undefined"},
		{Null(), "NULL"},
		{Int(-42), "-42"},
		{Float(1), "1.0"},
		{Float(-2.5e-10), "-2.5e-10"},
		{Float(math.Inf(-1)), "-Inf"},
		{Float(math.NaN()), "NaN"},
		{Text("it's"), "'it''s'"},
		{Text("a\nb\x00\xff"), `'a\nb\x00\xff'`},
		{Text("日本"), "'日本'"},
		{Blob([]byte{0, 0xab}), "X'00ab'"},
		{Blob(nil), "X''"},
		{Text(strings.Repeat("é", 100)), "'" + strings.Repeat("é", 32) + "'...(200 bytes)"},
		{Blob(make([]byte, 40)), "X'" + strings.Repeat("00", 32) + "'...(40 bytes)"},
		{Value{Kind: 9}, "<invalid kind 9>"},
	}
	for _, c := range cases {
		if got := c.v.String(); got != c.want {
			t.Errorf("String() = %s, want %s", got, c.want)
		}
	}
	if OpInsert.String() != "INSERT" || OpDelete.String() != "DELETE" || OpUpdate.String() != "UPDATE" || Op(1).String() != "Op(1)" {
		t.Error("Op.String")
	}
}

func TestTableAndKey(t *testing.T) {
	tb := &Table{Name: "t", PK: []byte{0, 3, 1, 0, 2}}
	if got := tb.PKCols(); !slices.Equal(got, []int{2, 4, 1}) || tb.NumCols() != 5 {
		t.Fatalf("PKCols = %v", got)
	}
	flags := &Table{Name: "t", PK: []byte{1, 0, 1}}
	if got := flags.PKCols(); !slices.Equal(got, []int{0, 2}) {
		t.Fatalf("PKCols with 0/1 flags = %v", got)
	}
	row := []Value{Int(0), Int(1), Int(2), Int(3), Int(4)}
	ins := &Change{Table: tb, Op: OpInsert, New: row}
	del := &Change{Table: tb, Op: OpDelete, Old: row}
	for _, c := range []*Change{ins, del} {
		if k := c.Key(); !valuesEqual(k, []Value{Int(2), Int(4), Int(1)}) {
			t.Errorf("%v Key = %v", c.Op, k)
		}
	}
	if k := (&Change{Op: OpInsert}).Key(); k != nil {
		t.Errorf("Key without table = %v", k)
	}
}
