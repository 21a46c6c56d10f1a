// Package rules holds the rule model, its validation and the matcher that
// decides, for each message, which users' destinations hear about it.
package rules

import (
	"regexp"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

	"fmn/apperr"
)

// Limits that keep one user's rules from costing everybody: they bound the
// work the matcher does per rule and the size of the index.
const (
	maxNameLen      = 100
	maxEntries      = 200
	maxPatternLen   = 255
	maxDestinations = 20
)

// Rule is a user's rule in the shape of DESIGN.md.
type Rule struct {
	ID           int64   `json:"id"`
	UserID       int64   `json:"-"`
	Owner        string  `json:"-"` // the owner's user name, filled for matching
	Name         string  `json:"name"`
	Enabled      bool    `json:"enabled"`
	Track        Track   `json:"track"`
	Filters      Filters `json:"filters"`
	Destinations []int64 `json:"destinations"`
}

// Track lists what a rule follows: a message is tracked when any entry hits.
type Track struct {
	Mine     bool     `json:"mine,omitempty"`
	Users    []string `json:"users,omitempty"`
	Packages []string `json:"packages,omitempty"` // RPMs (dist-git's rpms/)
	Topics   []string `json:"topics,omitempty"`
	Apps     []string `json:"apps,omitempty"`

	// Owned tracks what the rule's owner maintains in dist-git (owner,
	// admin, commit or collaborator access), of every artifact kind;
	// OwnedBy the same for the named users, Groups for the named groups
	// (admin, commit or collaborator) and MyGroups for the groups the owner
	// belongs to. These are names, never patterns: each is looked up.
	Owned    bool     `json:"owned,omitempty"`
	OwnedBy  []string `json:"owned_by,omitempty"`
	Groups   []string `json:"groups,omitempty"`
	MyGroups bool     `json:"my_groups,omitempty"`
	// Agents tracks messages whose agent (who did it) matches.
	Agents []string `json:"agents,omitempty"`
	// The other artifact kinds of dist-git, beside Packages.
	Containers []string `json:"containers,omitempty"`
	Modules    []string `json:"modules,omitempty"`
	Flatpaks   []string `json:"flatpaks,omitempty"`
}

// tracksSomething reports whether any entry is set.
func (t Track) tracksSomething() bool {
	return t.Mine || t.Owned || t.MyGroups || len(t.Users)+len(t.Packages)+len(t.Topics)+len(t.Apps)+
		len(t.OwnedBy)+len(t.Groups)+len(t.Agents)+len(t.Containers)+len(t.Modules)+len(t.Flatpaks) > 0
}

// OwnershipKinds reports whether the rule follows what someone maintains,
// so that dist-git must be read for it.
func (t Track) OwnershipKinds() bool {
	return t.Owned || t.MyGroups || len(t.OwnedBy)+len(t.Groups) > 0
}

var (
	userNameRE  = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$`)
	groupNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.@+-]{0,127}$`)
)

// IsUserName reports whether s can be a user's name: a bus name, as FAS and
// dist-git spell them.
func IsUserName(s string) bool { return userNameRE.MatchString(s) }

// IsGroupName reports whether s can be a group's name (FAS and Pagure
// names, with room for other providers' conventions).
func IsGroupName(s string) bool { return groupNameRE.MatchString(s) }

// Filters must all pass for a tracked message to be delivered.
type Filters struct {
	// Apps, when set, keeps only messages from these apps: "my packages,
	// but only what bodhi says about them".
	Apps          []string `json:"apps,omitempty"`
	AppsExclude   []string `json:"apps_exclude,omitempty"`
	TopicsExclude []string `json:"topics_exclude,omitempty"`
	NotMyActions  bool     `json:"not_my_actions,omitempty"`
	// SeverityAtLeast keeps messages at this severity or above. A message
	// whose service gives no severity counts as "info", the level of an
	// ordinary event, so "warning" keeps only warnings and worse. Without
	// it a rule keeps info and above: debug messages (fedora-messaging's
	// level 10, services' chatter) reach only the rules that ask for them
	// with "debug", as in Fedora's FMN.
	SeverityAtLeast string `json:"severity_at_least,omitempty"`
}

