package rules

import (
	"slices"
	"sync"

	"fmn/rules/meta"
)

// Match says that a message goes to a user's destination because of a rule.
type Match struct {
	UserID int64
	RuleID int64
	// DestinationID is 0 when the rule has no destination that may receive
	// now (none chosen yet, or only unconfirmed or turned-off ones): the
	// match is kept in its owner's history and nothing is sent. Such a
	// match is made once per user and message.
	DestinationID int64
	// Hit is the rule's tracking entry that picked the message, so that the
	// owner can be told why it reached them.
	Hit Hit
}

// Hit names one tracking entry of a rule: the field of the rule shape
// ("mine", "users", "packages", "topics", "apps", "agents", "owned", …)
// and, except for mine and owned, the entry as the rule spells it
// ("python-*", "bob"). For my_groups, whose rule names no group, the entry
// is the owner's group that maintains the artifact.
type Hit struct {
	Field string
	Entry string
}

// Tracking fields as a Hit names them.
const (
	HitMine     = "mine"
	HitUsers    = "users"
	HitPackages = "packages"
	HitTopics   = "topics"
	HitApps     = "apps"

	HitAgents     = "agents"
	HitContainers = "containers"
	HitModules    = "modules"
	HitFlatpaks   = "flatpaks"
	HitOwned      = "owned"
	HitOwnedBy    = "owned_by"
	HitGroups     = "groups"
	HitMyGroups   = "my_groups"
)

// typedHits is the Hit field of each artifact kind's typed entries.
var typedHits = [nKinds]string{HitPackages, HitContainers, HitModules, HitFlatpaks}

// crule is a rule as the index keeps it: its tracking entries (to unfile
// it on change), its destinations and its filters, with globs compiled once.
//
// A message visits every rule it matches, and in a large population each
// visit is a cache miss on the rule, so what nearly every visit reads
// comes first, in 32 bytes, which lie in one cache line wherever the
// allocator puts a 96-byte object: the ids, the first destination, and a
// word of the severity floor, the number of destinations, the flags and a
// hash of the owner's name (not_my_actions compares the names only when
// the hashes agree). The second destination follows; filters over apps
// and topics and further destinations are behind ext, nil for most rules.
type crule struct {
	id     int64
	userID int64
	dest0  int64
	// ownerHash is nameHash(owner).
	ownerHash uint32
	minSev    int8  // the lowest severity rank kept (info unless the rule says)
	ndests    uint8 // 0, 1 (dest0), 2 (dest1 too) or 3: ext.moreDests too
	flags     uint8

	dest1 int64
	ext   *ruleExt // set when flagFiltered or ndests > 2
	owner string
	lists ctrack
}

// Bits of crule.flags.
const (
	flagMine uint8 = 1 << iota
	flagOwned
	flagMyGroups
	flagNotMine
	flagFiltered // ext holds filters over apps or topics
)

func (c *crule) has(f uint8) bool { return c.flags&f != 0 }

// ruleExt is the part of a rule few rules have.
type ruleExt struct {
	apps          []Glob
	appsExclude   []Glob
	topicsExclude []Glob
	moreDests     []int64 // past the first two
}

func compileRule(r Rule) *crule {
	c := &crule{id: r.ID, userID: r.UserID, owner: r.Owner, ownerHash: nameHash(r.Owner),
		minSev: int8(SeverityRank(r.Filters.SeverityAtLeast)), lists: compactTrack(r.Track)}
	for _, f := range []struct {
		on  bool
		bit uint8
	}{{r.Track.Mine, flagMine}, {r.Track.Owned, flagOwned}, {r.Track.MyGroups, flagMyGroups}, {r.Filters.NotMyActions, flagNotMine}} {
		if f.on {
			c.flags |= f.bit
		}
	}
	ds := r.Destinations
	c.ndests = uint8(min(len(ds), 3))
	if len(ds) > 0 {
		c.dest0 = ds[0]
	}
	if len(ds) > 1 {
		c.dest1 = ds[1]
	}
	f := r.Filters
	filtered := len(f.Apps)+len(f.AppsExclude)+len(f.TopicsExclude) > 0
	if filtered || len(ds) > 2 {
		c.ext = &ruleExt{
			apps:          compileAll(f.Apps),
			appsExclude:   compileAll(f.AppsExclude),
			topicsExclude: compileAll(f.TopicsExclude),
		}
		if len(ds) > 2 {
			c.ext.moreDests = slices.Clone(ds[2:])
		}
	}
	if filtered {
		c.flags |= flagFiltered
	}
	return c
}

