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
// one rule copies a shard or two and never pauses a reader.

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

// Principal keys: a user and a group of one name are different principals.
func userKey(name string) string  { return "u:" + name }
func groupKey(name string) string { return "g:" + name }

// watchKeys returns the principals c follows by name: its owner (owned),
// owned_by and groups. my_groups is filed separately, per the owner's
// current groups.
func watchKeys(c *crule) []string {
	t := c.track.full()
	var keys []string
	if t.Owned && c.owner != "" {
		keys = append(keys, userKey(c.owner))
	}
	for _, u := range t.OwnedBy {
		keys = append(keys, userKey(u))
	}
	for _, g := range t.Groups {
		keys = append(keys, groupKey(g))
	}
	slices.Sort(keys)
	return slices.Compact(keys)
}

// fileOwnership adds or removes c under the principals it follows. Posting
// lists of principals are multisets: a rule following python-sig both by
// name and through my_groups is there twice, and each path takes away only
// its own copy.
func (s *Set) fileOwnership(e *edit, c *crule, add bool) {
	for _, k := range watchKeys(c) {
		s.watchEdit(e, k, c, add)
	}
	if !c.track.myGroups || c.owner == "" {
		return
	}
	postingEdit(e, &s.myGroups, c.owner, c, add)
	groups, _ := s.members.get(c.owner)
	for _, g := range groups {
		s.watchEdit(e, groupKey(g), c, add)
	}
}

func (s *Set) watchEdit(e *edit, key string, c *crule, add bool) {
	postingEdit(e, &s.watch, key, c, add)
}

// postingEdit adds one copy of c to the list under key, or removes one.
func postingEdit(e *edit, m *strMap[*posting], key string, c *crule, add bool) {
	g, ok := m.get(key)
	if !add && !ok {
		return
	}
	sh := m.mutable(e, key)
	if g == nil {
		g = &posting{owner: e}
	} else {
		g = g.mutableFor(e)
	}
	if add {
		g.rules = append(g.rules, c)
	} else if i := slices.Index(g.rules, c); i >= 0 {
		g.rules = slices.Delete(g.rules, i, i+1)
	}
	if len(g.rules) == 0 {
		delete(sh, key)
		return
	}
	sh[key] = g
}

// posting is the rules filed under one principal (or one user's my_groups
// rules): a group without the glob, as a principal is no pattern.
type posting struct {
	owner *edit
	rules []*crule
}

func (p *posting) mutableFor(e *edit) *posting {
	if p.owner == e {
		return p
	}
	return &posting{owner: e, rules: append(make([]*crule, 0, len(p.rules)+1), p.rules...)}
}

// setMembership replaces a user's groups, moving the user's my_groups rules
// from the groups left to the groups joined.
func (s *Set) setMembership(e *edit, user string, groups []string) {
	old, _ := s.members.get(user)
	groups = slices.Compact(slices.Sorted(slices.Values(groups)))
	if slices.Equal(old, groups) {
		return
	}
	if mine, ok := s.myGroups.get(user); ok {
		for _, c := range mine.rules {
			for _, g := range old {
				if !slices.Contains(groups, g) {
					s.watchEdit(e, groupKey(g), c, false)
				}
			}
			for _, g := range groups {
				if !slices.Contains(old, g) {
					s.watchEdit(e, groupKey(g), c, true)
				}
			}
		}
	}
	sh := s.members.mutable(e, user)
	if len(groups) == 0 {
		delete(sh, user)
	} else {
		sh[user] = groups
	}
}

// interner gives one *string per principal key to every Set derived from
// one another: an artifact lists its maintainers as pointers (8 bytes
// each, not a 16-byte string header), and a full load names a hundred
// thousand principals millions of times. Keys are immutable and never
// forgotten (principals are few: tens of thousands on Fedora), so sharing
// the table between Sets changes nothing any Set answers.
type interner struct {
	mu   sync.Mutex
	keys map[string]*string
	buf  []byte
	seen map[*string]bool // distinct's scratch
}

func newInterner() *interner { return &interner{keys: map[string]*string{}} }

// key returns the shared pointer of principal key kind:name; the caller
// holds mu.
func (in *interner) key(kind byte, name string) *string {
	in.buf = append(append(in.buf[:0], kind, ':'), name...)
	if k, ok := in.keys[string(in.buf)]; ok {
		return k
	}
	k := string(in.buf)
	p := &k
	in.keys[k] = p
	return p
}

// distinct drops repeated keys in place (the store's lists have none; a
// caller's may). Interned keys compare as pointers.
func (in *interner) distinct(keys []*string) []*string {
	if len(keys) <= 32 {
		out := keys[:0]
		for i, k := range keys {
			if !slices.Contains(keys[:i], k) {
				out = append(out, k)
			}
		}
		return out
	}
	if in.seen == nil {
		in.seen = map[*string]bool{}
	}
	clear(in.seen)
	out := keys[:0]
	for _, k := range keys {
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
	keys := make([]*string, 0, len(a.Users)+len(a.Groups))
	for _, u := range a.Users {
		keys = append(keys, in.key('u', u))
	}
	for _, g := range a.Groups {
		keys = append(keys, in.key('g', g))
	}
	keys = in.distinct(keys)
	sh := s.owners[k].mutable(e, a.Name)
	if len(keys) == 0 {
		delete(sh, a.Name)
	} else {
		sh[a.Name] = slices.Clip(keys)
	}
}

// visitOwners visits the rules following a maintainer of artifact name.
func (s *Set) visitOwners(k Kind, name string, m *matcher) {
	keys, ok := s.owners[k].get(name)
	if !ok {
		return
	}
	for _, key := range keys {
		if g, ok := s.watch.get(*key); ok {
			m.visitPrincipal(g.rules, *key)
		}
	}
}

// visitPrincipal emits the rules following principal key, each credited
// with the entry that made it follow: owned or owned_by for a user, groups
// or my_groups for a group.
func (m *matcher) visitPrincipal(rs []*crule, key string) {
	name, group := key[2:], key[0] == 'g'
	for _, c := range rs {
		if !c.passes(m.md, m.sev) {
			continue
		}
		var hit Hit
		switch {
		case !group && c.track.owned && c.owner == name:
			hit = Hit{Field: HitOwned}
		case !group:
			hit = Hit{Field: HitOwnedBy, Entry: name}
		case slices.Contains(c.track.get(listGroups), name):
			hit = Hit{Field: HitGroups, Entry: name}
		default:
			hit = Hit{Field: HitMyGroups, Entry: name}
		}
		m.emitRule(c, hit)
	}
}
