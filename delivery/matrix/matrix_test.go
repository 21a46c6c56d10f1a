package matrix

import (
	"context"
	"errors"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"fmn"
	"fmn/delivery"
	"fmn/delivery/deliverytest"
	"fmn/delivery/matrix/dendritetest"
)

// reader collects what one Matrix user sees, syncing in the background.
type reader struct {
	t  *testing.T
	u  *dendritetest.User
	mu sync.Mutex
	ev []dendritetest.Event
}

func read(t *testing.T, u *dendritetest.User) *reader {
	r := &reader{t: t, u: u}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			evs := u.Sync(t, time.Second)
			r.mu.Lock()
			r.ev = append(r.ev, evs...)
			r.mu.Unlock()
		}
	}()
	t.Cleanup(func() { cancel(); <-done })
	return r
}

func (r *reader) events() []dendritetest.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]dendritetest.Event(nil), r.ev...)
}

// waitFor waits until an event from someone else satisfies ok.
func (r *reader) waitFor(ok func(dendritetest.Event) bool) dendritetest.Event {
	r.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		for _, e := range r.events() {
			if e.Sender != r.u.ID && ok(e) {
				return e
			}
		}
		if time.Now().After(deadline) {
			r.t.Fatalf("%s never saw the event; saw %+v", r.u.ID, r.events())
		}
		time.Sleep(50 * time.Millisecond) // polling what the sync loop gathered, with a deadline
	}
}

func (r *reader) count(sub string) int {
	n := 0
	for _, e := range r.events() {
		if e.Sender != r.u.ID && strings.Contains(e.Body, sub) {
			n++
		}
	}
	return n
}

func contains(s string) func(dendritetest.Event) bool {
	return func(e dendritetest.Event) bool { return strings.Contains(e.Body, s) }
}

var confirmRE = regexp.MustCompile(`reply: confirm ([A-Za-z0-9_-]{16,})`)

// TestMatrixDelivery is the Matrix acceptance against a real Dendrite:
// the confirmation arrives in a direct room and "confirm CODE" confirms;
// a confirmed destination gets one message per match (m.text, plain and
// HTML); an unconfirmed one only its confirmation; a notification a
// killed worker left 'sending' is sent again with its transaction id and
// shows once; a user who leaves gets a new room; "stop" ends delivery.
func TestMatrixDelivery(t *testing.T) {
	t.Parallel()
	hs := dendritetest.Start(t)
	botUser := hs.Register(t, "fmnbot", "bot-password-1")
	alice := read(t, hs.Register(t, "alice", "alice-password-1"))
	bob := read(t, hs.Register(t, "bob", "bob-password-1"))

	h := deliverytest.New(t)
	sess, err := SignIn(context.Background(), h.St, Login{URL: hs.URL, Token: botUser.Token})
	if err != nil {
		t.Fatal(err)
	}
	client, self, _ := sess.Current()
	if self != botUser.ID {
		t.Fatalf("session of %q, want %q", self, botUser.ID)
	}
	ch := &Channel{Session: sess, Store: h.St, BaseURL: "http://fmn.test"}
	h.Start(ch.Route())
	bot := &Bot{Session: sess, Store: h.St, Log: h.Log,
		Commands: &delivery.Commands{Kind: fmn.KindMatrix, Store: h.St, BaseURL: "http://fmn.test", Log: h.Log}}
	ctx, cancel := context.WithCancel(context.Background())
	botDone := make(chan error, 1)
	go func() { botDone <- bot.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-botDone })

	da := h.AddDestination(h.User("alice"), fmn.KindMatrix, alice.u.ID)
	db := h.AddDestination(h.User("bob"), fmn.KindMatrix, bob.u.ID)
	conf := alice.waitFor(contains("reply: confirm "))
	code := confirmRE.FindStringSubmatch(conf.Body)
	if code == nil || !strings.Contains(conf.FormattedBody, `<a href="http://fmn.test/confirm/`) {
		t.Fatalf("confirmation %+v", conf)
	}
	bob.waitFor(contains("reply: confirm "))
	// The bot's sync loop answers what is said after it started; say it
	// until the answer comes (the first sync only learns where "now" is).
	deadline := time.Now().Add(30 * time.Second)
	for !h.Destination(da.ID).Confirmed {
		alice.u.Say(t, conf.Room, "confirm "+code[1])
		for i := 0; i < 40 && !h.Destination(da.ID).Confirmed; i++ {
			time.Sleep(50 * time.Millisecond) // polling the database with a deadline
		}
		if time.Now().After(deadline) {
			t.Fatal("confirm CODE in the room did not confirm")
		}
	}
	alice.waitFor(contains("Confirmed: this account now receives alice's"))

	// One message per match, plain and HTML; bob (unconfirmed) gets none.
	var ids []int64
	for i := range 3 {
		ids = append(ids, h.Notify(deliverytest.Bodhi("matrix message "+strconv.Itoa(i)), h.Destination(da.ID), h.Destination(db.ID))...)
	}
	for i, id := range ids {
		if i%2 == 0 {
			h.WaitStatus(id, 30*time.Second, fmn.StatusSent)
		} else if n := h.WaitStatus(id, 30*time.Second, fmn.StatusDead); !strings.Contains(n.Error, "not confirmed") {
			t.Fatalf("unconfirmed destination's notification: %+v", n)
		}
	}
	for i := range 3 {
		e := alice.waitFor(contains("matrix message " + strconv.Itoa(i)))
		if !strings.HasPrefix(e.Body, "[bodhi] ") || !strings.Contains(e.FormattedBody, `<a href="https://bodhi.fedoraproject.org/updates/FEDORA-2026-1">`) ||
			!strings.Contains(e.Body, "(why: http://fmn.test/notifications/") || !strings.Contains(e.FormattedBody, `<a href="http://fmn.test/notifications/`) {
			t.Fatalf("message %+v", e)
		}
	}

	// A worker killed after the homeserver took the message: the retry
	// sends it again with the same transaction id, and it shows once.
	room, _ := h.St.MatrixRoom(context.Background(), da.ID)
	h.BeforeCommit = func(ctx context.Context, tx pgx.Tx, ids []int64) error {
		n := fmn.Notification{ID: ids[0], Message: fmn.Message{App: "bodhi", Summary: "sent before the crash"}}
		if err := client.Send(ctx, room, "fmn.n."+strconv.FormatInt(ids[0], 10), NotificationMessage(n, "http://fmn.test")); err != nil {
			return err
		}
		return deliverytest.AsInterrupted(ctx, tx, ids)
	}
	again := h.Notify(deliverytest.Bodhi("sent before the crash"), h.Destination(da.ID))
	h.BeforeCommit = nil
	h.WaitStatus(again[0], 30*time.Second, fmn.StatusSent)
	marker := h.Notify(deliverytest.Bodhi("after the crash"), h.Destination(da.ID))
	h.WaitStatus(marker[0], 30*time.Second, fmn.StatusSent)
	alice.waitFor(contains("after the crash"))
	if n := alice.count("sent before the crash"); n != 1 {
		t.Fatalf("the resent notification shows %d times, want 1", n)
	}
	for i := range 3 {
		if n := alice.count("matrix message " + strconv.Itoa(i)); n != 1 {
			t.Fatalf("message %d shows %d times", i, n)
		}
	}
	if n := bob.count("matrix message"); n != 0 {
		t.Fatalf("the unconfirmed user got %d notifications", n)
	}

	// Leaving the room: the next notification comes in a new one.
	alice.u.Leave(t, room)
	deadline = time.Now().Add(30 * time.Second)
	for {
		if r, _ := h.St.MatrixRoom(context.Background(), da.ID); r == "" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the room the user left is still remembered")
		}
		time.Sleep(50 * time.Millisecond) // polling the database with a deadline
	}
	back := h.Notify(deliverytest.Bodhi("in a new room"), h.Destination(da.ID))
	h.WaitStatus(back[0], 30*time.Second, fmn.StatusSent)
	if e := alice.waitFor(contains("in a new room")); e.Room == room {
		t.Fatal("sent to the room the user left")
	}

	// stop ends delivery.
	newRoom, _ := h.St.MatrixRoom(context.Background(), da.ID)
	alice.u.Say(t, newRoom, "stop")
	alice.waitFor(contains("Stopped: no more fmn notifications to this account"))
	if d := h.Destination(da.ID); d.Enabled {
		t.Fatalf("after stop: %+v", d)
	}
	after := h.Notify(deliverytest.Bodhi("after stop"), h.Destination(da.ID))
	if n := h.WaitStatus(after[0], 30*time.Second, fmn.StatusSkipped); !strings.Contains(n.Error, "disabled") {
		t.Fatalf("after stop: %+v", n)
	}
}