// Severities in rising order, as rules/meta and the AMQP headers report them.
var severities = []string{"debug", "info", "warning", "error", "critical"}

// rankInfo is the rank of "info", the default.
const rankInfo = 1

// SeverityRank orders a severity: 0 for debug, 1 for info, for none and
// for an unknown word, up to 4 for critical. A rule's severity_at_least
// ranks the same way, so an unset filter means info.
func SeverityRank(s string) int {
	for i, v := range severities {
		if v == s {
			return i
		}
	}
	return rankInfo
}

// Severities returns the severity words, lowest first.
func Severities() []string { return slices.Clone(severities) }

// Validate checks a rule's shape and reports the first offending field by its
// JSON path, so the API and the editor can show the error beside the input.
func (r *Rule) Validate() error {
	r.Name = strings.TrimSpace(r.Name)
	if r.Name == "" {
		return apperr.Invalid("name", "a rule needs a name")
	}
	if utf8.RuneCountInString(r.Name) > maxNameLen || hasControl(r.Name) {
		return apperr.Invalid("name", "a name is at most %d characters, without control characters", maxNameLen)
	}
	lists := []struct {
		field string
		vals  []string
	}{
		{"track.users", r.Track.Users},
		{"track.packages", r.Track.Packages},
		{"track.topics", r.Track.Topics},
		{"track.apps", r.Track.Apps},
		{"track.agents", r.Track.Agents},
		{"track.containers", r.Track.Containers},
		{"track.modules", r.Track.Modules},
		{"track.flatpaks", r.Track.Flatpaks},
		{"filters.apps", r.Filters.Apps},
		{"filters.apps_exclude", r.Filters.AppsExclude},
		{"filters.topics_exclude", r.Filters.TopicsExclude},
	}
	for _, l := range lists {
		if len(l.vals) > maxEntries {
			return apperr.Invalid(l.field, "at most %d entries", maxEntries)
		}
		for _, v := range l.vals {
			if strings.TrimSpace(v) == "" {
				return apperr.Invalid(l.field, "entries must not be empty")
			}
			if len(v) > maxPatternLen || hasControl(v) || strings.ContainsAny(v, " \t") {
				return apperr.Invalid(l.field, "%q is not a valid pattern (no spaces or control characters, at most %d bytes)", v, maxPatternLen)
			}
		}
	}
	names := []struct {
		field, what string
		vals        []string
		valid       func(string) bool
	}{
		{"track.owned_by", "user", r.Track.OwnedBy, IsUserName},
		{"track.groups", "group", r.Track.Groups, IsGroupName},
	}
	for _, l := range names {
		if len(l.vals) > maxEntries {
			return apperr.Invalid(l.field, "at most %d entries", maxEntries)
		}
		for _, v := range l.vals {
			if !l.valid(v) {
				return apperr.Invalid(l.field, "%q is not a %s name (names only, no patterns: letters, digits, '.', '_' or '-')", v, l.what)
			}
		}
	}
	if !r.Track.tracksSomething() {
		return apperr.Invalid("track", "a rule must track something: mine, owned, my_groups, users, agents, packages, containers, modules, flatpaks, owned_by, groups, topics or apps")
	}
	if v := r.Filters.SeverityAtLeast; v != "" && !slices.Contains(severities, v) {
		return apperr.Invalid("filters.severity_at_least", "severity must be one of %s", strings.Join(severities, ", "))
	}
	if len(r.Destinations) > maxDestinations {
		return apperr.Invalid("destinations", "at most %d destinations", maxDestinations)
	}
	seen := map[int64]bool{}
	for _, d := range r.Destinations {
		if d <= 0 || seen[d] {
			return apperr.Invalid("destinations", "destination ids must be distinct positive numbers")
		}
		seen[d] = true
	}
	return nil
}

func hasControl(s string) bool {
	if !utf8.ValidString(s) {
		return true
	}
	return strings.IndexFunc(s, unicode.IsControl) >= 0
}
