package web

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"fmn"
	"fmn/metrics"
	"fmn/rules"
	"fmn/rules/meta"
	"fmn/store"
	"fmn/store/storetest"
)

// liveFixture is a web server with a running hub on a fresh database, and a
// user with a confirmed destination and a rule.
type liveFixture struct {
	st    *store.Store
	srv   *httptest.Server
	user  store.User
	token string
	dest  int64
	rule  int64
	seq   int
}

func newLiveFixture(t *testing.T) *liveFixture { return newLiveFixtureOn(t, nil) }

// newLiveFixtureOn is newLiveFixture with setUp given the test server,
// before it starts, and the handler (to put a server of its own on it).
func newLiveFixtureOn(t *testing.T, setUp func(*httptest.Server, http.Handler)) *liveFixture {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	st := storetest.New(t)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	hub := NewHub(st, log)
	hubDone := make(chan struct{})
	go func() { hub.Run(ctx); close(hubDone) }()
	ws, err := New(Deps{Store: st, Metrics: metrics.New(), Hub: hub, BaseURL: "http://fmn.test", Log: log})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(ws.Handler())
	if setUp != nil {
		setUp(srv, ws.Handler())
	}
	srv.Start()
	t.Cleanup(func() { ws.Close(); srv.Close(); cancel(); <-hubDone })
	f := &liveFixture{st: st, srv: srv}
	if f.user, err = st.EnsureUser(ctx, "alice", "alice@example.org"); err != nil {
		t.Fatal(err)
	}
	if f.token, err = st.CreateToken(ctx, f.user.ID, "test"); err != nil {
		t.Fatal(err)
	}
	err = st.InTx(ctx, func(tx pgx.Tx) error {
		d, err := store.CreateDestination(ctx, tx, f.user.ID, "email", "alice@example.org")
		f.dest = d.ID
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	r, err := st.SaveRule(ctx, rules.Rule{UserID: f.user.ID, Name: "all", Enabled: true,
		Track: rules.Track{Topics: []string{"*"}}, Destinations: []int64{f.dest}})
	if err != nil {
		t.Fatal(err)
	}
	f.rule = r.ID
	return f
}

// notify stores a message and its notification as the consumer would and
// returns the notification id.
func (f *liveFixture) notify(t *testing.T, summary string) int64 {
	t.Helper()
	f.seq++
	ctx := context.Background()
	var id int64
	err := f.st.InTx(ctx, func(tx pgx.Tx) error {
		md := meta.Metadata{Topic: "org.example.prod.test.event", App: "test", Summary: summary, Usernames: []string{}, Packages: []string{}}
		ids, err := store.InsertMessages(ctx, tx, []store.NewMessage{{MsgID: t.Name() + "-" + summary, Meta: md, Envelope: []byte(`{}`)}})
		if err != nil {
			return err
		}
		ns, err := store.InsertNotifications(ctx, tx, ids[0], []rules.Match{{UserID: f.user.ID, RuleID: f.rule, DestinationID: f.dest}})
		if err != nil {
			return err
		}
		id = ns[0].ID
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return id
}

type sseEvent struct {
	id, event, data string
}

// openStream connects to /api/v1/stream and returns a channel of events.
func (f *liveFixture) openStream(t *testing.T, lastID string) (<-chan sseEvent, func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "GET", f.srv.URL+"/api/v1/stream", nil)
	req.Header.Set("Authorization", "Bearer "+f.token)
	if lastID != "" {
		req.Header.Set("Last-Event-ID", lastID)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		t.Fatalf("stream: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	ch := make(chan sseEvent, 100)
	go func() {
		defer close(ch)
		defer resp.Body.Close()
		sc := bufio.NewScanner(resp.Body)
		var ev sseEvent
		for sc.Scan() {
			line := sc.Text()
			switch {
			case line == "":
				if ev.event != "" {
					ch <- ev
				}
				ev = sseEvent{}
			case strings.HasPrefix(line, "id: "):
				ev.id = strings.TrimPrefix(line, "id: ")
			case strings.HasPrefix(line, "event: "):
				ev.event = strings.TrimPrefix(line, "event: ")
			case strings.HasPrefix(line, "data: "):
				ev.data = strings.TrimPrefix(line, "data: ")
			}
		}
	}()
	return ch, cancel
}

func next(t *testing.T, ch <-chan sseEvent) sseEvent {
	t.Helper()
	select {
	case ev, ok := <-ch:
		if !ok {
			t.Fatal("stream closed")
		}
		return ev
	case <-time.After(10 * time.Second):
		t.Fatal("no event within 10s")
	}
	return sseEvent{}
}

func TestStreamDeliversAndResumes(t *testing.T) {
	t.Parallel()
	f := newLiveFixture(t)
	ch, closeStream := f.openStream(t, "")
	// The stream is subscribed once its headers arrived; a notification
	// committed now must reach it.
	first := f.notify(t, "first <b>event</b>")
	ev := next(t, ch)
	if ev.event != "notification" {
		t.Fatalf("event %q", ev.event)
	}
	var n fmn.Notification
	if err := json.Unmarshal([]byte(ev.data), &n); err != nil {
		t.Fatal(err)
	}
	if n.ID != first || n.Message.Summary != "first <b>event</b>" || ev.id != jsonID(first) {
		t.Fatalf("got %+v (id %s), want notification %d", n, ev.id, first)
	}
	closeStream()

	// Two more while disconnected; resuming from the first id gets both,
	// in order, and nothing twice.
	second := f.notify(t, "second")
	third := f.notify(t, "third")
	ch, closeStream = f.openStream(t, jsonID(first))
	defer closeStream()
	for _, want := range []int64{second, third} {
		if ev := next(t, ch); ev.id != jsonID(want) {
			t.Fatalf("resumed event id %s, want %d", ev.id, want)
		}
	}
	fourth := f.notify(t, "fourth")
	if ev := next(t, ch); ev.id != jsonID(fourth) {
		t.Fatalf("live event after resume: id %s, want %d", ev.id, fourth)
	}
}

func TestStreamIsPerUser(t *testing.T) {
	t.Parallel()
	f := newLiveFixture(t)
	ctx := context.Background()
	bob, err := f.st.EnsureUser(ctx, "bob", "")
	if err != nil {
		t.Fatal(err)
	}
	bobToken, _ := f.st.CreateToken(ctx, bob.ID, "test")
	aliceToken := f.token
	f.token = bobToken
	bobCh, closeBob := f.openStream(t, "")
	defer closeBob()
	f.token = aliceToken
	aliceCh, closeAlice := f.openStream(t, "")
	defer closeAlice()
	id := f.notify(t, "for alice only")
	if ev := next(t, aliceCh); ev.id != jsonID(id) {
		t.Fatalf("alice got %s", ev.id)
	}
	select {
	case ev := <-bobCh:
		t.Fatalf("bob received alice's notification: %+v", ev)
	case <-time.After(300 * time.Millisecond):
	}
}

func TestStreamNeedsAuth(t *testing.T) {
	t.Parallel()
	f := newLiveFixture(t)
	resp, err := http.Get(f.srv.URL + "/api/v1/stream")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 401 {
		t.Fatalf("unauthenticated stream: %d", resp.StatusCode)
	}
}

func jsonID(id int64) string { b, _ := json.Marshal(id); return string(b) }
