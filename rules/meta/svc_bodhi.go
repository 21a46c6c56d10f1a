package meta

// Bodhi, the update system.  Update titles are space-separated NVRs (one
// per build), so packages come from titles; the update's link uses its
// alias (FEDORA-2019-…) when it has one, else its title.  Submitters and
// comment authors were plain strings before Bodhi 2 and {"name": …}
// objects after; paths reaching an object take its name.
var bodhiService = Service{
	Name: "bodhi",
	Base: &R{
		Agent: []string{"agent", "override.submitter", "comment.author", "comment.user.name"},
		Users: []string{"agent", "update.submitter", "update.user.name", "override.submitter",
			"comment.author", "comment.user.name", "comment.text:mentions"},
	},
	Rules: []R{
		{Topic: "update.comment",
			Packages: []string{"comment.update_title:nvr", "comment.update.title:nvr", "comment.update.builds.*.nvr:nvr"},
			Link:     []string{bodhiURL + "/updates/{comment.update.alias|comment.update_title|comment.update.title}"},
			Summary:  []string{"{comment.author|comment.user.name} commented on bodhi update {comment.update_title|comment.update.title|comment.update.alias} (karma: {comment.karma})"},
		},
		{Topic: "update.request",
			Packages: bodhiUpdatePkgs,
			Link:     bodhiUpdateLink,
			Summary:  []string{"{agent} requested {update.title|update.alias} to {@topic.last}"},
		},
		{Topic: "update.complete",
			Packages: bodhiUpdatePkgs, Link: bodhiUpdateLink,
			Summary: []string{"{update.submitter|update.user.name}'s {update.title|update.alias} bodhi update completed push to {update.status}"},
		},
		{Topic: "update.eject",
			Packages: bodhiUpdatePkgs, Link: bodhiUpdateLink,
			Summary: []string{"{update.submitter|update.user.name}'s {update.title|update.alias} bodhi update was ejected from the {repo} mash: {reason}"},
		},
		{Topic: "update.edit", Packages: bodhiUpdatePkgs, Link: bodhiUpdateLink,
			Summary: []string{"{agent} edited {update.title|update.alias}"}},
		{Topic: "update.karma.threshold", Packages: bodhiUpdatePkgs, Link: bodhiUpdateLink,
			Summary: []string{"{update.title|update.alias} reached the {status} karma threshold"}},
		{Topic: "update.requirements_met", Packages: bodhiUpdatePkgs, Link: bodhiUpdateLink,
			Summary: []string{"{update.title|update.alias} met the {@topic.last} testing requirements"}},
		{Topic: "update", Packages: bodhiUpdatePkgs, Link: bodhiUpdateLink},
		{Topic: "errata.publish", Packages: bodhiUpdatePkgs, Link: bodhiUpdateLink,
			Summary: []string{"{subject}"}},
		{Topic: "buildroot_override",
			Packages: []string{"override.build.nvr:nvr", "override.build:nvr"},
			Link:     []string{bodhiURL + "/overrides/{override.build.nvr|override.build}"},
			Summary:  []string{"{override.submitter} {@done} a buildroot override for {override.build.nvr|override.build}"},
		},
		{Topic: "stack",
			Packages: []string{"stack.packages.*.name"},
			Link:     []string{bodhiURL + "/stacks/{stack.name}"},
			Summary:  []string{"{agent} changed the \"{stack.name}\" stack ({@topic.last})"},
		},
		{Topic: "masher.start", Packages: []string{"updates.*:nvr"}, Link: []string{bodhiURL},
			Summary: []string{"{agent} requested a push of bodhi updates"}},
		{Topic: "composer.start", Link: []string{bodhiURL},
			Summary: []string{"{agent} requested a push of bodhi updates"}},
		{Topic: "compose.complete", Link: []string{bodhiURL},
			Summary: []string{"bodhi finished composing {repo}"}},
		{Topic: "repo.done", Link: []string{bodhiURL},
			Summary: []string{"bodhi repository {repo} is done"}},
		{Topic: "mashtask.complete", Link: []string{bodhiURL},
			Summary: []string{"bodhi masher finished {repo}"}},
		{Topic: "mashtask", Summary: []string{"bodhi masher: {repo} {@topic.last}"}},
		{Topic: "compose", Summary: []string{"bodhi composer: {repo} {@topic.last}"}},
		// ftpsync announces mirror syncs on bodhi's topics:
		// bodhi.updates.PRODUCT.sync.
		{Topic: "updates.*.sync", Func: bodhiSync},
	},
}

const bodhiURL = "https://bodhi.fedoraproject.org"

var (
	bodhiUpdatePkgs = []string{"update.title:nvr", "update.builds.*.nvr:nvr"}
	bodhiUpdateLink = []string{bodhiURL + "/updates/{update.alias|update.title}"}
)

// bodhiSync handles ftpsync's "new content on the mirrors" messages: the
// link is the synced tree on download.fedoraproject.org.
func bodhiSync(c *msgCtx) {
	product := c.subParts[1]
	repo, release := c.str("repo"), c.str("release")
	link := "https://download.fedoraproject.org/pub/" + product + "/"
	if product == "fedora" {
		if repo == "atomic" {
			link += "linux/atomic/"
		} else {
			link += "linux/updates/"
		}
	}
	if len(repo) >= 7 && repo[len(repo)-7:] == "testing" {
		link += "testing/"
	}
	c.link = link + release + "/"
	c.summary = "New " + product + " " + release + " " + repo + " content synced out (" +
		c.str("bytes") + " changed, " + c.str("deleted") + " files deleted)"
}
