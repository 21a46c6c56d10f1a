package meta

import "strings"

// Koji publishes as "buildsys"; users know it as koji, so that is the app
// name fmn shows.  Builds carry name/version/release, the build owner and,
// for tags, the user who tagged.  Secondary-arch hubs say which in
// "instance"; staging has its own hub.
var kojiService = Service{
	Name:   "koji",
	Topics: []string{"buildsys", "koji"},
	Rules: []R{
		{Topic: "tag", Users: []string{"owner", "user"}, Packages: []string{"name"}, Agent: []string{"user"},
			Link:    []string{"{@koji}/taginfo?tagID={tag_id}", "{@koji}"},
			Summary: []string{"{owner}'s {name}-{version}-{release} tagged into {tag} by {user}", "{name}-{version}-{release} tagged into {tag}"}},
		{Topic: "untag", Users: []string{"owner", "user"}, Packages: []string{"name"}, Agent: []string{"user"},
			Link:    []string{"{@koji}/taginfo?tagID={tag_id}", "{@koji}"},
			Summary: []string{"{owner}'s {name}-{version}-{release} untagged from {tag} by {user}", "{name}-{version}-{release} untagged from {tag}"}},
		{Topic: "repo", Link: []string{"{@koji}/taginfo?tagID={tag_id}", "{@koji}"},
			Summary: []string{"koji repo {@topic.last}: {tag}", "koji repo {@topic.last}"}},
		{Topic: "package.list.change", Packages: []string{"package"},
			Summary: []string{"koji package list change for {package}: '{tag}'"}},
		{Topic: "rpm.sign", Packages: []string{"info.name", "rpm.name"},
			Link:    []string{"{@koji}/buildinfo?buildID={info.build_id|rpm.build_id}"},
			Summary: []string{"koji build {info.name|rpm.name}-{info.version|rpm.version}-{info.release|rpm.release}.{info.arch|rpm.arch}.rpm signed with key {info.sigkey|sigkey}"}},
		{Topic: "build.state.change", Users: []string{"owner"}, Packages: []string{"name"}, Agent: []string{"owner"},
			Link: []string{"{@koji}/buildinfo?buildID={build_id}"},
			Func: func(c *msgCtx) {
				c.summary = kojiOwner(c) + c.str("name") + "-" + c.str("version") + "-" + c.str("release") + " " +
					pick(kojiBuildStates, c.str("new"), "changed state")
			}},
		{Topic: "task.state.change", Users: []string{"owner"}, Agent: []string{"owner"},
			Link: []string{"{@koji}/taskinfo?taskID={id}"},
			Func: func(c *msgCtx) {
				c.summary = kojiOwner(c) + "scratch build of " + c.str("srpm") + " " +
					pick(kojiTaskStates, c.str("new"), "changed state")
			}},
		{Topic: "", Users: []string{"owner"}, Link: []string{"{@koji}"}},
	},
}

var (
	kojiBuildStates = map[string]string{"0": "started building", "1": "completed", "2": "was deleted", "3": "failed to build", "4": "was cancelled"}
	kojiTaskStates  = map[string]string{"OPEN": "started", "FAILED": "failed", "CLOSED": "completed", "CANCELED": "was cancelled", "FREE": "was submitted", "ASSIGNED": "was assigned"}
)

func pick(m map[string]string, k, def string) string {
	if v, ok := m[k]; ok {
		return v
	}
	return def
}

func kojiOwner(c *msgCtx) string {
	if o := c.str("owner"); o != "" {
		return o + "'s "
	}
	return ""
}

// kojiBase is the web UI of the hub that sent the message.
func kojiBase(c *msgCtx) string {
	if c.env == "stg" {
		return "http://koji.stg.fedoraproject.org/koji"
	}
	switch inst := c.str("instance"); inst {
	case "", "primary":
		return "http://koji.fedoraproject.org/koji"
	default:
		return "http://" + inst + ".koji.fedoraproject.org/koji"
	}
}

