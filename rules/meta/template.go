package meta

import "strings"

// A template is a summary or link pattern such as
//
//	"https://bodhi.fedoraproject.org/updates/{update.alias|update.title}"
//
// Each {…} holds one or more paths separated by "|": the first that yields a
// non-empty scalar is used.  A path may end in ":filter" (see filters).  A
// template renders only when every placeholder resolves, so a table can list
// several templates from the most to the least specific.  Templates are
// compiled once at start-up.
type template struct {
	parts []tpart
}

type tpart struct {
	lit  string
	alts []spec // empty for a literal
}

// spec is one path plus an optional filter name.
type spec struct {
	p      path
	filter string
	// env-dependent constant such as "{@env.}" handled by the renderer.
	special string
}

func parseSpec(s string) spec {
	if strings.HasPrefix(s, "@") {
		return spec{special: s[1:]}
	}
	var f string
	if i := strings.LastIndexByte(s, ':'); i >= 0 {
		s, f = s[:i], s[i+1:]
		if _, ok := filters[f]; !ok {
			panic("meta: unknown filter " + f)
		}
	}
	return spec{p: parsePath(s), filter: f}
}

func parseSpecs(ss []string) []spec {
	out := make([]spec, len(ss))
	for i, s := range ss {
		out[i] = parseSpec(s)
	}
	return out
}

func parseTemplate(s string) template {
	var t template
	for s != "" {
		i := strings.IndexByte(s, '{')
		if i < 0 {
			t.parts = append(t.parts, tpart{lit: s})
			break
		}
		j := strings.IndexByte(s[i:], '}')
		if j < 0 {
			panic("meta: unterminated placeholder in " + s)
		}
		if i > 0 {
			t.parts = append(t.parts, tpart{lit: s[:i]})
		}
		var alts []spec
		for _, a := range strings.Split(s[i+1:i+j], "|") {
			alts = append(alts, parseSpec(a))
		}
		t.parts = append(t.parts, tpart{alts: alts})
		s = s[i+j+1:]
	}
	return t
}

func parseTemplates(ss []string) []template {
	out := make([]template, len(ss))
	for i, s := range ss {
		out[i] = parseTemplate(s)
	}
	return out
}

// render fills the template from the message; ok is false when a
// placeholder found nothing.
func (t template) render(c *msgCtx) (string, bool) {
	var b strings.Builder
	for _, p := range t.parts {
		if p.alts == nil {
			b.WriteString(p.lit)
			continue
		}
		v, found := "", false
		for _, a := range p.alts {
			v = c.firstValue(a)
			// Topic-derived values such as {@stg.} may legitimately be
			// empty; body values must be present.
			if v != "" || (a.special != "" && a.special != "agent" && a.special != "username") {
				found = true
				break
			}
		}
		if !found {
			return "", false
		}
		b.WriteString(v)
	}
	return b.String(), true
}

// firstValue is the first non-empty value a spec yields.
func (c *msgCtx) firstValue(s spec) string {
	if s.special != "" {
		return c.special(s.special)
	}
	out := ""
	c.values(s, func(v string) bool {
		if v != "" {
			out = v
			return false
		}
		return true
	})
	return out
}

// values yields every value a spec reaches, after its filter; fn returns
// false to stop.
func (c *msgCtx) values(s spec, fn func(string) bool) {
	if s.special != "" {
		if v := c.special(s.special); v != "" {
			fn(v)
		}
		return
	}
	stop := false
	s.p.walk(c.body, func(x any) {
		if stop {
			return
		}
		v, ok := scalar(x)
		if !ok {
			// {"name": …} objects stand for users and packages in many
			// schemas; a bare object reached by a path counts as its name.
			if m, isMap := x.(map[string]any); isMap {
				v, ok = scalar(m["name"])
			}
			if !ok {
				return
			}
		}
		if s.filter == "" {
			stop = !fn(v)
			return
		}
		filters[s.filter](v, func(w string) {
			if !stop {
				stop = !fn(w)
			}
		})
	})
}

