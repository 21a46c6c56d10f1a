package rules

import (
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"unsafe"

	"fmn/rules/meta"
)

// bodhiMsg is the message most table rows are judged against.
var bodhiMsg = meta.Metadata{
	Topic:      "org.fedoraproject.prod.bodhi.update.comment",
	App:        "bodhi",
	Agent:      "alice",
	Usernames:  []string{"alice", "bob"},
	Packages:   []string{"kernel", "python-requests"},
	Containers: []string{"fedora-toolbox"},
	Modules:    []string{"nodejs"},
	Flatpaks:   []string{"org.gnome.Maps"},
	Summary:    "alice commented on an update",
}

func TestMatchTable(t *testing.T) {
	t.Parallel()
	withSev := func(s string) meta.Metadata { m := bodhiMsg; m.Severity = s; return m }
	noAgent := bodhiMsg
	noAgent.Agent = ""
	cases := []struct {
		name  string
		owner string
		track Track
		filt  Filters
		md    meta.Metadata
		want  bool
	}{
		{"mine hits the owner's name", "bob", Track{Mine: true}, Filters{}, bodhiMsg, true},
		{"mine misses another name", "carol", Track{Mine: true}, Filters{}, bodhiMsg, false},
		{"users exact", "z", Track{Users: []string{"bob"}}, Filters{}, bodhiMsg, true},
		{"users exact miss", "z", Track{Users: []string{"bo"}}, Filters{}, bodhiMsg, false},
		{"users glob", "z", Track{Users: []string{"b*"}}, Filters{}, bodhiMsg, true},
		{"users glob with ?", "z", Track{Users: []string{"?lice"}}, Filters{}, bodhiMsg, true},
		{"packages exact", "z", Track{Packages: []string{"kernel"}}, Filters{}, bodhiMsg, true},
		{"packages prefix glob", "z", Track{Packages: []string{"python-*"}}, Filters{}, bodhiMsg, true},
		{"packages suffix glob", "z", Track{Packages: []string{"*-requests"}}, Filters{}, bodhiMsg, true},
		{"packages inner glob", "z", Track{Packages: []string{"*thon-req*"}}, Filters{}, bodhiMsg, true},
		{"packages miss", "z", Track{Packages: []string{"python"}}, Filters{}, bodhiMsg, false},
		{"apps exact", "z", Track{Apps: []string{"bodhi"}}, Filters{}, bodhiMsg, true},
		{"apps glob", "z", Track{Apps: []string{"bod*"}}, Filters{}, bodhiMsg, true},
		{"apps miss", "z", Track{Apps: []string{"koji"}}, Filters{}, bodhiMsg, false},
		{"topic exact", "z", Track{Topics: []string{"org.fedoraproject.prod.bodhi.update.comment"}}, Filters{}, bodhiMsg, true},
		{"topic exact miss", "z", Track{Topics: []string{"org.fedoraproject.prod.bodhi.update"}}, Filters{}, bodhiMsg, false},
		{"topic prefix glob", "z", Track{Topics: []string{"org.fedoraproject.prod.bodhi.*"}}, Filters{}, bodhiMsg, true},
		{"topic glob crosses dots", "z", Track{Topics: []string{"org.fedoraproject.*.comment"}}, Filters{}, bodhiMsg, true},
		{"topic token glob", "z", Track{Topics: []string{"*.bodhi.*"}}, Filters{}, bodhiMsg, true},
		{"topic token glob miss", "z", Track{Topics: []string{"*.koji.*"}}, Filters{}, bodhiMsg, false},
		{"topic suffix glob", "z", Track{Topics: []string{"*.update.comment"}}, Filters{}, bodhiMsg, true},
		{"topic everything", "z", Track{Topics: []string{"*"}}, Filters{}, bodhiMsg, true},
		{"topic inner-only glob", "z", Track{Topics: []string{"*odhi*"}}, Filters{}, bodhiMsg, true},
		{"any entry is enough", "z", Track{Packages: []string{"nope"}, Apps: []string{"bodhi"}}, Filters{}, bodhiMsg, true},
		{"filters.apps keeps listed apps", "z", Track{Packages: []string{"kernel"}}, Filters{Apps: []string{"bodhi"}}, bodhiMsg, true},
		{"filters.apps drops others", "z", Track{Packages: []string{"kernel"}}, Filters{Apps: []string{"koji", "pagure"}}, bodhiMsg, false},
		{"filters.apps glob", "z", Track{Packages: []string{"kernel"}}, Filters{Apps: []string{"b*"}}, bodhiMsg, true},
		{"apps_exclude drops", "z", Track{Packages: []string{"kernel"}}, Filters{AppsExclude: []string{"bodhi"}}, bodhiMsg, false},
		{"apps_exclude glob drops", "z", Track{Packages: []string{"kernel"}}, Filters{AppsExclude: []string{"bo*"}}, bodhiMsg, false},
		{"apps_exclude other keeps", "z", Track{Packages: []string{"kernel"}}, Filters{AppsExclude: []string{"koji"}}, bodhiMsg, true},
		{"topics_exclude drops", "z", Track{Packages: []string{"kernel"}}, Filters{TopicsExclude: []string{"*.comment"}}, bodhiMsg, false},
		{"topics_exclude other keeps", "z", Track{Packages: []string{"kernel"}}, Filters{TopicsExclude: []string{"*.buildsys.*"}}, bodhiMsg, true},
		{"not_my_actions drops own action", "alice", Track{Mine: true}, Filters{NotMyActions: true}, bodhiMsg, false},
		{"not_my_actions keeps others' actions", "bob", Track{Mine: true}, Filters{NotMyActions: true}, bodhiMsg, true},
		{"not_my_actions without agent keeps", "alice", Track{Mine: true}, Filters{NotMyActions: true}, noAgent, true},
		{"severity none counts as info", "z", Track{Apps: []string{"bodhi"}}, Filters{SeverityAtLeast: "info"}, bodhiMsg, true},
		{"severity none below warning", "z", Track{Apps: []string{"bodhi"}}, Filters{SeverityAtLeast: "warning"}, bodhiMsg, false},
		{"severity equal passes", "z", Track{Apps: []string{"bodhi"}}, Filters{SeverityAtLeast: "error"}, withSev("error"), true},
		{"severity above passes", "z", Track{Apps: []string{"bodhi"}}, Filters{SeverityAtLeast: "error"}, withSev("critical"), true},
		{"severity below drops", "z", Track{Apps: []string{"bodhi"}}, Filters{SeverityAtLeast: "error"}, withSev("warning"), false},
		{"debug unseen without a severity filter", "z", Track{Apps: []string{"bodhi"}}, Filters{}, withSev("debug"), false},
		{"debug unseen by mine without a filter", "bob", Track{Mine: true}, Filters{}, withSev("debug"), false},
		{"debug unseen at least info", "z", Track{Apps: []string{"bodhi"}}, Filters{SeverityAtLeast: "info"}, withSev("debug"), false},
		{"debug seen when asked for", "z", Track{Apps: []string{"bodhi"}}, Filters{SeverityAtLeast: "debug"}, withSev("debug"), true},
		{"asking for debug keeps the rest", "z", Track{Apps: []string{"bodhi"}}, Filters{SeverityAtLeast: "debug"}, bodhiMsg, true},
		{"info seen without a filter", "z", Track{Apps: []string{"bodhi"}}, Filters{}, withSev("info"), true},
		{"agents exact", "z", Track{Agents: []string{"alice"}}, Filters{}, bodhiMsg, true},
		{"agents glob", "z", Track{Agents: []string{"al*"}}, Filters{}, bodhiMsg, true},
		{"agents: a user named but not acting", "z", Track{Agents: []string{"bob"}}, Filters{}, bodhiMsg, false},
		{"agents: no agent", "z", Track{Agents: []string{"*"}}, Filters{}, noAgent, false},
		{"containers exact", "z", Track{Containers: []string{"fedora-toolbox"}}, Filters{}, bodhiMsg, true},
		{"containers glob", "z", Track{Containers: []string{"fedora-*"}}, Filters{}, bodhiMsg, true},
		{"containers are not packages", "z", Track{Packages: []string{"fedora-toolbox"}}, Filters{}, bodhiMsg, false},
		{"packages are not containers", "z", Track{Containers: []string{"kernel"}}, Filters{}, bodhiMsg, false},
		{"modules exact", "z", Track{Modules: []string{"nodejs"}}, Filters{}, bodhiMsg, true},
		{"modules are not packages", "z", Track{Packages: []string{"nodejs"}}, Filters{}, bodhiMsg, false},
		{"flatpaks exact", "z", Track{Flatpaks: []string{"org.gnome.Maps"}}, Filters{}, bodhiMsg, true},
		{"flatpaks glob", "z", Track{Flatpaks: []string{"org.gnome.*"}}, Filters{}, bodhiMsg, true},
		{"every filter must pass", "z", Track{Apps: []string{"bodhi"}}, Filters{Apps: []string{"bodhi"}, TopicsExclude: []string{"*.comment"}}, bodhiMsg, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			r := Rule{ID: 7, UserID: 3, Owner: c.owner, Name: "r", Enabled: true, Track: c.track, Filters: c.filt, Destinations: []int64{11}}
			got := NewSet([]Rule{r}).Match(c.md)
			want := []Match{}
			if c.want {
				want = []Match{{UserID: 3, RuleID: 7, DestinationID: 11}}
			}
			if !reflect.DeepEqual(sorted(got), want) {
				t.Fatalf("indexed: got %v, want %v", got, want)
			}
			if len(got) == 1 && !validHit(r, c.md, got[0].Hit) {
				t.Fatalf("indexed: hit %+v is not an entry of the rule that tracks the message", got[0].Hit)
			}
			if naive := newNaive([]Rule{r}).Match(c.md); !reflect.DeepEqual(sorted(naive), want) {
				t.Fatalf("naive: got %v, want %v", naive, want)
			}
			// Without a destination, the same rule matches into the owner's
			// history only.
			r.Destinations = nil
			if c.want {
				want = []Match{{UserID: 3, RuleID: 7}}
			}
			if got := NewSet([]Rule{r}).Match(c.md); !reflect.DeepEqual(sorted(got), want) {
				t.Fatalf("without destination: got %v, want %v", got, want)
			}
			// A disabled rule never matches.
			r.Enabled = false
			if got := NewSet([]Rule{r}).Match(c.md); got != nil {
				t.Fatalf("disabled rule matched: %v", got)
			}
		})
	}
}

