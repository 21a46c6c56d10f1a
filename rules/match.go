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

// post is a rule as a posting list holds it: what nearly every visit
// reads, 32 bytes and no pointer. Each list the rule is filed in holds its
// own copy, so a visit streams through a list instead of taking a cache
// miss on every rule it reaches (in a population of 600,000 rules each
// rule elsewhere in memory is a miss), and the collector has nothing to
// scan in a list. The rest of the rule is its record in the Set's rule
// table, at num, read only by the few visits that need it: a second or
// further destination, and not_my_actions when the agent's name hashes
// like the owner's. Filters over apps and topics are shared by many
// rules; a visit finds them by id, and each is judged once per message
// (matcher.filterPasses).
//
// A rule is filed anew on every change, so the copies never go stale.
type post struct {
	id     int64
	userID int64
	dest0  int64
	num    uint32 // the rule's number in the Set's rule table
	// filter is the id of the rule's filters over apps and topics in the
	// Set's filter table, 0 for none, filterUnshared for filters kept in
	// the rule's record only.
	filter uint16
	// bits: the lowest severity rank kept (3 bits; info unless the rule
	// says), the number of destinations (2 bits: 0, 1 (dest0), 2 (dest1
	// too) or 3: ext.moreDests too), and the post flags.
	bits uint8
	// ownerHash is a byte of nameHash(owner): not_my_actions compares the
	// names only when it agrees with the agent's.
	ownerHash uint8
}

// Layout of post.bits.
const (
	sevMask   uint8 = 7
	destShift       = 3
	destMask  uint8 = 3 << destShift

	postNotMine uint8 = 1 << 5 // filters.not_my_actions
	postSet     uint8 = 1 << 6 // the post is a rule (an rlist's empty first is zero)
	// postFiledMine marks the copy filed under the owner's name for mine,
	// so that a visit credits mine without reading the owner's name.
	postFiledMine uint8 = 1 << 7
)

func (p *post) minSev() int     { return int(p.bits & sevMask) }
func (p *post) ndests() int     { return int(p.bits&destMask) >> destShift }
func (p *post) set() bool       { return p.bits&postSet != 0 }
func (p *post) filedMine() bool { return p.bits&postFiledMine != 0 }

// filterUnshared is post.filter for a rule whose filters found no room in
// the filter table (65,534 distinct ones): they are judged from its record.
const filterUnshared = 1<<16 - 1

// ruleRec is a rule's record in the rule table: the part of it few visits
// read, and its track lists, encoded (ctrack.go), to unfile it on change.
type ruleRec struct {
	dest1 int64
	owner string
	track string
	// ext holds the rule's filters (shared with every rule of the same
	// filters, when they are in the filter table) and destinations past
	// the first two (then ext is the rule's own); nil for most rules.
	ext *ruleExt
}

// ruleExt is the part of a rule few rules have.
type ruleExt struct {
	apps          []Glob
	appsExclude   []Glob
	topicsExclude []Glob
	moreDests     []int64 // past the first two
}

// passes applies the filters over apps and topics.
func (x *ruleExt) passes(md *meta.Metadata) bool {
	if len(x.apps) > 0 && !anyMatchOne(x.apps, md.App) {
		return false
	}
	return !anyMatchOne(x.appsExclude, md.App) && !anyMatchOne(x.topicsExclude, md.Topic)
}

