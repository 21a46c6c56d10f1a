package email

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"fmn"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/")

// golden compares got with testdata/name, or rewrites it with -update.
func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./delivery -run Golden -update to create it)", err)
	}
	if string(want) != got {
		t.Errorf("%s differs from the golden file (go test ./delivery -run Golden -update after checking):\n--- got\n%s\n--- want\n%s", name, got, want)
	}
}

func goldenSender(t *testing.T) *Channel {
	r, err := NewRenderer()
	if err != nil {
		t.Fatal(err)
	}
	return &Channel{Render: r, Settings: Settings{From: "fmn@example.org", BaseURL: testBaseURL}}
}

var goldenEnv = Envelope{To: "alice@example.org", Token: "7.TOKEN", Unsubscribe: testBaseURL + "/unsubscribe/7.TOKEN"}

func goldenNotification(i int, app, summary, link, agent string, pkgs ...string) fmn.Notification {
	at := time.Date(2026, 3, 10, 9, 0, 0, 0, time.UTC).Add(-time.Duration(i) * 7 * time.Minute)
	if pkgs == nil {
		pkgs = []string{}
	}
	return fmn.Notification{
		ID: int64(100 + i), DestinationID: 7, RuleName: "my packages",
		Message: fmn.Message{ID: int64(i), MsgID: fmt.Sprintf("2026-msg-%d", i), Topic: "org.fedoraproject.prod." + app + ".event",
			App: app, Agent: agent, Usernames: []string{agent}, Packages: pkgs, Summary: summary, Link: link, SentAt: &at, ReceivedAt: at},
	}
}

func TestGoldenNotification(t *testing.T) {
	t.Parallel()
	s := goldenSender(t)
	n := goldenNotification(0, "bodhi", "ausil submitted kernel-6.8.1-300.fc40 to stable",
		"https://bodhi.fedoraproject.org/updates/FEDORA-2026-abc123", "ausil", "kernel")
	data := s.notificationData(goldenEnv, n)
	text, err := s.Render.Text("notification", data)
	if err != nil {
		t.Fatal(err)
	}
	html, err := s.Render.HTML("notification", data)
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "notification.txt.golden", text)
	golden(t, "notification.html.golden", html)
}

func TestGoldenDigest(t *testing.T) {
	t.Parallel()
	s := goldenSender(t)
	// Newest first, as NextDigest returns them.
	items := []fmn.Notification{
		goldenNotification(0, "bodhi", "bob commented on kernel-6.8.1-300.fc40 (karma: 1)", "https://bodhi.fedoraproject.org/updates/FEDORA-2026-abc123", "bob", "kernel"),
		goldenNotification(1, "koji", "Build python-requests-2.31.0-1.fc41 completed", "https://koji.fedoraproject.org/koji/buildinfo?buildID=42", "carol", "python-requests"),
		goldenNotification(2, "bodhi", "ausil submitted kernel-6.8.1-300.fc40 to stable", "https://bodhi.fedoraproject.org/updates/FEDORA-2026-abc123", "ausil", "kernel"),
		goldenNotification(3, "pagure", "dave opened PR #12 on rpms/kernel: <fix> & \"quotes\"", "https://src.fedoraproject.org/rpms/kernel/pull-request/12", "dave", "kernel"),
		goldenNotification(4, "bodhi", "ausil created kernel-6.8.1-300.fc40", "https://bodhi.fedoraproject.org/updates/FEDORA-2026-abc123", "ausil", "kernel"),
	}
	for i := range 53 {
		items = append(items, goldenNotification(5+i, "koji", fmt.Sprintf("Build scratch-%d failed", i), "", "koji", "scratch"))
	}
	loc, _ := time.LoadLocation("Europe/Paris")
	data := s.digestData(goldenEnv, items, loc)
	if data.More != len(items)-digestShown {
		t.Errorf("More = %d, want %d", data.More, len(items)-digestShown)
	}
	text, err := s.Render.Text("digest", data)
	if err != nil {
		t.Fatal(err)
	}
	html, err := s.Render.HTML("digest", data)
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "digest.txt.golden", text)
	golden(t, "digest.html.golden", html)
}
