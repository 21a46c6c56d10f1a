package rules

import (
	"slices"
	"strings"
)

// fieldIndex finds, for one message field (a username, a package, the app or
// the topic), the rules with a tracking pattern that matches it, touching
// only patterns that can.
//
// A literal pattern is a key of exact. A glob is filed under one literal
// key it implies, chosen to be as selective as possible:
//   - its literal prefix ("org.fedoraproject.prod.bodhi.*"): a lookup tries
//     each prefix of the value whose length some key has;
//   - its literal suffix ("*.update.comment"): the same from the end;
//   - a whole token inside it ("*.bodhi.*" holds "bodhi", bounded by
//     non-alphanumerics on both sides, so any matching value has "bodhi" as
//     one of its alphanumeric runs): a lookup tries each run of the value;
//   - none of these ("*", "*odh*"): rest, tried for every value. Validation
//     cannot forbid these, but they are rare and grouped by pattern, so the
//     cost is per distinct pattern, not per rule.
//
// A glob found through its key is then checked in full, unless the key
// alone decides ("prefix*").
type fieldIndex struct {
	exact      strMap[*group]
	prefix     strMap[*bucket]
	suffix     strMap[*bucket]
	token      strMap[*bucket]
	prefixLens *lenSet
	suffixLens *lenSet
	rest       *bucket
}

type keyKind uint8

const (
	keyExact keyKind = iota
	keyPrefix
	keySuffix
	keyToken
	keyRest
)

// keyFor chooses where pattern p is filed. topic says p is a topic glob,
// whose first three components (TLD, domain, environment) nearly every
// message of a bus shares: a prefix that ends within them selects nothing
// and is scored accordingly.
func keyFor(p string, topic bool) (keyKind, string, bool) {
	first := strings.IndexAny(p, "*?")
	if first < 0 {
		return keyExact, p, true
	}
	last := strings.LastIndexAny(p, "*?")
	prefix, suffix := p[:first], p[last+1:]

	bestKind, bestKey, best := keyRest, "", 0
	score := len(prefix)
	if topic {
		score -= commonTopicHead(prefix)
	}
	if len(prefix) > 0 && score > best {
		bestKind, bestKey, best = keyPrefix, prefix, score
	}
	if len(suffix) > best {
		bestKind, bestKey, best = keySuffix, suffix, len(suffix)
	}
	from := 0
	if topic {
		// Tokens of the common head ("fedoraproject") select nothing either.
		from = commonTopicHead(prefix)
	}
	if tok := longestInnerToken(p, from); len(tok) > best {
		bestKind, bestKey = keyToken, tok
	}
	if bestKind == keyRest && len(prefix) > 0 {
		// A weak prefix still beats trying the pattern on every value.
		bestKind, bestKey = keyPrefix, prefix
	}
	if len(bestKey) > maxPatternLen {
		bestKind, bestKey = keyRest, ""
	}
	var pure bool
	switch bestKind {
	case keyPrefix:
		pure = p[first:] == "*"
	case keySuffix:
		pure = p[:last+1] == "*"
	case keyRest:
		pure = strings.Trim(p, "*") == ""
	}
	return bestKind, bestKey, pure
}

// commonTopicHead is how much of a topic prefix lies within its first three
// dot-separated components.
func commonTopicHead(prefix string) int {
	dots := 0
	for i := 0; i < len(prefix); i++ {
		if prefix[i] == '.' {
			dots++
			if dots == 3 {
				return i + 1
			}
		}
	}
	return len(prefix)
}