// compileRule compiles r, to be filed under number num; the caller holds
// in.mu.
func compileRule(r Rule, num uint32, in *interner) (ruleRec, post) {
	c := ruleRec{owner: r.Owner, track: encodeTrack(r.Track)}
	p := post{id: r.ID, userID: r.UserID, num: num, ownerHash: uint8(nameHash(r.Owner)),
		bits: uint8(min(SeverityRank(r.Filters.SeverityAtLeast), int(sevMask))) | postSet}
	if r.Filters.NotMyActions {
		p.bits |= postNotMine
	}
	ds := r.Destinations
	p.bits |= uint8(min(len(ds), 3)) << destShift
	if len(ds) > 0 {
		p.dest0 = ds[0]
	}
	if len(ds) > 1 {
		c.dest1 = ds[1]
	}
	f := r.Filters
	if len(f.Apps)+len(f.AppsExclude)+len(f.TopicsExclude) > 0 {
		p.filter, c.ext = in.filter(f)
	}
	if len(ds) > 2 {
		x := &ruleExt{moreDests: slices.Clone(ds[2:])}
		if c.ext != nil {
			x.apps, x.appsExclude, x.topicsExclude = c.ext.apps, c.ext.appsExclude, c.ext.topicsExclude
		}
		c.ext = x
	}
	return c, p
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
func (p *post) passes(m *matcher) bool {
	if m.sev < p.minSev() {
		return false
	}
	if p.bits&postNotMine != 0 && p.ownerHash == uint8(m.agentHash) && m.md.Agent != "" &&
		m.md.Agent == m.rules.get(p.num).owner {
		return false
	}
	return p.filter == 0 || m.filterPasses(p)
}

// filterPasses judges p's filters over apps and topics, each distinct set
// of filters once per message: many rules share a few (apps_exclude koji,
// topics_exclude *.buildsys.task.*), and a glob over the topic costs
// more than the rest of a visit.
func (m *matcher) filterPasses(p *post) bool {
	id := int(p.filter)
	if id == filterUnshared {
		return m.rules.get(p.num).ext.passes(m.md)
	}
	if id >= len(m.fmemo) {
		m.fmemo = append(m.fmemo, make([]uint32, id+1-len(m.fmemo))...)
	}
	if v := m.fmemo[id]; v>>1 == uint32(m.gen) {
		return v&1 != 0
	}
	ok := m.filters[id].passes(m.md)
	v := uint32(m.gen) << 1
	if ok {
		v |= 1
	}
	m.fmemo[id] = v
	return ok
}

// Set is an immutable snapshot of every enabled rule, indexed by what they track; safe for concurrent use. With derives the
// next snapshot from a change without rebuilding.
type Set struct {
	byID  idMap     // rule id → number
	rules ruleTable // number → rule
	// free holds the numbers of rules this Set dropped, for its next
	// edits to reuse (Sets derived from one another share no free list,
	// so two derived from one base never hand out one number twice);
	// freeOwner is the edit that may append to it in place.
	free      []uint32
	freeOwner *edit
	// filters is the filter table (interner.filters) as of this Set.
	filters []*ruleExt
	n       int
	users   fieldIndex // track.users, and track.mine under the owner's name
	typed   [nKinds]fieldIndex
	apps    fieldIndex
	topics  fieldIndex
	agents  fieldIndex

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
			n.add(e, r)
		}
	}
	for _, a := range ch.Artifacts {
		n.setOwners(e, a, n.intern)
	}
	n.filters = n.intern.filters
	e.compact()
	return &n
}

func (s *Set) add(e *edit, r Rule) {
	var num uint32
	if k := len(s.free); k > 0 {
		num = s.free[k-1]
		s.free = s.free[:k-1]
	} else {
		num = s.intern.nextRule
		s.intern.nextRule++
	}
	c := s.rules.mutable(e, num)
	var p post
	*c, p = compileRule(r, num, s.intern)
	s.byID.mutable(e, r.ID)[r.ID] = num
	s.n++
	s.file(e, c, p, r.Track, true)
}

func (s *Set) remove(e *edit, id int64) {
	num, ok := s.byID.get(id)
	if !ok {
		return
	}
	delete(s.byID.mutable(e, id), id)
	s.n--
	c := s.rules.get(num)
	s.file(e, c, post{id: id}, decodeTrack(c.track), false)
	*s.rules.mutable(e, num) = ruleRec{}
	if s.freeOwner != e {
		s.free = slices.Clone(s.free)
		s.freeOwner = e
	}
	s.free = append(s.free, num)
}

