// Package meta derives fmn's view of a bus message (who acted, which users
// and packages it concerns, a one-line summary and a link) from the message
// topic and body.
//
// Every service publishes its own schema, and each schema has changed over
// the years, so knowledge of a service lives in a table (services.go and the
// svc_*.go files): for each topic pattern, the JSON paths that hold users and
// packages, and small templates for the link and the summary.  Services whose
// messages need real logic add a hand-written function to their rule.  An
// unknown application falls back to a generic rule that looks in the fields
// most services use (agent, user, owner, package, …).
package meta

import (
	"slices"
	"strings"
	"sync"
	"unicode"
	"unicode/utf8"
)

// Metadata is what the rules engine sees of a message.
type Metadata struct {
	Topic     string   `json:"topic"`
	App       string   `json:"app"`
	Agent     string   `json:"agent"`     // "" when unknown
	Usernames []string `json:"usernames"` // sorted, unique, never nil (empty slice)
	Packages  []string `json:"packages"`  // sorted, unique, never nil
	// Groups, Containers, Modules and Flatpaks are the other objects a
	// fedora-messaging message names in its headers (FAS groups and the
	// container, module and flatpak artifacts of dist-git); like Usernames
	// and Packages they are sorted, unique and never nil.
	Groups     []string `json:"groups"`
	Containers []string `json:"containers"`
	Modules    []string `json:"modules"`
	Flatpaks   []string `json:"flatpaks"`
	Summary    string   `json:"summary"`  // one line, no CR/LF, at most ~300 chars
	Link       string   `json:"link"`     // "" when none
	Severity   string   `json:"severity"` // "" unless the service gives one (e.g. nagios/ci/errors)
}

// maxSummary bounds the summary length in runes; longer text is cut and
// ends with an ellipsis.
const maxSummary = 300

// Extract derives Metadata from a decoded fedmsg envelope: topic is the envelope's
// topic, body is the envelope's "msg" object decoded with encoding/json into any
// (map[string]any, []any, float64 or json.Number, string, bool, nil), username is the envelope's
// optional "username" field ("" if absent).
//
// Extract never panics: a message is untrusted input, and a malformed one
// must not stop the firehose.  Should a handler fail on a shape nobody
// foresaw, the generic rule's result is returned instead.
func Extract(topic string, body any, username string) (md Metadata) {
	c := newCtx(topic, body, username)
	defer func() {
		if r := recover(); r != nil {
			c.release()
			c = newCtx(topic, body, username)
			c.apply(&genericRule)
			md = c.result()
		}
		c.release()
	}()
	svc := servicesByTopic[c.topicApp]
	if svc == nil {
		c.app = c.topicApp
		c.apply(&genericRule)
		return c.result()
	}
	c.app = svc.Name
	c.svc = svc
	if svc.base != nil {
		c.apply(svc.base)
	}
	if r := svc.match(c.subParts); r != nil {
		c.apply(r)
	}
	if svc.Generic {
		c.apply(&genericRule)
	}
	return c.result()
}

// msgCtx carries one message through the rules.
type msgCtx struct {
	topic    string
	env      string   // prod, stg, dev, … ("" when the topic has no prefix)
	topicApp string   // the app component as written in the topic
	subParts []string // topic components after the app
	body     any
	username string

	app   string
	svc   *service
	agent string
	users []string
	pkgs  []string
	// groups, containers, modules and flatpaks stay empty unless a rule
	// fills them.
	groups, containers, modules, flatpaks []string
	link                                  string
	summary                               string
	severity                              string
	// noUsers / noPkgs record that a rule cleared the sets on purpose.
}

// envs are the environment components of "org.fedoraproject.ENV.app…".
var envs = map[string]bool{
	"prod": true, "stg": true, "dev": true, "staging": true, "test": true,
	"production": true, "local": true, "devel": true,
}

// ctxs recycles message contexts: a context is some 300 bytes, and with
// its lists' growth it was over half of what extracting a message
// allocated (memprofile of BenchmarkExtract).
var ctxs = sync.Pool{New: func() any { return new(msgCtx) }}

func newCtx(topic string, body any, username string) *msgCtx {
	c := ctxs.Get().(*msgCtx)
	c.topic, c.body, c.username = topic, body, username
	parts := strings.Split(topic, ".")
	// Topics are "TLD.DOMAIN.ENV.APP.…" (org.fedoraproject.prod.bodhi…,
	// io.pagure.prod.pagure…, org.centos.prod.ci…, org.debian.dev.…).  A
	// topic without that prefix is taken to start with the app.
	switch {
	case len(parts) >= 4 && envs[parts[2]]:
		c.env, c.topicApp, c.subParts = parts[2], parts[3], parts[4:]
	case len(parts) >= 4 && isTLD(parts[0]):
		c.topicApp, c.subParts = parts[3], parts[4:]
	default:
		c.topicApp, c.subParts = parts[0], parts[1:]
	}
	if len(c.subParts) == 0 {
		c.subParts = []string{""}
	}
	return c
}

// release returns c to the pool, keeping its lists' room but nothing of
// the message. Metadata holds copies of the lists (sortUnique), never
// the lists themselves.
func (c *msgCtx) release() {
	keep := func(l []string) []string {
		clear(l)
		return l[:0]
	}
	*c = msgCtx{users: keep(c.users), pkgs: keep(c.pkgs), groups: keep(c.groups),
		containers: keep(c.containers), modules: keep(c.modules), flatpaks: keep(c.flatpaks)}
	ctxs.Put(c)
}

