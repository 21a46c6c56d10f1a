package rules

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"fmn/rules/meta"
)

// The benchmark population: 100,000 users with five rules each, in a mix
// meant to look like a real notification service (see genPopulation), and
// the corpus's real messages, extracted on every iteration.
const (
	benchUsers        = 100_000
	benchRulesPerUser = 5
	benchIndexedMsgs  = 200_000
	benchNaiveMsgs    = 60
)

type benchMsg struct {
	topic, username string
	body            any
}

func loadBenchCorpus(tb testing.TB) []benchMsg {
	f, err := os.Open("../testdata/fedmsg-meta.jsonl")
	if err != nil {
		tb.Fatalf("open corpus: %v", err)
	}
	defer f.Close()
	var out []benchMsg
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 1<<20), 16<<20)
	for sc.Scan() {
		var line struct {
			Msg struct {
				Topic    string `json:"topic"`
				Username string `json:"username"`
				Msg      any    `json:"msg"`
			} `json:"msg"`
		}
		// As the consumer decodes: numbers stay json.Number.
		dec := json.NewDecoder(bytes.NewReader(sc.Bytes()))
		dec.UseNumber()
		if err := dec.Decode(&line); err != nil {
			tb.Fatalf("corpus: %v", err)
		}
		out = append(out, benchMsg{line.Msg.Topic, line.Msg.Username, line.Msg.Msg})
	}
	return out
}

// genPopulation draws the rules. Names the corpus mentions are mixed into
// larger synthetic vocabularies (100,000 user names, 30,000 packages), each
// at a random popularity rank, so that corpus messages hit a realistic
// handful of package and user rules. Of the rules:
//
//	50%   track 1–5 packages (3% of them also a glob such as "python-*")
//	25%   track 1–3 other users
//	22.7% track "mine"
//	1.5%  track topics: an exact corpus topic, or a glob over one app's topics
//	0.8%  track one whole app (about 70 rules per app)
//	0.01% track everything ("*"): 50 rules
//
// Popularity follows a flattened Zipf law: the most watched package has
// some 800 watchers, the median a handful. A message then reaches on
// average a hundred-odd destinations (printed as match_avg_matches_per_msg),
// which is already far more fan-out than a real bus sees.
//
// and about a third carry filters (not_my_actions, apps_exclude,
// topics_exclude, filters.apps, severity_at_least). Each user has 1–3
// destinations and each rule sends to one or two of them.
func genPopulation(corpus []benchMsg, seed uint64) []Rule {
	rnd := rand.New(rand.NewPCG(seed, 7))
	var cUsers, cPkgs, cTopics []string
	seen := map[string]bool{}
	for _, m := range corpus {
		md := meta.Extract(m.topic, m.body, m.username)
		for _, u := range md.Usernames {
			if !seen["u"+u] {
				seen["u"+u] = true
				cUsers = append(cUsers, u)
			}
		}
		for _, p := range md.Packages {
			if !seen["p"+p] {
				seen["p"+p] = true
				cPkgs = append(cPkgs, p)
			}
		}
		if !seen["t"+md.Topic] {
			seen["t"+md.Topic] = true
			cTopics = append(cTopics, md.Topic)
		}
	}
	users := slices.Clone(cUsers)
	for i := 0; len(users) < benchUsers; i++ {
		users = append(users, fmt.Sprintf("user%06d", i))
	}
	pkgs := slices.Clone(cPkgs)
	for i := 0; len(pkgs) < 30_000; i++ {
		pkgs = append(pkgs, fmt.Sprintf("pkg%05d", i))
	}
	owners := slices.Clone(users) // the population's own names, in order
	rnd.Shuffle(len(users), func(i, j int) { users[i], users[j] = users[j], users[i] })
	rnd.Shuffle(len(pkgs), func(i, j int) { pkgs[i], pkgs[j] = pkgs[j], pkgs[i] })
	userRank := rand.NewZipf(rnd, 1.1, 200, uint64(len(users)-1))
	pkgRank := rand.NewZipf(rnd, 1.1, 200, uint64(len(pkgs)-1))
	apps := meta.KnownApps()
	var appGlobs []string
	for _, a := range apps {
		appGlobs = append(appGlobs, "org.fedoraproject.prod."+a+".*", "org.fedoraproject.*."+a+".*", "*."+a+".*")
	}
	pkgGlobs := []string{"python-*", "python3-*", "rust-*", "golang-*", "perl-*", "nodejs-*", "ghc-*", "texlive-*", "*-devel", "*-doc", "kernel*"}
	for i := range 100 {
		pkgGlobs = append(pkgGlobs, fmt.Sprintf("pkg%03d*", i))
	}

	rs := make([]Rule, 0, benchUsers*benchRulesPerUser)
	id := int64(0)
	for u, owner := range owners {
		uid := int64(u + 1)
		ndest := 1 + rnd.IntN(3)
		for range benchRulesPerUser {
			id++
			r := Rule{ID: id, UserID: uid, Owner: owner, Name: "r", Enabled: true}
			switch x := rnd.Float64(); {
			case x < 0.50:
				for range 1 + rnd.IntN(5) {
					r.Track.Packages = append(r.Track.Packages, pkgs[pkgRank.Uint64()])
				}
				if rnd.IntN(100) < 3 {
					r.Track.Packages = append(r.Track.Packages, pkgGlobs[rnd.IntN(len(pkgGlobs))])
				}
			case x < 0.75:
				for range 1 + rnd.IntN(3) {
					r.Track.Users = append(r.Track.Users, users[userRank.Uint64()])
				}
			case x < 0.977:
				r.Track.Mine = true
			case x < 0.992:
				if rnd.IntN(2) == 0 {
					r.Track.Topics = []string{cTopics[rnd.IntN(len(cTopics))]}
				} else {
					r.Track.Topics = []string{appGlobs[rnd.IntN(len(appGlobs))]}
				}
			case x < 0.9999:
				r.Track.Apps = []string{apps[rnd.IntN(len(apps))]}
			default:
				r.Track.Topics = []string{"*"}
			}
			switch x := rnd.IntN(100); {
			case x < 20:
				r.Filters.NotMyActions = true
			case x < 26:
				r.Filters.AppsExclude = []string{"koji"}
			case x < 30:
				r.Filters.TopicsExclude = []string{"*.buildsys.task.*"}
			case x < 32:
				r.Filters.Apps = []string{apps[rnd.IntN(len(apps))]}
			case x < 34:
				r.Filters.SeverityAtLeast = "warning"
			}
			r.Destinations = []int64{uid*4 + int64(rnd.IntN(ndest))}
			if rnd.IntN(4) == 0 {
				if d := uid*4 + int64(rnd.IntN(ndest)); d != r.Destinations[0] {
					r.Destinations = append(r.Destinations, d)
				}
			}
			rs = append(rs, r)
		}
	}
	return rs
}