// TestMatrixRateLimit: a 429 with retry_after_ms is read as a wait of that
// length, not a failure.
func TestMatrixRateLimit(t *testing.T) {
	ch := &Channel{}
	v := ch.Classify(&APIError{Status: 429, Code: "M_LIMIT_EXCEEDED", RetryAfter: 2500 * time.Millisecond})
	if v.Outcome != delivery.RateLimited || v.RetryAfter != 2500*time.Millisecond {
		t.Fatalf("429: %+v", v)
	}
	if v := ch.Classify(&APIError{Status: 502}); v.Outcome != delivery.Temporary {
		t.Fatalf("502: %+v", v)
	}
}

// TestSignInRefused: what fails the start (the homeserver said no) and
// what is waited out (no answer, an error of the homeserver's own); a job
// finding the bot not signed in yet waits without spending an attempt.
func TestSignInRefused(t *testing.T) {
	for _, c := range []struct {
		err  error
		want bool
	}{
		{&APIError{Status: 401, Code: "M_UNKNOWN_TOKEN"}, true},
		{&APIError{Status: 403, Code: "M_FORBIDDEN"}, true},
		{&APIError{Status: 404, Code: "M_UNRECOGNIZED"}, true},
		{&APIError{Status: 429, Code: "M_LIMIT_EXCEEDED"}, false},
		{&APIError{Status: 408}, false},
		{&APIError{Status: 502}, false},
		{context.DeadlineExceeded, false},
		{errors.New("dial tcp: connection refused"), false},
	} {
		if got := Refused(c.err); got != c.want {
			t.Errorf("Refused(%v) = %v, want %v", c.err, got, c.want)
		}
	}
	s := &Session{}
	// A session never signed in.
	_, _, err := s.Current()
	if v := (&Channel{}).Classify(err); !errors.Is(err, ErrSignedOut) || v.Outcome != delivery.RateLimited || v.RetryAfter <= 0 {
		t.Fatalf("a send before the sign-in: %v read as %+v", err, v)
	}
}