func isTLD(s string) bool {
	switch s {
	case "org", "io", "com", "net", "edu":
		return true
	}
	return false
}

// sub is the topic after the app ("update.comment").
func (c *msgCtx) sub() string { return strings.Join(c.subParts, ".") }

// apply runs a compiled rule: agent, users and packages accumulate; link,
// summary and severity are set by the first rule that renders them, later
// (more specific) rules overriding the service base.
func (c *msgCtx) apply(r *rule) {
	for _, s := range r.agent {
		if v := c.firstValue(s); v != "" {
			c.agent = v
			break
		}
	}
	for _, s := range r.users {
		c.values(s, func(v string) bool { c.addUser(v); return true })
	}
	for _, s := range r.pkgs {
		c.values(s, func(v string) bool { c.addPkg(v); return true })
	}
	for _, s := range r.groups {
		c.values(s, func(v string) bool {
			if v = strings.TrimSpace(v); v != "" {
				c.groups = append(c.groups, v)
			}
			return true
		})
	}
	for _, t := range r.link {
		if v, ok := t.render(c); ok {
			c.link = v
			break
		}
	}
	for _, t := range r.summary {
		if v, ok := t.render(c); ok {
			c.summary = v
			break
		}
	}
	for _, s := range r.severity {
		if v := c.firstValue(s); v != "" {
			c.severity = v
			break
		}
	}
	if r.Func != nil {
		r.Func(c)
	}
}

func (c *msgCtx) addUser(u string) {
	u = strings.TrimSpace(u)
	if u != "" {
		c.users = append(c.users, u)
	}
}

func (c *msgCtx) addPkg(p string) {
	p = strings.TrimSpace(p)
	if p != "" {
		c.pkgs = append(c.pkgs, p)
	}
}

// get and str read the body by literal keys (for hand-written rules).
func (c *msgCtx) get(keys ...string) any    { return get(c.body, keys...) }
func (c *msgCtx) str(keys ...string) string { return str(c.body, keys...) }

func (c *msgCtx) result() Metadata {
	md := Metadata{
		Topic:      c.topic,
		App:        c.app,
		Agent:      strings.TrimSpace(c.agent),
		Usernames:  sortUnique(c.users),
		Packages:   sortUnique(c.pkgs),
		Groups:     sortUnique(c.groups),
		Containers: sortUnique(c.containers),
		Modules:    sortUnique(c.modules),
		Flatpaks:   sortUnique(c.flatpaks),
		Link:       cleanLink(c.link),
		Severity:   c.severity,
	}
	if c.summary == "" {
		c.summary = c.defaultSummary()
	}
	// Templates may end in ": " when the message left the last field empty.
	md.Summary = strings.TrimRight(cleanLine(c.summary, maxSummary), " :")
	if md.Summary == "" {
		// Nothing printable came out of the message: say what it was.
		if t := cleanLine(c.topic, maxSummary-20); t != "" {
			md.Summary = "message on topic " + t
		} else {
			md.Summary = "message without a topic"
		}
	}
	return md
}

// defaultSummary describes a message no template covered: "ralph: bodhi
// update comment".
func (c *msgCtx) defaultSummary() string {
	s := c.app
	if sub := strings.Join(c.subParts, " "); strings.TrimSpace(sub) != "" {
		s += " " + sub
	}
	if c.agent != "" {
		s = c.agent + ": " + s
	}
	return s
}

func sortUnique(in []string) []string {
	out := make([]string, 0, len(in))
	out = append(out, in...)
	slices.Sort(out)
	return slices.Compact(out)
}

// cleanLine makes untrusted text safe to show on one line: control
// characters (including CR, LF and tabs) become spaces, runs of spaces
// collapse, invalid UTF-8 is replaced, and the result is cut to max runes.
func cleanLine(s string, max int) string {
	if len(s) <= max && isCleanLine(s) {
		// Most summaries are plain ASCII already: nothing to copy.
		return s
	}
	var b strings.Builder
	b.Grow(min(len(s), max*4))
	n := 0
	space := false
	for _, r := range s { // ranging over invalid UTF-8 yields RuneError
		if n >= max {
			// Cut on a rune boundary and say so.
			out := strings.TrimRight(b.String(), " ")
			return out + "…"
		}
		if unicode.IsControl(r) || unicode.IsSpace(r) || r == utf8.RuneError ||
			r == '\u2028' || r == '\u2029' || unicode.Is(unicode.Cf, r) {
			if r == utf8.RuneError {
				r = '\uFFFD'
			} else {
				if !space && b.Len() > 0 {
					b.WriteByte(' ')
					n++
				}
				space = true
				continue
			}
		}
		space = false
		b.WriteRune(r)
		n++
	}
	return strings.TrimRight(b.String(), " ")
}

// isCleanLine reports whether cleanLine would return s unchanged for any
// max of at least len(s): printable ASCII, single spaces between words.
func isCleanLine(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < ' ' || c > '~' || c == ' ' && (i == 0 || i == len(s)-1 || s[i-1] == ' ') {
			return false
		}
	}
	return true
}

// cleanLink drops control characters from a link; links are never cut.
func cleanLink(s string) string {
	return strings.TrimSpace(strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return -1
		}
		return r
	}, s))
}