// file adds or removes every tracking entry of c, each distinct entry
// once: p is its post (only its id, to remove it) and t its track.
func (s *Set) file(e *edit, c *ruleRec, p post, t Track, add bool) {
	do := func(f *fieldIndex, ps []string, literal, topic bool, p post) {
		for i, v := range ps {
			if slices.Contains(ps[:i], v) {
				continue
			}
			if add {
				f.add(e, v, literal, topic, p)
			} else {
				f.remove(e, v, literal, topic, p.id)
			}
		}
	}
	if t.Mine && c.owner != "" {
		// "mine" is an exact comparison with the owner's name, even if a
		// name were to hold a '*'.
		mine := p
		mine.bits |= postFiledMine
		do(&s.users, []string{c.owner}, true, false, mine)
	}
	users := t.Users
	if t.Mine && slices.Contains(users, c.owner) && isLiteral(c.owner) {
		users = slices.DeleteFunc(slices.Clone(users), func(u string) bool { return u == c.owner })
	}
	do(&s.users, users, false, false, p)
	for k := range nKinds {
		do(&s.typed[k], typedTrack(t, k), false, false, p)
	}
	do(&s.apps, t.Apps, false, false, p)
	do(&s.topics, t.Topics, false, true, p)
	do(&s.agents, t.Agents, false, false, p)
	s.fileOwnership(e, c, p, t, add)
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
	m.rules, m.filters = &s.rules, s.filters
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
	m.md, m.out, m.rules, m.filters = nil, nil, nil, nil
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
		var sum uint8
		for _, g := range gs[:len(b)] {
			if g != nil {
				sum += g.rules[0].bits
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
	md      *meta.Metadata
	rules   *ruleTable // the Set's, for the rest of a rule
	filters []*ruleExt // the Set's filter table
	// fmemo holds, by filter id, this message's verdict on that filter:
	// the generation in the high bits, the verdict in bit 0.
	fmemo []uint32

	sev       int
	agentHash uint32  // nameHash(md.Agent)
	fetched   uint8   // the read-ahead loads' sink, never read
	field     string  // the Hit field of the index being looked up
	out       []Match // the caller's slice; this call's matches start at base
	base      int
	// slot is the open-addressing set of this call's keys, 8 bytes a
	// key so that a message reaching thousands stays in the core's cache:
	// the generation (16 bits; a key of an older one is free), 16 bits of
	// the key's hash, and the index of its match in out. This message
	// uses its first size entries.
	slot []uint64
	size int
	gen  uint64
}

func (m *matcher) reset(md *meta.Metadata, dst []Match) {
	m.md, m.sev, m.out, m.base = md, SeverityRank(md.Severity), dst, len(dst)
	m.agentHash = nameHash(md.Agent)
	m.nextGen()
	m.size = minSlots
	if len(m.slot) < minSlots {
		m.slot = make([]uint64, minSlots)
	}
}

// minSlots is the size a message's destination set starts at, 32 KB of
// the largest set any message ever needed: probing all of that would
// spread a message's keys over the second-level cache and beyond, while
// starting smaller makes the messages of a few thousand destinations
// (the ones that cost the most) refile theirs as it grows; side by side,
// 4,096 matched 8-10% faster than 1,024.
const minSlots = 4096

// nextGen starts a new generation of the destination set and of the
// filter verdicts, which leaves every entry of the older ones free.
func (m *matcher) nextGen() {
	m.gen++
	if m.gen == 1<<16 {
		clear(m.slot)
		clear(m.fmemo)
		m.gen = 1
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
func (m *matcher) visit(rs []post, pattern string) {
	for i := range rs {
		c := &rs[i]
		if !c.passes(m) {
			continue
		}
		hit := Hit{Field: m.field, Entry: pattern}
		if c.filedMine() {
			// The owner's name is filed once, for mine, even when
			// users lists it too.
			hit = Hit{Field: HitMine}
		}
		m.emitRule(c, hit)
	}
}

// readAhead is how many lookups of one stage a message issues before it
// uses any: each is a cache miss, and a loop that reads one and then uses
// it keeps only the few misses in flight that the processor's window
// holds, while a loop that only loads issues all of them together, and the
// loop after it finds them in the cache.
const readAhead = 16

// emitRule emits rule c's matches, credited to hit.
func (m *matcher) emitRule(c *post, hit Hit) {
	n := c.ndests()
	switch n {
	case 0:
		// History only: one per user, keyed apart from every
		// destination id (those are positive).
		m.emit(c, -c.userID, 0, hit)
		return
	case 1:
		m.emit(c, c.dest0, c.dest0, hit)
		return
	}
	r := m.rules.get(c.num)
	m.emit(c, c.dest0, c.dest0, hit)
	m.emit(c, r.dest1, r.dest1, hit)
	if n > 2 {
		for _, d := range r.ext.moreDests {
			m.emit(c, d, d, hit)
		}
	}
}

// emit records that rule c sends the message to dest (0: history only),
// once per key; a rule of lower id that hits the same key takes the credit.
func (m *matcher) emit(c *post, key, dest int64, hit Hit) {
	if 2*(len(m.out)-m.base+1) > m.size {
		m.grow()
	}
	mask := uint64(m.size - 1)
	h := hashID(key)
	tag := m.gen<<48 | (h>>48)<<32
	for i := h & mask; ; i = (i + 1) & mask {
		sl := m.slot[i]
		if sl>>48 != m.gen {
			m.slot[i] = tag | uint64(len(m.out))
			// Field by field into the slot: a Match built on the stack
			// and copied (what append of a literal compiles to) is
			// written in 8-byte stores and read back in 16-byte loads,
			// which the processor cannot forward from its store buffer,
			// a stall per match that was a third of emit's time.
			n := len(m.out)
			if n == cap(m.out) {
				m.out = slices.Grow(m.out, 1)
			}
			m.out = m.out[:n+1]
			o := &m.out[n]
			o.UserID, o.RuleID, o.DestinationID = c.userID, c.id, dest
			o.Hit.Field, o.Hit.Entry = hit.Field, hit.Entry
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

// grow doubles the destination set and refiles the matches so far, under
// a new generation (the entries of this message's smaller set are then
// free, like those of earlier messages).
func (m *matcher) grow() {
	m.size *= 2
	if m.size > len(m.slot) {
		m.slot = make([]uint64, m.size)
	}
	m.nextGen()
	mask := uint64(m.size - 1)
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
