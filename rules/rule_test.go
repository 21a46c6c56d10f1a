package rules

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"fmn/apperr"
)

func TestValidate(t *testing.T) {
	t.Parallel()
	ok := func() Rule {
		return Rule{Name: "my packages", Enabled: true, Track: Track{Packages: []string{"kernel"}}, Destinations: []int64{1}}
	}
	long := strings.Repeat("x", maxPatternLen+1)
	many := make([]string, maxEntries+1)
	for i := range many {
		many[i] = "p"
	}
	cases := []struct {
		name  string
		edit  func(r *Rule)
		field string // "" = valid
	}{
		{"valid", func(r *Rule) {}, ""},
		{"name trimmed and kept", func(r *Rule) { r.Name = "  a  " }, ""},
		{"name empty", func(r *Rule) { r.Name = " " }, "name"},
		{"name too long", func(r *Rule) { r.Name = strings.Repeat("é", maxNameLen+1) }, "name"},
		{"name control character", func(r *Rule) { r.Name = "a\nb" }, "name"},
		{"name invalid UTF-8", func(r *Rule) { r.Name = "a\xffb" }, "name"},
		{"track empty", func(r *Rule) { r.Track = Track{} }, "track"},
		{"track mine alone", func(r *Rule) { r.Track = Track{Mine: true} }, ""},
		{"track users", func(r *Rule) { r.Track = Track{Users: []string{"alice", "b*"}} }, ""},
		{"track users empty entry", func(r *Rule) { r.Track.Users = []string{""} }, "track.users"},
		{"track users space", func(r *Rule) { r.Track.Users = []string{"a b"} }, "track.users"},
		{"track packages too long", func(r *Rule) { r.Track.Packages = []string{long} }, "track.packages"},
		{"track packages too many", func(r *Rule) { r.Track.Packages = many }, "track.packages"},
		{"track topics glob", func(r *Rule) { r.Track.Topics = []string{"org.fedoraproject.*.bodhi.*"} }, ""},
		{"track topics tab", func(r *Rule) { r.Track.Topics = []string{"a\tb"} }, "track.topics"},
		{"track apps control", func(r *Rule) { r.Track.Apps = []string{"ko\x00ji"} }, "track.apps"},
		{"track owned alone", func(r *Rule) { r.Track = Track{Owned: true} }, ""},
		{"track my_groups alone", func(r *Rule) { r.Track = Track{MyGroups: true} }, ""},
		{"track owned_by", func(r *Rule) { r.Track = Track{OwnedBy: []string{"alice", "bob.b"}} }, ""},
		{"track owned_by pattern", func(r *Rule) { r.Track.OwnedBy = []string{"ali*"} }, "track.owned_by"},
		{"track owned_by empty", func(r *Rule) { r.Track.OwnedBy = []string{""} }, "track.owned_by"},
		{"track owned_by too many", func(r *Rule) { r.Track.OwnedBy = many }, "track.owned_by"},
		{"track groups", func(r *Rule) { r.Track = Track{Groups: []string{"python-sig"}} }, ""},
		{"track groups space", func(r *Rule) { r.Track.Groups = []string{"python sig"} }, "track.groups"},
		{"track agents", func(r *Rule) { r.Track = Track{Agents: []string{"bob", "b*"}} }, ""},
		{"track agents space", func(r *Rule) { r.Track.Agents = []string{"a b"} }, "track.agents"},
		{"track containers", func(r *Rule) { r.Track = Track{Containers: []string{"fedora-toolbox"}} }, ""},
		{"track modules blank", func(r *Rule) { r.Track.Modules = []string{" "} }, "track.modules"},
		{"track flatpaks too long", func(r *Rule) { r.Track.Flatpaks = []string{long} }, "track.flatpaks"},
		{"filters apps", func(r *Rule) { r.Filters.Apps = []string{"bodhi"} }, ""},
		{"filters apps blank", func(r *Rule) { r.Filters.Apps = []string{"  "} }, "filters.apps"},
		{"filters apps_exclude", func(r *Rule) { r.Filters.AppsExclude = []string{"x y"} }, "filters.apps_exclude"},
		{"filters topics_exclude", func(r *Rule) { r.Filters.TopicsExclude = many }, "filters.topics_exclude"},
		{"filters not_my_actions", func(r *Rule) { r.Filters.NotMyActions = true }, ""},
		{"filters severity valid", func(r *Rule) { r.Filters.SeverityAtLeast = "error" }, ""},
		{"filters severity debug", func(r *Rule) { r.Filters.SeverityAtLeast = "debug" }, ""},
		{"filters severity unknown", func(r *Rule) { r.Filters.SeverityAtLeast = "loud" }, "filters.severity_at_least"},
		{"no destinations", func(r *Rule) { r.Destinations = nil }, ""},
		{"destination zero", func(r *Rule) { r.Destinations = []int64{0} }, "destinations"},
		{"destination twice", func(r *Rule) { r.Destinations = []int64{3, 3} }, "destinations"},
		{"too many destinations", func(r *Rule) { r.Destinations = make([]int64, maxDestinations+1) }, "destinations"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			r := ok()
			c.edit(&r)
			err := r.Validate()
			if c.field == "" {
				if err != nil {
					t.Fatalf("unexpected error %v", err)
				}
				return
			}
			var inv *apperr.InvalidError
			if !errors.As(err, &inv) || inv.Field != c.field {
				t.Fatalf("got %v, want an invalid %q", err, c.field)
			}
		})
	}
}

