package rules

import (
	"slices"
	"sync"

	"fmn/rules/meta"
)

// Ownership expands into the index. A rule that follows what someone
// maintains (owned, owned_by, groups, my_groups) is filed under principals
// ("u:alice", "g:python-sig"), and each artifact ("python-foo" of rpms)
// lists the principals maintaining it. A message looks up its artifacts'
// principals and visits their rules: two hash lookups per principal, no
// query and no call to dist-git. Every map is copy-on-write like the rest
// of the Set, so a change of one project's owners, one user's groups or
// one rule copies a shard or a page or two and never pauses a reader.

// Namespaces are dist-git's artifact kinds, in the order of Kind.
var namespaces = [nKinds]string{"rpms", "container", "modules", "flatpaks"}

// Kind is an artifact kind: an index into namespaces.
type Kind int

// The artifact kinds.
const (
	KindRPM Kind = iota
	KindContainer
	KindModule
	KindFlatpak
	nKinds
)

// Namespaces returns dist-git's namespace of each artifact kind.
func Namespaces() []string { return slices.Clone(namespaces[:]) }

// KindOf returns the kind of a dist-git namespace.
func KindOf(namespace string) (Kind, bool) {
	for k, ns := range namespaces {
		if ns == namespace {
			return Kind(k), true
		}
	}
	return 0, false
}

// artifactsOf returns the message's artifacts of kind k.
func artifactsOf(md *meta.Metadata, k Kind) []string {
	switch k {
	case KindRPM:
		return md.Packages
	case KindContainer:
		return md.Containers
	case KindModule:
		return md.Modules
	default:
		return md.Flatpaks
	}
}

// typedTrack returns the rule's patterns for artifacts of kind k.
func typedTrack(t Track, k Kind) []string {
	switch k {
	case KindRPM:
		return t.Packages
	case KindContainer:
		return t.Containers
	case KindModule:
		return t.Modules
	default:
		return t.Flatpaks
	}
}

// ArtifactOwners is who maintains one artifact now: the users and groups
// with a maintaining role among those fmn follows. Empty lists mean nobody
// followed maintains it any more.
type ArtifactOwners struct {
	Namespace, Name string
	Users, Groups   []string
}

// Membership is the groups a user belongs to now (none: left them all).
type Membership struct {
	User   string
	Groups []string
}

// fileOwnership adds or removes c (whose track is t) under the principals
// it follows: its owner's self list (owned), the named lists of owned_by's
// users and of groups' groups, and for my_groups the owner's list of such
// rules and the self list of each group the owner is in now. A rule
// following python-sig both by name and through my_groups is in both of
// that group's lists, and each path takes away only its own entry.
func (s *Set) fileOwnership(e *edit, c *ruleRec, p post, t Track, add bool) {
	in := s.intern
	if t.Owned && c.owner != "" {
		s.principal(e, userKind, c.owner).self.edit(p, add)
	}
	for i, u := range t.OwnedBy {
		if slices.Contains(t.OwnedBy[:i], u) || t.Owned && u == c.owner {
			continue // owned credits the owner's own artifacts
		}
		s.principal(e, userKind, u).named.edit(p, add)
	}
	for i, g := range t.Groups {
		if !slices.Contains(t.Groups[:i], g) {
			s.principal(e, groupKind, g).named.edit(p, add)
		}
	}
	if !t.MyGroups || c.owner == "" {
		return
	}
	u := s.principal(e, userKind, c.owner)
	if add {
		u.myGroups = append(u.myGroups, p)
	} else {
		u.myGroups = without(u.myGroups, p.id)
	}
	for _, g := range u.groups {
		s.princ[groupKind].mutable(e, in, groupKind, g).self.edit(p, add)
	}
}

// principal returns the principal of that kind and name, owned by e.
func (s *Set) principal(e *edit, kind int, name string) *principal {
	return s.princ[kind].mutable(e, s.intern, kind, s.intern.id(kind, name))
}

// setMembership replaces a user's groups, moving the user's my_groups rules
// from the groups left to the groups joined.
func (s *Set) setMembership(e *edit, user string, names []string) {
	in := s.intern
	uid := in.id(userKind, user)
	var groups []int32
	for _, g := range names {
		groups = append(groups, in.id(groupKind, g))
	}
	groups = slices.Compact(slices.Sorted(slices.Values(groups)))
	if p := s.princ[userKind].get(uid); p == nil && len(groups) == 0 || p != nil && slices.Equal(p.groups, groups) {
		return
	}
	u := s.princ[userKind].mutable(e, in, userKind, uid)
	gs := &s.princ[groupKind]
	for _, c := range u.myGroups {
		for _, g := range u.groups {
			if _, found := slices.BinarySearch(groups, g); !found {
				gs.mutable(e, in, groupKind, g).self.edit(c, false)
			}
		}
		for _, g := range groups {
			if _, found := slices.BinarySearch(u.groups, g); !found {
				gs.mutable(e, in, groupKind, g).self.edit(c, true)
			}
		}
	}
	u.groups = groups
}