// nameHash is a cheap hash of a name (FNV-1a), to tell most unequal names
// apart without reading both.
func nameHash(s string) uint32 {
	h := uint32(2166136261)
	for i := 0; i < len(s); i++ {
		h = (h ^ uint32(s[i])) * 16777619
	}
	return h
}

// passes applies the rule's filters to a tracked message.
func (c *crule) passes(m *matcher) bool {
	if m.sev < int(c.minSev) {
		return false
	}
	if c.flags&(flagNotMine|flagFiltered) == 0 {
		return true
	}
	md := m.md
	if c.has(flagNotMine) && c.ownerHash == m.agentHash && md.Agent != "" && md.Agent == c.owner {
		return false
	}
	if !c.has(flagFiltered) {
		return true
	}
	x := c.ext
	if len(x.apps) > 0 && !anyMatchOne(x.apps, md.App) {
		return false
	}
	return !anyMatchOne(x.appsExclude, md.App) && !anyMatchOne(x.topicsExclude, md.Topic)
}

// Set is an immutable snapshot of every enabled rule, indexed by what they track; safe for concurrent use. With derives the
// next snapshot from a change without rebuilding.
type Set struct {
	byID   idMap
	n      int
	users  fieldIndex // track.users, and track.mine under the owner's name
	typed  [nKinds]fieldIndex
	apps   fieldIndex
	topics fieldIndex
	agents fieldIndex

	// Ownership (owned.go): artifact name → its maintainers' principal
	// ids, per kind; principal id → the rules following it and a user's
	// groups; the numbering, shared by Sets derived from one another.
	owners [nKinds]strMap[[]int32]
	princ  [2]principals // by kind
	intern *interner
}

// NewSet indexes rules. Disabled rules are left out: they can never produce
// a match. An enabled rule without a destination still matches, into its
// owner's history (Match.DestinationID 0).
func NewSet(rs []Rule) *Set { return (&Set{}).With(rs, nil) }

// NewSetFrom indexes a whole state: rules, who maintains what and who is in
// which group.
func NewSetFrom(ch Changes) *Set { return (&Set{}).Apply(ch) }

// Len is the number of rules that can match.
func (s *Set) Len() int { return s.n }

// With returns a new Set in which each rule of upserts replaces the rule of
// the same id (or is added), and the rules of deleted ids are gone; s itself
// is unchanged. Only the index entries of the changed rules are touched.
func (s *Set) With(upserts []Rule, deleted []int64) *Set {
	return s.Apply(Changes{Upserts: upserts, Deleted: deleted})
}

// Apply returns a new Set with the changes of ch: rules replaced, added or
// deleted as With does, each user of ch.Members given exactly those groups,
// and each artifact of ch.Artifacts exactly those maintainers. s itself is
// unchanged.
func (s *Set) Apply(ch Changes) *Set {
	n := *s
	e := &edit{}
	if n.intern == nil {
		n.intern = newInterner()
	}
	n.intern.mu.Lock()
	defer n.intern.mu.Unlock()
	for _, id := range ch.Deleted {
		n.remove(e, id)
	}
	for _, r := range ch.Upserts {
		n.remove(e, r.ID)
	}
	// Between taking rules out and putting them back, so that a my_groups
	// rule is filed under its owner's groups as they now are.
	for _, mb := range ch.Members {
		n.setMembership(e, mb.User, mb.Groups)
	}
	for _, r := range ch.Upserts {
		if r.Enabled {
			n.add(e, compileRule(r))
		}
	}
	for _, a := range ch.Artifacts {
		n.setOwners(e, a, n.intern)
	}
	return &n
}

func (s *Set) add(e *edit, c *crule) {
	s.byID.mutable(e, c.id)[c.id] = c
	s.n++
	s.file(e, c, true)
}

func (s *Set) remove(e *edit, id int64) {
	c := s.byID.get(id)
	if c == nil {
		return
	}
	delete(s.byID.mutable(e, id), id)
	s.n--
	s.file(e, c, false)
}

