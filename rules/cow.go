package rules

import (
	"hash/maphash"
	"maps"
	"slices"
)

// The index is a persistent data structure: a Set is never modified once
// published, and Set.With builds the next one by copying only what an edit
// touches. Every mutable piece (a shard of a hash map, a posting list, a
// bucket of glob groups) remembers the edit that created it; within that one
// edit it may be changed in place, and any later edit copies it first. So an
// edit of one rule copies a few small shards instead of 500,000 rules, and a
// reader holding the old Set keeps seeing exactly the old Set.

// edit identifies one call of Set.Apply; its pointer is the identity. It
// also lists the posting lists it made, for compact.
type edit struct {
	groups []*group     // the groups this edit made or copied
	princs []*principal // the principal records this edit took
}

// compactMin is how many postings an edit must have made for compact to
// pack them: a small edit's lists are allocated at their size already.
const compactMin = 1 << 12

// chunkPosts is the size of the arrays compact packs lists into (512 KB).
const chunkPosts = 1 << 14

// compact packs the posting lists e made into a few large arrays, each
// list at its exact length, when e made many (a full load): building
// them one append at a time leaves each list up to twice its length and
// the arrays it outgrew as holes between live objects, which together
// cost a third of the index's memory. The lists are never written again
// (a later edit copies a list before changing it), and an array lives as
// long as any list in it: what later edits copy out stays allocated until
// the array's last list goes, at most the size of the lists packed.
func (e *edit) compact() {
	n := 0
	for _, g := range e.groups {
		n += len(g.rules)
	}
	for _, p := range e.princs {
		n += len(p.self.rest) + len(p.named.rest) + len(p.myGroups)
	}
	groups, princs := e.groups, e.princs
	e.groups, e.princs = nil, nil
	if n < compactMin {
		return
	}
	var chunk []post
	pack := func(l []post) []post {
		if len(l) == 0 {
			return nil
		}
		if len(l) > chunkPosts/4 {
			return slices.Clip(slices.Clone(l))
		}
		if len(chunk)+len(l) > cap(chunk) {
			chunk = make([]post, 0, chunkPosts)
		}
		at := len(chunk)
		chunk = append(chunk, l...)
		return chunk[at:len(chunk):len(chunk)]
	}
	for _, g := range groups {
		g.rules = pack(g.rules)
	}
	for _, p := range princs {
		p.self.rest, p.named.rest, p.myGroups = pack(p.self.rest), pack(p.named.rest), pack(p.myGroups)
	}
}

// nShards splits each map so that an edit copies 1/64 of it. With a
// million keys that is ~15,000 entries per touched shard: well under a
// millisecond, while a reader's lookup pays only one extra hash.
const nShards = 64

var shardSeed = maphash.MakeSeed()

func shardOf(k string) int { return int(maphash.String(shardSeed, k) & (nShards - 1)) }

type strShard[V any] struct {
	owner *edit
	m     map[string]V
}

// strMap is a copy-on-write map from strings.
type strMap[V any] struct {
	shards [nShards]*strShard[V]
}

func (c *strMap[V]) get(k string) (V, bool) {
	sh := c.shards[shardOf(k)]
	if sh == nil {
		var zero V
		return zero, false
	}
	v, ok := sh.m[k]
	return v, ok
}

// mutable returns the shard map holding k, owned by e, so that e may write it.
func (c *strMap[V]) mutable(e *edit, k string) map[string]V {
	i := shardOf(k)
	sh := c.shards[i]
	if sh == nil {
		sh = &strShard[V]{owner: e, m: map[string]V{}}
		c.shards[i] = sh
	} else if sh.owner != e {
		sh = &strShard[V]{owner: e, m: maps.Clone(sh.m)}
		c.shards[i] = sh
	}
	return sh.m
}

type idShard struct {
	owner *edit
	m     map[int64]uint32
}

// idMap is a copy-on-write map from rule id to the rule's number in the
// Set's rule table. It holds no pointer, so the collector never scans it.
type idMap struct {
	shards [nShards]*idShard
}

func (c *idMap) get(id int64) (uint32, bool) {
	sh := c.shards[uint64(id)&(nShards-1)]
	if sh == nil {
		return 0, false
	}
	n, ok := sh.m[id]
	return n, ok
}

func (c *idMap) mutable(e *edit, id int64) map[int64]uint32 {
	i := uint64(id) & (nShards - 1)
	sh := c.shards[i]
	if sh == nil {
		sh = &idShard{owner: e, m: map[int64]uint32{}}
		c.shards[i] = sh
	} else if sh.owner != e {
		sh = &idShard{owner: e, m: maps.Clone(sh.m)}
		c.shards[i] = sh
	}
	return sh.m
}

