package meta

import (
	"slices"
	"strings"
)

// R is one row of a service table: what to read from messages whose topic
// (after the app component) matches Topic.
//
// Topic is a dot-separated pattern matched against the leading components
// of the sub-topic: "update.request" matches "update.request.testing";
// "*" matches any one component; a trailing "$" demands an exact match; ""
// matches everything.  The first matching row of a service applies, after
// the service's Base row.
//
// Agent, Users, Packages and Severity list specs ("path" or "path:filter",
// see path.go and template.go); Users and Packages collect every value,
// Agent and Severity take the first.  Link and Summary list templates; the
// first that fully renders wins.  Func runs last for whatever needs code.
type R struct {
	Topic    string
	Agent    []string
	Users    []string
	Packages []string
	Groups   []string
	Link     []string
	Summary  []string
	Severity []string
	Func     func(c *msgCtx)
}

// rule is R compiled.
type rule struct {
	pattern  []string
	exact    bool
	agent    []spec
	users    []spec
	pkgs     []spec
	groups   []spec
	link     []template
	summary  []template
	severity []spec
	Func     func(c *msgCtx)
}

func compile(r R) rule {
	cr := rule{
		agent:    parseSpecs(r.Agent),
		users:    parseSpecs(r.Users),
		pkgs:     parseSpecs(r.Packages),
		groups:   parseSpecs(r.Groups),
		link:     parseTemplates(r.Link),
		summary:  parseTemplates(r.Summary),
		severity: parseSpecs(r.Severity),
		Func:     r.Func,
	}
	t := r.Topic
	if strings.HasSuffix(t, "$") {
		cr.exact = true
		t = strings.TrimSuffix(strings.TrimSuffix(t, "$"), ".")
	}
	if t != "" {
		cr.pattern = strings.Split(t, ".")
	}
	return cr
}

func (r *rule) matches(parts []string) bool {
	if len(r.pattern) > len(parts) || (r.exact && len(r.pattern) != len(parts)) {
		return false
	}
	for i, p := range r.pattern {
		if p != "*" && p != parts[i] {
			return false
		}
	}
	return true
}

// Service describes one application on the bus.
type Service struct {
	// Name is the app name users know and pick in the UI.
	Name string
	// Topics are the topic components that belong to this service, when
	// they differ from Name (koji publishes as "buildsys").
	Topics []string
	// Base applies to every message of the service, before the matching row.
	Base *R
	// Rules are tried in order; the first whose Topic matches applies.
	Rules []R
	// Generic also runs the generic field search after the rules, for
	// services whose messages carry users in the usual fields.
	Generic bool
}

type service struct {
	Service
	base  *rule
	rules []rule
}

func (s *service) match(parts []string) *rule {
	for i := range s.rules {
		if s.rules[i].matches(parts) {
			return &s.rules[i]
		}
	}
	return nil
}

// servicesByTopic maps a topic's app component to its compiled service.
// It is built once from allServices (apps.go) by package initialisation.
var servicesByTopic = build(allServices)

func build(all []Service) map[string]*service {
	m := map[string]*service{}
	for _, s := range all {
		cs := &service{Service: s}
		if s.Base != nil {
			b := compile(*s.Base)
			cs.base = &b
		}
		for _, r := range s.Rules {
			cs.rules = append(cs.rules, compile(r))
		}
		topics := s.Topics
		if len(topics) == 0 {
			topics = []string{s.Name}
		}
		for _, t := range topics {
			if _, dup := m[t]; dup {
				panic("meta: two services for topic app " + t)
			}
			m[t] = cs
		}
	}
	return m
}

// KnownApps returns the sorted names of the applications the tables know,
// for pickers in the UI.
func KnownApps() []string {
	seen := map[string]bool{}
	var out []string
	for _, s := range allServices {
		if !seen[s.Name] {
			seen[s.Name] = true
			out = append(out, s.Name)
		}
	}
	slices.Sort(out)
	return out
}

// genericRule finds users, packages and groups in the fields most
// services use, and artifacts in dist-git paths anywhere in the body
// (genericArtifacts). It is the whole treatment of unknown apps and an
// addition for services marked Generic. fedora-messaging schemas often
// wrap the body in "msg", hence the msg.* fields.
var genericRule = compile(R{
	Agent: []string{"agent", "agent.name", "agent.username", "msg.agent", "user.username", "user.name", "user",
		"username", "msg.user", "packager", "packager.name", "owner.name", "owner"},
	Users: []string{
		"agent", "agent.name", "agent.username", "user", "user.name", "user.username", "username",
		"owner", "owner.name", "submitter", "submitter.name", "author", "author.name",
		"packager", "packager.name", "maintainer", "maintainer.name", "msg.agent", "msg.user",
	},
	Packages: []string{
		"package", "package.name", "packages.*", "packages.*.name", "package_name", "srpm_name",
	},
	Groups: []string{"group", "group.name", "msg.group"},
	Link:   []string{"{url}", "{link}", "{html_url}"},
	Func:   genericArtifacts,
})
