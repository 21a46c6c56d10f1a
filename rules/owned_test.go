package rules

import (
	"reflect"
	"slices"
	"testing"

	"fmn/rules/meta"
)

// ownedWorld is who maintains what in TestMatchOwnership.
var ownedWorld = Changes{
	Artifacts: []ArtifactOwners{
		{Namespace: "rpms", Name: "kernel", Users: []string{"kmaint"}, Groups: []string{"kernel-sig"}},
		{Namespace: "rpms", Name: "python-requests", Users: []string{"pyuser"}, Groups: []string{"python-sig"}},
		{Namespace: "container", Name: "fedora-toolbox", Users: []string{"tbx"}},
		{Namespace: "modules", Name: "nodejs", Groups: []string{"nodejs-sig"}},
		{Namespace: "flatpaks", Name: "org.gnome.Maps", Users: []string{"gnomer"}},
		{Namespace: "rpms", Name: "gcc", Users: []string{"bob"}},
	},
	Members: []Membership{{User: "sigmember", Groups: []string{"python-sig", "other"}}, {User: "outsider", Groups: []string{"other"}}},
}

func TestMatchOwnership(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name  string
		owner string
		track Track
		md    meta.Metadata
		want  bool
		hit   Hit
	}{
		{"owned: a package the owner maintains", "kmaint", Track{Owned: true}, bodhiMsg, true, Hit{Field: HitOwned}},
		{"owned: the owner maintains none of these", "bob", Track{Owned: true}, bodhiMsg, false, Hit{}},
		{"owned: a container", "tbx", Track{Owned: true}, bodhiMsg, true, Hit{Field: HitOwned}},
		{"owned: a flatpak", "gnomer", Track{Owned: true}, bodhiMsg, true, Hit{Field: HitOwned}},
		{"owned: a container's name is no package", "tbx", Track{Owned: true},
			meta.Metadata{Topic: "t", Packages: []string{"fedora-toolbox"}}, false, Hit{}},
		{"owned_by: another maintainer", "z", Track{OwnedBy: []string{"pyuser"}}, bodhiMsg, true, Hit{HitOwnedBy, "pyuser"}},
		{"owned_by: not a maintainer here", "z", Track{OwnedBy: []string{"bob"}}, bodhiMsg, false, Hit{}},
		{"owned_by names users, not groups", "z", Track{OwnedBy: []string{"python-sig"}}, bodhiMsg, false, Hit{}},
		{"groups: a group with commit", "z", Track{Groups: []string{"python-sig"}}, bodhiMsg, true, Hit{HitGroups, "python-sig"}},
		{"groups: a module's group", "z", Track{Groups: []string{"nodejs-sig"}}, bodhiMsg, true, Hit{HitGroups, "nodejs-sig"}},
		{"groups: another group", "z", Track{Groups: []string{"other"}}, bodhiMsg, false, Hit{}},
		{"groups names groups, not users", "z", Track{Groups: []string{"kmaint"}}, bodhiMsg, false, Hit{}},
		{"my_groups: the owner's group maintains it", "sigmember", Track{MyGroups: true}, bodhiMsg, true, Hit{HitMyGroups, "python-sig"}},
		{"my_groups: the owner's groups do not", "outsider", Track{MyGroups: true}, bodhiMsg, false, Hit{}},
		{"my_groups: the owner in no group", "nobody", Track{MyGroups: true}, bodhiMsg, false, Hit{}},
		{"owned and my_groups together", "sigmember", Track{Owned: true, MyGroups: true, Groups: []string{"python-sig"}}, bodhiMsg, true, Hit{HitGroups, "python-sig"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			r := Rule{ID: 7, UserID: 3, Owner: c.owner, Name: "r", Enabled: true, Track: c.track, Destinations: []int64{11}}
			ch := ownedWorld
			ch.Upserts = []Rule{r}
			want := []Match(nil)
			if c.want {
				want = []Match{{UserID: 3, RuleID: 7, DestinationID: 11, Hit: c.hit}}
			}
			if got := NewSetFrom(ch).Match(c.md); !reflect.DeepEqual(got, want) {
				t.Fatalf("indexed: got %v, want %v", got, want)
			}
			n := newNaiveFrom(ch)
			if got := n.Match(c.md); !reflect.DeepEqual(sorted(got), sorted(want)) {
				t.Fatalf("naive: got %v, want %v", got, want)
			}
			if c.want && !n.validHit(r, c.md, c.hit) {
				t.Fatalf("the expected hit %+v is not valid", c.hit)
			}
		})
	}
}

// TestOwnershipChanges: a project's maintainers and a user's groups change
// by Apply, incrementally, and older Sets keep their answers.
func TestOwnershipChanges(t *testing.T) {
	t.Parallel()
	owned := Rule{ID: 1, UserID: 1, Owner: "alice", Enabled: true, Track: Track{Owned: true}, Destinations: []int64{1}}
	sig := Rule{ID: 2, UserID: 2, Owner: "bob", Enabled: true, Track: Track{MyGroups: true, Groups: []string{"python-sig"}}, Destinations: []int64{2}}
	bar := meta.Metadata{Topic: "t", Packages: []string{"python-bar"}}
	s0 := NewSetFrom(Changes{Upserts: []Rule{owned, sig},
		Artifacts: []ArtifactOwners{{Namespace: "rpms", Name: "python-foo", Users: []string{"alice"}}}})
	dests := func(s *Set, md meta.Metadata) []int64 {
		var ds []int64
		for _, m := range sorted(s.Match(md)) {
			ds = append(ds, m.DestinationID)
		}
		return ds
	}
	if got := dests(s0, bar); got != nil {
		t.Fatalf("python-bar before anyone maintains it: %v", got)
	}
	s1 := s0.Apply(Changes{Artifacts: []ArtifactOwners{{Namespace: "rpms", Name: "python-bar", Users: []string{"alice"}, Groups: []string{"python-sig"}}}})
	if got := dests(s1, bar); !slices.Equal(got, []int64{1, 2}) {
		t.Fatalf("after python-bar gained alice and python-sig: %v", got)
	}
	// bob joins python-sig (so his rule follows it twice: by name and
	// through my_groups), then leaves it: the rule still follows it by name.
	s2 := s1.Apply(Changes{Members: []Membership{{User: "bob", Groups: []string{"python-sig"}}}})
	s3 := s2.Apply(Changes{Members: []Membership{{User: "bob"}}})
	if got := dests(s3, bar); !slices.Equal(got, []int64{1, 2}) {
		t.Fatalf("after bob left python-sig, named in his rule: %v", got)
	}
	s4 := s3.Apply(Changes{Artifacts: []ArtifactOwners{{Namespace: "rpms", Name: "python-bar", Groups: []string{"python-sig"}}}})
	if got := dests(s4, bar); !slices.Equal(got, []int64{2}) {
		t.Fatalf("after alice left python-bar: %v", got)
	}
	// The rule renamed: "owned" follows the new name's packages.
	renamed := owned
	renamed.Owner = "alicia"
	s5 := s4.Apply(Changes{Upserts: []Rule{renamed}, Artifacts: []ArtifactOwners{{Namespace: "rpms", Name: "python-bar", Users: []string{"alicia"}}}})
	if got := dests(s5, bar); !slices.Equal(got, []int64{1}) {
		t.Fatalf("after the rename: %v", got)
	}
	if got := dests(s0, bar); got != nil {
		t.Fatalf("the first Set changed: %v", got)
	}
	if got := dests(s1, bar); !slices.Equal(got, []int64{1, 2}) {
		t.Fatalf("an older Set changed: %v", got)
	}
}
