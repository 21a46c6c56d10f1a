package meta

import (
	"bufio"
	"encoding/json"
	"os"
	"slices"
	"sort"
	"strings"
	"testing"
)

type corpusCase struct {
	Case string `json:"case"`
	Msg  struct {
		Topic    string `json:"topic"`
		Msg      any    `json:"msg"`
		Username string `json:"username"`
	} `json:"msg"`
	Expected map[string]json.RawMessage `json:"expected"`
}

const corpusPath = "../../testdata/fedmsg-meta.jsonl"

func loadCorpus(tb testing.TB) []corpusCase {
	tb.Helper()
	f, err := os.Open(corpusPath)
	if err != nil {
		tb.Fatalf("open corpus: %v", err)
	}
	defer f.Close()
	var out []corpusCase
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 1<<20), 16<<20)
	for sc.Scan() {
		var c corpusCase
		if err := json.Unmarshal(sc.Bytes(), &c); err != nil {
			tb.Fatalf("corpus line %d: %v", len(out)+1, err)
		}
		out = append(out, c)
	}
	if err := sc.Err(); err != nil {
		tb.Fatal(err)
	}
	return out
}

func stringSet(raw json.RawMessage) ([]string, error) {
	var l []string
	if err := json.Unmarshal(raw, &l); err != nil {
		return nil, err
	}
	sort.Strings(l)
	return slices.Compact(l), nil
}

// TestCorpus checks every sample of the corpus against what Fedora's own
// metadata library derives: usernames, packages and link, each only where
// the sample defines it.
func TestCorpus(t *testing.T) {
	cases := loadCorpus(t)
	pass := 0
	for i, c := range cases {
		name := c.Case
		ok := t.Run(name, func(t *testing.T) {
			md := Extract(c.Msg.Topic, c.Msg.Msg, c.Msg.Username)
			if raw, ok := c.Expected["usernames"]; ok {
				want, err := stringSet(raw)
				if err != nil {
					t.Fatalf("line %d: %v", i+1, err)
				}
				if !slices.Equal(want, md.Usernames) {
					t.Errorf("%s usernames = %q, want %q", c.Msg.Topic, md.Usernames, want)
				}
			}
			if raw, ok := c.Expected["packages"]; ok {
				want, err := stringSet(raw)
				if err != nil {
					t.Fatalf("line %d: %v", i+1, err)
				}
				if !slices.Equal(want, md.Packages) {
					t.Errorf("%s packages = %q, want %q", c.Msg.Topic, md.Packages, want)
				}
			}
			if raw, ok := c.Expected["link"]; ok {
				var want *string
				if err := json.Unmarshal(raw, &want); err != nil {
					t.Fatalf("line %d: %v", i+1, err)
				}
				w := ""
				if want != nil {
					w = *want
				}
				if md.Link != w {
					t.Errorf("%s link = %q, want %q", c.Msg.Topic, md.Link, w)
				}
			}
			checkInvariants(t, md)
		})
		if ok {
			pass++
		}
	}
	t.Logf("corpus: %d/%d cases pass", pass, len(cases))
}

func checkInvariants(t *testing.T, md Metadata) {
	t.Helper()
	if md.Usernames == nil || md.Packages == nil {
		t.Errorf("nil slice: %+v", md)
	}
	if !slices.IsSorted(md.Usernames) || !slices.IsSorted(md.Packages) {
		t.Errorf("unsorted: %+v", md)
	}
	if len(slices.Compact(slices.Clone(md.Usernames))) != len(md.Usernames) ||
		len(slices.Compact(slices.Clone(md.Packages))) != len(md.Packages) {
		t.Errorf("duplicates: %+v", md)
	}
	if strings.ContainsAny(md.Summary, "\r\n") || len([]rune(md.Summary)) > maxSummary+1 {
		t.Errorf("bad summary %q", md.Summary)
	}
	if md.Summary == "" {
		t.Errorf("empty summary for %s", md.Topic)
	}
}

// TestCorpusSummaries prints nothing but makes sure every corpus summary is
// a plain line; run with -v to eyeball them.
func TestCorpusSummaries(t *testing.T) {
	for _, c := range loadCorpus(t) {
		md := Extract(c.Msg.Topic, c.Msg.Msg, c.Msg.Username)
		if testing.Verbose() {
			t.Logf("%-45s %s | %s | agent=%s", c.Case, md.App, md.Summary, md.Agent)
		}
	}
}

func BenchmarkExtract(b *testing.B) {
	cases := loadCorpus(b)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		for i := range cases {
			Extract(cases[i].Msg.Topic, cases[i].Msg.Msg, cases[i].Msg.Username)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(len(cases)), "ns/msg")
}

func FuzzExtract(f *testing.F) {
	for _, c := range loadCorpus(f) {
		raw, _ := json.Marshal(c.Msg.Msg)
		f.Add(c.Msg.Topic, string(raw), c.Msg.Username)
	}
	f.Add("org.fedoraproject.prod.bodhi.updates.x.sync", `{"repo":1}`, "")
	f.Add("", `null`, "")
	f.Add("....", `[]`, "")
	f.Fuzz(func(t *testing.T, topic, body, user string) {
		var v any
		if err := json.Unmarshal([]byte(body), &v); err != nil {
			return
		}
		md := Extract(topic, v, user)
		checkInvariants(t, md)
		md2 := Extract(topic, v, user)
		if !slices.Equal(md.Usernames, md2.Usernames) || md.Summary != md2.Summary || md.Link != md2.Link {
			t.Errorf("not deterministic: %+v vs %+v", md, md2)
		}
	})
}