func TestMatchEachDestinationOnce(t *testing.T) {
	t.Parallel()
	rs := []Rule{
		{ID: 9, UserID: 1, Owner: "bob", Enabled: true, Track: Track{Mine: true, Users: []string{"bob"}, Packages: []string{"kernel", "k*"}}, Destinations: []int64{1, 2}},
		{ID: 4, UserID: 1, Owner: "bob", Enabled: true, Track: Track{Apps: []string{"bodhi"}}, Destinations: []int64{2, 3}},
		{ID: 5, UserID: 2, Owner: "eve", Enabled: true, Track: Track{Topics: []string{"*"}}, Destinations: []int64{5}},
		{ID: 6, UserID: 1, Owner: "bob", Enabled: true, Track: Track{Apps: []string{"koji"}}, Destinations: []int64{1}},
	}
	got := sorted(NewSet(rs).Match(bodhiMsg))
	want := []Match{{1, 9, 1, Hit{}}, {1, 4, 2, Hit{}}, {1, 4, 3, Hit{}}, {2, 5, 5, Hit{}}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	if n := sorted(newNaive(rs).Match(bodhiMsg)); !reflect.DeepEqual(n, want) {
		t.Fatalf("naive got %v, want %v", n, want)
	}
	// Appending to a buffer that already holds matches (of another message)
	// keeps them and dedupes only this message's destinations.
	prev := []Match{{1, 9, 1, Hit{}}, {1, 9, 2, Hit{}}}
	md := bodhiMsg
	got = NewSet(rs).AppendMatches(prev, &md)
	if len(got) != 6 || !reflect.DeepEqual(got[:2], prev) || !reflect.DeepEqual(sorted(got[2:]), want) {
		t.Fatalf("AppendMatches gave %v", got)
	}
}

// TestMatchManyDestinations grows the matcher's destination set past its
// first size.
func TestMatchManyDestinations(t *testing.T) {
	t.Parallel()
	var rs []Rule
	for i := range 500 {
		rs = append(rs, Rule{ID: int64(i + 1), UserID: int64(i), Owner: "u", Enabled: true,
			Track: Track{Apps: []string{"bodhi"}}, Destinations: []int64{int64(2 * i), int64(2*i + 1), int64(2 * (i / 2))}})
	}
	got, want := sorted(NewSet(rs).Match(bodhiMsg)), sorted(newNaive(rs).Match(bodhiMsg))
	if len(got) != 1000 || !reflect.DeepEqual(got, want) {
		t.Fatalf("got %d matches, naive %d; equal=%v", len(got), len(want), reflect.DeepEqual(got, want))
	}
}

// randomWorld draws rules and messages from small vocabularies, so that
// hits, overlaps and every kind of glob key are common.
type randomWorld struct {
	rnd                               *rand.Rand
	users, pkgs, apps, topics, owners []string
	groups                            []string
}

func newWorld(seed uint64) *randomWorld {
	w := &randomWorld{rnd: rand.New(rand.NewPCG(seed, 1))}
	w.users = []string{"alice", "bob", "carol", "dan", "eve", "frank"}
	w.owners = []string{"alice", "bob", "carol", "zed"}
	w.pkgs = []string{"kernel", "kernel-headers", "python-requests", "python3-docs", "gcc", "rust-serde", "nodejs"}
	w.apps = []string{"bodhi", "koji", "pagure", "dist-git", "fas", ""}
	w.groups = []string{"python-sig", "kernel-sig", "provenpackager"}
	w.topics = []string{
		"org.fedoraproject.prod.bodhi.update.comment", "org.fedoraproject.prod.bodhi.update.request.testing",
		"org.fedoraproject.stg.buildsys.build.state.change", "org.fedoraproject.prod.buildsys.task.state.change",
		"io.pagure.prod.pagure.pull-request.new", "org.fedoraproject.prod.git.receive", "org.centos.prod.ci.pipeline.complete",
	}
	return w
}

func (w *randomWorld) pick(xs []string) string { return xs[w.rnd.IntN(len(xs))] }

// pattern returns a value from xs, or a glob derived from one.
func (w *randomWorld) pattern(xs []string) string {
	s := w.pick(xs)
	if s == "" || w.rnd.IntN(2) == 0 {
		return s
	}
	i, j := w.rnd.IntN(len(s)+1), w.rnd.IntN(len(s)+1)
	if i > j {
		i, j = j, i
	}
	switch w.rnd.IntN(6) {
	case 0:
		return s[:i] + "*"
	case 1:
		return "*" + s[j:]
	case 2:
		return s[:i] + "*" + s[j:]
	case 3:
		return "*" + s[i:j] + "*"
	case 4:
		b := []byte(s)
		b[w.rnd.IntN(len(b))] = '?'
		return string(b)
	}
	return "*"
}

func (w *randomWorld) patterns(xs []string, max int) []string {
	n := w.rnd.IntN(max + 1)
	var ps []string
	for range n {
		if p := w.pattern(xs); p != "" {
			ps = append(ps, p)
		}
	}
	return ps
}

// names returns up to max names from xs, never patterns.
func (w *randomWorld) names(xs []string, max int) []string {
	var out []string
	for range w.rnd.IntN(max + 1) {
		out = append(out, w.pick(xs))
	}
	return out
}

// artifacts draws who maintains what, for a few artifacts of each kind.
func (w *randomWorld) artifacts(n int) []ArtifactOwners {
	var out []ArtifactOwners
	for range n {
		out = append(out, ArtifactOwners{Namespace: w.pick(namespaces[:]), Name: w.pick(w.pkgs),
			Users: w.names(w.users, 2), Groups: w.names(w.groups, 1)})
	}
	return out
}

// memberships draws the groups of a few users.
func (w *randomWorld) memberships(n int) []Membership {
	var out []Membership
	for range n {
		out = append(out, Membership{User: w.pick(w.users), Groups: w.names(w.groups, 2)})
	}
	return out
}

func (w *randomWorld) rule(id int64) Rule {
	owner := w.rnd.IntN(len(w.owners))
	r := Rule{ID: id, UserID: int64(owner + 1), Owner: w.owners[owner], Name: "r", Enabled: w.rnd.IntN(10) > 0}
	for !r.Track.tracksSomething() {
		r.Track = Track{
			Mine: w.rnd.IntN(4) == 0, Users: w.patterns(w.users, 2), Packages: w.patterns(w.pkgs, 2),
			Apps: w.patterns(w.apps, 1), Topics: w.patterns(w.topics, 1),
		}
		if w.rnd.IntN(3) > 0 {
			r.Track.Topics = nil
			r.Track.Apps = nil
		}
		if w.rnd.IntN(2) == 0 {
			r.Track.Owned = w.rnd.IntN(2) == 0
			r.Track.MyGroups = w.rnd.IntN(2) == 0
			r.Track.OwnedBy = w.names(w.users, 2)
			r.Track.Groups = w.names(w.groups, 2)
			r.Track.Agents = w.patterns(w.users, 1)
			r.Track.Containers = w.patterns(w.pkgs, 1)
			r.Track.Modules = w.patterns(w.pkgs, 1)
			r.Track.Flatpaks = w.patterns(w.pkgs, 1)
		}
	}
	if w.rnd.IntN(3) == 0 {
		r.Filters = Filters{
			Apps: w.patterns(w.apps, 1), AppsExclude: w.patterns(w.apps, 1), TopicsExclude: w.patterns(w.topics, 1),
			NotMyActions: w.rnd.IntN(2) == 0, SeverityAtLeast: []string{"", "debug", "info", "warning", "error", "critical"}[w.rnd.IntN(6)],
		}
	}
	// Each user owns destinations 10*user .. 10*user+3; rules share them.
	for d := range 4 {
		if w.rnd.IntN(3) == 0 {
			r.Destinations = append(r.Destinations, r.UserID*10+int64(d))
		}
	}
	return r
}

func (w *randomWorld) message() meta.Metadata {
	md := meta.Metadata{Topic: w.pick(w.topics), App: w.pick(w.apps), Severity: []string{"", "debug", "info", "warning", "error", "critical"}[w.rnd.IntN(6)]}
	for range w.rnd.IntN(3) {
		md.Usernames = append(md.Usernames, w.pick(w.users))
	}
	for range w.rnd.IntN(3) {
		md.Packages = append(md.Packages, w.pick(w.pkgs))
	}
	for range w.rnd.IntN(2) {
		md.Containers = append(md.Containers, w.pick(w.pkgs))
	}
	for range w.rnd.IntN(2) {
		md.Modules = append(md.Modules, w.pick(w.pkgs))
	}
	for range w.rnd.IntN(2) {
		md.Flatpaks = append(md.Flatpaks, w.pick(w.pkgs))
	}
	if len(md.Usernames) > 0 && w.rnd.IntN(2) == 0 {
		md.Agent = md.Usernames[0]
	}
	return md
}

// TestIndexEqualsNaive is the property that matters: on random rules and
// messages, the index answers exactly what trying every rule answers, also
// after any sequence of incremental edits.
func TestIndexEqualsNaive(t *testing.T) {
	t.Parallel()
	for seed := range uint64(20) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			t.Parallel()
			indexEqualsNaive(t, seed, 150, 30)
		})
	}
}