// dist-git publishes as "git": commits (git.receive), new branches,
// lookaside uploads and the pkgdb2branch runs.  Only repositories in the
// rpms namespace are packages.  Old topics carried the repository and
// branch in the topic itself: git.receive.REPO.BRANCH.
var distgitService = Service{
	Name:   "dist-git",
	Topics: []string{"git"},
	Base: &R{
		Agent: []string{"agent", "commit.username"},
	},
	Rules: []R{
		{Topic: "receive", Func: func(c *msgCtx) {
			if has(c.body, "agent") {
				c.addUser(c.str("agent"))
			} else {
				c.addUser(c.str("commit", "username"))
			}
			repo := c.str("commit", "repo")
			if repo == "" && len(c.subParts) > 2 {
				repo = strings.Join(c.subParts[1:len(c.subParts)-1], ".")
			}
			ns := c.str("commit", "namespace")
			if ns == "" {
				ns = "rpms"
			}
			if distgitIsPackage(c) {
				c.addPkg(repo)
			} else {
				c.addArtifact(ns, repo)
			}
			if rev := c.str("commit", "rev"); repo != "" && rev != "" {
				c.link = "https://src.fedoraproject.org/" + ns + "/" + repo + "/c/" + rev + "?branch=" + c.str("commit", "branch")
			}
			who := c.str("commit", "username")
			if who == "" {
				who = c.str("commit", "name")
			}
			c.summary = who + " pushed to " + ns + "/" + repo + " (" + c.str("commit", "branch") + "): \"" + c.str("commit", "summary") + "\""
		}},
		{Topic: "branch", Users: []string{"agent"}, Func: func(c *msgCtx) {
			repo, branch := c.str("name"), c.str("branch")
			if repo == "" && len(c.subParts) > 2 {
				repo = strings.Join(c.subParts[1:len(c.subParts)-1], ".")
				branch = c.subParts[len(c.subParts)-1]
			}
			ns := c.str("namespace")
			if ns == "" {
				ns = "rpms"
			}
			if distgitIsPackage(c) {
				c.addPkg(repo)
			} else {
				c.addArtifact(ns, repo)
			}
			c.link = "https://src.fedoraproject.org/" + ns + "/" + repo + "/commits/" + branch
			c.summary = c.str("agent") + " created branch '" + branch + "' for " + ns + "/" + repo
		}},
		{Topic: "lookaside", Users: []string{"agent"}, Packages: []string{"name"},
			Link: []string{
				"https://src.fedoraproject.org/lookaside/pkgs/{path}",
				"https://src.fedoraproject.org/lookaside/pkgs/{name}/{filename}/{md5sum}/{filename}",
			},
			Summary: []string{"{agent} uploaded {filename} for {name}"}},
		{Topic: "pkgdb2branch.complete", Users: []string{"agent"},
			Packages: []string{"unbranchedPackages.*", "branchedPackages.*"},
			Summary:  []string{"run of pkgdb2branch started by {agent} completed"}},
		{Topic: "", Users: []string{"agent"}, Summary: []string{"{agent}: dist-git {@topic.rest}"}},
	},
}

// distgitIsPackage: only the rpms namespaces hold packages (modules,
// containers and tests repositories do not; the first two are artifacts
// of their own kinds).
func distgitIsPackage(c *msgCtx) bool {
	ns, ok := c.get("namespace").(string)
	if !ok {
		ns, ok = c.get("commit", "namespace").(string)
	}
	return !ok || ns == "rpms" || ns == "rpms-checks"
}

// Composes: the old compose scripts ("compose.BRANCH.STEP.start") and
// pungi 4 ("pungi.compose.…").  Neither names users or packages.
var composeService = Service{
	Name: "compose",
	Base: &R{
		Link: []string{"{location}", "https://kojipkgs.fedoraproject.org/compose/"},
		Summary: []string{
			"compose {compose_id}: {@topic.rest}",
			"{branch} compose: {@topic.rest}",
		},
	},
}

var pungiService = Service{
	Name: "pungi",
	Base: &R{
		Summary: []string{
			"pungi compose {compose_id} {phase_name} phase {@topic.last}",
			"pungi compose {compose_id} is {status}",
			"pungi compose {compose_id}: {@topic.rest}",
			"pungi failed to compose from {config}: \"{detail}\"",
		},
		Func: func(c *msgCtx) {
			if loc := c.str("location"); loc != "" {
				loc = strings.Trim(loc, "/")
				loc = strings.TrimSuffix(loc, "/compose")
				c.link = loc
			}
		},
	},
}
