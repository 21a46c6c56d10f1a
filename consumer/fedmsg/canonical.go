package fedmsg

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Canonical serializes v exactly as Python's
//
//	json.dumps(v, sort_keys=True, separators=(',', ':'))
//
// does (ensure_ascii left at its default, True) for the Python value that
// json.loads would have produced from the same JSON text. This is the
// serialization fedmsg signs, so a single differing byte breaks every
// signature.
//
// v is normally a value decoded by encoding/json with UseNumber: map[string]any,
// []any, json.Number, string, bool and nil. For convenience when building
// envelopes in Go, float64, the integer types, []string and map[string]string
// are accepted too; a float64 is always written as a Python float (a float64
// decoded from "1" would come out as "1.0", which is why decoding must use
// UseNumber).
//
// The rules, all taken from CPython's json encoder:
//
//   - Object keys are sorted by code point. Go's sort compares the UTF-8
//     bytes, and UTF-8 was designed so that byte order equals code point
//     order, so the two agree for every valid string. (They would differ
//     from UTF-16 code unit order, as used by narrow Python 2 builds, for
//     keys mixing U+E000..U+FFFF with astral characters; CPython 3 and the
//     wide Python 2 builds that Linux distributions shipped sort by code
//     point.)
//   - Strings: only the printable ASCII range 0x20..0x7E is written as is,
//     except '"' and '\\'. \" \\ \n \r \t \b \f use their short escapes;
//     everything else, including DEL (0x7F), is written \u00XX with
//     lowercase hex; characters above U+FFFF become a UTF-16 surrogate pair.
//     '/' is not escaped.
//   - A json.Number without a fraction or exponent is a Python int and is
//     written as given (arbitrary size), except that "-0" becomes "0" as
//     int("-0") does. Any other number is a Python float: it is parsed to the
//     nearest float64 and written as repr(float) would (shortest round-trip
//     digits; exponent form when the decimal exponent is below -4 or at least
//     16, e.g. 1e-05, 1e+16; otherwise fixed form with at least one decimal,
//     e.g. 100000.0).
//
// Deliberate divergences, each for input Python's own publisher never sends:
//   - A float literal too large for float64 (1e400) is Infinity for Python;
//     Canonical returns an error instead, because "Infinity" is not JSON.
//     NaN and ±Inf float64 values are rejected the same way.
//   - Invalid UTF-8 in a Go string is written as \ufffd per bad byte, which
//     is what encoding/json itself substitutes when decoding. A consequence is
//     that a lone surrogate escape such as "\ud800" in a received frame, which
//     Python would keep and re-escape, is already U+FFFD after Go decoding, so
//     such a (legitimately signed) message fails verification.
//   - Integers longer than 4300 digits are written as given; CPython 3.11+
//     refuses to parse them at all (its int max_str_digits limit).
func Canonical(v any) ([]byte, error) {
	var buf bytes.Buffer
	if err := encodeValue(&buf, v); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func encodeValue(buf *bytes.Buffer, v any) error {
	switch x := v.(type) {
	case nil:
		buf.WriteString("null")
	case bool:
		if x {
			buf.WriteString("true")
		} else {
			buf.WriteString("false")
		}
	case string:
		encodeString(buf, x)
	case json.Number:
		s, err := pythonNumber(string(x))
		if err != nil {
			return err
		}
		buf.WriteString(s)
	case float64:
		s, err := pythonFloatRepr(x)
		if err != nil {
			return err
		}
		buf.WriteString(s)
	case float32:
		s, err := pythonFloatRepr(float64(x))
		if err != nil {
			return err
		}
		buf.WriteString(s)
	case int:
		buf.WriteString(strconv.FormatInt(int64(x), 10))
	case int8:
		buf.WriteString(strconv.FormatInt(int64(x), 10))
	case int16:
		buf.WriteString(strconv.FormatInt(int64(x), 10))
	case int32:
		buf.WriteString(strconv.FormatInt(int64(x), 10))
	case int64:
		buf.WriteString(strconv.FormatInt(x, 10))
	case uint:
		buf.WriteString(strconv.FormatUint(uint64(x), 10))
	case uint8:
		buf.WriteString(strconv.FormatUint(uint64(x), 10))
	case uint16:
		buf.WriteString(strconv.FormatUint(uint64(x), 10))
	case uint32:
		buf.WriteString(strconv.FormatUint(uint64(x), 10))
	case uint64:
		buf.WriteString(strconv.FormatUint(x, 10))
	case []any:
		buf.WriteByte('[')
		for i, e := range x {
			if i > 0 {
				buf.WriteByte(',')
			}
			if err := encodeValue(buf, e); err != nil {
				return fmt.Errorf("[%d]: %w", i, err)
			}
		}
		buf.WriteByte(']')
	case []string:
		buf.WriteByte('[')
		for i, e := range x {
			if i > 0 {
				buf.WriteByte(',')
			}
			encodeString(buf, e)
		}
		buf.WriteByte(']')
	case map[string]any:
		keys := sortedKeys(x)
		buf.WriteByte('{')
		for i, k := range keys {
			if i > 0 {
				buf.WriteByte(',')
			}
			encodeString(buf, k)
			buf.WriteByte(':')
			if err := encodeValue(buf, x[k]); err != nil {
				return fmt.Errorf("%q: %w", k, err)
			}
		}
		buf.WriteByte('}')
	case map[string]string:
		keys := sortedKeys(x)
		buf.WriteByte('{')
		for i, k := range keys {
			if i > 0 {
				buf.WriteByte(',')
			}
			encodeString(buf, k)
			buf.WriteByte(':')
			encodeString(buf, x[k])
		}
		buf.WriteByte('}')
	default:
		return fmt.Errorf("canonical json: unsupported type %T", v)
	}
	return nil
}

// sortedKeys returns the keys of m in byte order, which for valid UTF-8 is
// code point order, the order Python's sort_keys uses.
func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

const hexDigits = "0123456789abcdef"

// encodeString writes s as CPython's ensure_ascii encoder
// (py_encode_basestring_ascii) does.
func encodeString(buf *bytes.Buffer, s string) {
	buf.WriteByte('"')
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			i++
			switch c {
			case '"':
				buf.WriteString(`\"`)
			case '\\':
				buf.WriteString(`\\`)
			case '\n':
				buf.WriteString(`\n`)
			case '\r':
				buf.WriteString(`\r`)
			case '\t':
				buf.WriteString(`\t`)
			case '\b':
				buf.WriteString(`\b`)
			case '\f':
				buf.WriteString(`\f`)
			default:
				if c >= 0x20 && c <= 0x7e {
					buf.WriteByte(c)
				} else {
					writeU(buf, rune(c))
				}
			}
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		i += size
		// r is utf8.RuneError (U+FFFD) for an invalid byte: written as \ufffd.
		if r > 0xffff {
			r -= 0x10000
			writeU(buf, 0xd800+(r>>10)&0x3ff)
			writeU(buf, 0xdc00+r&0x3ff)
		} else {
			writeU(buf, r)
		}
	}
	buf.WriteByte('"')
}

