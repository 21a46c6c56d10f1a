package meta

import "strings"

// Red Hat Bugzilla, bridged by bugzilla2fedmsg.  People appear as e-mail
// addresses (commenter, event.who, creator, assignee, CC list); only
// Fedora addresses (USER@fedoraproject.org) name an account without a FAS
// lookup, so only those become users.  Mailing lists are not people.  The
// component is the package, except for pseudo-components like
// "Package Review".
var bugzillaService = Service{
	Name: "bugzilla",
	Base: &R{
		Link: []string{"{bug.weburl}", "https://{@stg.partner-}bugzilla.redhat.com/show_bug.cgi?id={bug.id}"},
		Summary: []string{
			"{comment.author|event.who|bug.creator} {@done} RHBZ#{bug.id} ({bug.component}) '{bug.summary}'",
			"RHBZ#{bug.id} ({bug.component}) '{bug.summary}' {@topic.last}",
		},
		Func: func(c *msgCtx) {
			for _, e := range []any{c.get("comment", "author"), c.get("event", "who"), c.get("bug", "creator"), c.get("bug", "assigned_to")} {
				bzAddEmail(c, e)
			}
			if cc, ok := c.get("bug", "cc").([]any); ok {
				for _, e := range cc {
					bzAddEmail(c, e)
				}
			}
			switch comp := c.str("bug", "component"); comp {
			case "", "Package Review":
			default:
				c.addPkg(comp)
			}
			for _, e := range []string{c.str("comment", "author"), c.str("event", "who"), c.str("bug", "creator")} {
				if e != "" {
					c.agent = fedoraAccount(e)
					break
				}
			}
		},
	},
}

func bzAddEmail(c *msgCtx, e any) {
	s, _ := e.(string)
	if s == "" || strings.HasSuffix(s, "lists.fedoraproject.org") {
		return
	}
	if u := fedoraAccount(s); !strings.Contains(u, "@") {
		c.addUser(u)
	}
}

// fedoraAccount turns USER@fedoraproject.org into USER and leaves other
// addresses as they are.
func fedoraAccount(email string) string {
	if u, ok := strings.CutSuffix(email, "@fedoraproject.org"); ok && u != "" {
		return u
	}
	return email
}

// Trac on fedorahosted.org (retired): tickets, wiki pages and git pushes.
// Users are the agent, the ticket's owner, reporter and CC list, the page
// author and the committer.
var tracService = Service{
	Name: "trac",
	Base: &R{
		Agent: []string{"agent", "commit.username"},
		Users: []string{"agent", "page.author", "ticket.owner", "ticket.reporter", "ticket.cc:words", "commit.username"},
	},
	Rules: []R{
		{Topic: "ticket", Func: func(c *msgCtx) {
			c.link = strings.Trim(c.str("instance", "base_url"), "/") + "/ticket/" + c.str("ticket", "id")
			c.summary = c.str("agent") + " " + pastTense(c.subParts[len(c.subParts)-1]) + " ticket #" + c.str("ticket", "id") +
				" on the " + c.str("instance", "project_name") + " trac: " + c.str("ticket", "summary")
		}},
		{Topic: "wiki", Func: func(c *msgCtx) {
			c.link = strings.Trim(c.str("instance", "base_url"), "/") + "/wiki/" + c.str("page", "name")
			sub := c.sub()
			if v := c.str("page", "version"); v != "" && v != "0" && !strings.Contains(sub, "rename") && !strings.Contains(sub, "new") {
				c.link += "?action=diff&version=" + v
			}
			c.summary = c.str("agent") + " changed the wiki page " + c.str("page", "name") + " on the " +
				c.str("instance", "project_name") + " trac (" + words(c.subParts[2:]) + ")"
		}},
		{Topic: "git.receive", Func: func(c *msgCtx) {
			name := c.str("commit", "repo")
			if p := c.str("commit", "path"); p != "" {
				name = strings.TrimSuffix(strings.TrimPrefix(p, "/srv/git/"), ".git")
			}
			c.link = "https://git.fedorahosted.org/cgit/" + name + ".git/commit/?id=" + c.str("commit", "rev")
			c.summary = c.str("commit", "username") + " pushed to the " + name + " fedorahosted git repository: " + c.str("commit", "summary")
		}},
	},
}

// openQA, the automated installation tests.  Jobs link to their test page;
// comments name their author.
var openqaService = Service{
	Name: "openqa",
	Base: &R{
		Agent: []string{"user"},
		Users: []string{"user"},
	},
	Rules: []R{
		{Topic: "comment", Link: []string{"https://openqa.{@stg.}fedoraproject.org/tests/{job_id}#comments"},
			Summary: []string{"{user} {@done} a comment on openQA job {job_id}"}},
		{Topic: "", Link: []string{"https://openqa.{@stg.}fedoraproject.org/tests/{id}"},
			Summary: []string{
				"openQA job {id} ({TEST} on {MACHINE}) {@topic.last} for {BUILD|build}",
				"openQA job {id} {@topic.last} for {BUILD|build}",
				"openQA job {id} {@topic.last}",
			}},
	},
}

// FMN itself announces preference changes; the user is the OpenID
// (USER.id.fedoraproject.org) whose preferences changed.
var fmnService = Service{
	Name: "fmn",
	Base: &R{
		Link:    []string{"https://apps.fedoraproject.org/notifications/"},
		Summary: []string{"{@agent} changed their {context} notification {changed}"},
		Func: func(c *msgCtx) {
			if u, ok := strings.CutSuffix(c.str("openid"), ".id.fedoraproject.org"); ok {
				u = strings.TrimPrefix(strings.TrimPrefix(u, "http://"), "https://")
				c.agent = u
				c.addUser(u)
			}
		},
	},
}
