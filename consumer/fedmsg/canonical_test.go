package fedmsg

import (
	"bytes"
	"encoding/json"
	"math"
	"math/big"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"
)

// Expected outputs were produced by CPython 3.11:
// json.dumps(json.loads(in), sort_keys=True, separators=(',', ':')).
var canonicalCases = []struct{ in, want string }{
	{`{"b":1,"a":[true,false,null],"c":{"z":"y","A":"x"}}`,
		`{"a":[true,false,null],"b":1,"c":{"A":"x","z":"y"}}`},
	{`{ "a" : 1 , "b" : [ 1 , 2 ] }`, `{"a":1,"b":[1,2]}`},
	// Short escapes, \u00XX for other controls and DEL, '/' left alone.
	{`"\"\\\/\b\f\n\r\t\u0000\u001f\u007f ~"`,
		`"\"\\/\b\f\n\r\t\u0000\u001f\u007f ~"`},
	// Non-ASCII as lowercase \uXXXX, astral as surrogate pairs.
	{`"café € 😀 ` + "\U0010FFFF \uFFFF \uE000" + `"`,
		`"caf\u00e9 \u20ac \ud83d\ude00 \udbff\udfff \uffff \ue000"`},
	{`"caf\u00E9 \uD83D\uDE00"`, `"caf\u00e9 \ud83d\ude00"`},
	// Keys by code point: U+E000 and U+FFFF before U+1F600 (UTF-16 order
	// would put the surrogate pair first).
	{`{"\ue000":1,"\ud83d\ude00":2,"a":3,"\u00e9":4,"":5,"A":6,"\uffff":7,"\u0080":8}`,
		`{"":5,"A":6,"a":3,"\u0080":8,"\u00e9":4,"\ue000":1,"\uffff":7,"\ud83d\ude00":2}`},
	// Numbers: ints kept, everything with '.' or an exponent is a float
	// written as repr(float).
	{`[1344350850.886738,1.0,1,1e5,1E5,1e+16,1e16,1e15,1e-05,0.0001,0.00001234,-0.0,-0,0,0.1,1.10,2.5e-07,1e+300,123456789012345678,1.7976931348623157e308,5e-324,1e-400,9999999999999998.0,12345678901234567890123456789,100.0e-2,0.30000000000000004,1e22,1e21,-1.5E-7]`,
		`[1344350850.886738,1.0,1,100000.0,100000.0,1e+16,1e+16,1000000000000000.0,1e-05,0.0001,1.234e-05,-0.0,0,0,0.1,1.1,2.5e-07,1e+300,123456789012345678,1.7976931348623157e+308,5e-324,0.0,9999999999999998.0,12345678901234567890123456789,1.0,0.30000000000000004,1e+22,1e+21,-1.5e-07]`},
	{`{}`, `{}`},
	{`[]`, `[]`},
	{`[[],{},""]`, `[[],{},""]`},
	{`null`, `null`},
}

func decodeNumber(t testing.TB, s string) any {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(s))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("decode %s: %v", s, err)
	}
	return v
}

func TestCanonicalPython(t *testing.T) {
	for _, c := range canonicalCases {
		got, err := Canonical(decodeNumber(t, c.in))
		if err != nil {
			t.Errorf("%s: %v", c.in, err)
			continue
		}
		if string(got) != c.want {
			t.Errorf("%s\n got: %s\nwant: %s", c.in, got, c.want)
		}
	}
}