// TestPackedIndexEqualsNaive is TestIndexEqualsNaive on a Set large enough
// that its build packs the posting lists into shared arrays (edit.compact),
// which every later edit must copy out of rather than append into.
func TestPackedIndexEqualsNaive(t *testing.T) {
	t.Parallel()
	for seed := range uint64(2) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			t.Parallel()
			indexEqualsNaive(t, 100+seed, 1500, 8)
		})
	}
}

// indexEqualsNaive builds a Set of n random rules, then edits it steps
// times, checking every Set against the naive matcher.
func indexEqualsNaive(t *testing.T, seed uint64, n, steps int) {
	{
		{
			w := newWorld(seed)
			byID := map[int64]Rule{}
			var all []Rule
			for id := int64(1); id <= int64(n); id++ {
				r := w.rule(id)
				byID[id] = r
				all = append(all, r)
			}
			// The ownership state as it stands after each step: artifact
			// → maintainers, user → groups.
			owners := map[string]ArtifactOwners{}
			groups := map[string][]string{}
			state := func() Changes {
				ch := Changes{}
				for _, r := range byID {
					ch.Upserts = append(ch.Upserts, r)
				}
				for _, a := range owners {
					ch.Artifacts = append(ch.Artifacts, a)
				}
				for u, gs := range groups {
					ch.Members = append(ch.Members, Membership{User: u, Groups: gs})
				}
				return ch
			}
			record := func(as []ArtifactOwners, ms []Membership) {
				for _, a := range as {
					owners[a.Namespace+"/"+a.Name] = a
				}
				for _, m := range ms {
					groups[m.User] = m.Groups
				}
			}
			first := Changes{Upserts: all, Artifacts: w.artifacts(12), Members: w.memberships(4)}
			record(first.Artifacts, first.Members)
			set := NewSetFrom(first)
			if packed := isPacked(set); packed != (n >= 1000) {
				t.Fatalf("%d rules: packed %v", n, packed)
			}
			check := func(step string) {
				t.Helper()
				cur := state()
				naive := newNaiveFrom(cur)
				for range 200 {
					md := w.message()
					ms := set.Match(md)
					got, want := sorted(ms), sorted(naive.Match(md))
					if !reflect.DeepEqual(got, want) {
						t.Fatalf("%s: message %+v:\nindex %v\nnaive %v", step, md, got, want)
					}
					for _, m := range ms {
						if !naive.validHit(byID[m.RuleID], md, m.Hit) {
							t.Fatalf("%s: message %+v: rule %+v credited with %+v", step, md, byID[m.RuleID], m.Hit)
						}
					}
				}
				if want := len(naive.rules); set.Len() != want {
					t.Fatalf("%s: Len %d, want %d", step, set.Len(), want)
				}
			}
			check("built")
			for step := range steps {
				// The state before this step, that the Set before it
				// must go on answering.
				prev := newNaiveFrom(state())
				var ups []Rule
				var dels []int64
				for range 1 + w.rnd.IntN(8) {
					id := int64(1 + w.rnd.IntN(n+30))
					// With applies deletions first, then upserts: keep
					// each id in one list, as its last operation says.
					ups = slices.DeleteFunc(ups, func(r Rule) bool { return r.ID == id })
					dels = slices.DeleteFunc(dels, func(d int64) bool { return d == id })
					if w.rnd.IntN(4) == 0 {
						dels = append(dels, id)
						delete(byID, id)
						continue
					}
					r := w.rule(id)
					ups = append(ups, r)
					byID[id] = r
				}
				ch := Changes{Upserts: ups, Deleted: dels}
				if w.rnd.IntN(2) == 0 {
					ch.Artifacts, ch.Members = w.artifacts(w.rnd.IntN(4)), w.memberships(w.rnd.IntN(3))
					// One change per artifact and user, as the log gives.
					seenA, seenM := map[string]bool{}, map[string]bool{}
					ch.Artifacts = slices.DeleteFunc(ch.Artifacts, func(a ArtifactOwners) bool {
						k := a.Namespace + "/" + a.Name
						dup := seenA[k]
						seenA[k] = true
						return dup
					})
					ch.Members = slices.DeleteFunc(ch.Members, func(m Membership) bool {
						dup := seenM[m.User]
						seenM[m.User] = true
						return dup
					})
					record(ch.Artifacts, ch.Members)
				}
				old := set
				set = set.Apply(ch)
				for range 50 {
					md := w.message()
					if got, want := sorted(old.Match(md)), sorted(prev.Match(md)); !reflect.DeepEqual(got, want) {
						t.Fatalf("step %d: Apply changed the old Set: message %+v:\nold %v\nnaive %v", step, md, got, want)
					}
				}
				check(fmt.Sprintf("after edit %d", step))
			}
		}
	}
}