var (
	benchOnce sync.Once
	benchSet  *Set
	benchMsgs []benchMsg
)

// BenchmarkMatch prints the figures of the issue once (`bench:` lines, on a
// fixed run of its own), then lets the testing package time Extract+Match.
func BenchmarkMatch(b *testing.B) {
	benchOnce.Do(func() { benchFigures(b) })
	b.ReportAllocs()
	i := 0
	var buf []Match
	for b.Loop() {
		m := benchMsgs[i%len(benchMsgs)]
		md := meta.Extract(m.topic, m.body, m.username)
		buf = benchSet.AppendMatches(buf[:0], &md)
		i++
	}
}

func benchFigures(b *testing.B) {
	benchMsgs = loadBenchCorpus(b)
	runtime.GC()
	debug.FreeOSMemory()
	rssBefore := rssMB()
	rs := genPopulation(benchMsgs, 1)
	start := time.Now()
	benchSet = NewSet(rs)
	build := time.Since(start)
	rs = nil
	runtime.GC()
	debug.FreeOSMemory()
	rss := rssMB() - rssBefore
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)

	// Indexed: one core, extraction included, each message timed.
	prev := runtime.GOMAXPROCS(1)
	order := rand.New(rand.NewPCG(2, 2)).Perm(len(benchMsgs))
	lat := make([]time.Duration, benchIndexedMsgs)
	matches := 0
	var buf []Match
	t0 := time.Now()
	for i := range lat {
		m := benchMsgs[order[i%len(order)]]
		s := time.Now()
		md := meta.Extract(m.topic, m.body, m.username)
		buf = benchSet.AppendMatches(buf[:0], &md)
		lat[i] = time.Since(s)
		matches += len(buf)
	}
	indexed := float64(len(lat)) / time.Since(t0).Seconds()

	// Naive: the same population, every rule tried per message; the
	// answers double as a cross-check of the index.
	naive := newNaive(genPopulation(benchMsgs, 1))
	for i := range benchNaiveMsgs {
		m := benchMsgs[order[i%len(order)]]
		md := meta.Extract(m.topic, m.body, m.username)
		if got, want := sorted(benchSet.Match(md)), sorted(naive.Match(md)); !slices.Equal(got, want) {
			b.Fatalf("index and naive disagree on %s: %d vs %d matches", m.topic, len(got), len(want))
		}
	}
	// The cross-check ran both; time the naive loop alone.
	t0 = time.Now()
	for i := range benchNaiveMsgs {
		m := benchMsgs[order[i%len(order)]]
		naive.Match(meta.Extract(m.topic, m.body, m.username))
	}
	naiveRate := float64(benchNaiveMsgs) / time.Since(t0).Seconds()
	runtime.GOMAXPROCS(prev)
	naive = nil

	slices.Sort(lat)
	p99 := lat[len(lat)*99/100]
	fmt.Printf("bench: match_rules %d rules\n", benchSet.Len())
	fmt.Printf("bench: match_index_build_s %.2f s\n", build.Seconds())
	fmt.Printf("bench: match_avg_matches_per_msg %.1f matches\n", float64(matches)/float64(len(lat)))
	fmt.Printf("bench: match_indexed_msgs_per_s %.0f msg/s\n", indexed)
	fmt.Printf("bench: match_naive_msgs_per_s %.1f msg/s\n", naiveRate)
	fmt.Printf("bench: match_speedup_vs_naive %.0f x\n", indexed/naiveRate)
	fmt.Printf("bench: match_p99_us %.1f us\n", float64(p99.Nanoseconds())/1000)
	fmt.Printf("bench: match_p50_us %.1f us\n", float64(lat[len(lat)/2].Nanoseconds())/1000)
	fmt.Printf("bench: matcher_rss_mb %.0f MB\n", rss)
	fmt.Printf("bench: matcher_heap_mb %.0f MB\n", float64(ms.HeapAlloc)/(1<<20))
}

// rssMB reads the process's resident set size.
func rssMB() float64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 64)
			return kb / 1024
		}
	}
	return 0
}
