package rules

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"runtime/debug"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"fmn/rules/meta"
)

// The ownership benchmark's population, on top of genPopulation's: 100,000
// more users, each maintaining 20 of the 30,000 packages (uniformly drawn,
// so a package has some 67 maintainers, far more than Fedora's typical
// two to five) and belonging to 2 of 500 groups; each group maintains 20
// packages. Each of these users has one rule following what they and
// their groups maintain ({"owned": true, "my_groups": true}).
const (
	ownedUsers        = 100_000
	ownedPerUser      = 20
	ownedGroups       = 500
	groupsPerUser     = 2
	packagesPerGroup  = 20
	ownedBenchMsgs    = 200_000
	ownedRefreshShare = 0.05 // of the artifacts changing owners in a daily refresh
)

// genOwnership draws the ownership population over the packages of the
// base population (corpus packages first, so corpus messages hit them).
func genOwnership(corpus []benchMsg, firstID, firstUser int64, seed uint64) ([]Rule, []ArtifactOwners, []Membership) {
	rnd := rand.New(rand.NewPCG(seed, 11))
	seen := map[string]bool{}
	var pkgs []string
	for _, m := range corpus {
		for _, p := range meta.Extract(m.topic, m.body, m.username).Packages {
			if !seen[p] {
				seen[p] = true
				pkgs = append(pkgs, p)
			}
		}
	}
	for i := 0; len(pkgs) < 30_000; i++ {
		pkgs = append(pkgs, fmt.Sprintf("pkg%05d", i))
	}
	users := map[string][]string{}  // package → maintainers
	groups := map[string][]string{} // package → groups
	var rs []Rule
	var ms []Membership
	for u := range ownedUsers {
		name := fmt.Sprintf("owner%06d", u)
		for range ownedPerUser {
			p := pkgs[rnd.IntN(len(pkgs))]
			users[p] = append(users[p], name)
		}
		var gs []string
		for range groupsPerUser {
			gs = append(gs, fmt.Sprintf("group%03d", rnd.IntN(ownedGroups)))
		}
		ms = append(ms, Membership{User: name, Groups: gs})
		uid := firstUser + int64(u)
		rs = append(rs, Rule{ID: firstID + int64(u), UserID: uid, Owner: name, Name: "mine", Enabled: true,
			Track: Track{Owned: true, MyGroups: true}, Destinations: []int64{uid * 4}})
	}
	for g := range ownedGroups {
		for range packagesPerGroup {
			p := pkgs[rnd.IntN(len(pkgs))]
			groups[p] = append(groups[p], fmt.Sprintf("group%03d", g))
		}
	}
	var as []ArtifactOwners
	for _, p := range pkgs {
		if len(users[p])+len(groups[p]) > 0 {
			as = append(as, ArtifactOwners{Namespace: "rpms", Name: p, Users: users[p], Groups: groups[p]})
		}
	}
	return rs, as, ms
}

var (
	ownedBenchOnce sync.Once
	ownedSet       *Set
	ownedMsgs      []benchMsg
)

// BenchmarkMatchOwned prints the ownership figures (`bench:` lines, on a
// fixed run of their own), then lets the testing package time
// Extract+Match over the whole population.
func BenchmarkMatchOwned(b *testing.B) {
	ownedBenchOnce.Do(func() { ownedSet, ownedMsgs = ownedFigures(b) })
	set, msgs := ownedSet, ownedMsgs
	b.ReportAllocs()
	i := 0
	var buf []Match
	for b.Loop() {
		m := msgs[i%len(msgs)]
		md := meta.Extract(m.topic, m.body, m.username)
		buf = set.AppendMatches(buf[:0], &md)
		i++
	}
}