// isPacked reports whether every exact posting list of s is at its exact
// length, as edit.compact leaves them (appending builds leave slack).
func isPacked(s *Set) bool {
	for _, sh := range s.users.exact.shards {
		if sh == nil {
			continue
		}
		for _, g := range sh.m {
			if cap(g.rules) != len(g.rules) {
				return false
			}
		}
	}
	return true
}

// TestWithLeavesOldSetsWhole derives two Sets from one base and checks that
// neither edit leaks into the base or into the other.
func TestWithLeavesOldSetsWhole(t *testing.T) {
	t.Parallel()
	base := NewSet([]Rule{{ID: 1, UserID: 1, Owner: "a", Enabled: true, Track: Track{Packages: []string{"kernel"}}, Destinations: []int64{1}}})
	s1 := base.With([]Rule{{ID: 2, UserID: 2, Owner: "b", Enabled: true, Track: Track{Packages: []string{"kernel"}}, Destinations: []int64{2}}}, nil)
	s2 := base.With([]Rule{{ID: 3, UserID: 3, Owner: "c", Enabled: true, Track: Track{Packages: []string{"kernel"}}, Destinations: []int64{3}}}, []int64{1})
	for _, c := range []struct {
		s    *Set
		want []int64
	}{{base, []int64{1}}, {s1, []int64{1, 2}}, {s2, []int64{3}}} {
		var got []int64
		for _, m := range sorted(c.s.Match(bodhiMsg)) {
			got = append(got, m.DestinationID)
		}
		if !slices.Equal(got, c.want) {
			t.Errorf("got destinations %v, want %v", got, c.want)
		}
	}
}