// cowPages is a table by dense number in copy-on-write pages of 64: an
// edit copies the page list once and each page it touches, so the Sets
// derived from one base share every page their edits left alone. The rule
// table and the principals are two of them.
type cowPages[T any] struct {
	owner *edit
	pages []*cowPage[T]
}

const cowPageBits = 6

type cowPage[T any] struct {
	v     [1 << cowPageBits]T
	owner *edit
	// mine has bit i set when the owner made v[i] its own beyond the
	// page's copy (principals: their lists cloned); a copy starts with
	// none.
	mine uint64
}

// at returns entry n; the caller knows n's page exists.
func (t *cowPages[T]) at(n uint32) *T {
	return &t.pages[n>>cowPageBits].v[n&(1<<cowPageBits-1)]
}

// find returns entry n, nil when its page was never made.
func (t *cowPages[T]) find(n uint32) *T {
	i := int(n >> cowPageBits)
	if i >= len(t.pages) || t.pages[i] == nil {
		return nil
	}
	return &t.pages[i].v[n&(1<<cowPageBits-1)]
}

// page returns entry n's page, owned by e (made or copied for it), and
// n's place in it.
func (t *cowPages[T]) page(e *edit, n uint32) (*cowPage[T], uint32) {
	i := int(n >> cowPageBits)
	if t.owner != e {
		t.pages = append(make([]*cowPage[T], 0, max(i+1, len(t.pages))+16), t.pages...)
		t.owner = e
	}
	if i >= len(t.pages) {
		t.pages = append(t.pages, make([]*cowPage[T], i+1-len(t.pages))...)
	}
	pg := t.pages[i]
	if pg == nil {
		pg = &cowPage[T]{owner: e}
		t.pages[i] = pg
	} else if pg.owner != e {
		pg = &cowPage[T]{owner: e, v: pg.v}
		t.pages[i] = pg
	}
	return pg, n & (1<<cowPageBits - 1)
}

// ruleTable holds every rule of a Set by its number. Numbers are dense,
// so the table is about as long as the Set has rules.
type ruleTable struct{ cowPages[ruleRec] }

// get returns rule number n; the caller knows n is filed in this Set.
func (t *ruleTable) get(n uint32) *ruleRec { return t.at(n) }

// mutable returns rule number n's slot, owned by e.
func (t *ruleTable) mutable(e *edit, n uint32) *ruleRec {
	pg, j := t.page(e, n)
	return &pg.v[j]
}

// group is the posting list of one pattern: the rules that track it.
type group struct {
	owner *edit
	glob  Glob
	// pure: the key that found the group decides the match alone (an exact
	// pattern, "prefix*", "*suffix" or "*"), so no glob check is needed.
	pure bool
	// rules holds a copy of each rule's hot fields, in rule order of
	// filing: a visit streams through the list rather than chasing a
	// pointer per rule.
	rules []post
}

func (g *group) mutableFor(e *edit) *group {
	if g.owner == e {
		return g
	}
	return e.newGroup(&group{owner: e, glob: g.glob, pure: g.pure, rules: append(make([]post, 0, len(g.rules)+1), g.rules...)})
}

// newGroup records g, made by e, for compact.
func (e *edit) newGroup(g *group) *group {
	e.groups = append(e.groups, g)
	return g
}

// bucket holds the groups that share one index key (e.g. the prefix
// "org.fedoraproject.prod.bodhi." of several patterns).
type bucket struct {
	owner  *edit
	groups []*group
}

func (b *bucket) mutableFor(e *edit) *bucket {
	if b == nil {
		return &bucket{owner: e}
	}
	if b.owner == e {
		return b
	}
	return &bucket{owner: e, groups: append(make([]*group, 0, len(b.groups)+1), b.groups...)}
}

// lenSet counts the keys of each length in a prefix or suffix map, so that
// a lookup tries only the lengths some key has.
type lenSet struct {
	owner  *edit
	counts [maxPatternLen + 1]int32
	lens   []int // lengths with a count, ascending
}

func (l *lenSet) mutableFor(e *edit) *lenSet {
	if l == nil {
		return &lenSet{owner: e}
	}
	if l.owner == e {
		return l
	}
	n := &lenSet{owner: e, counts: l.counts}
	n.lens = append([]int(nil), l.lens...)
	return n
}

func (l *lenSet) add(n int) {
	l.counts[n]++
	if l.counts[n] == 1 {
		l.relist()
	}
}

func (l *lenSet) remove(n int) {
	l.counts[n]--
	if l.counts[n] == 0 {
		l.relist()
	}
}

func (l *lenSet) relist() {
	l.lens = l.lens[:0]
	for n, c := range l.counts {
		if c > 0 {
			l.lens = append(l.lens, n)
		}
	}
}