// writeU writes the escape \uXXXX for a code unit below 0x10000.
func writeU(buf *bytes.Buffer, u rune) {
	buf.WriteString(`\u`)
	buf.WriteByte(hexDigits[u>>12&0xf])
	buf.WriteByte(hexDigits[u>>8&0xf])
	buf.WriteByte(hexDigits[u>>4&0xf])
	buf.WriteByte(hexDigits[u&0xf])
}

// pythonNumber converts JSON number text to what Python's json.dumps writes
// for the value json.loads makes of it: ints keep their digits, anything
// with a fraction or an exponent is a float.
func pythonNumber(s string) (string, error) {
	isFloat, ok := scanNumber(s)
	if !ok {
		return "", fmt.Errorf("canonical json: invalid number %q", s)
	}
	if !isFloat {
		if s == "-0" {
			return "0", nil
		}
		return s, nil
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		// Only out-of-range is possible after scanNumber; Python would make
		// it inf and write the non-JSON token Infinity.
		return "", fmt.Errorf("canonical json: number %q out of float64 range", s)
	}
	return pythonFloatRepr(f)
}

// scanNumber checks s against the JSON number grammar
// -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)? and reports whether it has
// a fraction or an exponent (which makes it a float for Python).
func scanNumber(s string) (isFloat, ok bool) {
	i := 0
	if i < len(s) && s[i] == '-' {
		i++
	}
	digits := func() int {
		n := 0
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
			n++
		}
		return n
	}
	switch {
	case i < len(s) && s[i] == '0':
		i++
	case i < len(s) && s[i] >= '1' && s[i] <= '9':
		digits()
	default:
		return false, false
	}
	if i < len(s) && s[i] == '.' {
		i++
		isFloat = true
		if digits() == 0 {
			return false, false
		}
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		isFloat = true
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		if digits() == 0 {
			return false, false
		}
	}
	return isFloat, i == len(s)
}

// pythonFloatRepr formats f as Python 3's repr(float) (also Python 2.7's,
// which json used): the shortest digit string that round-trips, in
// exponent form when the decimal point position is below -4 or above 16
// (i.e. f < 1e-4 or f >= 1e16 in magnitude), with a two-digit minimum,
// signed exponent; otherwise in fixed form with ".0" added to integral
// values.
func pythonFloatRepr(f float64) (string, error) {
	if math.IsInf(f, 0) || math.IsNaN(f) {
		return "", fmt.Errorf("canonical json: %v is not representable in JSON", f)
	}
	e := strconv.FormatFloat(f, 'e', -1, 64) // d[.ddd]e±XX, shortest digits
	p := strings.LastIndexByte(e, 'e')
	exp, err := strconv.Atoi(e[p+1:])
	if err != nil {
		return "", fmt.Errorf("canonical json: formatting %v: %w", f, err)
	}
	// CPython's float_repr uses the exponent form when decpt <= -4 or
	// decpt > 16, where the value is 0.DIGITS * 10**decpt, i.e. decpt = exp+1.
	if exp < -4 || exp >= 16 {
		return e, nil // Go's 'e' format matches Python's: 1e+16, 1.5e-07.
	}
	s := strconv.FormatFloat(f, 'f', -1, 64)
	if !strings.Contains(s, ".") {
		s += ".0"
	}
	return s, nil
}