// TestConcurrentReadersSeeWholeSets matches from many goroutines while
// another keeps swapping a rule between two shapes; every answer must be one
// of the two shapes' answers (run with -race to check the copy-on-write).
func TestConcurrentReadersSeeWholeSets(t *testing.T) {
	t.Parallel()
	a := Rule{ID: 1, UserID: 1, Owner: "x", Enabled: true, Track: Track{Packages: []string{"kernel"}}, Destinations: []int64{1}}
	b := Rule{ID: 1, UserID: 1, Owner: "x", Enabled: true, Track: Track{Packages: []string{"python-*"}, Topics: []string{"*.bodhi.*"}}, Destinations: []int64{2}}
	other := make([]Rule, 0, 200)
	for i := range 200 {
		other = append(other, Rule{ID: int64(100 + i), UserID: 9, Owner: "y", Enabled: true, Track: Track{Packages: []string{fmt.Sprint("p", i)}}, Destinations: []int64{9}})
	}
	var cur sync.Mutex
	set := NewSet(append(other, a))
	get := func() *Set { cur.Lock(); defer cur.Unlock(); return set }
	done := make(chan struct{})
	var wg sync.WaitGroup
	errs := make(chan string, 4)
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-done:
					return
				default:
				}
				ms := get().Match(bodhiMsg)
				if len(ms) != 1 || (ms[0].DestinationID != 1 && ms[0].DestinationID != 2) {
					errs <- fmt.Sprint(ms)
					return
				}
			}
		}()
	}
	for i := range 2000 {
		next := a
		if i%2 == 0 {
			next = b
		}
		s := get().With([]Rule{next}, nil)
		cur.Lock()
		set = s
		cur.Unlock()
	}
	close(done)
	wg.Wait()
	select {
	case e := <-errs:
		t.Fatalf("a reader saw a half-updated set: %s", e)
	default:
	}
}