// Principal kinds, each numbered apart: a user and a group of one name are
// different principals.
const (
	userKind = iota
	groupKind
)

// interner numbers the principals of every Set derived from one another,
// densely per kind, so that an artifact lists its maintainers as 4-byte
// ids (a group's as ^id, so the sign tells the kind) and a Set finds a
// principal by indexing its table, with no hashing of names at match
// time. Ids are never forgotten (principals are few: tens of thousands on
// Fedora), so sharing the numbering between Sets changes nothing any Set
// answers. Only edits use it, under mu; readers see ids only.
type interner struct {
	mu sync.Mutex
	// nextRule is the next rule number never handed out by any Set of
	// this lineage (a Set's free list recycles its own).
	nextRule uint32
	ids      [2]map[string]int32
	names    [2][]string    // by id
	seen     map[int32]bool // distinct's scratch
	scratch  []int32        // setOwners'

	// filters is the filter table of every Set of this lineage: each
	// distinct set of filters over apps and topics, compiled once, by id
	// (0 unused). It is only appended to, under mu, and a Set keeps the
	// slice as it was when the Set was made, so readers never see an
	// entry being written; filterIDs finds an entry by its encoding.
	filters   []*ruleExt
	filterIDs map[string]uint16
}

// filter returns the id and compiled form of a rule's filters over apps
// and topics, adding them to the table if new; the caller holds mu.
// Entries are never removed: distinct filters are few (people pick from
// the same apps and topics), and an id must stay valid for every Set that
// may use it.
func (in *interner) filter(f Filters) (uint16, *ruleExt) {
	key := encodeTrack(Track{Users: f.Apps, Packages: f.AppsExclude, Topics: f.TopicsExclude})
	if id, ok := in.filterIDs[key]; ok {
		return id, in.filters[id]
	}
	x := &ruleExt{apps: compileAll(f.Apps), appsExclude: compileAll(f.AppsExclude), topicsExclude: compileAll(f.TopicsExclude)}
	if len(in.filters) == 0 {
		in.filters = append(in.filters, nil) // id 0: no filter
	}
	if len(in.filters) >= filterUnshared {
		return filterUnshared, x
	}
	id := uint16(len(in.filters))
	in.filters = append(in.filters, x)
	in.filterIDs[key] = id
	return id, x
}

func newInterner() *interner {
	return &interner{ids: [2]map[string]int32{{}, {}}, filterIDs: map[string]uint16{}}
}

// id returns the id of a principal, numbering it if new; the caller holds
// mu.
func (in *interner) id(kind int, name string) int32 {
	if id, ok := in.ids[kind][name]; ok {
		return id
	}
	id := int32(len(in.names[kind]))
	in.ids[kind][name] = id
	in.names[kind] = append(in.names[kind], name)
	return id
}

// distinct drops repeated ids in place, keeping the first of each (the
// store's lists have none; a caller's may).
func (in *interner) distinct(ids []int32) []int32 {
	if len(ids) <= 32 {
		out := ids[:0]
		for i, k := range ids {
			if !slices.Contains(ids[:i], k) {
				out = append(out, k)
			}
		}
		return out
	}
	if in.seen == nil {
		in.seen = map[int32]bool{}
	}
	clear(in.seen)
	out := ids[:0]
	for _, k := range ids {
		if !in.seen[k] {
			in.seen[k] = true
			out = append(out, k)
		}
	}
	return out
}

// setOwners replaces an artifact's principals; the caller holds in.mu.
func (s *Set) setOwners(e *edit, a ArtifactOwners, in *interner) {
	k, ok := KindOf(a.Namespace)
	if !ok || a.Name == "" {
		return
	}
	ids := in.scratch[:0]
	for _, u := range a.Users {
		ids = append(ids, in.id(userKind, u))
	}
	for _, g := range a.Groups {
		ids = append(ids, ^in.id(groupKind, g))
	}
	ids = in.distinct(ids)
	in.scratch = ids
	// A full refresh lists every artifact, and most keep their
	// maintainers: those cost neither an allocation nor a copied shard.
	if cur, _ := s.owners[k].get(a.Name); slices.Equal(cur, ids) {
		return
	}
	sh := s.owners[k].mutable(e, a.Name)
	if len(ids) == 0 {
		delete(sh, a.Name)
	} else {
		sh[a.Name] = slices.Clone(ids)
	}
}

