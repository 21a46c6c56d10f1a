package rules

import (
	"slices"

	"fmn/rules/meta"
)

// naiveSet is the reference matcher: every rule tried on every message, with
// the rule shape's meaning written as plainly as possible. Tests check the
// index against it and the benchmark measures what the index saves.
type naiveSet struct {
	rules []naiveRule
}

type naiveRule struct {
	r                                    Rule
	users, packages, topics, apps        []Glob
	appsInclude, appsExclude, topicsExcl []Glob
}

func newNaive(rs []Rule) *naiveSet {
	n := &naiveSet{}
	for _, r := range rs {
		if !r.Enabled {
			continue
		}
		n.rules = append(n.rules, naiveRule{
			r: r, users: compileAll(r.Track.Users), packages: compileAll(r.Track.Packages),
			topics: compileAll(r.Track.Topics), apps: compileAll(r.Track.Apps),
			appsInclude: compileAll(r.Filters.Apps), appsExclude: compileAll(r.Filters.AppsExclude),
			topicsExcl: compileAll(r.Filters.TopicsExclude),
		})
	}
	return n
}

func (n *naiveSet) Match(md meta.Metadata) []Match {
	var out []Match
	at := map[int64]int{}
	for i := range n.rules {
		c := &n.rules[i]
		r := c.r
		tracked := r.Track.Mine && slices.Contains(md.Usernames, r.Owner) ||
			anyMatch(c.users, md.Usernames) || anyMatch(c.packages, md.Packages) ||
			anyMatchOne(c.topics, md.Topic) || anyMatchOne(c.apps, md.App)
		if !tracked {
			continue
		}
		f := r.Filters
		if len(f.Apps) > 0 && !anyMatchOne(c.appsInclude, md.App) ||
			anyMatchOne(c.appsExclude, md.App) || anyMatchOne(c.topicsExcl, md.Topic) ||
			f.NotMyActions && md.Agent != "" && md.Agent == r.Owner ||
			SeverityRank(md.Severity) < SeverityRank(f.SeverityAtLeast) {
			continue
		}
		// A rule without destinations matches into its owner's history:
		// once per user, under a key no destination id can have.
		keys, dests := r.Destinations, r.Destinations
		if len(dests) == 0 {
			keys, dests = []int64{-r.UserID}, []int64{0}
		}
		for i, k := range keys {
			if j, ok := at[k]; ok {
				if r.ID < out[j].RuleID {
					out[j].RuleID, out[j].UserID = r.ID, r.UserID
				}
				continue
			}
			at[k] = len(out)
			out = append(out, Match{UserID: r.UserID, RuleID: r.ID, DestinationID: dests[i]})
		}
	}
	return out
}

func anyMatch(gs []Glob, ss []string) bool {
	for _, s := range ss {
		if anyMatchOne(gs, s) {
			return true
		}
	}
	return false
}

// sorted orders matches by destination (then user, for history-only ones)
// and leaves out which entry hit, for comparison: when several entries of a
// rule hit, the index and the reference may credit different ones
// (validHits checks the index's choice).
func sorted(ms []Match) []Match {
	ms = slices.Clone(ms)
	for i := range ms {
		ms[i].Hit = Hit{}
	}
	slices.SortFunc(ms, func(a, b Match) int {
		if a.DestinationID != b.DestinationID {
			return int(a.DestinationID - b.DestinationID)
		}
		return int(a.UserID - b.UserID)
	})
	if ms == nil {
		ms = []Match{}
	}
	return ms
}

// validHit reports whether hit is an entry of r that tracks md.
func validHit(r Rule, md meta.Metadata, hit Hit) bool {
	one := func(entries []string, values ...string) bool {
		if !slices.Contains(entries, hit.Entry) {
			return false
		}
		return anyMatch([]Glob{CompileGlob(hit.Entry)}, values)
	}
	switch hit.Field {
	case HitMine:
		return r.Track.Mine && hit.Entry == "" && slices.Contains(md.Usernames, r.Owner)
	case HitUsers:
		return one(r.Track.Users, md.Usernames...)
	case HitPackages:
		return one(r.Track.Packages, md.Packages...)
	case HitApps:
		return one(r.Track.Apps, md.App)
	case HitTopics:
		return one(r.Track.Topics, md.Topic)
	}
	return false
}