func TestKeyFor(t *testing.T) {
	t.Parallel()
	cases := []struct {
		p     string
		topic bool
		kind  keyKind
		key   string
		pure  bool
	}{
		{"kernel", false, keyExact, "kernel", true},
		{"python-*", false, keyPrefix, "python-", true},
		{"*-devel", false, keySuffix, "-devel", true},
		{"*", false, keyRest, "", true},
		{"**", false, keyRest, "", true},
		{"*odh*", false, keyRest, "", false},
		{"org.fedoraproject.prod.bodhi.*", true, keyPrefix, "org.fedoraproject.prod.bodhi.", true},
		{"org.fedoraproject.*.bodhi.update.comment", true, keySuffix, ".bodhi.update.comment", false},
		{"org.fedoraproject.*.bodhi.*", true, keyToken, "bodhi", false},
		{"org.fedoraproject.*", true, keyPrefix, "org.fedoraproject.", true},
		{"*.bodhi.*", true, keyToken, "bodhi", false},
		{"?lice", false, keySuffix, "lice", false},
	}
	for _, c := range cases {
		kind, key, pure := keyFor(c.p, c.topic)
		if kind != c.kind || key != c.key || pure != c.pure {
			t.Errorf("keyFor(%q) = %v %q %v, want %v %q %v", c.p, kind, key, pure, c.kind, c.key, c.pure)
		}
	}
}

// FuzzIndexEqualsNaive: for any pattern and any value, in any field, the
// index's choice of key never loses or invents a match.
func FuzzIndexEqualsNaive(f *testing.F) {
	f.Add("org.fedoraproject.*.bodhi.*", "org.fedoraproject.prod.bodhi.update", uint8(3))
	f.Add("*.bodhi.*", "a.bodhi.bodhi.b", uint8(3))
	f.Add("py?hon-*", "python-x", uint8(1))
	f.Add("*-devel", "-devel", uint8(1))
	f.Add("a*b*c", "abc", uint8(0))
	f.Add("*", "", uint8(2))
	f.Fuzz(func(t *testing.T, pattern, value string, field uint8) {
		if pattern == "" || len(pattern) > maxPatternLen {
			return
		}
		r := Rule{ID: 1, UserID: 1, Owner: "o", Enabled: true, Destinations: []int64{1}}
		md := meta.Metadata{Topic: "t", App: "a"}
		switch field % 4 {
		case 0:
			r.Track.Users, md.Usernames = []string{pattern}, []string{value}
		case 1:
			r.Track.Packages, md.Packages = []string{pattern}, []string{value, value + "x"}
		case 2:
			r.Track.Apps, md.App = []string{pattern}, value
		default:
			r.Track.Topics, md.Topic = []string{pattern}, value
		}
		got, want := NewSet([]Rule{r}).Match(md), newNaive([]Rule{r}).Match(md)
		if len(got) != len(want) {
			t.Fatalf("pattern %q value %q: index %v, naive %v", pattern, value, got, want)
		}
	})
}

