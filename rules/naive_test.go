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
		if !r.Enabled || len(r.Destinations) == 0 {
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
		for _, d := range r.Destinations {
			if j, ok := at[d]; ok {
				if r.ID < out[j].RuleID {
					out[j].RuleID = r.ID
				}
				continue
			}
			at[d] = len(out)
			out = append(out, Match{UserID: r.UserID, RuleID: r.ID, DestinationID: d})
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

// sorted orders matches by destination, for comparison.
func sorted(ms []Match) []Match {
	ms = slices.Clone(ms)
	slices.SortFunc(ms, func(a, b Match) int { return int(a.DestinationID - b.DestinationID) })
	if ms == nil {
		ms = []Match{}
	}
	return ms
}