// visitOwners visits the rules following a maintainer of artifact name.
// The maintainers come readAhead at a time: first each one's record is
// loaded (a user's own rule is inline in it), then the first rule of each
// group's list, every load of a stage issued together (each is a cache
// miss), then the rules are visited.
func (s *Set) visitOwners(k Kind, name string, m *matcher) {
	ids, ok := s.owners[k].get(name)
	if !ok {
		return
	}
	var ps [readAhead]*principal
	for len(ids) > 0 {
		b := ids[:min(len(ids), readAhead)]
		ids = ids[len(b):]
		for j, id := range b {
			if id < 0 {
				ps[j] = s.princ[groupKind].get(^id)
			} else {
				ps[j] = s.princ[userKind].get(id)
			}
		}
		var sum uint8
		for _, p := range ps[:len(b)] {
			if p != nil {
				sum += p.self.first.bits
			}
		}
		for j, p := range ps[:len(b)] {
			if p != nil && b[j] < 0 && len(p.self.rest) > 0 {
				sum += p.self.rest[0].bits
			}
		}
		m.fetched += sum
		for j, p := range ps[:len(b)] {
			if p == nil {
				continue
			}
			if b[j] < 0 {
				// Named first, so that a rule following a group both by
				// name and through my_groups is credited with the name.
				m.visitList(&p.named, Hit{Field: HitGroups, Entry: p.name})
				m.visitList(&p.self, Hit{Field: HitMyGroups, Entry: p.name})
				continue
			}
			m.visitList(&p.self, Hit{Field: HitOwned})
			m.visitList(&p.named, Hit{Field: HitOwnedBy, Entry: p.name})
		}
	}
}

// visitList emits the rules of one principal's list, each credited with
// hit.
func (m *matcher) visitList(l *rlist, hit Hit) {
	if c := &l.first; c.set() && c.passes(m) {
		m.emitRule(c, hit)
	}
	for i := range l.rest {
		if c := &l.rest[i]; c.passes(m) {
			m.emitRule(c, hit)
		}
	}
}

// rlist is a principal's list of rules, its first one inline: most users'
// lists hold one rule (their own owned rule), and a visit then reads
// nothing beyond the principal's record.
type rlist struct {
	first post // zero (not set()): empty, and rest is too
	rest  []post
}

// edit adds c or removes it; the list belongs to the edit
// (principals.mutable cloned it).
func (l *rlist) edit(c post, add bool) {
	switch {
	case add && !l.first.set():
		l.first = c
	case add:
		l.rest = append(l.rest, c)
	case l.first.id == c.id && len(l.rest) == 0:
		l.first = post{}
	case l.first.id == c.id:
		l.first = l.rest[0]
		l.rest = slices.Delete(l.rest, 0, 1)
	default:
		l.rest = without(l.rest, c.id)
	}
}

// principal is one user or group as a Set knows them: the rules following
// what they maintain and, for a user, their groups. A visit reads the first
// 64 bytes (the self list, its first rule inline; a record is 192 bytes,
// three lines, and pages are aligned), then the named list's header and
// the name when it credits owned_by, groups or my_groups.
type principal struct {
	// self: a user's own owned rules, or the my_groups rules of a group's
	// members; named: the rules naming the principal (owned_by for a user,
	// groups for a group).
	self     rlist
	_        [8]byte
	named    rlist
	name     string
	myGroups []post  // a user's my_groups rules
	groups   []int32 // a user's groups, sorted
	_        [8]byte
}

// principals is the table of one kind of principal by id (cowPages).
type principals struct{ cowPages[principal] }

// get returns principal id, nil when this Set has never filed anything
// under it.
func (t *principals) get(id int32) *principal { return t.find(uint32(id)) }

// mutable returns principal id of kind, owned by e with its lists, so that
// e may change them in place.
func (t *principals) mutable(e *edit, in *interner, kind int, id int32) *principal {
	pg, j := t.page(e, uint32(id))
	p := &pg.v[j]
	if pg.mine&(1<<j) == 0 {
		pg.mine |= 1 << j
		e.princs = append(e.princs, p)
		p.name = in.names[kind][id]
		p.self.rest, p.named.rest = slices.Clone(p.self.rest), slices.Clone(p.named.rest)
		p.myGroups, p.groups = slices.Clone(p.myGroups), slices.Clone(p.groups)
	}
	return p
}