// TestMatchReportsHit: each match names the rule's entry that picked the
// message, as the rule spells it, so that the owner can be told why.
func TestMatchReportsHit(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name  string
		owner string
		track Track
		want  Hit
	}{
		{"mine", "bob", Track{Mine: true}, Hit{Field: HitMine}},
		{"mine, with the owner in users too", "bob", Track{Mine: true, Users: []string{"bob"}}, Hit{Field: HitMine}},
		{"a user, not the owner", "zed", Track{Users: []string{"alice"}}, Hit{HitUsers, "alice"}},
		{"the owner's name without mine", "bob", Track{Users: []string{"bob"}}, Hit{HitUsers, "bob"}},
		{"a package glob", "z", Track{Packages: []string{"nope", "python-*"}}, Hit{HitPackages, "python-*"}},
		{"a literal package", "z", Track{Packages: []string{"kernel"}}, Hit{HitPackages, "kernel"}},
		{"an app", "z", Track{Apps: []string{"bod*"}}, Hit{HitApps, "bod*"}},
		{"a topic", "z", Track{Topics: []string{"org.fedoraproject.*.bodhi.*"}}, Hit{HitTopics, "org.fedoraproject.*.bodhi.*"}},
	}
	for _, c := range cases {
		for _, dests := range [][]int64{{4}, nil} {
			r := Rule{ID: 2, UserID: 1, Owner: c.owner, Enabled: true, Track: c.track, Destinations: dests}
			got := NewSet([]Rule{r}).Match(bodhiMsg)
			if len(got) != 1 || got[0].Hit != c.want {
				t.Errorf("%s (destinations %v): got %+v, want hit %+v", c.name, dests, got, c.want)
			}
		}
	}
	// Two rules on one destination: the credited (lowest id) rule's entry.
	rs := []Rule{
		{ID: 8, UserID: 1, Owner: "z", Enabled: true, Track: Track{Apps: []string{"bodhi"}}, Destinations: []int64{4}},
		{ID: 3, UserID: 1, Owner: "z", Enabled: true, Track: Track{Topics: []string{"*.comment"}}, Destinations: []int64{4}},
	}
	if got := NewSet(rs).Match(bodhiMsg); len(got) != 1 || got[0].RuleID != 3 || got[0].Hit != (Hit{HitTopics, "*.comment"}) {
		t.Errorf("two rules on one destination: %+v", got)
	}
}

