package irc_test

import (
	"context"
	"fmn/delivery/deliverytest"
	"fmn/delivery/irc"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"fmn"
	"fmn/delivery"
	"fmn/delivery/irc/irctest"
	"fmn/store"
)

var confirmCode = regexp.MustCompile(`/confirm/([A-Za-z0-9_-]{16,}) .*confirm ([A-Za-z0-9_-]{16,})`)

// startBot connects a bot to srv and waits until it is registered.
func startBot(t testing.TB, h *deliverytest.Harness, srv *irctest.Server, nick string) *irc.Bot {
	t.Helper()
	bot := &irc.Bot{
		Settings: irc.Settings{URL: srv.URL(), Nick: nick, BaseURL: "http://fmn.test"},
		Commands: &delivery.Commands{Kind: fmn.KindIRC, Store: h.St, BaseURL: "http://fmn.test", Log: h.Log}, Log: h.Log,
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- bot.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("bot: %v", err)
		}
	})
	select {
	case <-bot.Connected():
	case <-time.After(20 * time.Second):
		t.Fatal("bot did not connect to ngircd")
	}
	h.Start((&irc.Channel{Bot: bot}).Route())
	return bot
}

func within(d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	_ = cancel // released when the deadline passes; tests are short
	return ctx
}

func has(s string) func(irctest.PM) bool {
	return func(p irctest.PM) bool { return strings.Contains(p.Text, s) }
}