// special resolves "@" placeholders that come from the topic, not the body.
func (c *msgCtx) special(name string) string {
	switch name {
	case "env":
		return c.env
	case "stg.": // "stg." on staging, "" elsewhere (for host names)
		if c.env == "stg" {
			return "stg."
		}
		return ""
	case "stg.partner-": // bugzilla's staging twin
		if c.env == "stg" {
			return "partner-"
		}
		return ""
	case "topic.rest": // the sub-topic as words: "update bug file"
		return strings.Join(c.subParts, " ")
	case "koji":
		return kojiBase(c)
	case "done": // the last topic word in the past tense: "new" → "created"
		return pastTense(c.subParts[len(c.subParts)-1])
	case "topic.last":
		return c.subParts[len(c.subParts)-1]
	case "username":
		return c.username
	case "agent":
		return c.agent
	}
	return ""
}

// filters turn one raw value into zero or more values.
var filters = map[string]func(string, func(string)){
	// nvr: "name-version-release" (or several, space/comma separated, as
	// in Bodhi update titles) to package names.
	"nvr": func(s string, out func(string)) {
		for _, f := range strings.FieldsFunc(s, func(r rune) bool { return r == ' ' || r == ',' }) {
			if n := nvrName(f); n != "" {
				out(n)
			}
		}
	},
	// mentions: "@user" mentions inside free text.
	"mentions": func(s string, out func(string)) {
		for _, m := range mentions(s) {
			out(m)
		}
	},
	// severity: a service's status word to fmn's severity scale.
	"severity": func(s string, out func(string)) {
		if v := severityOf(s); v != "" {
			out(v)
		}
	},
	// coprStatus: copr's numeric build status (0 failed, 1 succeeded).
	"coprStatus": func(s string, out func(string)) {
		switch s {
		case "0":
			out("error")
		case "1":
			out("info")
		}
	},
	// lower-cases the value.
	"lower": func(s string, out func(string)) { out(strings.ToLower(s)) },
	// words: split on white space and commas.
	"words": func(s string, out func(string)) {
		for _, f := range strings.FieldsFunc(s, func(r rune) bool { return r == ' ' || r == ',' }) {
			out(f)
		}
	},
}

// nvrName strips the last two dash-separated fields (version and release).
func nvrName(s string) string {
	i := strings.LastIndexByte(s, '-')
	if i < 0 {
		return s
	}
	j := strings.LastIndexByte(s[:i], '-')
	if j < 0 {
		return s[:i]
	}
	return s[:j]
}

// mentions finds "@word" tokens (word characters as in Python's \w for
// ASCII: letters, digits and underscore).
func mentions(s string) []string {
	var out []string
	for i := 0; i < len(s); i++ {
		if s[i] != '@' {
			continue
		}
		j := i + 1
		for j < len(s) && isWord(s[j]) {
			j++
		}
		if j > i+1 {
			out = append(out, s[i+1:j])
		}
		i = j - 1
	}
	return out
}

func isWord(b byte) bool {
	return b == '_' || (b >= '0' && b <= '9') || (b >= 'a' && b <= 'z') || (b >= 'A' && b <= 'Z')
}

// severityOf maps the status words services use (CI results, nagios
// states, log levels) onto fmn's scale: info, warning, error, critical.
func severityOf(s string) string {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "success", "passed", "pass", "ok", "info", "up", "recovery", "fixed", "completed", "complete":
		return "info"
	case "unstable", "warning", "warn", "aborted", "unknown", "needs_inspection", "skipped":
		return "warning"
	case "failure", "failed", "fail", "error", "errored", "down", "crashed":
		return "error"
	case "critical", "crit", "fatal", "unreachable":
		return "critical"
	}
	return ""
}

// pastTense turns a topic's action word into a verb for summaries.
func pastTense(w string) string {
	switch w {
	case "new", "create":
		return "created"
	case "":
		return "changed"
	case "done", "complete", "completed":
		return "completed"
	}
	switch {
	case strings.HasSuffix(w, "ed"):
		return w
	case strings.HasSuffix(w, "e"):
		return w + "d"
	case strings.HasSuffix(w, "p") || strings.HasSuffix(w, "g"):
		// stop → stopped, tag → tagged
		return w + w[len(w)-1:] + "ed"
	}
	return w + "ed"
}
