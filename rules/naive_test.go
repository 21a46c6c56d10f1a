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
	// owners["rpms/kernel"] lists "u:alice" and "g:kernel-maint" style
	// keys; members maps a user to their groups.
	owners  map[string][]string
	members map[string][]string
}

type naiveRule struct {
	r                                    Rule
	users, topics, apps, agents          []Glob
	typed                                [nKinds][]Glob
	appsInclude, appsExclude, topicsExcl []Glob
	follows                              []string // the principals whose artifacts r follows
}

func newNaive(rs []Rule) *naiveSet { return newNaiveFrom(Changes{Upserts: rs}) }

// newNaiveFrom builds the reference from a whole state.
func newNaiveFrom(ch Changes) *naiveSet {
	n := &naiveSet{owners: map[string][]string{}, members: map[string][]string{}}
	for _, a := range ch.Artifacts {
		var keys []string
		for _, u := range a.Users {
			keys = append(keys, "u:"+u)
		}
		for _, g := range a.Groups {
			keys = append(keys, "g:"+g)
		}
		n.owners[a.Namespace+"/"+a.Name] = keys
	}
	for _, m := range ch.Members {
		n.members[m.User] = m.Groups
	}
	for _, r := range ch.Upserts {
		if !r.Enabled {
			continue
		}
		nr := naiveRule{
			r: r, users: compileAll(r.Track.Users),
			topics: compileAll(r.Track.Topics), apps: compileAll(r.Track.Apps), agents: compileAll(r.Track.Agents),
			appsInclude: compileAll(r.Filters.Apps), appsExclude: compileAll(r.Filters.AppsExclude),
			topicsExcl: compileAll(r.Filters.TopicsExclude),
		}
		for k := range nKinds {
			nr.typed[k] = compileAll(typedTrack(r.Track, k))
		}
		nr.follows = n.follows(r)
		n.rules = append(n.rules, nr)
	}
	return n
}

// follows lists the principals whose artifacts r follows.
func (n *naiveSet) follows(r Rule) []string {
	var follows []string
	if r.Track.Owned {
		follows = append(follows, "u:"+r.Owner)
	}
	for _, u := range r.Track.OwnedBy {
		follows = append(follows, "u:"+u)
	}
	for _, g := range r.Track.Groups {
		follows = append(follows, "g:"+g)
	}
	if r.Track.MyGroups {
		for _, g := range n.members[r.Owner] {
			follows = append(follows, "g:"+g)
		}
	}
	return follows
}

// maintains reports whether one of the principals follows maintains artifact.
func (n *naiveSet) maintains(follows []string, artifact string) bool {
	for _, k := range n.owners[artifact] {
		if slices.Contains(follows, k) {
			return true
		}
	}
	return false
}

func (n *naiveSet) Match(md meta.Metadata) []Match {
	var out []Match
	at := map[int64]int{}
	for i := range n.rules {
		c := &n.rules[i]
		r := c.r
		tracked := r.Track.Mine && slices.Contains(md.Usernames, r.Owner) ||
			anyMatch(c.users, md.Usernames) ||
			anyMatchOne(c.topics, md.Topic) || anyMatchOne(c.apps, md.App) ||
			md.Agent != "" && anyMatchOne(c.agents, md.Agent)
		for k := range nKinds {
			as := artifactsOf(&md, k)
			tracked = tracked || anyMatch(c.typed[k], as)
			for _, a := range as {
				tracked = tracked || n.maintains(c.follows, namespaces[k]+"/"+a)
			}
		}
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

// validHit reports whether hit is an entry of r that tracks md, knowing
// nobody maintains anything.
func validHit(r Rule, md meta.Metadata, hit Hit) bool { return newNaive(nil).validHit(r, md, hit) }

// validHit reports whether hit is an entry of r that tracks md, with n's
// maintainers and memberships.
func (n *naiveSet) validHit(r Rule, md meta.Metadata, hit Hit) bool {
	maintained := func(follows []string) bool {
		for k := range nKinds {
			for _, a := range artifactsOf(&md, k) {
				if n.maintains(follows, namespaces[k]+"/"+a) {
					return true
				}
			}
		}
		return false
	}
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
	case HitAgents:
		return md.Agent != "" && one(r.Track.Agents, md.Agent)
	case HitContainers:
		return one(r.Track.Containers, md.Containers...)
	case HitModules:
		return one(r.Track.Modules, md.Modules...)
	case HitFlatpaks:
		return one(r.Track.Flatpaks, md.Flatpaks...)
	case HitOwned:
		return r.Track.Owned && hit.Entry == "" && maintained([]string{"u:" + r.Owner})
	case HitOwnedBy:
		return slices.Contains(r.Track.OwnedBy, hit.Entry) && maintained([]string{"u:" + hit.Entry})
	case HitGroups:
		return slices.Contains(r.Track.Groups, hit.Entry) && maintained([]string{"g:" + hit.Entry})
	case HitMyGroups:
		return r.Track.MyGroups && slices.Contains(n.members[r.Owner], hit.Entry) && maintained([]string{"g:" + hit.Entry})
	}
	return false
}