// TestIRCDelivery is the IRC acceptance against a real ngircd with real IRC
// clients: confirmation by reply, one PM per notification, IRC-safe lines,
// an unconfirmed nick hearing only its confirmation, bursts folded into an
// "N more" line, and the bot's commands (stop ends delivery).
func TestIRCDelivery(t *testing.T) {
	t.Parallel()
	srv := irctest.Start(t)
	h := deliverytest.New(t)
	// Someone sits on the bot's nick: the bot must register as a variant.
	srv.Connect(t, "fmnbot")
	bot := startBot(t, h, srv, "fmnbot")
	if bot.Nick() == "fmnbot" || !strings.HasPrefix(bot.Nick(), "fmnbot") {
		t.Fatalf("bot nick %q with fmnbot taken", bot.Nick())
	}
	alice := srv.Connect(t, "alice")
	bob := srv.Connect(t, "bob")

	aliceID, bobID := h.User("alice"), h.User("bob")
	// Alice adds her nick with other capitals: IRC nicks are case-insensitive.
	da := h.AddDestination(aliceID, fmn.KindIRC, "Alice")
	db := h.AddDestination(bobID, fmn.KindIRC, "bob")

	pm, ok := alice.WaitFor(within(30*time.Second), has("/confirm/"))
	if !ok {
		t.Fatalf("alice got no confirmation; got %+v", alice.PMs())
	}
	m := confirmCode.FindStringSubmatch(pm.Text)
	if m == nil || m[1] != m[2] || !strings.Contains(pm.Text, "http://fmn.test/confirm/"+m[1]) {
		t.Fatalf("confirmation %q lacks the link and the code", pm.Text)
	}
	if pm.From != bot.Nick() {
		t.Fatalf("confirmation from %q, want the bot %q", pm.From, bot.Nick())
	}
	if _, ok := bob.WaitFor(within(30*time.Second), has("/confirm/")); !ok {
		t.Fatalf("bob got no confirmation")
	}

	// A wrong code, and bob saying alice's code, change nothing.
	if err := bob.Say(bot.Nick(), "confirm "+m[1]); err != nil {
		t.Fatal(err)
	}
	if _, ok := bob.WaitFor(within(20*time.Second), has("wrong or has expired")); !ok {
		t.Fatalf("bob's use of alice's code not refused: %+v", bob.PMs())
	}
	if err := alice.Say(bot.Nick(), "confirm "+m[1]); err != nil {
		t.Fatal(err)
	}
	if _, ok := alice.WaitFor(within(20*time.Second), has("Confirmed")); !ok {
		t.Fatalf("no confirmation reply: %+v", alice.PMs())
	}
	if !h.Destination(da.ID).Confirmed || h.Destination(db.ID).Confirmed {
		t.Fatal("after alice's reply: alice must be confirmed, bob not")
	}

	// Two notifications, one of them hostile: CR LF, NUL, colour codes and
	// an attempt at a second IRC command.
	before := len(alice.PMs())
	ids1 := h.Notify(deliverytest.Bodhi("kernel-6.1 pushed to stable"), h.Destination(da.ID), h.Destination(db.ID))
	ids2 := h.Notify(deliverytest.Bodhi("evil\r\nPRIVMSG #ops :pwned\x01 \x0304red\x7f\x03 "+strings.Repeat("word ", 200)), h.Destination(da.ID), h.Destination(db.ID))
	pms, ok := alice.WaitPMs(within(30*time.Second), before+2)
	if !ok {
		t.Fatalf("alice got %d notifications, want 2: %+v", len(pms)-before, pms[before:])
	}
	got := pms[before:]
	if strings.HasPrefix(got[0].Text, "[bodhi] evil") {
		got[0], got[1] = got[1], got[0] // two jobs, no order between them
	}
	if got[0].Text != fmt.Sprintf("[bodhi] kernel-6.1 pushed to stable — https://bodhi.fedoraproject.org/updates/FEDORA-2026-1 (why: http://fmn.test/notifications/%d)", ids1[0]) {
		t.Fatalf("first line %q", got[0].Text)
	}
	evil := got[1].Text
	if strings.ContainsAny(evil, "\r\n\x00\x01\x03\x7f") || !strings.HasPrefix(evil, "[bodhi] evil PRIVMSG #ops :pwned red word") ||
		!strings.HasSuffix(evil, fmt.Sprintf("… — https://bodhi.fedoraproject.org/updates/FEDORA-2026-1 (why: http://fmn.test/notifications/%d)", ids2[0])) {
		t.Fatalf("hostile summary sent as %q", evil)
	}
	// The line the recipient got, with the real prefix, is within 512 bytes.
	if n := len(":" + bot.Nick() + "!~fmn@127.0.0.1 PRIVMSG alice :" + evil + "\r\n"); n > 512 {
		t.Fatalf("relayed line is %d bytes", n)
	}
	for _, id := range []int64{ids1[0], ids2[0]} {
		h.WaitStatus(id, 10*time.Second, fmn.StatusSent)
	}
	for _, id := range []int64{ids1[1], ids2[1]} {
		if n := h.WaitStatus(id, 10*time.Second, fmn.StatusDead); n.Error != "destination not confirmed" {
			t.Fatalf("bob's notification: %+v", n)
		}
	}

	// A burst: alice has had 2 lines this minute, so one more comes alone
	// and the rest fold into one "N more" line. Nothing is lost: the lines
	// account for all twelve.
	before = len(alice.PMs())
	var burst []int64
	for i := range 12 {
		burst = append(burst, h.Notify(deliverytest.Bodhi("burst update "+strconv.Itoa(i)), h.Destination(da.ID))...)
	}
	for _, id := range burst {
		h.WaitStatus(id, 60*time.Second, fmn.StatusSent)
	}
	alice.WaitFor(within(10*time.Second), has(" more: http://fmn.test/"))
	counted, lines := 0, 0
	more := regexp.MustCompile(`^(\d+) more: http://fmn\.test/$`)
	for _, p := range alice.PMs()[before:] {
		lines++
		if mm := more.FindStringSubmatch(p.Text); mm != nil {
			n, _ := strconv.Atoi(mm[1])
			counted += n
		} else if strings.HasPrefix(p.Text, "[bodhi] burst update ") {
			counted++
		} else {
			t.Fatalf("unexpected line in burst: %q", p.Text)
		}
	}
	if counted != 12 || lines > 3 {
		t.Fatalf("burst of 12 arrived as %d lines accounting for %d: %+v", lines, counted, alice.PMs()[before:])
	}

	// Commands.
	if err := alice.Say(bot.Nick(), "status"); err != nil {
		t.Fatal(err)
	}
	if _, ok := alice.WaitFor(within(20*time.Second), has("For alice: active.")); !ok {
		t.Fatalf("status reply: %+v", alice.PMs())
	}
	if err := alice.Say(bot.Nick(), "mute 2h"); err != nil {
		t.Fatal(err)
	}
	if _, ok := alice.WaitFor(within(20*time.Second), has("Muted until")); !ok {
		t.Fatalf("mute reply: %+v", alice.PMs())
	}
	if d := h.Destination(da.ID); d.MutedUntil == nil || time.Until(*d.MutedUntil) < 119*time.Minute {
		t.Fatalf("muted_until after mute 2h: %v", d.MutedUntil)
	}
	muted := h.Notify(deliverytest.Bodhi("while muted"), h.Destination(da.ID))
	if n := h.WaitStatus(muted[0], 10*time.Second, fmn.StatusSkipped); !strings.HasPrefix(n.Error, "destination muted until") {
		t.Fatalf("muted notification: %+v", n)
	}
	if err := alice.Say(bot.Nick(), "unmute"); err != nil {
		t.Fatal(err)
	}
	if _, ok := alice.WaitFor(within(20*time.Second), has("Unmuted.")); !ok {
		t.Fatalf("unmute reply: %+v", alice.PMs())
	}
	if err := alice.Say(bot.Nick(), "stop"); err != nil {
		t.Fatal(err)
	}
	if _, ok := alice.WaitFor(within(20*time.Second), has("Stopped")); !ok {
		t.Fatalf("stop reply: %+v", alice.PMs())
	}
	if d := h.Destination(da.ID); d.Enabled {
		t.Fatal("destination still enabled after stop")
	}
	before = len(alice.PMs())
	after := h.Notify(deliverytest.Bodhi("after stop"), h.Destination(da.ID))
	if n := h.WaitStatus(after[0], 10*time.Second, fmn.StatusSkipped); n.Error != "destination disabled" {
		t.Fatalf("notification after stop: %+v", n)
	}
	// The worker decided; a line it did send would be in alice's queue
	// before this reply to her.
	if err := alice.Say(bot.Nick(), "help"); err != nil {
		t.Fatal(err)
	}
	if _, ok := alice.WaitFor(within(20*time.Second), has("Commands:")); !ok {
		t.Fatalf("help reply: %+v", alice.PMs())
	}
	for _, p := range alice.PMs()[before:] {
		if strings.Contains(p.Text, "after stop") {
			t.Fatalf("a notification reached alice after stop: %q", p.Text)
		}
	}
	// Bob, never confirmed, heard only his confirmation and the answer to
	// what he said himself.
	for _, p := range bob.PMs() {
		if strings.Contains(p.Text, "[bodhi]") {
			t.Fatalf("unconfirmed bob got %q", p.Text)
		}
	}
}

