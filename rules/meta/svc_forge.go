package meta

import "strings"

// Pagure, both pagure.io (io.pagure.ENV.pagure…) and dist-git's web front
// end (org.fedoraproject.ENV.pagure…, served from src.fedoraproject.org).
// The actor is "agent".  Projects are "name", "namespace/name" or, for a
// fork, "fork/USER/namespace/name".  On dist-git (topics under
// org.fedoraproject.) a project is an artifact of its namespace's kind
// (rpms/python-foo is the package python-foo): a pull request or a change
// of who may commit is news for its maintainers.  Fedora's old fedmsg_meta
// gave no packages here; the corpus case that differs for it is listed in
// meta_test.go.  Forks and pagure.io projects are no artifacts.
var pagureService = Service{
	Name: "pagure",
	Base: &R{
		Agent: []string{"agent", "flag.username"},
		Users: []string{"agent"},
		Func:  pagureFunc,
	},
}

func pagureBase(c *msgCtx) string {
	distgit := strings.HasPrefix(c.topic, "org.fedoraproject.")
	switch {
	case distgit && c.env == "stg":
		return "https://src.stg.fedoraproject.org"
	case distgit:
		return "https://src.fedoraproject.org"
	case c.env == "stg":
		return "https://stg.pagure.io"
	}
	return "https://pagure.io"
}

// pagureProject renders a project object as its URL path; ok is false when
// the object has no name.
func pagureProject(p any) (string, bool) {
	name := str(p, "name")
	if name == "" {
		return "", false
	}
	if ns := str(p, "namespace"); ns != "" {
		name = ns + "/" + name
	}
	if parent, ok := get(p, "parent").(map[string]any); ok && len(parent) > 0 {
		name = "fork/" + str(p, "user", "name") + "/" + name
	}
	return name, true
}

func pagureFunc(c *msgCtx) {
	sub := c.sub()
	if !has(c.body, "agent") && strings.HasPrefix(sub, "git.receive") {
		// Old git.receive messages only carry the committer's e-mail; a
		// Fedora address names the account.
		if u, ok := strings.CutSuffix(c.str("commit", "email"), "@fedoraproject.org"); ok {
			c.addUser(u)
			c.agent = u
		}
	}
	base := pagureBase(c)
	proj := c.get("project")
	project, ok := pagureProject(proj)
	if !ok {
		proj = c.get("pullrequest", "project")
		project, ok = pagureProject(proj)
	}
	if ok && strings.HasPrefix(c.topic, "org.fedoraproject.") {
		if parent, fork := get(proj, "parent").(map[string]any); !fork || len(parent) == 0 {
			c.addArtifact(str(proj, "namespace"), str(proj, "name"))
		}
	}
	who := c.agent
	if who == "" {
		who = "someone"
	}
	pre := base + "/" + project
	switch {
	case strings.HasPrefix(sub, "issue"):
		id := c.str("issue", "id")
		c.summary = who + " on ticket " + project + "#" + id + " (" + words(c.subParts[1:]) + "): " + c.str("issue", "title")
		if !ok {
			c.link = base
			return
		}
		c.link = pre + "/issue/" + id
		if strings.HasPrefix(sub, "issue.comment.edited") {
			if cid := c.str("comment", "id"); cid != "" {
				c.link += "#comment-" + cid
			}
		} else if strings.HasPrefix(sub, "issue.comment.added") {
			if cs, _ := c.get("issue", "comments").([]any); len(cs) > 0 {
				if cid := str(cs[len(cs)-1], "id"); cid != "" {
					c.link += "#comment-" + cid
				}
			}
		}
	case strings.HasPrefix(sub, "pull-request"):
		key := "pullrequest"
		for _, k := range []string{"pullrequest", "pull_request", "pull-request"} {
			if has(c.body, k) {
				key = k
				break
			}
		}
		id := c.str(key, "id")
		c.link = pre + "/pull-request/" + id
		if strings.Contains(sub, "comment") {
			if cs, _ := c.get("pullrequest", "comments").([]any); len(cs) > 0 {
				c.link += "#comment-" + str(cs[len(cs)-1], "id")
			} else if cid := c.str("comment", "id"); cid != "" {
				c.link += "#comment-" + cid
			}
		}
		c.summary = who + " on pull request " + project + "#" + id + " (" + words(c.subParts[1:]) + "): " + c.str(key, "title")
	case strings.HasPrefix(sub, "request"):
		id := c.str("request", "id")
		c.link = pre + "/pull-request/" + id
		c.summary = who + " on pull request " + project + "#" + id + " (" + words(c.subParts[1:]) + ")"
	case strings.HasPrefix(sub, "project.deleted"):
		c.link = base
		c.summary = who + " deleted the project " + project
	case strings.HasPrefix(sub, "project"):
		c.link = pre
		c.summary = who + " on project " + project + " (" + words(c.subParts[1:]) + ")"
	case strings.HasPrefix(sub, "commit.flag"):
		repo, _ := pagureProject(c.get("repo"))
		hash := c.str("flag", "commit_hash")
		c.link = base + "/" + repo + "/c/" + hash
		c.summary = c.str("flag", "username") + " " + words(c.subParts[2:]) + " a flag on commit " + short(hash) + " of " + repo
	case strings.HasPrefix(sub, "git.receive"):
		if has(c.body, "commit") {
			repo, _ := pagureProject(c.get("commit", "repo"))
			rev := c.str("commit", "rev")
			c.link = base + "/" + repo + "/" + rev
			c.summary = who + " pushed to " + repo + " (" + strings.TrimPrefix(c.str("commit", "branch"), "refs/heads/") + "): " + c.str("commit", "summary")
		} else {
			repo, _ := pagureProject(c.get("repo"))
			branch := strings.TrimPrefix(c.str("branch"), "refs/heads/")
			c.link = base + "/" + repo + "/branch/" + branch
			c.summary = who + " pushed " + c.str("total_commits") + " commit(s) to " + repo + " (" + branch + ")"
		}
	default:
		c.link = base
	}
}

func words(parts []string) string { return strings.Join(parts, " ") }

func short(hash string) string {
	if len(hash) > 8 {
		return hash[:8]
	}
	return hash
}

// Jenkins on jenkins.cloud.fedoraproject.org announces builds of projects.
var jenkinsService = Service{
	Name: "jenkins",
	Base: &R{
		Link:    []string{"http://jenkins.{@stg.}cloud.fedoraproject.org/job/{project}/{build}/"},
		Summary: []string{"jenkins build #{build} of {project}: {@topic.last}"},
	},
}

// The CentOS CI pipelines (org.centos.ENV.ci.pipeline…) report results of
// the package, container and compose pipelines.  The user is the
// committer ("username", null for pull requests by bots); the severity
// follows the reported status.
var ciService = Service{
	Name: "ci",
	Base: &R{
		Agent:    []string{"username"},
		Users:    []string{"username"},
		Link:     []string{"{build_url}", "http://ci.centos.org/"},
		Summary:  []string{"CI {@topic.rest} for {namespace}/{repo} ({branch}): {status}", "CI {@topic.rest}: {status}", "CI {@topic.rest}"},
		Severity: []string{"status:severity"},
	},
}