// TestRuleJSONShape pins the JSON names of DESIGN.md's rule shape.
func TestRuleJSONShape(t *testing.T) {
	t.Parallel()
	in := `{"id":0,"name":"n","enabled":true,"track":{"mine":true,"users":["a"],"packages":["p"],"topics":["t"],"apps":["x"],
		"owned":true,"owned_by":["bob"],"groups":["python-sig"],"my_groups":true,"agents":["carol"],
		"containers":["fedora-toolbox"],"modules":["m"],"flatpaks":["f"]},
		"filters":{"apps":["bodhi"],"apps_exclude":["koji"],"topics_exclude":["*.a"],"not_my_actions":true,"severity_at_least":"warning"},"destinations":[1]}`
	dec := json.NewDecoder(strings.NewReader(in))
	dec.DisallowUnknownFields()
	var r Rule
	if err := dec.Decode(&r); err != nil {
		t.Fatal(err)
	}
	tr := r.Track
	if !tr.Owned || !tr.MyGroups || tr.OwnedBy[0] != "bob" || tr.Groups[0] != "python-sig" || tr.Agents[0] != "carol" ||
		tr.Containers[0] != "fedora-toolbox" || tr.Modules[0] != "m" || tr.Flatpaks[0] != "f" {
		t.Fatalf("decoded track %+v", tr)
	}
	if !r.Track.Mine || r.Filters.SeverityAtLeast != "warning" || r.Filters.Apps[0] != "bodhi" || r.Filters.TopicsExclude[0] != "*.a" {
		t.Fatalf("decoded %+v", r)
	}
}

// FuzzValidate: any JSON body, decoded as the API does, is validated
// without a panic, and a rule that passes can be indexed and matched.
func FuzzValidate(f *testing.F) {
	f.Add(`{"name":"x","track":{"packages":["kernel","python-*"]},"filters":{"severity_at_least":"error"},"destinations":[1]}`)
	f.Add(`{"name":"","track":{}}`)
	f.Add(`{"name":"y","track":{"topics":["*","**?*"],"mine":true},"filters":{"apps":["?"],"not_my_actions":true}}`)
	f.Add(`{"name":"z","track":{"owned":true,"my_groups":true,"owned_by":["kmaint"],"groups":["python-sig"],"agents":["a*"],"containers":["f*"]}}`)
	f.Add(`[]`)
	f.Fuzz(func(t *testing.T, body string) {
		var r Rule
		if json.Unmarshal([]byte(body), &r) != nil {
			return
		}
		if err := r.Validate(); err != nil {
			var inv *apperr.InvalidError
			if !errors.As(err, &inv) {
				t.Fatalf("not a field error: %v", err)
			}
			return
		}
		r.Enabled, r.Owner, r.ID = true, "alice", 1
		r.Destinations = []int64{1}
		ch := ownedWorld
		ch.Upserts = []Rule{r}
		s := NewSetFrom(ch)
		got, want := sorted(s.Match(bodhiMsg)), sorted(newNaiveFrom(ch).Match(bodhiMsg))
		if len(got) != len(want) {
			t.Fatalf("index %v, naive %v", got, want)
		}
		if s.With(nil, []int64{1}).Len() != 0 {
			t.Fatal("rule not removed")
		}
	})
}
