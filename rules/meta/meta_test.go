package meta

import (
	"bufio"
	"encoding/json"
	"fmt"
	"math/rand/v2"
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

// knownDivergent lists corpus cases whose expected values cannot be derived
// from the message alone, with the reason.  They are reported, not failed;
// a listed case that starts to pass fails the test so the list stays true.
var knownDivergent = map[string]string{
	// Fedora's library maps non-Fedora e-mail addresses to FAS accounts
	// with a live FAS query (rbean@redhat.com → ralph); without an account
	// lookup only USER@fedoraproject.org addresses can be resolved.
	"bz:TestLegacy030BugzillaUpdate":       "needs a FAS e-mail → account lookup",
	"bz:TestLegacy84cd3720BugzillaComment": "needs a FAS e-mail → account lookup",
	// IRC nick → FAS account (threebean → ralph) is likewise a FAS query.
	"zodbot:TestSupybotEndMeetingNoTitle": "needs a FAS IRC nick → account lookup",
	// The expected link rewrites the message's https://testlink to
	// http://; nothing in the schema says why, so the link is kept as sent.
	"fedoracollege:TestContentEdit": "expected link downgrades https to http",
	// fmn counts a dist-git project as its artifact (rpms/arachne-pnr is
	// the package arachne-pnr), so that "packages I maintain" hears of
	// pull requests and access changes; Fedora's fedmsg_meta gave none.
	"pagure:TestNewProjectDistGit": "fmn names the dist-git project's package",
}

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
	for _, c := range cases {
		name := c.Case
		t.Run(name, func(t *testing.T) {
			md := Extract(c.Msg.Topic, c.Msg.Msg, c.Msg.Username)
			if reason, known := knownDivergent[name]; known {
				errs := mismatches(c, md)
				if len(errs) == 0 {
					t.Errorf("listed as divergent (%s) but passes: remove it from knownDivergent", reason)
				} else {
					t.Logf("known divergence (%s): %s", reason, strings.Join(errs, "; "))
				}
				return
			}
			for _, e := range mismatches(c, md) {
				t.Error(e)
			}
			checkInvariants(t, md)
		})
	}
	exact := 0
	for _, c := range cases {
		if len(mismatches(c, Extract(c.Msg.Topic, c.Msg.Msg, c.Msg.Username))) == 0 {
			exact++
		}
	}
	t.Logf("corpus: %d/%d cases match Fedora's library exactly (%d known divergences)", exact, len(cases), len(knownDivergent))
}

// mismatches compares one result with the corpus expectations.
func mismatches(c corpusCase, md Metadata) []string {
	var errs []string
	if raw, ok := c.Expected["usernames"]; ok {
		want, err := stringSet(raw)
		if err != nil {
			return []string{err.Error()}
		}
		if !slices.Equal(want, md.Usernames) {
			errs = append(errs, fmt.Sprintf("%s usernames = %q, want %q", c.Msg.Topic, md.Usernames, want))
		}
	}
	if raw, ok := c.Expected["packages"]; ok {
		want, err := stringSet(raw)
		if err != nil {
			return []string{err.Error()}
		}
		if !slices.Equal(want, md.Packages) {
			errs = append(errs, fmt.Sprintf("%s packages = %q, want %q", c.Msg.Topic, md.Packages, want))
		}
	}
	if raw, ok := c.Expected["link"]; ok {
		var want *string
		if err := json.Unmarshal(raw, &want); err != nil {
			return []string{err.Error()}
		}
		w := ""
		if want != nil {
			w = *want
		}
		if md.Link != w {
			errs = append(errs, fmt.Sprintf("%s link = %q, want %q", c.Msg.Topic, md.Link, w))
		}
	}
	return errs
}

func checkInvariants(t *testing.T, md Metadata) {
	t.Helper()
	for name, l := range md.sets() {
		if l == nil {
			t.Errorf("nil %s: %+v", name, md)
		}
		if !slices.IsSorted(l) {
			t.Errorf("unsorted %s: %+v", name, md)
		}
		if len(slices.Compact(slices.Clone(l))) != len(l) {
			t.Errorf("duplicate %s: %+v", name, md)
		}
	}
	if strings.ContainsAny(md.Summary, "\r\n") || len([]rune(md.Summary)) > maxSummary+1 {
		t.Errorf("bad summary %q", md.Summary)
	}
	if md.Summary == "" {
		t.Errorf("empty summary for %s", md.Topic)
	}
}

// sets names every list of the metadata, so the invariants cover new ones.
func (md Metadata) sets() map[string][]string {
	return map[string][]string{"usernames": md.Usernames, "packages": md.Packages, "groups": md.Groups,
		"containers": md.Containers, "modules": md.Modules, "flatpaks": md.Flatpaks}
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

// TestCleanLineShortcut checks cleanLine's shortcut for text that is clean
// already against the rune-by-rune path on strings of every byte class.
func TestCleanLineShortcut(t *testing.T) {
	t.Parallel()
	alphabet := []string{"a", "Z", " ", "  ", "\t", "\n", "\x7f", "\x00", "é", "\u2028", "\xff", "~", ":", "\u200b"}
	rnd := rand.New(rand.NewPCG(1, 2))
	for range 20_000 {
		var b strings.Builder
		for range rnd.IntN(12) {
			b.WriteString(alphabet[rnd.IntN(len(alphabet))])
		}
		s := b.String()
		for _, max := range []int{3, 8, 300} {
			// A leading control character skips the shortcut and is
			// dropped, so this is the full path's answer for s.
			slow := cleanLine("\x00"+s, max)
			if got := cleanLine(s, max); got != slow {
				t.Fatalf("cleanLine(%q, %d) = %q, the full path gives %q", s, max, got, slow)
			}
		}
	}
}