func isAlnum(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

// longestInnerToken returns the longest alphanumeric run of p that has a
// literal non-alphanumeric character on both sides, starting at from or later.
func longestInnerToken(p string, from int) string {
	best := ""
	for i := from; i < len(p); {
		if !isAlnum(p[i]) {
			i++
			continue
		}
		j := i
		for j < len(p) && isAlnum(p[j]) {
			j++
		}
		if i > 0 && j < len(p) && !isWild(p[i-1]) && !isWild(p[j]) && j-i > len(best) {
			best = p[i:j]
		}
		i = j
	}
	return best
}

func isWild(c byte) bool { return c == '*' || c == '?' }

// add files rule r under pattern p.
func (f *fieldIndex) add(e *edit, p string, literal, topic bool, r post) {
	kind, key, pure := keyFor(p, topic)
	if literal {
		kind, key, pure = keyExact, p, true
	}
	if kind == keyExact {
		m := f.exact.mutable(e, key)
		g := m[key]
		if g == nil {
			g = e.newGroup(&group{owner: e, glob: Glob{pattern: p, literal: true}, pure: true})
		} else {
			g = g.mutableFor(e)
		}
		g.rules = append(g.rules, r)
		m[key] = g
		return
	}
	b, m, lens := f.bucketFor(e, kind, key)
	for i, g := range b.groups {
		if g.glob.pattern == p {
			g = g.mutableFor(e)
			g.rules = append(g.rules, r)
			b.groups[i] = g
			return
		}
	}
	b.groups = append(b.groups, e.newGroup(&group{owner: e, glob: CompileGlob(p), pure: pure, rules: []post{r}}))
	if len(b.groups) == 1 && lens != nil {
		*lens = (*lens).mutableFor(e)
		(*lens).add(len(key))
	}
	if m != nil {
		m[key] = b
	}
}

// remove takes rule id off pattern p, dropping what becomes empty.
func (f *fieldIndex) remove(e *edit, p string, literal, topic bool, id int64) {
	kind, key, _ := keyFor(p, topic)
	if literal {
		kind, key = keyExact, p
	}
	if kind == keyExact {
		if _, ok := f.exact.get(key); !ok {
			return
		}
		m := f.exact.mutable(e, key)
		g := m[key].mutableFor(e)
		g.rules = without(g.rules, id)
		if len(g.rules) == 0 {
			delete(m, key)
		} else {
			m[key] = g
		}
		return
	}
	if !f.hasBucket(kind, key) {
		return
	}
	b, m, lens := f.bucketFor(e, kind, key)
	for i, g := range b.groups {
		if g.glob.pattern != p {
			continue
		}
		g = g.mutableFor(e)
		g.rules = without(g.rules, id)
		if len(g.rules) > 0 {
			b.groups[i] = g
			break
		}
		b.groups = append(b.groups[:i], b.groups[i+1:]...)
		if len(b.groups) == 0 && m != nil {
			delete(m, key)
			if lens != nil {
				*lens = (*lens).mutableFor(e)
				(*lens).remove(len(key))
			}
		}
		break
	}
}

func (f *fieldIndex) hasBucket(kind keyKind, key string) bool {
	var ok bool
	switch kind {
	case keyPrefix:
		_, ok = f.prefix.get(key)
	case keySuffix:
		_, ok = f.suffix.get(key)
	case keyToken:
		_, ok = f.token.get(key)
	case keyRest:
		ok = f.rest != nil
	}
	return ok
}

// bucketFor returns the bucket for key, owned by e and already stored in
// place, with the map to store it back into (nil for rest) and the length
// set to keep in step.
func (f *fieldIndex) bucketFor(e *edit, kind keyKind, key string) (*bucket, map[string]*bucket, **lenSet) {
	var m map[string]*bucket
	var lens **lenSet
	switch kind {
	case keyPrefix:
		m, lens = f.prefix.mutable(e, key), &f.prefixLens
	case keySuffix:
		m, lens = f.suffix.mutable(e, key), &f.suffixLens
	case keyToken:
		m = f.token.mutable(e, key)
	default:
		f.rest = f.rest.mutableFor(e)
		return f.rest, nil, nil
	}
	b := m[key].mutableFor(e)
	m[key] = b
	return b, m, lens
}

// without drops rule id from rs, in place (rs belongs to the edit).
func without(rs []post, id int64) []post {
	return slices.DeleteFunc(rs, func(p post) bool { return p.id == id })
}

// lookup calls visit with every group whose pattern matches s.
func (f *fieldIndex) lookup(s string, m *matcher) {
	if g, ok := f.exact.get(s); ok {
		m.visit(g.rules, g.glob.pattern)
	}
	f.lookupGlobs(s, m)
}

// lookupGlobs calls visit with every group of a glob that matches s.
func (f *fieldIndex) lookupGlobs(s string, m *matcher) {
	if f.prefixLens != nil {
		for _, n := range f.prefixLens.lens {
			if n > len(s) {
				break
			}
			if b, ok := f.prefix.get(s[:n]); ok {
				m.visitBucket(b, s)
			}
		}
	}
	if f.suffixLens != nil {
		for _, n := range f.suffixLens.lens {
			if n > len(s) {
				break
			}
			if b, ok := f.suffix.get(s[len(s)-n:]); ok {
				m.visitBucket(b, s)
			}
		}
	}
	for i := 0; i < len(s); {
		if !isAlnum(s[i]) {
			i++
			continue
		}
		j := i
		for j < len(s) && isAlnum(s[j]) {
			j++
		}
		if b, ok := f.token.get(s[i:j]); ok {
			m.visitBucket(b, s)
		}
		i = j
	}
	if f.rest != nil {
		m.visitBucket(f.rest, s)
	}
}
