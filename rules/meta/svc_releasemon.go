package meta

import "strings"

// Anitya (release-monitoring.org) publishes on org.release-monitoring.ENV.
// The acting user is message.agent, an OpenID URL
// (http://USER.id.fedoraproject.org/), a USER@fedoraproject.org address, a
// foreign e-mail address (not a Fedora account: dropped) or a bare name.
// Messages without one were sent by the envelope's user (or by anitya
// itself).  Packages are the Fedora entries of the project's distro mappings.
var anityaService = Service{
	Name: "anitya",
	Base: &R{
		Link: []string{
			"https://release-monitoring.org/project/{project.id}/",
			"https://release-monitoring.org/distros",
		},
		Func: anityaUser,
	},
	Rules: []R{
		{Topic: "project.map", Func: func(c *msgCtx) {
			if strings.EqualFold(c.str("distro", "name"), "fedora") {
				c.addPkg(c.str("message", "new"))
				c.addPkg(c.str("message", "prev"))
			}
		}, Summary: []string{"{@agent} mapped \"{project.name}\" in {distro.name} to \"{message.new}\""}},
		{Topic: "project.version.update", Func: anityaFedoraPackages,
			Summary: []string{
				"A new version of \"{project.name}\" has been detected: \"{message.upstream_version|upstream_version}\"",
			}},
		{Topic: "project.flag.set", Link: []string{"https://release-monitoring.org/"}},
		{Topic: "project.flag$", Func: anityaFedoraPackages,
			Summary: []string{"{@agent} flagged the project \"{project.name}\""}},
		{Topic: "project", Summary: []string{"{@agent} {@done} the anitya project \"{project.name}\""}},
		{Topic: "distro", Summary: []string{"{@agent} {@done} the distro \"{distro.name}\" in anitya"}},
	},
}

func anityaUser(c *msgCtx) {
	agent, ok := c.get("message", "agent").(string)
	if !ok {
		if c.username != "" {
			c.agent = c.username
		} else {
			c.agent = "anitya"
		}
		c.addUser(c.agent)
		return
	}
	if i := strings.Index(agent, ".id.fedoraproject.org"); i >= 0 {
		agent = agent[:i]
		if j := strings.Index(agent, "//"); j >= 0 {
			agent = agent[j+2:]
		}
	} else if u, ok := strings.CutSuffix(agent, "@fedoraproject.org"); ok {
		agent = u
	}
	c.agent = agent
	if !strings.Contains(agent, "@") {
		c.addUser(agent)
	}
}

// anityaFedoraPackages adds the Fedora mappings listed either in
// message.packages (current schema) or in packages (older one).
func anityaFedoraPackages(c *msgCtx) {
	list, ok := c.get("message", "packages").([]any)
	if !ok {
		list, _ = c.get("packages").([]any)
	}
	for _, p := range list {
		if strings.EqualFold(str(p, "distro"), "fedora") {
			c.addPkg(str(p, "package_name"))
		}
	}
}

// the-new-hotness reacts to anitya, pkgdb and koji messages and quotes the
// triggering message under trigger.msg; packages and users come from it.
var hotnessService = Service{
	Name: "hotness",
	Base: &R{
		Link: []string{
			"https://{@stg.partner-}bugzilla.redhat.com/show_bug.cgi?id={bug.bug_id}",
			"https://release-monitoring.org/project/{trigger.msg.project.id}/",
			"https://release-monitoring.org/project/{project.id}/",
			"{trigger.msg.package_listing.package.review_url}",
			"{trigger.msg.package.upstream_url}",
		},
		Summary: []string{
			"the-new-hotness {@topic.rest} for {trigger.msg.package_listing.package.name|trigger.msg.package.name|trigger.msg.name|trigger.msg.project.name}",
		},
		Func: func(c *msgCtx) {
			trig := c.str("trigger", "topic")
			orig := c.get("trigger", "msg")
			if strings.Contains(trig, "anitya") {
				list, ok := get(orig, "message", "packages").([]any)
				if !ok {
					list, _ = get(orig, "packages").([]any)
				}
				for _, p := range list {
					if str(p, "distro") == "Fedora" {
						c.addPkg(str(p, "package_name"))
					}
				}
			}
			if has(orig, "package_listing") {
				c.addPkg(str(orig, "package_listing", "package", "name"))
			} else if strings.Contains(trig, "buildsys.build") {
				c.addPkg(str(orig, "name"))
				c.addUser(str(orig, "owner"))
			} else if has(orig, "package") {
				c.addPkg(str(orig, "package", "name"))
			}
		},
	},
}

// Ask Fedora (askbot).  Links point at the topmost post of the thread.
var askbotService = Service{
	Name: "askbot",
	Base: &R{
		Agent: []string{"agent"},
		Users: []string{"agent", "newly_mentioned_users.*"},
		Link:  []string{"https://ask.{@stg.}fedoraproject.org/question/{topmost_post_id}/"},
		Summary: []string{
			"{agent} {@topic.rest} on the question '{thread.title}'",
			"{agent} {@topic.rest} on ask.fedoraproject.org",
		},
	},
}

// autocloud tests cloud images; it names no users or packages.
var autocloudService = Service{
	Name: "autocloud",
	Rules: []R{
		{Topic: "compose", Link: []string{
			"https://apps.fedoraproject.org/autocloud/jobs/{compose_job_id}",
			"https://apps.fedoraproject.org/autocloud/",
		}, Summary: []string{"autocloud: {id|compose_id} tests {status}", "autocloud: compose tests {status}"}},
		{Topic: "", Link: []string{
			"https://apps.fedoraproject.org/autocloud/jobs/{job_id}/output",
			"{image_url}",
		}, Summary: []string{"autocloud: tests of {image_name} {status}"}},
	},
}
