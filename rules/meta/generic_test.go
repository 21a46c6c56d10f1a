package meta

import (
	"encoding/json"
	"reflect"
	"testing"
)

// TestUnknownAppsAndArtifacts: messages that are not in testdata, written
// after what these services publish: apps the tables do not know still
// yield users and packages from the usual fields and dist-git paths, and
// known dist-git services report containers, modules and flatpaks by their
// namespace.
func TestUnknownAppsAndArtifacts(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name, topic, body string
		want              Metadata // compared on the fields set below
	}{
		{"unknown app: packager and package object",
			"org.fedoraproject.prod.osbuild.image.finished",
			`{"packager": "carol", "package": {"name": "kernel"}, "image": "fedora-41-x86_64.qcow2", "url": "https://osbuild.example.org/i/17"}`,
			Metadata{App: "osbuild", Agent: "carol", Usernames: []string{"carol"}, Packages: []string{"kernel"}, Link: "https://osbuild.example.org/i/17"}},
		{"unknown app: agent, submitter and an rpms path",
			"org.fedoraproject.prod.packit.propose_downstream.finished",
			`{"agent": "packit", "submitter": {"name": "alice"}, "project_url": "https://src.fedoraproject.org/rpms/python-foo", "branch": "rawhide"}`,
			Metadata{App: "packit", Agent: "packit", Usernames: []string{"alice", "packit"}, Packages: []string{"python-foo"}}},
		{"unknown app in fedora-messaging shape: msg.agent and a container repository",
			"konflux.pipelinerun.finished",
			`{"msg": {"agent": "bob", "user": "bob", "repo": "https://src.fedoraproject.org/container/fedora-toolbox.git", "status": "succeeded"}}`,
			Metadata{App: "konflux", Agent: "bob", Usernames: []string{"bob"}, Containers: []string{"fedora-toolbox"}}},
		{"unknown app: module and flatpak paths, a group",
			"org.fedoraproject.prod.flatpak_indexer.index.updated",
			`{"username": "otaylor", "group": "flatpak-sig", "updated": ["flatpaks/org.gnome.Maps", "modules/nodejs"]}`,
			Metadata{App: "flatpak_indexer", Agent: "otaylor", Usernames: []string{"otaylor"}, Groups: []string{"flatpak-sig"},
				Modules: []string{"nodejs"}, Flatpaks: []string{"org.gnome.Maps"}}},
		{"unknown app: a fork is not the package, prose is not a path",
			"org.fedoraproject.prod.reviewbot.comment",
			`{"user": "dan", "fork": "https://src.fedoraproject.org/fork/dan/rpms/kernel", "comment": "see rpms/gcc for the fix"}`,
			Metadata{App: "reviewbot", Agent: "dan", Usernames: []string{"dan"}}},
		{"noggin: fedora-messaging body of a sponsorship",
			"fas.group.member.sponsor",
			`{"msg": {"agent": "dudemcpants", "user": "testuser", "group": "developers"}}`,
			Metadata{App: "fas", Agent: "dudemcpants", Usernames: []string{"dudemcpants", "testuser"}, Groups: []string{"developers"}}},
		{"fas (fedmsg): a removal names the group",
			"org.fedoraproject.prod.fas.group.member.remove",
			`{"agent": {"username": "toshio"}, "user": {"username": "ralph"}, "group": {"name": "python-sig"}}`,
			Metadata{App: "fas", Agent: "toshio", Usernames: []string{"ralph", "toshio"}, Groups: []string{"python-sig"}}},
		{"dist-git pagure: a pull request on a container",
			"org.fedoraproject.prod.pagure.pull-request.new",
			`{"agent": "eve", "pullrequest": {"id": 3, "title": "Bump", "project": {"name": "fedora-toolbox", "namespace": "container", "parent": null, "user": {"name": "debarshiray"}}}}`,
			Metadata{App: "pagure", Agent: "eve", Usernames: []string{"eve"}, Containers: []string{"fedora-toolbox"}}},
		{"dist-git pagure: a new committer on a package",
			"org.fedoraproject.prod.pagure.project.user.added",
			`{"agent": "maintainer1", "new_user": "alice", "access": "commit", "project": {"name": "python-bar", "namespace": "rpms", "fullname": "rpms/python-bar", "full_url": "https://src.fedoraproject.org/rpms/python-bar", "parent": null}}`,
			Metadata{App: "pagure", Agent: "maintainer1", Usernames: []string{"maintainer1"}, Packages: []string{"python-bar"}}},
		{"pagure.io: a project is no artifact",
			"io.pagure.prod.pagure.pull-request.new",
			`{"agent": "eve", "pullrequest": {"id": 4, "title": "x", "project": {"name": "fmn", "namespace": "fedora-infra", "parent": null}}}`,
			Metadata{App: "pagure", Agent: "eve", Usernames: []string{"eve"}}},
		{"dist-git: a push to a module",
			"org.fedoraproject.prod.git.receive",
			`{"agent": "mmaint", "commit": {"repo": "nodejs", "namespace": "modules", "branch": "20", "rev": "abc", "summary": "s", "username": "mmaint"}}`,
			Metadata{App: "dist-git", Agent: "mmaint", Usernames: []string{"mmaint"}, Modules: []string{"nodejs"}}},
		{"dist-git: a flatpak branch",
			"org.fedoraproject.prod.git.branch",
			`{"agent": "fp", "name": "org.gnome.Maps", "namespace": "flatpaks", "branch": "f41"}`,
			Metadata{App: "dist-git", Agent: "fp", Usernames: []string{"fp"}, Flatpaks: []string{"org.gnome.Maps"}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			var body any
			if err := json.Unmarshal([]byte(c.body), &body); err != nil {
				t.Fatal(err)
			}
			md := Extract(c.topic, body, "")
			w := c.want
			got := Metadata{App: md.App, Agent: md.Agent, Usernames: md.Usernames, Packages: md.Packages, Groups: md.Groups,
				Containers: md.Containers, Modules: md.Modules, Flatpaks: md.Flatpaks}
			want := Metadata{App: w.App, Agent: w.Agent, Usernames: nonNil(w.Usernames), Packages: nonNil(w.Packages),
				Groups: nonNil(w.Groups), Containers: nonNil(w.Containers), Modules: nonNil(w.Modules), Flatpaks: nonNil(w.Flatpaks)}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("got  %+v\nwant %+v", got, want)
			}
			if w.Link != "" && md.Link != w.Link {
				t.Fatalf("link %q, want %q", md.Link, w.Link)
			}
		})
	}
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