// file adds or removes every tracking entry of c, each distinct entry once.
func (s *Set) file(e *edit, c *crule, add bool) {
	do := func(f *fieldIndex, ps []string, literal, topic bool) {
		for i, p := range ps {
			if slices.Contains(ps[:i], p) {
				continue
			}
			if add {
				f.add(e, p, literal, topic, c)
			} else {
				f.remove(e, p, literal, topic, c)
			}
		}
	}
	t := c.track()
	if t.Mine && c.owner != "" {
		// "mine" is an exact comparison with the owner's name, even if a
		// name were to hold a '*'.
		do(&s.users, []string{c.owner}, true, false)
	}
	users := t.Users
	if t.Mine && slices.Contains(users, c.owner) && isLiteral(c.owner) {
		users = slices.DeleteFunc(slices.Clone(users), func(u string) bool { return u == c.owner })
	}
	do(&s.users, users, false, false)
	for k := range nKinds {
		do(&s.typed[k], typedTrack(t, k), false, false)
	}
	do(&s.apps, t.Apps, false, false)
	do(&s.topics, t.Topics, false, true)
	do(&s.agents, t.Agents, false, false)
	s.fileOwnership(e, c, add)
}

func isLiteral(p string) bool { return CompileGlob(p).literal }

// Match returns the destinations md goes to, each destination once even
// when several rules hit it; the rule credited is the lowest id among those
// that hit. The order of the matches is unspecified.
func (s *Set) Match(md meta.Metadata) []Match {
	return s.AppendMatches(nil, &md)
}

// AppendMatches appends Match's answer to dst and returns the extended
// slice, so that a caller matching message after message can reuse one
// buffer and the matcher allocates nothing.
func (s *Set) AppendMatches(dst []Match, md *meta.Metadata) []Match {
	m := matchers.Get().(*matcher)
	m.reset(md, dst)
	m.field = HitUsers
	s.lookupValues(&s.users, md.Usernames, -1, m)
	for k := range nKinds {
		m.field = typedHits[k]
		s.lookupValues(&s.typed[k], artifactsOf(md, k), k, m)
	}
	m.field = HitApps
	s.apps.lookup(md.App, m)
	m.field = HitTopics
	s.topics.lookup(md.Topic, m)
	if md.Agent != "" {
		m.field = HitAgents
		s.agents.lookup(md.Agent, m)
	}
	out := m.out
	m.md, m.out = nil, nil
	matchers.Put(m)
	return out
}

// lookupValues looks up a message's values of one field (its users, its
// artifacts of kind k; k < 0 for users), readAhead at a time: first every
// value's exact group, then a word of each group's first rule, the loads
// of each stage issued together, then the visits, with the globs and, for
// artifacts, the rules following their maintainers.
func (s *Set) lookupValues(f *fieldIndex, vals []string, k Kind, m *matcher) {
	var gs [readAhead]*group
	for len(vals) > 0 {
		b := vals[:min(len(vals), readAhead)]
		vals = vals[len(b):]
		for j, v := range b {
			gs[j], _ = f.exact.get(v)
		}
		var sum int8
		for _, g := range gs[:len(b)] {
			if g != nil {
				sum += g.rules[0].minSev
			}
		}
		m.fetched += sum
		for j, v := range b {
			if g := gs[j]; g != nil {
				m.visit(g.rules, g.glob.pattern)
			}
			f.lookupGlobs(v, m)
			if k >= 0 {
				s.visitOwners(k, v, m)
			}
		}
	}
}

var matchers = sync.Pool{New: func() any { return &matcher{} }}

// matcher is the scratch space of one Match call: the matches so far and an
// open-addressing set of their destinations, cleared in O(1) by bumping a
// generation number.
type matcher struct {
	md        *meta.Metadata
	sev       int
	agentHash uint32  // nameHash(md.Agent)
	fetched   int8    // fetch's sink, never read
	field     string  // the Hit field of the index being looked up
	out       []Match // the caller's slice; this call's matches start at base
	base      int
	// slot is the open-addressing set of this call's keys, 8 bytes a
	// key so that a message reaching thousands stays in the core's cache:
	// the generation (16 bits; a key of an older one is free), 16 bits of
	// the key's hash, and the index of its match in out.
	slot []uint64
	gen  uint64
}

func (m *matcher) reset(md *meta.Metadata, dst []Match) {
	m.md, m.sev, m.out, m.base = md, SeverityRank(md.Severity), dst, len(dst)
	m.agentHash = nameHash(md.Agent)
	m.gen++
	if m.gen == 1<<16 {
		clear(m.slot)
		m.gen = 1
	}
	if len(m.slot) == 0 {
		m.slot = make([]uint64, 64)
	}
}