// TestIRCReconnect: when the server goes away the bot reconnects (with
// backoff), and a notification that came while it was offline is retried
// and delivered, not lost.
func TestIRCReconnect(t *testing.T) {
	t.Parallel()
	srv := irctest.Start(t)
	h := deliverytest.New(t)
	bot := startBot(t, h, srv, "fmnbot")
	d := h.ConfirmedDestination(h.User("carol"), fmn.KindIRC, "carol")

	srv.Stop()
	deadline := time.Now().Add(20 * time.Second)
	for bot.Online() {
		if time.Now().After(deadline) {
			t.Fatal("the bot did not notice the server going away")
		}
		time.Sleep(20 * time.Millisecond) // polling a flag with a deadline
	}
	id := h.Notify(deliverytest.Bodhi("while offline"), d)[0]
	// The job waits (snoozed, no attempt spent) while the bot is offline.
	deadline = time.Now().Add(20 * time.Second)
	for {
		var state string
		var attempt int
		err := h.St.Pool.QueryRow(context.Background(), `SELECT state, attempt FROM river_job
			WHERE kind = 'notify' AND queue = 'irc' AND (args->>'notification_id')::bigint = $1`, id).Scan(&state, &attempt)
		if err != nil {
			t.Fatal(err)
		}
		if state == "scheduled" && attempt == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("job while offline: %s, attempt %d; want scheduled, attempt 0", state, attempt)
		}
		time.Sleep(20 * time.Millisecond) // polling the job table with a deadline
	}
	srv.Restart(t)
	select {
	case <-bot.Connected():
	case <-time.After(30 * time.Second):
		t.Fatal("the bot did not reconnect")
	}
	carol := srv.Connect(t, "carol")
	// The snoozed job comes back 15 s after it was put off.
	if _, ok := carol.WaitFor(within(60*time.Second), has("[bodhi] while offline")); !ok {
		t.Fatalf("notification from while offline not delivered after reconnecting: %+v", carol.PMs())
	}
	h.WaitStatus(id, 10*time.Second, fmn.StatusSent)
}

