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

// fileOwnership adds or removes c under the principals it follows: its
// owner's self list (owned), the named lists of owned_by's users and of
// groups' groups, and for my_groups the owner's list of such rules and the
// self list of each group the owner is in now. A rule following python-sig
// both by name and through my_groups is in both of that group's lists, and
// each path takes away only its own entry.
func (s *Set) fileOwnership(e *edit, c *crule, add bool) {
	t := c.track.full()
	in := s.intern
	if t.Owned && c.owner != "" {
		listEdit(&s.princ.mutable(e, in, in.id(userKind, c.owner)).self, c, add)
	}
	for i, u := range t.OwnedBy {
		if slices.Contains(t.OwnedBy[:i], u) || t.Owned && u == c.owner {
			continue // owned credits the owner's own artifacts
		}
		listEdit(&s.princ.mutable(e, in, in.id(userKind, u)).named, c, add)
	}
	for i, g := range t.Groups {
		if !slices.Contains(t.Groups[:i], g) {
			listEdit(&s.princ.mutable(e, in, in.id(groupKind, g)).named, c, add)
		}
	}
	if !t.MyGroups || c.owner == "" {
		return
	}
	u := s.princ.mutable(e, in, in.id(userKind, c.owner))
	listEdit(&u.myGroups, c, add)
	for _, g := range u.groups {
		listEdit(&s.princ.mutable(e, in, g).self, c, add)
	}
}

// listEdit adds c to a principal's list, or removes it; the list belongs
// to the edit (principals.mutable cloned it).
func listEdit(l *[]*crule, c *crule, add bool) {
	if add {
		*l = append(*l, c)
	} else if i := slices.Index(*l, c); i >= 0 {
		*l = slices.Delete(*l, i, i+1)
	}
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
	if p := s.princ.get(uid); p == nil && len(groups) == 0 || p != nil && slices.Equal(p.groups, groups) {
		return
	}
	u := s.princ.mutable(e, in, uid)
	for _, c := range u.myGroups {
		for _, g := range u.groups {
			if _, found := slices.BinarySearch(groups, g); !found {
				listEdit(&s.princ.mutable(e, in, g).self, c, false)
			}
		}
		for _, g := range groups {
			if _, found := slices.BinarySearch(u.groups, g); !found {
				listEdit(&s.princ.mutable(e, in, g).self, c, true)
			}
		}
	}
	u.groups = groups
}

// Principal kinds: a user and a group of one name are different principals.
const (
	userKind  byte = 'u'
	groupKind byte = 'g'
)

// interner numbers the principals of every Set derived from one another,
// densely, so that an artifact lists its maintainers as 4-byte ids and a
// Set finds a principal by indexing its table (no hashing of names at
// match time). Ids are never forgotten (principals are few: tens of
// thousands on Fedora), so sharing the numbering between Sets changes
// nothing any Set answers. Only edits use it, under mu; readers see ids
// only.
type interner struct {
	mu   sync.Mutex
	ids  map[string]int32 // "u:alice", "g:python-sig"
	keys []string         // by id
	buf  []byte
	seen map[int32]bool // distinct's scratch
}

func newInterner() *interner { return &interner{ids: map[string]int32{}} }

// id returns principal kind:name's id, numbering it if new; the caller
// holds mu.
func (in *interner) id(kind byte, name string) int32 {
	in.buf = append(append(in.buf[:0], kind, ':'), name...)
	if id, ok := in.ids[string(in.buf)]; ok {
		return id
	}
	k := string(in.buf)
	id := int32(len(in.keys))
	in.ids[k] = id
	in.keys = append(in.keys, k)
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
	ids := make([]int32, 0, len(a.Users)+len(a.Groups))
	for _, u := range a.Users {
		ids = append(ids, in.id(userKind, u))
	}
	for _, g := range a.Groups {
		ids = append(ids, in.id(groupKind, g))
	}
	ids = in.distinct(ids)
	sh := s.owners[k].mutable(e, a.Name)
	if len(ids) == 0 {
		delete(sh, a.Name)
	} else {
		sh[a.Name] = slices.Clip(ids)
	}
}

// visitOwners visits the rules following a maintainer of artifact name.
func (s *Set) visitOwners(k Kind, name string, m *matcher) {
	ids, ok := s.owners[k].get(name)
	if !ok {
		return
	}
	for _, id := range ids {
		p := s.princ.get(id)
		if p == nil {
			continue
		}
		// Named first, so that a rule following a group both by name and
		// through my_groups is credited with the name.
		if len(p.named) > 0 {
			hit := Hit{Field: HitOwnedBy, Entry: p.name}
			if p.group {
				hit.Field = HitGroups
			}
			m.visitPrincipal(p.named, hit)
		}
		if len(p.self) > 0 {
			hit := Hit{Field: HitOwned}
			if p.group {
				hit = Hit{Field: HitMyGroups, Entry: p.name}
			}
			m.visitPrincipal(p.self, hit)
		}
	}
}

// visitPrincipal emits the rules of one principal's list, each credited
// with hit.
func (m *matcher) visitPrincipal(rs []*crule, hit Hit) {
	for _, c := range rs {
		if c.passes(m) {
			m.emitRule(c, hit)
		}
	}
}

// principal is one user or group as a Set knows them: the rules following
// what they maintain and, for a user, their groups.
type principal struct {
	owner *edit // the edit that may change these lists in place
	name  string
	group bool
	// named: the rules naming this principal (owned_by for a user, groups
	// for a group); self: a user's own owned rules, or the my_groups rules
	// of a group's members.
	named, self []*crule
	myGroups    []*crule // a user's my_groups rules
	groups      []int32  // a user's groups, sorted
}

// principals is a copy-on-write table of principals by id, in pages: an
// edit copies the page table once and each page it touches.
type principals struct {
	owner *edit
	pages []*principalPage
}

const principalPageBits = 6

type principalPage struct {
	owner *edit
	p     [1 << principalPageBits]principal
}

// get returns principal id, nil when this Set has never filed anything
// under it.
func (t *principals) get(id int32) *principal {
	i := int(id >> principalPageBits)
	if i >= len(t.pages) || t.pages[i] == nil {
		return nil
	}
	return &t.pages[i].p[id&(1<<principalPageBits-1)]
}

// mutable returns principal id, owned by e with its lists, so that e may
// change them in place.
func (t *principals) mutable(e *edit, in *interner, id int32) *principal {
	i := int(id >> principalPageBits)
	if t.owner != e {
		t.pages = append(make([]*principalPage, 0, max(i+1, len(t.pages))+16), t.pages...)
		t.owner = e
	}
	if i >= len(t.pages) {
		t.pages = append(t.pages, make([]*principalPage, i+1-len(t.pages))...)
	}
	pg := t.pages[i]
	if pg == nil {
		pg = &principalPage{owner: e}
		t.pages[i] = pg
	} else if pg.owner != e {
		pg = &principalPage{owner: e, p: pg.p}
		t.pages[i] = pg
	}
	p := &pg.p[id&(1<<principalPageBits-1)]
	if p.owner != e {
		key := in.keys[id]
		p.owner, p.name, p.group = e, key[2:], key[0] == groupKind
		p.named, p.self, p.myGroups = slices.Clone(p.named), slices.Clone(p.self), slices.Clone(p.myGroups)
		p.groups = slices.Clone(p.groups)
	}
	return p
}
