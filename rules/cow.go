package rules

import (
	"hash/maphash"
	"maps"
)

// The index is a persistent data structure: a Set is never modified once
// published, and Set.With builds the next one by copying only what an edit
// touches. Every mutable piece (a shard of a hash map, a posting list, a
// bucket of glob groups) remembers the edit that created it; within that one
// edit it may be changed in place, and any later edit copies it first. So an
// edit of one rule copies a few small shards instead of 500,000 rules, and a
// reader holding the old Set keeps seeing exactly the old Set.

// edit identifies one call of Set.With; its pointer is the identity.
type edit struct{ _ byte }

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
	m     map[int64]*crule
}

// idMap is a copy-on-write map from rule id to the compiled rule.
type idMap struct {
	shards [nShards]*idShard
}

func (c *idMap) get(id int64) *crule {
	sh := c.shards[uint64(id)&(nShards-1)]
	if sh == nil {
		return nil
	}
	return sh.m[id]
}

func (c *idMap) mutable(e *edit, id int64) map[int64]*crule {
	i := uint64(id) & (nShards - 1)
	sh := c.shards[i]
	if sh == nil {
		sh = &idShard{owner: e, m: map[int64]*crule{}}
		c.shards[i] = sh
	} else if sh.owner != e {
		sh = &idShard{owner: e, m: maps.Clone(sh.m)}
		c.shards[i] = sh
	}
	return sh.m
}

// group is the posting list of one pattern: the rules that track it.
type group struct {
	owner *edit
	glob  Glob
	// pure: the key that found the group decides the match alone (an exact
	// pattern, "prefix*", "*suffix" or "*"), so no glob check is needed.
	pure  bool
	rules []*crule
}

func (g *group) mutableFor(e *edit) *group {
	if g.owner == e {
		return g
	}
	return &group{owner: e, glob: g.glob, pure: g.pure, rules: append(make([]*crule, 0, len(g.rules)+1), g.rules...)}
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
