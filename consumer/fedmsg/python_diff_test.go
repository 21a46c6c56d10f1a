package fedmsg

import (
	"bufio"
	"bytes"
	"math"
	"math/rand/v2"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"
)

// pyCanon is the reference serialization, run by python3 over JSON lines.
const pyCanon = `
import sys, json
for line in sys.stdin:
    v = json.loads(line)
    sys.stdout.write(json.dumps(v, sort_keys=True, separators=(',', ':')) + '\n')
`

// TestCanonicalAgainstCPython compares Canonical with CPython's json module
// on random documents rich in the awkward cases (astral characters, control
// characters, keys that sort differently in UTF-16, floats at the repr
// thresholds, big ints). It needs python3 and is skipped without it.
func TestCanonicalAgainstCPython(t *testing.T) {
	if testing.Short() {
		t.Skip("short mode")
	}
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("python3 not available")
	}
	r := rand.New(rand.NewPCG(1, 2))
	var docs []string
	var in bytes.Buffer
	for range 3000 {
		var b strings.Builder
		genValue(r, &b, 0)
		docs = append(docs, b.String())
		in.WriteString(b.String())
		in.WriteByte('\n')
	}
	cmd := exec.Command(py, "-c", pyCanon)
	cmd.Stdin = &in
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("python3: %v", err)
	}
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(nil, 1<<20)
	i, bad := 0, 0
	for sc.Scan() {
		got, err := Canonical(decodeNumber(t, docs[i]))
		if err != nil {
			t.Errorf("%s: %v", docs[i], err)
		} else if string(got) != sc.Text() {
			bad++
			if bad <= 5 {
				t.Errorf("input: %s\n   go: %s\n  python: %s", docs[i], got, sc.Text())
			}
		}
		i++
	}
	if i != len(docs) {
		t.Fatalf("python returned %d lines for %d documents", i, len(docs))
	}
	t.Logf("%d documents compared, %d differ", i, bad)
}

// Characters chosen around every boundary that matters to the encoder.
var genRunes = []rune{
	'a', 'Z', ' ', '~', '/', '"', '\\', 0, 0x08, 0x09, 0x0a, 0x0c, 0x0d, 0x1f,
	0x7f, 0x80, 0xe9, 0x7ff, 0x800, 0x20ac, 0xd7ff, 0xe000, 0xfeff, 0xfffd,
	0xffff, 0x10000, 0x1f600, 0x10ffff,
}

func genString(r *rand.Rand, b *strings.Builder) {
	n := r.IntN(6)
	var s []rune
	for range n {
		s = append(s, genRunes[r.IntN(len(genRunes))])
	}
	b.WriteByte('"')
	for _, c := range s {
		switch {
		case c == '"' || c == '\\':
			b.WriteByte('\\')
			b.WriteRune(c)
		case c < 0x20:
			b.WriteString(`\u00`)
			b.WriteByte(hexDigits[c>>4])
			b.WriteByte(hexDigits[c&0xf])
		case c > 0xffff && r.IntN(2) == 0:
			// Also feed surrogate-pair escapes, upper or lower case hex.
			c -= 0x10000
			writeEsc(b, 0xd800+c>>10, r.IntN(2) == 0)
			writeEsc(b, 0xdc00+c&0x3ff, r.IntN(2) == 0)
		default:
			if utf8.ValidRune(c) {
				b.WriteRune(c)
			}
		}
	}
	b.WriteByte('"')
}

func writeEsc(b *strings.Builder, u rune, upper bool) {
	s := `\u` + string([]byte{hexDigits[u>>12&0xf], hexDigits[u>>8&0xf], hexDigits[u>>4&0xf], hexDigits[u&0xf]})
	if upper {
		s = `\u` + strings.ToUpper(s[2:])
	}
	b.WriteString(s)
}

var genNumbers = []string{
	"0", "-0", "1", "-1", "1.0", "-0.0", "0.1", "1e5", "1E+5", "1e-5", "1e16",
	"1e15", "0.0001", "0.00001", "9999999999999998.0", "1e22", "5e-324",
	"1.7976931348623157e308", "123456789012345678901234567890",
	"1344350850.886738", "2.5e-07", "100.0e-2", "1e-400",
}

func genNumber(r *rand.Rand, b *strings.Builder) {
	switch r.IntN(4) {
	case 0:
		b.WriteString(genNumbers[r.IntN(len(genNumbers))])
	case 1:
		b.WriteString(strconv.FormatInt(r.Int64()>>r.IntN(63), 10))
	default:
		// A random float64 in a wide exponent range, in Go's shortest form
		// (valid JSON) or with extra digits.
		f := r.NormFloat64() * math.Pow(10, float64(r.IntN(44)-22))
		if r.IntN(2) == 0 {
			b.WriteString(strconv.FormatFloat(f, 'g', -1, 64))
		} else {
			b.WriteString(strconv.FormatFloat(f, 'e', 20, 64))
		}
	}
}

func genValue(r *rand.Rand, b *strings.Builder, depth int) {
	k := r.IntN(7)
	if depth > 3 && k >= 5 {
		k = r.IntN(5)
	}
	switch k {
	case 0:
		b.WriteString([]string{"null", "true", "false"}[r.IntN(3)])
	case 1, 2:
		genString(r, b)
	case 3, 4:
		genNumber(r, b)
	case 5:
		b.WriteByte('[')
		for i := range r.IntN(4) {
			if i > 0 {
				b.WriteByte(',')
			}
			genValue(r, b, depth+1)
		}
		b.WriteByte(']')
	case 6:
		b.WriteByte('{')
		for i := range r.IntN(5) {
			if i > 0 {
				b.WriteByte(',')
			}
			genString(r, b)
			b.WriteByte(':')
			genValue(r, b, depth+1)
		}
		b.WriteByte('}')
	}
}
