package delivery

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"fmn/apperr"
	"fmn/store"
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

func goldenSender(t *testing.T) *Sender {
	r, err := NewRenderer()
	if err != nil {
		t.Fatal(err)
	}
	return &Sender{Render: r, Settings: MailSettings{From: "fmn@example.org", BaseURL: testBaseURL}}
}

var goldenEnv = Envelope{To: "alice@example.org", Token: "7.TOKEN", Unsubscribe: testBaseURL + "/unsubscribe/7.TOKEN"}

func goldenNotification(i int, app, summary, link, agent string, pkgs ...string) store.Notification {
	at := time.Date(2026, 3, 10, 9, 0, 0, 0, time.UTC).Add(-time.Duration(i) * 7 * time.Minute)
	if pkgs == nil {
		pkgs = []string{}
	}
	return store.Notification{
		ID: int64(100 + i), DestinationID: 7, RuleName: "my packages",
		Message: store.Message{ID: int64(i), MsgID: fmt.Sprintf("2026-msg-%d", i), Topic: "org.fedoraproject.prod." + app + ".event",
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
	// Newest first, as FormDigest returns them.
	items := []store.Notification{
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

func TestParsePolicy(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ in, want, field string }{
		{`{"mode":"immediate"}`, `{"mode":"immediate"}`, ""},
		{`{"mode":"digest","every":"60m"}`, `{"mode":"digest","every":"1h"}`, ""},
		{`{"mode":"digest","daily_at":"8:05","after":10}`, `{"mode":"digest","daily_at":"08:05","after":10}`, ""},
		{`{"mode":"digest","daily_at":"25:00"}`, ``, "delivery.daily_at"},
		{`{"mode":"digest","daily_at":"08:05","after":10}`, `{"mode":"digest","daily_at":"08:05","after":10}`, ""},
		{`{"mode":"digest"}`, ``, "delivery"},
		{`{"mode":"digest","every":"90m"}`, `{"mode":"digest","every":"1h30m"}`, ""},
		{`{"mode":"digest","every":"1s"}`, ``, "delivery.every"},
		{`{"mode":"digest","after":-1}`, ``, "delivery.after"},
		{`{"mode":"digest","after":100000}`, ``, "delivery.after"},
		{`{"mode":"immediate","after":3}`, ``, "delivery"},
		{`{"mode":"hourly"}`, ``, "delivery.mode"},
		{`{"mode":"digest","every":"1h","extra":1}`, ``, "delivery"},
		{`[]`, ``, "delivery"},
	} {
		got, err := ParsePolicy(json.RawMessage(tc.in))
		if tc.field != "" {
			if f := fieldOf(err); f != tc.field {
				t.Errorf("%s: error %v, want one on field %s", tc.in, err, tc.field)
			}
			continue
		}
		if err != nil || string(got) != tc.want {
			t.Errorf("%s: %s, %v; want %s", tc.in, got, err, tc.want)
		}
	}
}

func TestQuietActive(t *testing.T) {
	t.Parallel()
	s, e := "22:00", "07:00"
	overnight := QuietOf("Europe/Paris", &s, &e)
	day1, day2 := "09:00", "17:00"
	daytime := QuietOf("UTC", &day1, &day2)
	for _, tc := range []struct {
		q    Quiet
		at   string
		want bool
	}{
		{overnight, "2026-01-10T20:59:00Z", false}, // 21:59 Paris
		{overnight, "2026-01-10T21:00:00Z", true},  // 22:00 Paris
		{overnight, "2026-01-11T05:59:00Z", true},  // 06:59 Paris
		{overnight, "2026-01-11T06:00:00Z", false}, // 07:00 Paris
		{daytime, "2026-01-10T08:59:00Z", false},
		{daytime, "2026-01-10T09:00:00Z", true},
		{daytime, "2026-01-10T17:00:00Z", false},
		{QuietOf("UTC", nil, nil), "2026-01-10T23:00:00Z", false},
	} {
		at, _ := time.Parse(time.RFC3339, tc.at)
		if got := tc.q.Active(at); got != tc.want {
			t.Errorf("%+v at %s: %v, want %v", tc.q, tc.at, got, tc.want)
		}
	}
}

func fieldOf(err error) string {
	var inv *apperr.InvalidError
	if errors.As(err, &inv) {
		return inv.Field
	}
	return ""
}
