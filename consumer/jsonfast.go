package consumer

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"unicode/utf16"
	"unicode/utf8"
)

// parseJSON decodes b, one JSON value with nothing but white space around
// it, into exactly what encoding/json's Decoder with UseNumber gives for an
// any: map[string]any, []any (never nil), string, json.Number (the
// literal's own text), bool and nil; a repeated key keeps its last value,
// an escaped lone surrogate becomes U+FFFD. b must be valid UTF-8 (callers
// check it first, to refuse what is not).
//
// It exists for speed: every bus message is decoded once, and
// encoding/json (which scans each value twice and decodes through
// reflection) was the largest part of the consumer's own work per message,
// about 25 µs of a 1 KB body, beside the database's. FuzzParseJSON holds
// it to encoding/json's answers.
func parseJSON(b []byte) (any, error) {
	p := parsers.Get().(*jsonParser)
	defer p.release()
	p.b, p.i = b, 0
	p.space()
	v, err := p.value(0)
	if err != nil {
		return nil, err
	}
	p.space()
	if p.i < len(p.b) {
		return nil, p.fail("after top-level value")
	}
	return v, nil
}

// parsers keeps parsers' scratch stacks from one body to the next.
var parsers = sync.Pool{New: func() any { return &jsonParser{keys: new([256]string)} }}

// release empties p (keeping nothing of the body it read, which the
// stacks' values point into) and returns it to parsers. Only a parse that
// failed leaves entries on the stacks: object and array clear what they
// pop, so past a stack's length it is always clear already.
func (p *jsonParser) release() {
	clear(p.members)
	clear(p.elems)
	p.b, p.members, p.elems = nil, p.members[:0], p.elems[:0]
	if cap(p.members) <= maxScratch && cap(p.elems) <= maxScratch {
		parsers.Put(p)
	}
}

// maxScratch: stacks grown past it by an exceptional body are let go.
const maxScratch = 4096

// maxParseDepth is encoding/json's own nesting limit; the callers' checks
// (maxDepth) are far stricter, this only keeps parseJSON safe alone.
const maxParseDepth = 10000

type jsonParser struct {
	b []byte
	i int
	// members and elems hold what the objects and arrays being read have
	// so far, a nested one's above its parent's, so that each map and
	// slice is made once, at its final size: growing them as they filled
	// was a third of what parsing allocated.
	members []jsonMember
	elems   []any
	// keys holds object keys read before: bus messages repeat the same
	// few dozen, and each was a string allocation of its own (a quarter
	// of the allocations). Direct-mapped by a hash of the key's bytes;
	// nil in a parser that reads no objects (appendJSON's number check),
	// which need not clear 4 KB of it.
	keys *[256]string
}

// maxInterned is the longest key kept in jsonParser.keys.
const maxInterned = 32

// key reads an object key, reusing the string of the same key read
// before when it has no escapes.
func (p *jsonParser) key() (string, error) {
	if p.keys == nil {
		return p.str()
	}
	start := p.i + 1
	j := start
	for j < len(p.b) && j-start <= maxInterned {
		c := p.b[j]
		if c == '"' {
			raw := p.b[start:j]
			h := uint32(2166136261) // FNV-1a
			for _, c := range raw {
				h = (h ^ uint32(c)) * 16777619
			}
			slot := &p.keys[h%uint32(len(p.keys))]
			if *slot != string(raw) {
				*slot = string(raw)
			}
			p.i = j + 1
			return *slot, nil
		}
		if c == '\\' || c < 0x20 {
			break
		}
		j++
	}
	return p.str()
}

type jsonMember struct {
	k string
	v any
}

var errJSONEnd = errors.New("unexpected end of JSON input")

func (p *jsonParser) fail(where string) error {
	if p.i >= len(p.b) {
		return errJSONEnd
	}
	r, _ := utf8.DecodeRune(p.b[p.i:])
	return fmt.Errorf("invalid character %q %s (offset %d)", r, where, p.i)
}