func TestCanonicalGoValues(t *testing.T) {
	v := map[string]any{
		"f": 1.0, "g": 0.1, "i": 42, "u": uint64(math.MaxUint64),
		"s": []string{"a", "é"}, "m": map[string]string{"y": "1", "x": "2"},
		"bad": "a\xffb",
	}
	got, err := Canonical(v)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"bad":"a\ufffdb","f":1.0,"g":0.1,"i":42,"m":{"x":"2","y":"1"},"s":["a","\u00e9"],"u":18446744073709551615}`
	if string(got) != want {
		t.Errorf("\n got: %s\nwant: %s", got, want)
	}
}

func TestCanonicalErrors(t *testing.T) {
	for _, v := range []any{
		json.Number("1e400"), json.Number("-1e400"), json.Number("01"),
		json.Number("1."), json.Number("abc"), json.Number(""),
		math.Inf(1), math.NaN(), struct{}{},
		map[string]any{"a": []any{make(chan int)}},
	} {
		if out, err := Canonical(v); err == nil {
			t.Errorf("Canonical(%#v) = %s, want error", v, out)
		}
	}
}

// TestFloatReprBoundaries checks the switch between fixed and exponent form
// around the thresholds CPython uses (1e-4 and 1e16).
func TestFloatReprBoundaries(t *testing.T) {
	cases := map[float64]string{
		0.0001:                 "0.0001",
		0.00009999999999999999: "9.999999999999999e-05",
		9999999999999998:       "9999999999999998.0",
		1e16:                   "1e+16",
		1.5e16:                 "1.5e+16",
		123.456:                "123.456",
		-2.5:                   "-2.5",
		1e100:                  "1e+100",
		1e-100:                 "1e-100",
	}
	for f, want := range cases {
		got, err := pythonFloatRepr(f)
		if err != nil || got != want {
			t.Errorf("repr(%v) = %q, %v; want %q", f, got, err, want)
		}
	}
}

// sameValue compares two values decoded with UseNumber, treating numbers
// as the Python values they denote (ints exactly, floats as float64).
func sameValue(a, b any) bool {
	switch x := a.(type) {
	case map[string]any:
		y, ok := b.(map[string]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for k, v := range x {
			w, ok := y[k]
			if !ok || !sameValue(v, w) {
				return false
			}
		}
		return true
	case []any:
		y, ok := b.([]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for i := range x {
			if !sameValue(x[i], y[i]) {
				return false
			}
		}
		return true
	case json.Number:
		y, ok := b.(json.Number)
		if !ok {
			return false
		}
		xf, _ := scanNumber(string(x))
		yf, _ := scanNumber(string(y))
		if xf != yf {
			return false
		}
		if !xf {
			bx, _ := new(big.Int).SetString(string(x), 10)
			by, _ := new(big.Int).SetString(string(y), 10)
			return bx != nil && by != nil && bx.Cmp(by) == 0
		}
		fx, err1 := strconv.ParseFloat(string(x), 64)
		fy, err2 := strconv.ParseFloat(string(y), 64)
		return err1 == nil && err2 == nil && fx == fy && math.Signbit(fx) == math.Signbit(fy)
	default:
		return a == b
	}
}

func FuzzCanonical(f *testing.F) {
	for _, c := range canonicalCases {
		f.Add([]byte(c.in))
	}
	f.Add([]byte(`{"a":"\ud800","b":"\xff\xfe","c":[1e308,-0.0,1E-7]}`))
	f.Add([]byte(`"\u007f\u0080\u07ff\u0800\uffff"`))
	f.Fuzz(func(t *testing.T, data []byte) {
		dec := json.NewDecoder(bytes.NewReader(data))
		dec.UseNumber()
		var in any
		if err := dec.Decode(&in); err != nil {
			return
		}
		out, err := Canonical(in)
		if err != nil {
			// Only float overflow (Python's Infinity) is refused.
			if !strings.Contains(err.Error(), "out of float64 range") {
				t.Fatalf("Canonical(%s): %v", data, err)
			}
			return
		}
		for _, c := range out {
			if c >= utf8.RuneSelf {
				t.Fatalf("non-ASCII byte %#x in %q", c, out)
			}
		}
		if !json.Valid(out) {
			t.Fatalf("invalid JSON %q from %q", out, data)
		}
		back := decodeNumber(t, string(out))
		if !sameValue(in, back) {
			t.Fatalf("value changed:\n in: %q\nout: %q", data, out)
		}
		// Canonical output is a fixed point.
		again, err := Canonical(back)
		if err != nil || !bytes.Equal(again, out) {
			t.Fatalf("not idempotent: %q -> %q (%v)", out, again, err)
		}
	})
}