// TestMatchHistoryOnly: a rule with no destination that may receive still
// matches, once per user and message, with destination 0, beside the
// matches of the user's rules that do deliver.
func TestMatchHistoryOnly(t *testing.T) {
	t.Parallel()
	rs := []Rule{
		{ID: 5, UserID: 1, Owner: "bob", Enabled: true, Track: Track{Apps: []string{"bodhi"}}},
		{ID: 2, UserID: 1, Owner: "bob", Enabled: true, Track: Track{Packages: []string{"kernel"}}},
		{ID: 3, UserID: 1, Owner: "bob", Enabled: true, Track: Track{Mine: true}, Destinations: []int64{7}},
		{ID: 4, UserID: 2, Owner: "eve", Enabled: true, Track: Track{Topics: []string{"*"}}},
		{ID: 6, UserID: 3, Owner: "dan", Enabled: false, Track: Track{Topics: []string{"*"}}},
	}
	want := []Match{{1, 2, 0, Hit{}}, {2, 4, 0, Hit{}}, {1, 3, 7, Hit{}}}
	if got := sorted(NewSet(rs).Match(bodhiMsg)); !reflect.DeepEqual(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	if got := NewSet(rs).Len(); got != 4 {
		t.Fatalf("Len %d, want 4 (every enabled rule)", got)
	}
}

// TestLayout pins the sizes the matcher's speed rests on (a visit streams
// through 32-byte rule copies and reads a principal's first 64 bytes): a
// field added in the wrong place fails here rather than quietly costing a
// cache miss per match.
func TestLayout(t *testing.T) {
	t.Parallel()
	if got := unsafe.Sizeof(post{}); got != 32 {
		t.Errorf("a posting is %d bytes, want 32 (two to a cache line)", got)
	}
	if got := unsafe.Offsetof(principal{}.named); got != 64 {
		t.Errorf("a principal's self list ends at %d bytes, want 64", got)
	}
	if got := unsafe.Sizeof(principal{}); got != 192 {
		t.Errorf("a principal is %d bytes, want 192 (three cache lines)", got)
	}
}

// TestMatcherGenerationWraps runs one matcher past its 16-bit generation
// counter: a key filed 65,536 messages ago must not pass for this one's.
func TestMatcherGenerationWraps(t *testing.T) {
	t.Parallel()
	m := &matcher{}
	c := &post{id: 1, userID: 1, bits: postSet}
	md := meta.Metadata{}
	for i := range 1<<16 + 10 {
		m.reset(&md, nil)
		m.emit(c, int64(i%7+1), int64(i%7+1), Hit{})
		m.emit(c, 100, 100, Hit{})
		m.emit(c, int64(i%7+1), int64(i%7+1), Hit{})
		if len(m.out) != 2 || m.out[0].DestinationID != int64(i%7+1) || m.out[1].DestinationID != 100 {
			t.Fatalf("message %d: %v", i, m.out)
		}
	}
}

// TestMatcherGrowthAndFilterVerdicts runs one matcher past its generation
// counter (started near it) with messages that grow the destination set
// (each growth starts a generation) and judge a filter before and after
// growing: neither a key nor a filter's verdict of another message, or of
// the set before it grew, may pass for this one's.
func TestMatcherGrowthAndFilterVerdicts(t *testing.T) {
	t.Parallel()
	m := &matcher{filters: []*ruleExt{nil, {appsExclude: compileAll([]string{"koji"})}}, gen: 1<<16 - 1500}
	c := &post{id: 1, userID: 1, bits: postSet, filter: 1}
	grew := 0
	for i := range 3000 {
		md := meta.Metadata{App: "bodhi"}
		if i%3 == 0 {
			md.App = "koji"
		}
		m.reset(&md, nil)
		gen := m.gen
		want := md.App != "koji"
		if got := m.filterPasses(c); got != want {
			t.Fatalf("message %d (%s): verdict %v", i, md.App, got)
		}
		n := 1 + i*7919%(3*minSlots/4)
		for k := range n {
			m.emit(c, int64(k+1), int64(k+1), Hit{})
			m.emit(c, int64(k/2+1), int64(k/2+1), Hit{})
		}
		if m.gen != gen {
			grew++
		}
		if got := m.filterPasses(c); got != want {
			t.Fatalf("message %d (%s): verdict %v after %d destinations", i, md.App, got, n)
		}
		if len(m.out) != n {
			t.Fatalf("message %d: %d matches, want %d", i, len(m.out), n)
		}
		for k, o := range m.out {
			if o.DestinationID != int64(k+1) {
				t.Fatalf("message %d: match %d is for %d", i, k, o.DestinationID)
			}
		}
	}
	if grew < 100 {
		t.Fatalf("only %d messages grew the set", grew)
	}
}

// TestRuleNumbersOfDerivedSets derives Sets from one base in an order in
// which a number freed by one must not be handed out by another: each
// rule's second destination lives in the rule table under its number, so
// a number given twice in one Set sends one rule's message to the other's
// destination.
func TestRuleNumbersOfDerivedSets(t *testing.T) {
	t.Parallel()
	rule := func(id int64) Rule {
		return Rule{ID: id, UserID: id, Owner: fmt.Sprint("u", id), Enabled: true,
			Track: Track{Packages: []string{"kernel"}}, Destinations: []int64{id * 10, id*10 + 1}}
	}
	base := NewSet([]Rule{rule(1), rule(2)})
	dropped := base.With(nil, []int64{1})    // frees rule 1's number
	added := base.With([]Rule{rule(3)}, nil) // must not take it
	again := dropped.With([]Rule{rule(4), rule(5)}, nil)
	md := meta.Metadata{Topic: "t", Packages: []string{"kernel"}}
	for _, c := range []struct {
		name string
		s    *Set
		ids  []int64
	}{{"base", base, []int64{1, 2}}, {"dropped", dropped, []int64{2}}, {"added", added, []int64{1, 2, 3}}, {"again", again, []int64{2, 4, 5}}} {
		var want []Match
		for _, id := range c.ids {
			for _, d := range []int64{id * 10, id*10 + 1} {
				want = append(want, Match{UserID: id, RuleID: id, DestinationID: d})
			}
		}
		if got := sorted(c.s.Match(md)); !reflect.DeepEqual(got, sorted(want)) {
			t.Errorf("%s: %v, want %v", c.name, got, want)
		}
	}
}

// TestTrackEncoding round-trips tracks through the index's encoding,
// entries holding any byte.
func TestTrackEncoding(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("x", 300)
	for _, tr := range []Track{
		{},
		{Mine: true},
		{Owned: true, MyGroups: true, Groups: []string{"python-sig"}},
		{Users: []string{"a", "", "b\x00c"}, Packages: []string{long, "python-*"}, Containers: []string{"c"},
			Modules: []string{"m"}, Flatpaks: []string{"f"}, Topics: []string{"*.bodhi.*"}, Apps: []string{"koji"},
			Agents: []string{"\xff"}, OwnedBy: []string{"bob"}, Groups: []string{"g1", "g2"}, Mine: true},
	} {
		if got := decodeTrack(encodeTrack(tr)); !reflect.DeepEqual(got, tr) {
			t.Errorf("%+v came back as %+v", tr, got)
		}
	}
}
