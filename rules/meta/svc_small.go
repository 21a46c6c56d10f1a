package meta

import "strings"

// Smaller services.  Each entry says where the service puts its users,
// packages and links; see the Fedora infrastructure docs of each app.

var (
	// The Fedora wiki (MediaWiki).  Wiki account names are FAS names with
	// MediaWiki's capitalised first letter, so they are lower-cased.
	wikiService = Service{Name: "wiki", Base: &R{
		Agent: []string{"user:lower"},
		Users: []string{"user:lower"},
		Func: func(c *msgCtx) {
			if u := c.str("url"); u != "" {
				c.link = "https://" + strings.TrimPrefix(strings.TrimPrefix(u, "http://"), "https://")
			}
		},
		Summary: []string{"{user} {@done} the wiki page '{title}'", "{user}: wiki {@topic.rest}"},
	}}

	// Ansible playbook runs by the infrastructure team.
	ansibleService = Service{Name: "ansible", Base: &R{
		Agent: []string{"userid"},
		Users: []string{"userid"},
		Func: func(c *msgCtx) {
			if p := c.str("playbook"); p != "" {
				if i := strings.Index(p, "/ansible/"); i >= 0 {
					p = p[i+len("/ansible/"):]
				}
				c.link = "http://infrastructure.fedoraproject.org/cgit/ansible.git/tree/" + strings.TrimPrefix(p, "/")
			}
		},
		Summary: []string{"{userid} ran the ansible playbook {playbook} ({@topic.last})", "ansible {@topic.rest}"},
	}}

	// Fedora Badges: awards, rank changes, first logins.
	badgesService = Service{Name: "fedbadges", Base: &R{
		Agent:   []string{"user.username", "person.nickname"},
		Users:   []string{"user.username", "person.nickname"},
		Link:    []string{"https://badges.fedoraproject.org/user/{user.username|person.nickname}"},
		Summary: []string{"{user.username} was awarded the badge \"{badge.name}\"", "{person.nickname} moved to rank {person.rank}", "{user.username|person.nickname}: badges {@topic.rest}"},
	}}

	// Copr build service.  Group projects are owned by "@group" and live
	// under /coprs/g/GROUP/.
	coprService = Service{Name: "copr", Base: &R{
		Agent: []string{"user"},
		Users: []string{"user"},
		Func: func(c *msgCtx) {
			owner := c.str("owner")
			if owner == "" {
				owner = c.str("user")
			}
			path := owner
			if g, ok := strings.CutPrefix(owner, "@"); ok {
				path = "g/" + g
			}
			copr, build := c.str("copr"), c.str("build")
			sub := c.sub()
			switch {
			case strings.HasPrefix(sub, "chroot") && owner != "" && copr != "":
				c.link = "https://copr-be.cloud.fedoraproject.org/results/" + path + "/" + copr + "/" + c.str("chroot") + "/"
			case owner != "" && copr != "" && build != "":
				c.link = "https://copr.fedoraproject.org/coprs/" + path + "/" + copr + "/build/" + build + "/"
			default:
				c.link = "https://copr.fedoraproject.org"
			}
			c.summary = "copr " + words(c.subParts)
			if copr != "" {
				c.summary += " of " + owner + "/" + copr
			}
			if build != "" {
				c.summary += " build " + build
			}
			if ch := c.str("chroot"); ch != "" {
				c.summary += " (" + ch + ")"
			}
		},
		Severity: []string{"status:coprStatus"},
	}}

	datanommerService = Service{Name: "datanommer", Base: &R{
		Link:    []string{"https://www.destroyallsoftware.com/talks/wat"},
		Summary: []string{"datanommer {@topic.rest}"},
	}}

	electionsService = Service{Name: "fedora_elections", Base: &R{
		Agent:   []string{"agent"},
		Users:   []string{"agent"},
		Link:    []string{"https://admin.fedoraproject.org/voting/about/{election.alias}"},
		Summary: []string{"{agent} {@topic.rest} for the election {election.alias}"},
	}}

	// ABRT's FAF (crash reports): components are packages.
	fafService = Service{Name: "faf", Base: &R{
		Packages: []string{"components.*"},
		Link:     []string{"{url}"},
		Summary:  []string{"crash report {report_id} of {components.0} reached {count} occurrences"},
	}}

	// FAS, the account system.  agent and user are names, or objects with
	// a username in older messages.
	// FAS, and Noggin after it (fedora-messaging bodies wrap the same
	// fields in "msg"); the group a message is about is Metadata.Groups.
	fasService = Service{Name: "fas", Base: &R{
		Agent:   []string{"agent.username", "agent", "msg.agent"},
		Users:   []string{"agent", "agent.username", "user", "user.username", "msg.agent", "msg.user"},
		Groups:  []string{"group.name", "group", "msg.group"},
		Summary: []string{"{agent.username|agent}: fas {@topic.rest} {user.username|user}", "{agent.username|agent}: fas {@topic.rest} {group.name|group}", "{agent.username|agent}: fas {@topic.rest}"},
	}, Rules: []R{
		{Topic: "user.create", Summary: []string{"new FAS account: {user.username|user}"}},
		{Topic: "user.update", Summary: []string{"{agent.username|agent} updated the FAS account {user.username|user}"}},
		{Topic: "group.member.apply", Summary: []string{"{user.username|user} applied to join the FAS group {group.name|group}"}},
		{Topic: "group.member.sponsor", Summary: []string{"{agent.username|agent} sponsored {user.username|user} in the FAS group {group.name|group}"}},
		{Topic: "group.member.approve", Summary: []string{"{agent.username|agent} approved {user.username|user} in the FAS group {group.name|group}"}},
		{Topic: "group.member.remove", Summary: []string{"{agent.username|agent} removed {user.username|user} from the FAS group {group.name|group}"}},
		{Topic: "group.create", Summary: []string{"{agent.username|agent} created the FAS group {group.name|group}"}},
		{Topic: "group.update", Summary: []string{"{agent.username|agent} updated the FAS group {group.name|group}"}},
		{Topic: "role.update", Summary: []string{
			"{agent.username|agent} made {user.username|user} {status} in the FAS group {group.name|group}",
			"{agent.username|agent} changed {user.username|user}'s role in the FAS group {group.name|group}"}},
	}}

	fedocalService = Service{Name: "fedocal", Base: &R{
		Agent: []string{"agent"},
		Users: []string{"agent"},
	}, Rules: []R{
		{Topic: "meeting", Link: []string{"https://apps.fedoraproject.org/calendar/meeting/{meeting.meeting_id}/"},
			Summary: []string{"{agent} {@done} the meeting \"{meeting.meeting_name}\" in the \"{calendar.calendar_name}\" calendar"}},
		{Topic: "", Link: []string{"https://apps.fedoraproject.org/calendar/{calendar.calendar_name}/"},
			Summary: []string{"{agent} {@done} the \"{calendar.calendar_name}\" calendar"}},
	}}

	greenwaveService = Service{Name: "greenwave", Base: &R{
		Link: []string{
			"https://taskotron.fedoraproject.org/resultsdb/results?item={subject_identifier}&type={subject_type}",
		},
		Summary: []string{"greenwave decision for {subject_identifier} ({decision_context}): {summary}"},
	}}

	kerneltestService = Service{Name: "kerneltest", Base: &R{
		Agent: []string{"agent"},
		Users: []string{"agent"},
		Func:  func(c *msgCtx) { c.addPkg("kernel") },
	}, Rules: []R{
		{Topic: "upload", Link: []string{"https://apps.fedoraproject.org/kerneltest/kernel/{test.kernel_version}"},
			Summary: []string{"{test.tester} uploaded {test.result} results for kernel {test.kernel_version}"}},
		{Topic: "release", Link: []string{"https://apps.fedoraproject.org/kerneltest/stats"},
			Summary: []string{"{agent} {@done} kerneltest release {release.releasenum}"}},
	}}

	koscheiService = Service{Name: "koschei", Rules: []R{
		{Topic: "package", Packages: []string{"name"},
			Link:    []string{"https://apps.fedoraproject.org/koschei/package/{name}?collection={collection}"},
			Summary: []string{"koschei: {name} in {collection_name|collection} went from {old} to {new}"}},
		{Topic: "collection", Link: []string{"https://apps.fedoraproject.org/koschei/collection/{collection}"},
			Summary: []string{"koschei: collection {collection_name|collection} went from {old} to {new}"}},
	}}

	// Mailman 3 list traffic: the link is the HyperKitty archive page.
	// Posters are e-mail addresses; only Fedora addresses are accounts.
	mailmanService = Service{Name: "mailman", Base: &R{
		Summary: []string{"{msg.from} wrote to {mlist.list_name}: {msg.subject}"},
		Func: func(c *msgCtx) {
			from := c.str("msg", "from")
			if i := strings.LastIndexByte(from, '<'); i >= 0 {
				from = strings.TrimSuffix(from[i+1:], ">")
			}
			if u := fedoraAccount(strings.TrimSpace(from)); u != "" && !strings.Contains(u, "@") {
				c.addUser(u)
				c.agent = u
			}
			if a := c.str("msg", "archived-at"); a != "" {
				c.link = "https://lists.fedoraproject.org/archives/" + strings.Trim(a, "/") + "/"
			}
		},
	}}

	// The module build service.
	mbsService = Service{Name: "mbs", Base: &R{
		Agent:   []string{"owner"},
		Users:   []string{"owner"},
		Link:    []string{"https://mbs.fedoraproject.org{state_url}", "https://mbs.fedoraproject.org/module-build-service/1/module-builds/{id}"},
		Summary: []string{"{owner}'s build #{id} of module {name}-{stream}-{version} is {state_name}"},
	}}

	// mdapi announces repository metadata updates; packages are the
	// changed packages it lists.
	// Older messages only carry "differences": per category (requires,
	// files, …) and action (added/removed), tuples whose first element is
	// the package name, or whose last is when the first is a file path.
	mdapiService = Service{Name: "mdapi", Base: &R{
		Packages: []string{"packages.*"},
		Summary:  []string{"mdapi noticed a change in the {name} repository metadata"},
		Func: func(c *msgCtx) {
			if u := c.str("url"); strings.HasPrefix(u, "http") {
				c.link = u
			} else if u != "" {
				c.link = "https://download.fedoraproject.org/pub/" + u
			}
			if has(c.body, "packages") {
				return
			}
			diff, _ := c.get("differences").(map[string]any)
			for _, cat := range sortedKeys(diff) {
				actions, _ := diff[cat].(map[string]any)
				for _, act := range sortedKeys(actions) {
					list, _ := actions[act].([]any)
					for _, d := range list {
						t, _ := d.([]any)
						if len(t) == 0 {
							continue
						}
						first, _ := t[0].(string)
						name := first
						if strings.Contains(first, "/") {
							name, _ = t[len(t)-1].(string)
						}
						if i := strings.IndexByte(name, '('); i >= 0 {
							name = name[:i]
						}
						c.addPkg(name)
					}
				}
			}
		},
	}}

	mirrormanagerService = Service{Name: "mirrormanager", Base: &R{
		Link:    []string{"https://mirrors.fedoraproject.org"},
		Summary: []string{"mirrormanager {@topic.rest} ({type})", "mirrormanager {@topic.rest}"},
	}}

	// Nagios service/host state changes; the state is the severity.
	nagiosService = Service{Name: "nagios", Base: &R{
		Link:     []string{"https://admin.fedoraproject.org/nagios/cgi-bin/status.cgi?navbarsearch=1&host={host}"},
		Summary:  []string{"nagios: {service} on {host} is {state} ({type})", "nagios: {host} is {state} ({type})"},
		Severity: []string{"state:severity"},
	}}

	// Nuancier, the wallpaper election app.  Candidates name their
	// submitter and author; their link is the picture.
	nuancierService = Service{Name: "nuancier", Base: &R{
		Agent: []string{"agent"},
		Users: []string{"agent", "candidate.submitter", "candidate.author"},
	}, Rules: []R{
		{Topic: "candidate", Link: []string{"{candidate.original_url}"},
			Summary: []string{"{agent} {@topic.last} the candidate \"{candidate.name}\" of the {election.name} election"}},
		{Topic: "", Link: []string{"https://apps.fedoraproject.org/nuancier/election/{election.id}"},
			Summary: []string{"{agent}: nuancier {@topic.rest} for {election.name}"}},
	}}

	odcsService = Service{Name: "odcs", Base: &R{
		Agent:   []string{"compose.owner"},
		Users:   []string{"compose.owner"},
		Link:    []string{"https://odcs.{@stg.}fedoraproject.org/api/1/composes/{compose.id}"},
		Summary: []string{"ODCS compose #{compose.id} by {compose.owner} is {compose.state_name}", "ODCS compose #{compose.id} {@topic.rest}"},
		Func: func(c *msgCtx) {
			// ODCS links point at production even for staging messages
			// (staging composes are not browsable).
			c.link = strings.Replace(c.link, "odcs.stg.", "odcs.", 1)
		},
	}}

	pdcService = Service{Name: "pdc", Base: &R{
		Link:    []string{"https://pdc.fedoraproject.org/rest_api/v1/composes/{compose_id}/"},
		Summary: []string{"pdc: {action} of {count} {attribute} for {compose_id}", "pdc {@topic.rest}"},
	}}

	relengService = Service{Name: "releng", Rules: []R{
		{Topic: "atomic.twoweek", Link: []string{"https://download.fedoraproject.org/pub/alt/atomic/stable/"},
			Summary: []string{"releng: two-week Atomic release {@topic.last}"}},
		{Topic: "", Summary: []string{"releng {@topic.rest}"}},
	}}

	// summershum indexes lookaside tarballs; it quotes the lookaside
	// upload it processed under "original".
	summershumService = Service{Name: "summershum", Base: &R{
		Agent:    []string{"original.agent"},
		Users:    []string{"original.agent"},
		Packages: []string{"original.name"},
		Link:     []string{"http://pkgs.fedoraproject.org/lookaside/pkgs/{original.name}/{original.filename}/{original.md5sum}/{original.filename}"},
		Summary:  []string{"summershum {@topic.rest} for {original.filename} of {original.name}"},
	}}

	// Fedora Tagger: votes on package tags.  Anonymous votes carry no user.
	taggerService = Service{Name: "fedoratagger", Base: &R{
		Agent:    []string{"vote.user.username", "user.username"},
		Packages: []string{"vote.tag.package.name", "package.name", "tag.package.name"},
		Link:     []string{"https://apps.fedoraproject.org/tagger/{vote.tag.package.name|package.name}"},
		Summary:  []string{"{vote.user.username|user.username}: tagger {@topic.rest}"},
		Func: func(c *msgCtx) {
			for _, p := range [][]string{{"vote", "user"}, {"user"}} {
				if u, ok := c.get(p...).(map[string]any); ok {
					// Anonymous voters are flagged, or named "anonymous".
					if anon, _ := u["anonymous"].(bool); !anon && str(u, "username") != "anonymous" {
						c.addUser(str(u, "username"))
					}
				}
			}
			// Old votes name the package as the only key of tag.package.
			if pm, ok := c.get("vote", "tag", "package").(map[string]any); ok && !has(pm, "name") {
				for _, k := range sortedKeys(pm) {
					c.addPkg(k)
					if c.link == "" {
						c.link = "https://apps.fedoraproject.org/tagger/" + k
					}
				}
			}
		},
	}}

	// Taskotron results: the item under test is an NVR for koji_build
	// tasks.
	taskotronService = Service{Name: "taskotron", Base: &R{
		Link:     []string{"{result.log_url}", "{result.job_url}"},
		Summary:  []string{"taskotron {task.name} {result.outcome} for {task.item}"},
		Severity: []string{"result.outcome:severity"},
		Func: func(c *msgCtx) {
			if c.str("task", "type") == "koji_build" {
				c.addPkg(nvrName(c.str("task", "item")))
			}
		},
	}}

	waiverdbService = Service{Name: "waiverdb", Base: &R{
		Agent:   []string{"username"},
		Users:   []string{"username"},
		Link:    []string{"https://waiverdb-web-waiverdb.app.os.fedoraproject.org/api/v1.0/waivers/{id}"},
		Summary: []string{"{username} waived result {result_id} ({product_version}): {comment}"},
	}}

	zanataService = Service{Name: "zanata", Base: &R{
		Link:    []string{"https://fedora.zanata.org/iteration/view/{project}/{version}/languages/{locale}"},
		Summary: []string{"zanata: {docId} of {project} {version} reached \"{milestone}\" in {locale}"},
	}}

	// meetbot (zodbot) meeting logs.  Participants are IRC nicks, which
	// usually but not always match FAS names; the bot itself is dropped.
	meetbotService = Service{Name: "meetbot", Base: &R{
		Agent: []string{"owner"},
		Func: func(c *msgCtx) {
			att, _ := c.get("attendees").(map[string]any)
			for _, k := range sortedKeys(att) {
				if k != "zodbot" {
					c.addUser(k)
				}
			}
		},
	}, Rules: []R{
		{Topic: "meeting.item", Func: func(c *msgCtx) {
			line := c.str("details", "line")
			if i := strings.Index(line, "http"); i >= 0 {
				u := line[i:]
				if j := strings.IndexAny(u, " \t"); j >= 0 {
					u = u[:j]
				}
				c.link = u
			}
			c.summary = c.str("details", "nick") + " added a " + c.subParts[len(c.subParts)-1] + " to the " + c.str("channel") + " meeting: " + line
		}},
		{Topic: "meeting", Func: func(c *msgCtx) {
			if u := c.str("url"); u != "" {
				c.link = "https://" + strings.TrimPrefix(strings.TrimPrefix(u, "http://"), "https://") + ".html"
			}
			c.summary = c.str("owner") + "'s meeting in " + c.str("channel") + " " + c.subParts[len(c.subParts)-1] + ": " + c.str("meeting_topic")
		}},
	}}

	// Fedora College (retired) content edits.
	fedoracollegeService = Service{Name: "fedoracollege", Base: &R{
		Agent:   []string{"username"},
		Users:   []string{"username"},
		Link:    []string{"{link}"},
		Summary: []string{"{username} {@done} \"{title}\" on Fedora College"},
	}}

	// fedimg uploads cloud images to providers; no users or packages.
	fedimgService = Service{Name: "fedimg", Base: &R{
		Summary: []string{
			"fedimg: image {image_name} {@topic.last} to {destination} {status}",
			"fedimg: image {image_name} {@topic.last} to {destination}",
			"fedimg {@topic.rest}",
		},
	}}

	// rats (resultsdb/taskotron re-runs) names the person who asked.
	ratsService = Service{Name: "rats", Base: &R{
		Agent:   []string{"agent"},
		Users:   []string{"agent"},
		Summary: []string{"{agent} asked for a re-run of {test} on {identifier}", "{agent}: rats {@topic.rest}"},
	}}

	// The Fedora Planet blog aggregator: a new post by a contributor.
	planetService = Service{Name: "planet", Base: &R{
		Agent:   []string{"username"},
		Users:   []string{"username"},
		Link:    []string{"{post.link}"},
		Summary: []string{"{username} posted \"{post.title}\" on the Fedora Planet", "{name}: planet {@topic.rest}"},
	}}

	// IRC karma ("user++") counted by zodbot; links to the recipient's badges.
	ircService = Service{Name: "irc", Base: &R{
		Agent:   []string{"agent"},
		Users:   []string{"agent", "recipient"},
		Link:    []string{"https://badges.fedoraproject.org/user/{recipient}"},
		Summary: []string{"{agent} gave {recipient} karma in {channel} (total {total})"},
	}}
)
