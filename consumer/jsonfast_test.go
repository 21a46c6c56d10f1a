package consumer

import (
	"bytes"
	"encoding/json"
	"io"
	"os"
	"reflect"
	"strings"
	"sync"
	"testing"
	"unicode/utf8"
)

// referenceJSON is what parseJSON stands in for: encoding/json's Decoder
// with UseNumber, one value and nothing after it but white space.
func referenceJSON(b []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, io.ErrUnexpectedEOF // anything after the value
	}
	return v, nil
}

var jsonCases = []string{
	`{}`, `[]`, `null`, `true`, `false`, `0`, `-0`, `-0.5e+10`, `1E3`, `12.25`, `"x"`, ` {"a" : [1, 2 ,{"b":null}] } `,
	`{"a":1,"a":2}`, `{"k\u00e9y":"\u00e9\n\t\"\\\/\b\f\r"}`, `"\ud83d\ude00"`, `"\ud83d"`, `"\ude00"`, `"\ud83d\u0041"`,
	`"\ud83dx"`, `"\ud83d\ud83d\ude00"`, `"\u0000"`, `"héllo ☃ 😀"`, `[1,]`, `{"a":1,}`, `01`, `1.`, `.5`, `-`, `1e`, `+1`,
	`"\x"`, `"\u12"`, `"\u12g4"`, "\"a\tb\"", `tru`, `nul`, `{"a" 1}`, `{1:2}`, `[1 2]`, `{} {}`, `{} x`, `"abc`, `[`, `{"a":`,
	``, `   `, `{"a":[[[[[]]]]]}`, `1 `, "\t\r\n[]\n", `"\/"`, `{"":""}`, `[1e400]`, `-01`, `2.5E-3`, `[true,false,null]`,
}

func TestParseJSONAgreesWithEncodingJSON(t *testing.T) {
	t.Parallel()
	cases := jsonCases
	corpus, err := os.ReadFile("../testdata/fedmsg-meta.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	for line := range bytes.SplitSeq(corpus, []byte("\n")) {
		cases = append(cases, string(line))
	}
	for _, c := range cases {
		checkParseJSON(t, []byte(c))
	}
}

func checkParseJSON(t *testing.T, b []byte) {
	t.Helper()
	if !utf8.Valid(b) {
		return // callers refuse these before parsing
	}
	got, err := parseJSON(b)
	want, werr := referenceJSON(b)
	if (err == nil) != (werr == nil) {
		t.Fatalf("%q: parseJSON error %v, encoding/json error %v", b, err, werr)
	}
	if err == nil && !reflect.DeepEqual(got, want) {
		t.Fatalf("%q: parseJSON gives %#v, encoding/json %#v", b, got, want)
	}
	if err == nil {
		checkAppendJSON(t, got)
	}
}

// referenceEncode is what appendJSON stands in for.
func referenceEncode(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

func checkAppendJSON(t *testing.T, v any) {
	t.Helper()
	got, ok := appendJSON(nil, v)
	want, err := referenceEncode(v)
	if !ok {
		if err == nil {
			t.Fatalf("%#v: appendJSON gave up, encoding/json wrote %s", v, want)
		}
		return
	}
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("%#v: appendJSON wrote %s, encoding/json %s (%v)", v, got, want, err)
	}
}

// appendJSON writes what encoding/json writes, escapes and all, and gives
// up where encoding/json would fail or where it does not know the type.
func TestAppendJSONAgreesWithEncodingJSON(t *testing.T) {
	t.Parallel()
	for _, v := range []any{
		"\x00\x01\x1f\x7f <&> \"\\ \b\f\n\r\t \u2028\u2029 é😀", "bad \xff\xfe utf-8 \xe2\x82", "",
		json.Number(""), json.Number("-1.5e3"), map[string]any{"b": true, "f": false, "a": nil, "": []any{}, "c": []any(nil)},
		map[string]any(nil), []any{"x", json.Number("0"), map[string]any{"z\u2028": "y"}},
	} {
		checkAppendJSON(t, v)
	}
	for _, v := range []any{json.Number("01"), json.Number("x"), 1.5, 3, map[string]any{"a": []string{"b"}}} {
		if _, ok := appendJSON(nil, v); ok {
			t.Errorf("appendJSON(%#v) did not give up", v)
		}
	}
}

func FuzzParseJSON(f *testing.F) {
	for _, c := range jsonCases {
		f.Add([]byte(c))
	}
	f.Add([]byte(bodhiComment))
	f.Fuzz(func(t *testing.T, b []byte) { checkParseJSON(t, b) })
}

func BenchmarkParseJSON(b *testing.B) {
	body := []byte(bodhiComment)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := parseJSON(body); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkParseJSONCorpus parses the bodies of the corpus's messages, one
// op being the whole corpus: their objects are larger and deeper than one
// comment's.
func BenchmarkParseJSONCorpus(b *testing.B) {
	corpus, err := ReadCorpus("../testdata/fedmsg-meta.jsonl")
	if err != nil {
		b.Fatal(err)
	}
	var bodies [][]byte
	size := 0
	for _, env := range corpus {
		body, err := json.Marshal(env["msg"])
		if err != nil {
			b.Fatal(err)
		}
		bodies = append(bodies, body)
		size += len(body)
	}
	b.SetBytes(int64(size))
	b.ReportAllocs()
	for b.Loop() {
		for _, body := range bodies {
			if _, err := parseJSON(body); err != nil {
				b.Fatal(err)
			}
		}
	}
}

// TestParseJSONAcrossBodies parses the corpus's bodies one after another,
// and again from several goroutines, each checked against encoding/json:
// the parsers are reused (their key cache holds keys of earlier bodies,
// many in the same slot), and nothing of one body may show in another.
// Keys with escapes, keys too long to keep, and a key twice in an object
// are among them.
func TestParseJSONAcrossBodies(t *testing.T) {
	t.Parallel()
	corpus, err := ReadCorpus("../testdata/fedmsg-meta.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	bodies := [][]byte{
		[]byte(`{"a":1,"a":2,"b\u0041":{"a":[{"a":"x"},{"b":null}]}}`),
		[]byte(`{"` + strings.Repeat("k", maxInterned) + `":1,"` + strings.Repeat("k", maxInterned+1) + `":2}`),
		[]byte(`{"user":{"name":"a"},"usr":{"name":"b"},"name":"c","nam\"e":"d"}`),
	}
	for _, env := range corpus {
		b, err := json.Marshal(env["msg"])
		if err != nil {
			t.Fatal(err)
		}
		bodies = append(bodies, b)
	}
	for _, b := range bodies {
		checkParseJSON(t, b)
	}
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for i := len(bodies) - 1; i >= 0; i-- {
				got, err := parseJSON(bodies[i])
				want, _ := referenceJSON(bodies[i])
				if err != nil || !reflect.DeepEqual(got, want) {
					t.Errorf("%s: parseJSON gives %#v (%v), encoding/json %#v", bodies[i], got, err, want)
					return
				}
			}
		})
	}
	wg.Wait()
}
