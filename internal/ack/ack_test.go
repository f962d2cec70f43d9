package ack

import (
	"errors"
	"strings"
	"testing"
)

const (
	devA = "aaaaaaaaaaaaaaaa"
	devB = "bbbbbbbbbbbbbbbb"
)

func sample() *Ack {
	return &Ack{Device: devA, Install: "1800000000000-xyz", DeviceName: "laptop", WrittenMS: 1_800_000_000_000,
		Applied: map[string]uint64{devA: 7, devB: 3}, Forgotten: []string{}}
}

func TestParseRefuses(t *testing.T) {
	good := `{"device":"aaaaaaaaaaaaaaaa","install":"x","device_name":"n","written_ms":1,"applied":{"bbbbbbbbbbbbbbbb":2},"forgotten":[]}`
	if _, err := Parse([]byte(good)); err != nil {
		t.Fatalf("good ack refused: %v", err)
	}
	for name, s := range map[string]string{
		"empty":            ``,
		"not json":         `ack`,
		"array":            `[]`,
		"null":             `null`,
		"truncated":        good[:len(good)-5],
		"trailing":         good + `{}`,
		"missing member":   strings.Replace(good, `"install":"x",`, ``, 1),
		"unknown member":   strings.Replace(good, `"install"`, `"extra":1,"install"`, 1),
		"case variant":     strings.Replace(good, `"install"`, `"Install"`, 1),
		"duplicate":        strings.Replace(good, `"install":"x"`, `"install":"x","install":"y"`, 1),
		"dup applied key":  strings.Replace(good, `{"bbbbbbbbbbbbbbbb":2}`, `{"bbbbbbbbbbbbbbbb":2,"bbbbbbbbbbbbbbbb":9}`, 1),
		"bad device":       strings.Replace(good, `"device":"aaaaaaaaaaaaaaaa"`, `"device":"../../etc"`, 1),
		"bad applied key":  strings.Replace(good, `"bbbbbbbbbbbbbbbb":2`, `"BBBBBBBBBBBBBBBB":2`, 1),
		"negative seq":     strings.Replace(good, `:2}`, `:-2}`, 1),
		"fraction seq":     strings.Replace(good, `:2}`, `:2.5}`, 1),
		"huge seq":         strings.Replace(good, `:2}`, `:99999999999}`, 1),
		"string seq":       strings.Replace(good, `:2}`, `:"2"}`, 1),
		"null applied":     strings.Replace(good, `{"bbbbbbbbbbbbbbbb":2}`, `null`, 1),
		"null forgotten":   strings.Replace(good, `"forgotten":[]`, `"forgotten":null`, 1),
		"bad forgotten":    strings.Replace(good, `"forgotten":[]`, `"forgotten":["x"]`, 1),
		"dup forgotten":    strings.Replace(good, `"forgotten":[]`, `"forgotten":["bbbbbbbbbbbbbbbb","bbbbbbbbbbbbbbbb"]`, 1),
		"negative written": strings.Replace(good, `"written_ms":1`, `"written_ms":-1`, 1),
		"deep":             strings.Replace(good, `"forgotten":[]`, `"forgotten":[[[[[[[[[[[]]]]]]]]]]]`, 1),
		"huge":             `{"device_name":"` + strings.Repeat("x", MaxSize) + `"}`,
	} {
		if a, err := Parse([]byte(s)); err == nil {
			t.Errorf("%s: accepted as %+v", name, a)
		} else if !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: error %v does not wrap ErrInvalid", name, err)
		}
	}
}

func FuzzParse(f *testing.F) {
	b, _ := Marshal(sample())
	f.Add(b)
	f.Add([]byte(`{"device":"aaaaaaaaaaaaaaaa"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		a, err := Parse(data)
		if err != nil {
			return
		}
		// Whatever is accepted re-encodes and parses to the same thing.
		out, err := Marshal(a)
		if err != nil {
			t.Fatalf("accepted %q but cannot marshal it: %v", data, err)
		}
		b, err := Parse(out)
		if err != nil || !Same(a, b) {
			t.Fatalf("round trip of %q: %v", data, err)
		}
	})
}
