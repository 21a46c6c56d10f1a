package meta

import "strings"

// dist-git holds four kinds of artifact, one namespace each: rpms
// (Metadata.Packages), container, modules and flatpaks. Services that know
// their schema add them by namespace (addArtifact); for unknown apps,
// genericArtifacts finds "NAMESPACE/NAME" in the body's paths and URLs.

// addArtifact records name as an artifact of dist-git namespace ns;
// another namespace (tests, a pagure.io project) names no artifact.
func (c *msgCtx) addArtifact(ns, name string) {
	name = strings.TrimSpace(name)
	if name == "" {
		return
	}
	switch ns {
	case "rpms":
		c.addPkg(name)
	case "container":
		c.containers = append(c.containers, name)
	case "modules":
		c.modules = append(c.modules, name)
	case "flatpaks":
		c.flatpaks = append(c.flatpaks, name)
	}
}

// Bounds of the path search: a message is untrusted and may be large; the
// useful paths sit near the top.
const (
	artifactScanDepth   = 6
	artifactScanStrings = 400
)

// genericArtifacts looks through the body's strings for dist-git paths:
// "rpms/python-foo", ".../rpms/python-foo.git", a URL such as
// "https://src.fedoraproject.org/container/fedora-toolbox/pull-request/3".
// Only strings without blanks count (paths and URLs, not prose), and a
// path under fork/USER/ (someone's fork) is not the artifact itself.
func genericArtifacts(c *msgCtx) {
	budget := artifactScanStrings
	var walk func(v any, depth int)
	walk = func(v any, depth int) {
		if depth > artifactScanDepth || budget <= 0 {
			return
		}
		switch t := v.(type) {
		case string:
			budget--
			if len(t) < 512 && !strings.ContainsAny(t, " \t\r\n") {
				scanArtifactPath(c, t)
			}
		case map[string]any:
			for _, k := range sortedKeys(t) {
				walk(t[k], depth+1)
			}
		case []any:
			for _, x := range t {
				walk(x, depth+1)
			}
		}
	}
	walk(c.body, 0)
}

// scanArtifactPath adds the artifacts a path or URL names.
func scanArtifactPath(c *msgCtx, s string) {
	segs := strings.Split(s, "/")
	for i := 0; i+1 < len(segs); i++ {
		ns := segs[i]
		if ns != "rpms" && ns != "container" && ns != "modules" && ns != "flatpaks" {
			continue
		}
		if i >= 2 && (segs[i-2] == "fork" || segs[i-2] == "forks") {
			continue
		}
		name := strings.TrimSuffix(segs[i+1], ".git")
		if j := strings.IndexAny(name, "?#"); j >= 0 {
			name = name[:j]
		}
		if artifactName(name) {
			c.addArtifact(ns, name)
		}
	}
}

// artifactName: dist-git repository names are letters, digits and ._+-.
func artifactName(s string) bool {
	if s == "" || len(s) > 255 {
		return false
	}
	for i := 0; i < len(s); i++ {
		b := s[i]
		if !(b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z' || b >= '0' && b <= '9' || b == '.' || b == '_' || b == '+' || b == '-') {
			return false
		}
	}
	return s[0] != '.' && s[0] != '-'
}