// TestIRCOneBotPerNetwork: two processes' bots share one lock; one
// connects, the other waits and takes over when the first stops.
func TestIRCOneBotPerNetwork(t *testing.T) {
	t.Parallel()
	srv := irctest.Start(t)
	h := deliverytest.New(t)
	type run struct {
		bot  *irc.Bot
		lead chan bool
		stop func() error
	}
	start := func(nick string) *run {
		r := &run{lead: make(chan bool, 4)}
		r.bot = &irc.Bot{
			Settings: irc.Settings{URL: srv.URL(), Nick: nick, BaseURL: "http://fmn.test"},
			Commands: &delivery.Commands{Kind: fmn.KindIRC, Store: h.St, BaseURL: "http://fmn.test", Log: h.Log}, Log: h.Log,
			Lock: func(ctx context.Context) (<-chan struct{}, func(), error) {
				return h.St.HoldLock(ctx, store.LockIRCBot, 100*time.Millisecond)
			},
			OnLead: func(leading bool) { r.lead <- leading },
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- r.bot.Run(ctx) }()
		var once sync.Once
		var err error
		r.stop = func() error {
			once.Do(func() { cancel(); err = <-done })
			return err
		}
		t.Cleanup(func() { r.stop() })
		return r
	}
	first := start("botone")
	select {
	case <-first.bot.Connected():
	case <-time.After(20 * time.Second):
		t.Fatal("first bot did not connect")
	}
	if !<-first.lead {
		t.Fatal("first bot not told it leads")
	}
	second := start("bottwo")
	// The second keeps trying the lock every 100 ms; for a second it must
	// stay off the network.
	for end := time.Now().Add(time.Second); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
		if second.bot.Online() {
			t.Fatal("two bots online at once")
		}
	}
	if err := first.stop(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-second.bot.Connected():
	case <-time.After(20 * time.Second):
		t.Fatal("second bot did not take over")
	}
	if !<-second.lead {
		t.Fatal("second bot not told it leads")
	}
}

// TestIRCKeepAlive: a server that PINGs idle clients every couple of
// seconds keeps the bot, which answers, on one connection.
func TestIRCKeepAlive(t *testing.T) {
	t.Parallel()
	srv := irctest.StartWith(t, irctest.Options{PingTimeout: 2, PongTimeout: 2})
	h := deliverytest.New(t)
	bot := startBot(t, h, srv, "fmnbot")
	deadline := time.Now().Add(30 * time.Second)
	for _, pings := bot.Stats(); pings < 2; _, pings = bot.Stats() {
		if time.Now().After(deadline) {
			t.Fatalf("the server sent no keep-alive PINGs in 30 s (%d)", pings)
		}
		time.Sleep(50 * time.Millisecond) // polling a counter with a deadline
	}
	if connects, _ := bot.Stats(); connects != 1 || !bot.Online() {
		t.Fatalf("after answering PINGs: %d connections, online %v", connects, bot.Online())
	}
	d := h.ConfirmedDestination(h.User("dave"), fmn.KindIRC, "dave")
	dave := srv.Connect(t, "dave")
	h.Notify(deliverytest.Bodhi("still here"), d)
	if _, ok := dave.WaitFor(within(30*time.Second), has("still here")); !ok {
		t.Fatal("no delivery after the keep-alives")
	}
}

// TestIRCInterruptedNotResent: a notification a killed worker left
// 'sending' (its line may have gone out) is recorded unknown and not sent
// again. (Before issue 12 the IRC worker claimed 'sending' rows again and
// sent a second line.)
func TestIRCInterruptedNotResent(t *testing.T) {
	t.Parallel()
	srv := irctest.Start(t)
	h := deliverytest.New(t)
	bot := startBot(t, h, srv, "fmnbot")
	carol := srv.Connect(t, "carol")
	d := h.ConfirmedDestination(h.User("carol"), fmn.KindIRC, "carol")
	h.BeforeCommit = deliverytest.AsInterrupted
	ids := h.Notify(deliverytest.Bodhi("said before the crash"), d)
	h.BeforeCommit = nil
	if n := h.WaitStatus(ids[0], 20*time.Second, fmn.StatusUnknown, fmn.StatusSent); n.Status != fmn.StatusUnknown {
		t.Fatalf("interrupted notification: %+v", n)
	}
	next := h.Notify(deliverytest.Bodhi("after the crash"), d)
	h.WaitStatus(next[0], 20*time.Second, fmn.StatusSent)
	if _, ok := carol.WaitFor(within(10*time.Second), has("after the crash")); !ok {
		t.Fatalf("no line after the crash: %+v", carol.PMs())
	}
	for _, p := range carol.PMs() {
		if strings.Contains(p.Text, "before the crash") && p.From == bot.Nick() {
			t.Fatalf("the interrupted notification was sent again: %q", p.Text)
		}
	}
}
