package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"fmn/consumer"
	"fmn/delivery/irc/irctest"
	"fmn/delivery/push/pushtest"
	"fmn/rules"
)

// TestIRCAndPush is issue 6's acceptance with the real binary, a real
// ngircd, a real IRC user and a loopback push service: confirmations go
// through each channel, a confirmed nick gets one PM per matching message
// (or the burst line standing for the rest), an unconfirmed nick only its
// confirmation, every matching message reaches the push endpoint with a
// valid VAPID header and a payload that decrypts, and "stop" by PM ends IRC
// delivery.
func TestIRCAndPush(t *testing.T) {
	t.Parallel()
	irc := irctest.Start(t)
	busEP := fmt.Sprintf("tcp://127.0.0.1:%d", freePort(t))
	s := startService(t, "FMN_IRC_URL="+irc.URL(), "FMN_IRC_NICK=fmn", "FMN_BUS_ENDPOINTS="+busEP,
		"FMN_PUSH_SUBJECT=mailto:push-admin@example.org", "FMN_PUSH_ALLOW_PRIVATE=true") // the push service is on loopback
	s.token = strings.TrimSpace(s.run("token", "create", "-user", "alice"))

	push := s.pushService(t)
	browser, sub := push.Subscribe()

	alice := irc.Connect(t, "alice")
	bob := irc.Connect(t, "bob")
	type dest struct {
		ID        int64
		Confirmed bool
	}
	var dIRC, dBob, dPush dest
	if st := s.call("POST", "/api/v1/destinations", map[string]string{"kind": "irc", "address": "alice"}, &dIRC); st != 201 {
		t.Fatalf("add irc destination: %d", st)
	}
	if st := s.call("POST", "/api/v1/destinations", map[string]string{"kind": "irc", "address": "bob"}, &dBob); st != 201 {
		t.Fatalf("add second irc destination: %d", st)
	}
	if st := s.call("POST", "/api/v1/destinations", map[string]string{"kind": "push", "address": sub}, &dPush); st != 201 {
		t.Fatalf("add push destination: %d", st)
	}

	// IRC: confirm by replying the code to the bot.
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	pm, ok := alice.WaitFor(ctx, func(p irctest.PM) bool { return strings.Contains(p.Text, "/confirm/") })
	if !ok {
		t.Fatalf("no IRC confirmation; alice got %+v", alice.PMs())
	}
	code := regexp.MustCompile(`confirm ([A-Za-z0-9_-]{16,})`).FindStringSubmatch(pm.Text)
	if code == nil {
		t.Fatalf("no code in %q", pm.Text)
	}
	bot := pm.From
	if err := alice.Say(bot, "confirm "+code[1]); err != nil {
		t.Fatal(err)
	}
	if _, ok := alice.WaitFor(ctx, func(p irctest.PM) bool { return strings.HasPrefix(p.Text, "Confirmed") }); !ok {
		t.Fatalf("no reply to confirm: %+v", alice.PMs())
	}
	if _, ok := bob.WaitFor(ctx, func(p irctest.PM) bool { return strings.Contains(p.Text, "/confirm/") }); !ok {
		t.Fatal("bob got no confirmation")
	}

	// Push: the first push is the confirmation link; opening it confirms.
	conf := push.Wait(browser, 1, 60*time.Second)[0]
	link, _ := conf.Payload["link"].(string)
	if !confirmLink.MatchString(link) {
		t.Fatalf("first push %+v carries no confirmation link", conf)
	}
	resp, err := pressLink(link)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("open the pushed confirmation link: %v", err)
	}
	resp.Body.Close()
	var ds []dest
	s.call("GET", "/api/v1/destinations", nil, &ds)
	if len(ds) != 3 || !ds[0].Confirmed || ds[1].Confirmed || !ds[2].Confirmed {
		t.Fatalf("destinations after confirming irc (alice) and push: %+v", ds)
	}

	const topicGlob = "org.fedoraproject.*.bodhi.*"
	if st := s.call("POST", "/api/v1/rules", map[string]any{
		"name": "bodhi", "track": map[string]any{"topics": []string{topicGlob}},
		"destinations": []int64{dIRC.ID, dBob.ID, dPush.ID},
	}, nil); st != 201 {
		t.Fatalf("create rule: %d", st)
	}
	corpus, err := consumer.ReadCorpus("../testdata/fedmsg-meta.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	g := rules.CompileGlob(topicGlob)
	want := 0
	for _, env := range corpus {
		if g.Match(env["topic"].(string)) {
			want++
		}
	}
	ircBefore := len(alice.PMs())
	live := s.openStream(t)
	s.run("publish", "-endpoint", busEP, "-corpus", "../testdata", "-wait", "30s")

	// Every matching message is pushed, each payload decrypted by the
	// push service with a VAPID header it verified.
	pushes := push.Wait(browser, 1+want, 90*time.Second)
	bodies := map[string]bool{}
	for _, p := range pushes[1:] {
		if p.Payload["title"] != "bodhi" || p.Payload["body"] == "" || p.TTL <= 0 {
			t.Fatalf("push payload %+v", p.Payload)
		}
		bodies[p.Payload["tag"].(string)] = true
	}
	if len(bodies) != want {
		t.Fatalf("%d distinct notifications pushed, want %d", len(bodies), want)
	}
	// The live stream carries the same notifications as push (and those of
	// the IRC destinations beside them).
	eventually(t, 30*time.Second, "the live stream to carry every pushed notification", func() bool {
		for tag := range bodies {
			id, _ := strconv.ParseInt(strings.TrimPrefix(tag, "fmn-"), 10, 64)
			if live.destination(id) != dPush.ID {
				return false
			}
		}
		return true
	})
	if n := live.count(dPush.ID); n != want {
		t.Fatalf("live stream carried %d push notifications, want %d", n, want)
	}

	// IRC: one line per match, or an "N more" line standing for several.
	more := regexp.MustCompile(`^(\d+) more: http://127\.0\.0\.1:\d+/$`)
	count := func() (accounted, lines int) {
		for _, p := range alice.PMs()[ircBefore:] {
			lines++
			if m := more.FindStringSubmatch(p.Text); m != nil {
				n, _ := strconv.Atoi(m[1])
				accounted += n
			} else if strings.HasPrefix(p.Text, "[bodhi] ") {
				accounted++
			} else {
				t.Fatalf("unexpected PM %q", p.Text)
			}
		}
		return
	}
	eventually(t, 120*time.Second, "IRC lines for every match", func() bool { a, _ := count(); return a >= want })
	accounted, lines := count()
	if accounted != want {
		t.Fatalf("IRC lines account for %d matches, want %d", accounted, want)
	}
	t.Logf("%d matching messages: %d pushes, %d IRC lines", want, len(pushes)-1, lines)
	for _, p := range bob.PMs() {
		if strings.HasPrefix(p.Text, "[bodhi]") || strings.Contains(p.Text, " more: ") {
			t.Fatalf("unconfirmed bob got %q", p.Text)
		}
	}

	// stop by PM ends IRC delivery; push goes on.
	if err := alice.Say(bot, "stop"); err != nil {
		t.Fatal(err)
	}
	if _, ok := alice.WaitFor(ctx, func(p irctest.PM) bool { return strings.HasPrefix(p.Text, "Stopped") }); !ok {
		t.Fatalf("no reply to stop: %+v", alice.PMs())
	}
	afterStop := len(alice.PMs())
	s.run("publish", "-endpoint", busEP, "-topic", "org.fedoraproject.prod.bodhi.update.comment",
		"-msg", `{"comment": {"text": "after stop", "user": {"name": "stopcheck"}, "update_alias": "FEDORA-2026-x"}}`, "-wait", "30s")
	// The push of the new message proves it was matched; a stopped
	// destination is no longer matched, or its notification is dropped.
	if last := push.Wait(browser, 2+want, 60*time.Second)[1+want]; !strings.Contains(last.Payload["body"].(string), "stopcheck") {
		t.Fatalf("last push %+v is not the message published after stop", last.Payload)
	}
	type note struct {
		Status        string
		DestinationID int64 `json:"destination_id"`
		Message       struct{ Summary string }
	}
	eventually(t, 30*time.Second, "no IRC notification after stop, or a dropped one", func() bool {
		var ns []note
		s.call("GET", "/api/v1/notifications?limit=5", nil, &ns)
		for _, n := range ns {
			if n.DestinationID == dIRC.ID && strings.Contains(n.Message.Summary, "stopcheck") && n.Status != "skipped" {
				return false
			}
		}
		return true
	})
	for _, p := range alice.PMs()[afterStop:] {
		if strings.Contains(p.Text, "stopcheck") {
			t.Fatalf("alice got %q after stop", p.Text)
		}
	}
	// The push service has the last push before fmn has its answer and
	// counts it sent: wait for the count, then check it is exact.
	sent := func() float64 { return metric(t, s.base, `fmn_notifications_sent_total{channel="push"}`) }
	eventually(t, 30*time.Second, "every push counted sent", func() bool { return sent() >= float64(want+1) })
	if v := sent(); v != float64(want+1) {
		t.Fatalf("push sent metric %v, want %d", v, want+1)
	}
}

