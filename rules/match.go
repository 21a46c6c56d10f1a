package rules

import (
	"slices"

	"fmn/rules/meta"
)

// Match says that a message goes to a user's destination because of a rule.
type Match struct {
	UserID        int64
	RuleID        int64
	DestinationID int64
}

// compiled is a rule with its patterns compiled once.
type compiled struct {
	rule          Rule
	users         []Glob
	packages      []Glob
	topics        []Glob
	apps          []Glob
	appsExclude   []Glob
	topicsExclude []Glob
}

// Set is an immutable snapshot of every enabled rule, safe for concurrent
// use. Build a new one when rules change.
//
// This first version tries each rule in turn; the indexed matcher replaces
// the loop behind the same methods.
type Set struct {
	rules []compiled
}

// NewSet compiles rules into a Set. Rules without a deliverable destination
// are dropped: they can never produce a match.
func NewSet(rs []Rule) *Set {
	s := &Set{}
	for _, r := range rs {
		if !r.Enabled || len(r.Destinations) == 0 {
			continue
		}
		s.rules = append(s.rules, compiled{
			rule:          r,
			users:         compileAll(r.Track.Users),
			packages:      compileAll(r.Track.Packages),
			topics:        compileAll(r.Track.Topics),
			apps:          compileAll(r.Track.Apps),
			appsExclude:   compileAll(r.Filters.AppsExclude),
			topicsExclude: compileAll(r.Filters.TopicsExclude),
		})
	}
	return s
}

// Len is the number of rules that can match.
func (s *Set) Len() int { return len(s.rules) }

// Match returns the destinations md goes to, each destination once even when
// several rules hit it (the first rule, by id, is credited).
func (s *Set) Match(md meta.Metadata) []Match {
	var out []Match
	seen := map[int64]bool{}
	for i := range s.rules {
		c := &s.rules[i]
		if !c.tracks(md) || !c.passes(md) {
			continue
		}
		for _, d := range c.rule.Destinations {
			if !seen[d] {
				seen[d] = true
				out = append(out, Match{UserID: c.rule.UserID, RuleID: c.rule.ID, DestinationID: d})
			}
		}
	}
	return out
}

func (c *compiled) tracks(md meta.Metadata) bool {
	if c.rule.Track.Mine && slices.Contains(md.Usernames, c.rule.Owner) {
		return true
	}
	return anyMatch(c.users, md.Usernames) || anyMatch(c.packages, md.Packages) ||
		anyMatchOne(c.topics, md.Topic) || anyMatchOne(c.apps, md.App)
}

func (c *compiled) passes(md meta.Metadata) bool {
	if anyMatchOne(c.appsExclude, md.App) || anyMatchOne(c.topicsExclude, md.Topic) {
		return false
	}
	if c.rule.Filters.NotMyActions && md.Agent != "" && md.Agent == c.rule.Owner {
		return false
	}
	return true
}

func compileAll(ps []string) []Glob {
	gs := make([]Glob, len(ps))
	for i, p := range ps {
		gs[i] = CompileGlob(p)
	}
	return gs
}

func anyMatchOne(gs []Glob, s string) bool {
	for _, g := range gs {
		if g.Match(s) {
			return true
		}
	}
	return false
}

func anyMatch(gs []Glob, ss []string) bool {
	for _, s := range ss {
		if anyMatchOne(gs, s) {
			return true
		}
	}
	return false
}