func ownedFigures(b *testing.B) (*Set, []benchMsg) {
	msgs := loadBenchCorpus(b)
	runtime.GC()
	debug.FreeOSMemory()
	rssBefore := rssMB()
	base := genPopulation(msgs, 1)
	maxUser := int64(0)
	for _, r := range base {
		maxUser = max(maxUser, r.UserID)
	}
	owned, artifacts, members := genOwnership(msgs, int64(len(base))+1, maxUser+1, 3)
	start := time.Now()
	set := NewSetFrom(Changes{Upserts: append(base, owned...), Artifacts: artifacts, Members: members})
	build := time.Since(start)
	base, owned = nil, nil
	runtime.GC()
	debug.FreeOSMemory()
	rss := rssMB() - rssBefore
	var mst runtime.MemStats
	runtime.ReadMemStats(&mst)

	// One core, extraction included, each message timed.
	prev := runtime.GOMAXPROCS(1)
	order := rand.New(rand.NewPCG(2, 2)).Perm(len(msgs))
	lat := make([]time.Duration, ownedBenchMsgs)
	matches := 0
	var buf []Match
	t0 := time.Now()
	for i := range lat {
		m := msgs[order[i%len(order)]]
		s := time.Now()
		md := meta.Extract(m.topic, m.body, m.username)
		buf = set.AppendMatches(buf[:0], &md)
		lat[i] = time.Since(s)
		matches += len(buf)
	}
	rate := float64(len(lat)) / time.Since(t0).Seconds()
	runtime.GOMAXPROCS(prev)
	slices.Sort(lat)

	// A daily refresh while matching goes on: the artifacts whose owners
	// changed (5% of them, a generous day) applied in batches of 100, as
	// Live applies change-log batches, each published for the matcher to
	// pick up; and, the worst case, every artifact replaced at once. The
	// matcher never waits: it reads the current Set and keeps matching.
	rnd := rand.New(rand.NewPCG(5, 5))
	var cur atomic.Pointer[Set]
	cur.Store(set)
	var changed []ArtifactOwners
	for _, a := range artifacts {
		if rnd.Float64() < ownedRefreshShare {
			a.Users = append(slices.Clone(a.Users[1:]), fmt.Sprintf("owner%06d", rnd.IntN(ownedUsers)))
			changed = append(changed, a)
		}
	}
	stop := make(chan struct{})
	var refresh time.Duration
	var wholeApply time.Duration
	go func() {
		defer close(stop)
		t := time.Now()
		for i := 0; i < len(changed); i += 100 {
			cur.Store(cur.Load().Apply(Changes{Artifacts: changed[i:min(i+100, len(changed))]}))
		}
		refresh = time.Since(t)
		t = time.Now()
		cur.Store(cur.Load().Apply(Changes{Artifacts: artifacts}))
		wholeApply = time.Since(t)
	}()
	prev = runtime.GOMAXPROCS(2)
	var during []time.Duration
	t0 = time.Now()
	for i := 0; ; i++ {
		select {
		case <-stop:
		default:
			m := msgs[order[i%len(order)]]
			s := time.Now()
			md := meta.Extract(m.topic, m.body, m.username)
			buf = cur.Load().AppendMatches(buf[:0], &md)
			during = append(during, time.Since(s))
			continue
		}
		break
	}
	elapsed := time.Since(t0)
	runtime.GOMAXPROCS(prev)
	slices.Sort(during)
	duringRate := float64(len(during)) / elapsed.Seconds()

	fmt.Printf("bench: match_owned_rules %d rules\n", set.Len())
	fmt.Printf("bench: match_owned_artifacts %d artifacts\n", len(artifacts))
	fmt.Printf("bench: match_owned_index_build_s %.2f s\n", build.Seconds())
	fmt.Printf("bench: match_owned_avg_matches_per_msg %.1f matches\n", float64(matches)/float64(len(lat)))
	fmt.Printf("bench: match_owned_msgs_per_s %.0f msg/s\n", rate)
	fmt.Printf("bench: match_owned_p50_us %.1f us\n", float64(lat[len(lat)/2].Nanoseconds())/1000)
	fmt.Printf("bench: match_owned_p99_us %.1f us\n", float64(lat[len(lat)*99/100].Nanoseconds())/1000)
	fmt.Printf("bench: matcher_owned_rss_mb %.0f MB\n", rss)
	fmt.Printf("bench: matcher_owned_heap_mb %.0f MB\n", float64(mst.HeapAlloc)/(1<<20))
	fmt.Printf("bench: owned_refresh_changed_artifacts %d artifacts\n", len(changed))
	fmt.Printf("bench: owned_refresh_apply_ms %.1f ms\n", float64(refresh.Microseconds())/1000)
	fmt.Printf("bench: owned_full_replace_apply_ms %.1f ms\n", float64(wholeApply.Microseconds())/1000)
	fmt.Printf("bench: match_owned_during_refresh_msgs_per_s %.0f msg/s\n", duringRate)
	fmt.Printf("bench: match_owned_during_refresh_max_us %.1f us\n", float64(during[len(during)-1].Nanoseconds())/1000)
	fmt.Printf("bench: match_owned_during_refresh_p99_us %.1f us\n", float64(during[len(during)*99/100].Nanoseconds())/1000)
	return cur.Load(), msgs
}