func (m *matcher) visitBucket(b *bucket, s string) {
	for _, g := range b.groups {
		if g.pure || g.glob.Match(s) {
			m.visit(g.rules, g.glob.pattern)
		}
	}
}

// visit emits the matches of the rules filed under one entry, pattern.
func (m *matcher) visit(rs []*crule, pattern string) {
	var ph uint32
	if m.field == HitUsers {
		ph = nameHash(pattern)
	}
	for len(rs) > 0 {
		b := rs[:min(len(rs), readAhead)]
		rs = rs[len(b):]
		m.fetch(b)
		for _, c := range b {
			if !c.passes(m) {
				continue
			}
			hit := Hit{Field: m.field, Entry: pattern}
			if m.field == HitUsers && c.has(flagMine) && c.ownerHash == ph && pattern == c.owner {
				// The owner's name is filed once, for mine, even when
				// users lists it too.
				hit = Hit{Field: HitMine}
			}
			m.emitRule(c, hit)
		}
	}
}

// readAhead is how many rules a visit fetches at once. Each rule is a
// cache miss; a loop that reads one rule and then emits its match keeps
// only the few misses in flight that the processor's window holds, while
// a loop that only loads (fetch) issues all of them together, and the
// emitting loop after it finds them in the cache.
const readAhead = 16

// fetch loads a word of each rule's hot line, so that the lines arrive
// together; the sum only keeps the loads from being dropped.
func (m *matcher) fetch(rs []*crule) {
	var sum int8
	for _, c := range rs {
		sum += c.minSev
	}
	m.fetched += sum
}

// emitRule emits rule c's matches, credited to hit.
func (m *matcher) emitRule(c *crule, hit Hit) {
	switch c.ndests {
	case 0:
		// History only: one per user, keyed apart from every
		// destination id (those are positive).
		m.emit(c, -c.userID, 0, hit)
		return
	case 1:
		m.emit(c, c.dest0, c.dest0, hit)
		return
	}
	m.emit(c, c.dest0, c.dest0, hit)
	m.emit(c, c.dest1, c.dest1, hit)
	if c.ndests > 2 {
		for _, d := range c.ext.moreDests {
			m.emit(c, d, d, hit)
		}
	}
}

// emit records that rule c sends the message to dest (0: history only),
// once per key; a rule of lower id that hits the same key takes the credit.
func (m *matcher) emit(c *crule, key, dest int64, hit Hit) {
	if 2*(len(m.out)-m.base+1) > len(m.slot) {
		m.grow()
	}
	mask := uint64(len(m.slot) - 1)
	h := hashID(key)
	tag := m.gen<<48 | (h>>48)<<32
	for i := h & mask; ; i = (i + 1) & mask {
		sl := m.slot[i]
		if sl>>48 != m.gen {
			m.slot[i] = tag | uint64(len(m.out))
			m.out = append(m.out, Match{UserID: c.userID, RuleID: c.id, DestinationID: dest, Hit: hit})
			return
		}
		if sl&^(1<<32-1) != tag {
			continue
		}
		if o := &m.out[uint32(sl)]; slotKey(*o) == key {
			if c.id < o.RuleID {
				o.RuleID, o.UserID, o.Hit = c.id, c.userID, hit
			}
			return
		}
	}
}

// slotKey is the key emit filed a match under.
func slotKey(o Match) int64 {
	if o.DestinationID == 0 {
		return -o.UserID
	}
	return o.DestinationID
}

// grow doubles the destination set and refiles the matches so far.
func (m *matcher) grow() {
	m.slot = make([]uint64, 2*len(m.slot))
	m.gen = 1
	mask := uint64(len(m.slot) - 1)
	for pos := m.base; pos < len(m.out); pos++ {
		h := hashID(slotKey(m.out[pos]))
		i := h & mask
		for m.slot[i]>>48 == m.gen {
			i = (i + 1) & mask
		}
		m.slot[i] = m.gen<<48 | (h>>48)<<32 | uint64(pos)
	}
}

func hashID(d int64) uint64 {
	x := uint64(d) * 0x9E3779B97F4A7C15
	return x ^ x>>29
}

func compileAll(ps []string) []Glob {
	if len(ps) == 0 {
		return nil
	}
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