func (p *jsonParser) space() {
	for p.i < len(p.b) {
		switch p.b[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

func (p *jsonParser) value(depth int) (any, error) {
	if p.i >= len(p.b) {
		return nil, errJSONEnd
	}
	switch c := p.b[p.i]; {
	case c == '{':
		if depth >= maxParseDepth {
			return nil, errors.New("exceeded max depth")
		}
		return p.object(depth + 1)
	case c == '[':
		if depth >= maxParseDepth {
			return nil, errors.New("exceeded max depth")
		}
		return p.array(depth + 1)
	case c == '"':
		return p.str()
	case c == '-' || c >= '0' && c <= '9':
		return p.number()
	case c == 't':
		return true, p.literal("true")
	case c == 'f':
		return false, p.literal("false")
	case c == 'n':
		return nil, p.literal("null")
	}
	return nil, p.fail("looking for beginning of value")
}

func (p *jsonParser) literal(word string) error {
	for k := 0; k < len(word); k++ {
		if p.i >= len(p.b) || p.b[p.i] != word[k] {
			return p.fail("in literal " + word)
		}
		p.i++
	}
	return nil
}

func (p *jsonParser) object(depth int) (any, error) {
	p.i++ // {
	p.space()
	if p.i < len(p.b) && p.b[p.i] == '}' {
		p.i++
		return map[string]any{}, nil
	}
	base := len(p.members)
	for {
		if p.i >= len(p.b) || p.b[p.i] != '"' {
			return nil, p.fail("looking for beginning of object key string")
		}
		k, err := p.key()
		if err != nil {
			return nil, err
		}
		p.space()
		if p.i >= len(p.b) || p.b[p.i] != ':' {
			return nil, p.fail("after object key")
		}
		p.i++
		p.space()
		v, err := p.value(depth)
		if err != nil {
			return nil, err
		}
		p.members = append(p.members, jsonMember{k, v})
		done, err := p.next('}', "after object key:value pair")
		if err != nil {
			return nil, err
		}
		if done {
			ms := p.members[base:]
			m := make(map[string]any, len(ms))
			for _, mb := range ms {
				m[mb.k] = mb.v // a repeated key: the last one counts, as in encoding/json
			}
			clear(ms)
			p.members = p.members[:base]
			return m, nil
		}
	}
}

func (p *jsonParser) array(depth int) (any, error) {
	p.i++ // [
	p.space()
	if p.i < len(p.b) && p.b[p.i] == ']' {
		p.i++
		return []any{}, nil
	}
	base := len(p.elems)
	for {
		v, err := p.value(depth)
		if err != nil {
			return nil, err
		}
		p.elems = append(p.elems, v)
		done, err := p.next(']', "after array element")
		if err != nil {
			return nil, err
		}
		if done {
			es := p.elems[base:]
			a := append(make([]any, 0, len(es)), es...)
			clear(es)
			p.elems = p.elems[:base]
			return a, nil
		}
	}
}

// next reads what follows an object's member or an array's element: a
// comma (another follows: done false) or the closing byte (done true);
// anything else fails, saying where.
func (p *jsonParser) next(closing byte, where string) (done bool, err error) {
	p.space()
	if p.i >= len(p.b) {
		return false, errJSONEnd
	}
	switch p.b[p.i] {
	case ',':
		p.i++
		p.space()
		return false, nil
	case closing:
		p.i++
		return true, nil
	}
	return false, p.fail(where)
}

// str reads a string at p.i (its opening quote). A string without escapes
// (most) is one copy of its bytes.
func (p *jsonParser) str() (string, error) {
	p.i++ // "
	start := p.i
	for p.i < len(p.b) {
		switch c := p.b[p.i]; {
		case c == '"':
			s := string(p.b[start:p.i])
			p.i++
			return s, nil
		case c == '\\':
			return p.escaped(start)
		case c < 0x20:
			return "", p.fail("in string literal")
		default:
			p.i++
		}
	}
	return "", errJSONEnd
}

// escaped finishes a string from start that has an escape at p.i.
func (p *jsonParser) escaped(start int) (string, error) {
	out := make([]byte, 0, p.i-start+16)
	out = append(out, p.b[start:p.i]...)
	for p.i < len(p.b) {
		c := p.b[p.i]
		switch {
		case c == '"':
			p.i++
			return string(out), nil
		case c < 0x20:
			return "", p.fail("in string literal")
		case c != '\\':
			out = append(out, c)
			p.i++
			continue
		}
		p.i++ // backslash
		if p.i >= len(p.b) {
			return "", errJSONEnd
		}
		switch p.b[p.i] {
		case '"', '\\', '/':
			out = append(out, p.b[p.i])
		case 'b':
			out = append(out, '\b')
		case 'f':
			out = append(out, '\f')
		case 'n':
			out = append(out, '\n')
		case 'r':
			out = append(out, '\r')
		case 't':
			out = append(out, '\t')
		case 'u':
			r, ok := p.hex4(p.i + 1)
			if !ok {
				return "", p.fail("in \\u hexadecimal character escape")
			}
			p.i += 4
			if utf16.IsSurrogate(r) {
				// A pair is one character; anything else is U+FFFD, and
				// a following escape is read on its own.
				hi := r
				r = utf8.RuneError
				if p.i+2 < len(p.b) && p.b[p.i+1] == '\\' && p.b[p.i+2] == 'u' {
					if r2, ok := p.hex4(p.i + 3); ok {
						if d := utf16.DecodeRune(hi, r2); d != utf8.RuneError {
							r = d
							p.i += 6
						}
					}
				}
			}
			out = utf8.AppendRune(out, r)
		default:
			return "", p.fail("in string escape code")
		}
		p.i++
	}
	return "", errJSONEnd
}

// hex4 reads four hexadecimal digits at i.
func (p *jsonParser) hex4(i int) (rune, bool) {
	if i+4 > len(p.b) {
		return 0, false
	}
	var r rune
	for _, c := range p.b[i : i+4] {
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'a' && c <= 'f':
			c -= 'a' - 10
		case c >= 'A' && c <= 'F':
			c -= 'A' - 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	return r, true
}

// number reads a number literal (JSON's grammar: -?(0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?)
// into a json.Number of its text.
func (p *jsonParser) number() (any, error) {
	start := p.i
	if p.b[p.i] == '-' {
		p.i++
	}
	switch {
	case p.i < len(p.b) && p.b[p.i] == '0':
		p.i++
	case p.i < len(p.b) && p.b[p.i] >= '1' && p.b[p.i] <= '9':
		p.digits()
	default:
		return nil, p.fail("in numeric literal")
	}
	if p.i < len(p.b) && p.b[p.i] == '.' {
		p.i++
		if !p.digits() {
			return nil, p.fail("after decimal point in numeric literal")
		}
	}
	if p.i < len(p.b) && (p.b[p.i] == 'e' || p.b[p.i] == 'E') {
		p.i++
		if p.i < len(p.b) && (p.b[p.i] == '+' || p.b[p.i] == '-') {
			p.i++
		}
		if !p.digits() {
			return nil, p.fail("in exponent of numeric literal")
		}
	}
	return json.Number(p.b[start:p.i]), nil
}

// digits skips one or more decimal digits; false when there is none.
func (p *jsonParser) digits() bool {
	start := p.i
	for p.i < len(p.b) && p.b[p.i] >= '0' && p.b[p.i] <= '9' {
		p.i++
	}
	return p.i > start
}

// appendJSON appends v encoded exactly as encoding/json's Encoder with
// SetEscapeHTML(false) encodes it (map keys sorted, U+2028 and U+2029
// escaped, invalid UTF-8 as \ufffd), for the values parseJSON makes:
// map[string]any, []any, string, json.Number, bool and nil. Any other
// type (or an invalid json.Number) reports false, and the caller uses
// encoding/json. Encoding a message's headers through reflection cost as
// much as parsing its body.
func appendJSON(b []byte, v any) ([]byte, bool) {
	switch x := v.(type) {
	case nil:
		return append(b, "null"...), true
	case bool:
		if x {
			return append(b, "true"...), true
		}
		return append(b, "false"...), true
	case string:
		return appendJSONString(b, x), true
	case json.Number:
		s := string(x)
		if s == "" {
			s = "0" // as encoding/json writes an empty Number
		}
		p := jsonParser{b: []byte(s)}
		if _, err := p.number(); err != nil || p.i != len(s) {
			return b, false
		}
		return append(b, s...), true
	case map[string]any:
		if x == nil {
			return append(b, "null"...), true
		}
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		b = append(b, '{')
		for i, k := range keys {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendJSONString(b, k)
			b = append(b, ':')
			var ok bool
			if b, ok = appendJSON(b, x[k]); !ok {
				return b, false
			}
		}
		return append(b, '}'), true
	case []any:
		if x == nil {
			return append(b, "null"...), true
		}
		b = append(b, '[')
		for i, e := range x {
			if i > 0 {
				b = append(b, ',')
			}
			var ok bool
			if b, ok = appendJSON(b, e); !ok {
				return b, false
			}
		}
		return append(b, ']'), true
	}
	return b, false
}

const hexDigits = "0123456789abcdef"

// appendJSONString is encoding/json's string encoding without HTML
// escapes.
func appendJSONString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xF])
		default:
			i += size
			continue
		}
		i += size
		start = i
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
