package meta

import "strings"

// pkgdb, the package database (retired, but its messages fill the
// archives).  The agent was a list in very old messages.  Packages are
// reported wherever pkgdb put one (package_listing, package_listings,
// package as a name or an object, acl.packagelist, info, action).  Unlike
// dist-git, pkgdb reports the package name whatever its namespace: pkgdb
// itself tracked containers and modules by the package they are built
// from.  "orphan" is a placeholder, not a user.
var pkgdbService = Service{
	Name: "pkgdb",
	Base: &R{
		Agent: []string{"agent.0", "agent"},
		Users: []string{"agent.0", "agent", "acl.fas_name", "username"},
		Summary: []string{
			"{agent.0|agent} {@topic.rest} {package_listing.package.name|package.name|package|info.pkg_name}",
			"{agent.0|agent} {@topic.rest}",
		},
		Func: pkgdbFunc,
	},
}

func pkgdbFunc(c *msgCtx) {
	c.users = slicesDelete(c.users, "orphan")
	for _, p := range []any{
		c.get("package_listing", "package"),
		c.get("acl", "packagelist", "package"),
		c.get("action", "package"),
	} {
		pkgdbAdd(c, p, "name")
	}
	if ls, ok := c.get("package_listings").([]any); ok {
		for _, l := range ls {
			pkgdbAdd(c, get(l, "package"), "name")
		}
	}
	switch p := c.get("package").(type) {
	case string:
		c.addPkg(p)
	case map[string]any:
		pkgdbAdd(c, p, "name")
	}
	pkgdbAdd(c, c.get("info"), "pkg_name")
	pkgdbAdd(c, c.get("action", "info"), "pkg_name")

	sub := c.sub()
	link := func(ns, name string) {
		if ns == "" {
			ns = "rpms"
		}
		if name != "" {
			c.link = "https://admin.fedoraproject.org/pkgdb/package/" + ns + "/" + name + "/"
		}
	}
	pl := c.get("package_listing", "package")
	switch {
	case strings.HasPrefix(sub, "package.new.request"):
		link(c.str("info", "namespace"), c.str("info", "pkg_name"))
	case strings.HasPrefix(sub, "admin.action.status.update"):
		if has(c.body, "action", "info") {
			link(c.str("action", "info", "namespace"), c.str("action", "info", "pkg_name"))
		} else {
			link(c.str("action", "package", "namespace"), c.str("action", "package", "name"))
		}
	case hasAnyPrefix(sub, "acl.update", "acl.request.toggle", "owner.update", "package.retire", "package.new", "package.branch.new"):
		link(str(pl, "namespace"), str(pl, "name"))
	case strings.HasPrefix(sub, "acl.user.remove"):
		link(c.str("package_listings", "0", "package", "namespace"), c.str("package_listings", "0", "package", "name"))
	case hasAnyPrefix(sub, "package.update", "branch.clone", "package.branch.request"):
		if pl != nil {
			link(str(pl, "namespace"), str(pl, "name"))
		} else if p, ok := c.get("package").(map[string]any); ok {
			ns := str(p, "namespace")
			if ns == "" {
				ns = c.str("namespace")
			}
			link(ns, str(p, "name"))
		} else {
			link(c.str("namespace"), c.str("package"))
		}
	}
}

// pkgdbAdd adds obj[nameKey] when obj is an object.
func pkgdbAdd(c *msgCtx, obj any, nameKey string) {
	if m, ok := obj.(map[string]any); ok {
		c.addPkg(str(m, nameKey))
	}
}

func hasAnyPrefix(s string, prefixes ...string) bool {
	for _, p := range prefixes {
		if s == p || strings.HasPrefix(s, p+".") {
			return true
		}
	}
	return false
}

func slicesDelete(in []string, drop string) []string {
	out := in[:0]
	for _, s := range in {
		if s != drop {
			out = append(out, s)
		}
	}
	return out
}

// GitHub, bridged by github2fedmsg.  The bridge resolves GitHub logins of
// people who linked their Fedora account into fas_usernames
// (login → FAS name); those are the users.  Organisations appear there as
// "github_org_…" and are not users.
var githubService = Service{
	Name: "github",
	Base: &R{
		Func: githubFunc,
	},
}

func githubFunc(c *msgCtx) {
	fas, _ := c.get("fas_usernames").(map[string]any)
	for _, k := range sortedKeys(fas) {
		if v, ok := fas[k].(string); ok && !strings.HasPrefix(v, "github_org_") {
			c.addUser(v)
		}
	}
	resolve := func(login string) string {
		if v, ok := fas[login].(string); ok && v != "" {
			return v
		}
		return login
	}
	switch {
	case c.str("commit", "author", "login") != "":
		c.agent = resolve(c.str("commit", "author", "login"))
	case c.str("pusher", "name") != "":
		c.agent = resolve(c.str("pusher", "name"))
	case c.str("sender", "login") != "":
		c.agent = resolve(c.str("sender", "login"))
	case c.str("forkee", "owner", "login") != "":
		c.agent = resolve(c.str("forkee", "owner", "login"))
	}

	repoURL := c.str("repository", "html_url")
	sub := c.sub()
	switch {
	case strings.HasPrefix(sub, "deployment_status"):
		c.link = c.str("deployment_status", "target_url")
	case strings.HasPrefix(sub, "watch"):
		c.link = repoURL + "/watchers"
	case strings.HasPrefix(sub, "star"):
		c.link = repoURL + "/stargazers"
	case strings.HasPrefix(sub, "page_build"):
		parts := strings.Split(repoURL, "/")
		if len(parts) >= 2 {
			c.link = "http://" + parts[len(parts)-2] + ".github.io/" + parts[len(parts)-1] + "/"
		}
	default:
		for _, k := range [][]string{
			{"release", "html_url"}, {"target_url"}, {"compare"}, {"comment", "html_url"},
			{"review", "html_url"}, {"pull_request", "html_url"}, {"issue", "html_url"},
			{"forkee", "html_url"}, {"repository", "html_url"},
		} {
			if has(c.body, k[0]) {
				c.link = c.str(k...)
				break
			}
		}
	}

	repo := c.str("repository", "full_name")
	if repo == "" {
		owner := c.str("repository", "owner", "login")
		if owner == "" {
			owner = c.str("repository", "owner", "name")
		}
		repo = owner + "/" + c.str("repository", "name")
	}
	who := c.agent
	if who == "" {
		who = "someone"
	}
	what := strings.ReplaceAll(sub, "_", " ")
	if a := c.str("action"); a != "" {
		what += " " + a
	}
	num := c.str("number")
	if num == "" {
		num = c.str("issue", "number")
	}
	if num == "" {
		num = c.str("pull_request", "number")
	}
	if num != "" {
		what += " #" + num
	}
	title := c.str("pull_request", "title")
	if title == "" {
		title = c.str("issue", "title")
	}
	c.summary = who + ": github " + what + " on " + repo
	if title != "" {
		c.summary += ": " + title
	}
}
