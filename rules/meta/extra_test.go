package meta

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
)

func decode(t *testing.T, s string) any {
	t.Helper()
	var v any
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		t.Fatal(err)
	}
	return v
}

// Topics from other buses and unknown apps still get users and packages
// from the usual fields.
func TestGenericFallback(t *testing.T) {
	md := Extract("org.debian.dev.debbugs.bug.new",
		decode(t, `{"agent":"alice","package":{"name":"vim"},"owner":{"name":"bob"},"url":"https://bugs.debian.org/1"}`), "")
	if md.App != "debbugs" || md.Agent != "alice" {
		t.Errorf("app/agent = %q/%q", md.App, md.Agent)
	}
	if !slices.Equal(md.Usernames, []string{"alice", "bob"}) || !slices.Equal(md.Packages, []string{"vim"}) {
		t.Errorf("users %q packages %q", md.Usernames, md.Packages)
	}
	if md.Link != "https://bugs.debian.org/1" || md.Summary == "" {
		t.Errorf("link %q summary %q", md.Link, md.Summary)
	}
	md = Extract("weird", nil, "")
	if md.App != "weird" || md.Usernames == nil || md.Packages == nil {
		t.Errorf("%+v", md)
	}
}

// io.pagure topics map to pagure; buildsys is reported as koji.
func TestAppNames(t *testing.T) {
	for topic, app := range map[string]string{
		"io.pagure.prod.pagure.issue.new":               "pagure",
		"org.fedoraproject.prod.buildsys.tag":           "koji",
		"org.fedoraproject.prod.git.receive":            "dist-git",
		"org.release-monitoring.prod.anitya.distro.add": "anitya",
		"org.centos.prod.ci.pipeline.complete":          "ci",
	} {
		if got := Extract(topic, map[string]any{}, "").App; got != app {
			t.Errorf("%s: app %q, want %q", topic, got, app)
		}
	}
}

func TestSummaryIsOneSafeLine(t *testing.T) {
	body := decode(t, `{"comment":{"author":"eve","karma":1,"update_title":"x-1-1 \u001b[31mred\r\nInjected: line\u2028`+strings.Repeat("y", 1000)+`"}}`)
	md := Extract("org.fedoraproject.prod.bodhi.update.comment", body, "")
	if strings.ContainsAny(md.Summary, "\r\n\x1b\u2028") {
		t.Errorf("control characters left in %q", md.Summary)
	}
	if n := len([]rune(md.Summary)); n > maxSummary+1 {
		t.Errorf("summary has %d runes", n)
	}
}

func TestSeverity(t *testing.T) {
	md := Extract("org.fedoraproject.prod.nagios.service.state.change", decode(t, `{"host":"h","state":"CRITICAL","type":"PROBLEM"}`), "")
	if md.Severity != "critical" {
		t.Errorf("nagios severity %q", md.Severity)
	}
	md = Extract("org.centos.prod.ci.pipeline.complete", decode(t, `{"status":"FAILURE"}`), "")
	if md.Severity != "error" {
		t.Errorf("ci severity %q", md.Severity)
	}
	md = Extract("org.fedoraproject.prod.bodhi.update.comment", decode(t, `{}`), "")
	if md.Severity != "" {
		t.Errorf("bodhi severity %q", md.Severity)
	}
}

func TestKnownApps(t *testing.T) {
	apps := KnownApps()
	if !slices.IsSorted(apps) || len(slices.Compact(slices.Clone(apps))) != len(apps) {
		t.Fatalf("not sorted/unique: %q", apps)
	}
	for _, want := range []string{"bodhi", "koji", "pagure", "dist-git", "fas", "anitya", "pkgdb", "compose", "ci", "github", "trac", "askbot", "meetbot", "copr", "fedbadges", "wiki", "planet", "mailman", "nagios"} {
		if !slices.Contains(apps, want) {
			t.Errorf("KnownApps lacks %q", want)
		}
	}
	if len(apps) < 50 {
		t.Errorf("only %d apps", len(apps))
	}
}

// Wrong types everywhere must not panic nor leak nil slices.
func TestHostileShapes(t *testing.T) {
	bodies := []string{`null`, `[]`, `"x"`, `1`, `{"update":[],"comment":7,"agent":["a",{"b":1}],"msg":{"msg":null}}`,
		`{"project":{"parent":{"x":1},"user":5},"issue":{"comments":[null]},"pullrequest":{"comments":[1]}}`,
		`{"trigger":{"msg":{"message":{"packages":[null,1,{"distro":"Fedora"}]}}},"differences":{"a":{"b":[[],[1],["/x"]]}}}`}
	for _, app := range append(KnownApps(), "buildsys", "git", "unknown") {
		for _, sub := range []string{"", "update.comment", "git.receive", "issue.comment.added", "pull-request.comment.added", "updates.fedora.sync", "build.state.change", "meeting.item.link", "project.map.new", "x.y.z.w"} {
			for _, b := range bodies {
				md := Extract("org.fedoraproject.prod."+app+"."+sub, decode(t, b), "u")
				for name, l := range md.sets() {
					if l == nil {
						t.Fatalf("nil %s for %s %s", name, app, sub)
					}
				}
			}
		}
	}
}