// pushService starts a push service accepting the service's VAPID key
// (read with the service's token) and the subject
// mailto:push-admin@example.org, which the service must be started with
// (FMN_PUSH_SUBJECT), beside FMN_PUSH_ALLOW_PRIVATE (it is on loopback).
func (s *service) pushService(t *testing.T) *pushtest.Service {
	t.Helper()
	var key struct {
		PublicKey string `json:"public_key"`
	}
	if st := s.call("GET", "/api/v1/push/key", nil, &key); st != 200 || key.PublicKey == "" {
		t.Fatalf("push key: %d", st)
	}
	return pushtest.Start(t, key.PublicKey, "mailto:push-admin@example.org")
}

// liveStream records the events of GET /api/v1/stream: notification id →
// destination id.
type liveStream struct {
	mu   sync.Mutex
	dest map[int64]int64
}

func (l *liveStream) destination(id int64) int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.dest[id]
}

func (l *liveStream) count(destID int64) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, d := range l.dest {
		if d == destID {
			n++
		}
	}
	return n
}

// openStream connects to the live stream with the service's token and
// records what it carries until the test ends.
func (s *service) openStream(t *testing.T) *liveStream {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	req, _ := http.NewRequestWithContext(ctx, "GET", s.base+"/api/v1/stream", nil)
	req.Header.Set("Authorization", "Bearer "+s.token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 {
		t.Fatalf("stream: %d", resp.StatusCode)
	}
	l := &liveStream{dest: map[int64]int64{}}
	go func() {
		defer resp.Body.Close()
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		event := ""
		for sc.Scan() {
			line := sc.Text()
			switch {
			case strings.HasPrefix(line, "event: "):
				event = strings.TrimPrefix(line, "event: ")
			case strings.HasPrefix(line, "data: ") && event == "notification":
				var n struct {
					ID            int64 `json:"id"`
					DestinationID int64 `json:"destination_id"`
				}
				if json.Unmarshal([]byte(strings.TrimPrefix(line, "data: ")), &n) == nil {
					l.mu.Lock()
					l.dest[n.ID] = n.DestinationID
					l.mu.Unlock()
				}
			case line == "":
				event = ""
			}
		}
	}()
	return l
}
