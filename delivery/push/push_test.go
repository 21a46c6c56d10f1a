package push_test

import (
	"context"
	"fmn/delivery/deliverytest"
	"fmn/delivery/push"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"fmn"
	"fmn/delivery/push/pushtest"
)

// startPush sets up VAPID keys (made and kept in the database, as on a
// first start), a push service, and the push workers.
func startPush(t testing.TB, h *deliverytest.Harness) *pushtest.Service {
	t.Helper()
	ctx := context.Background()
	pub, priv, err := push.VAPIDKeys(ctx, h.St, "", "")
	if err != nil {
		t.Fatal(err)
	}
	// A second start finds the same pair.
	if pub2, priv2, err := push.VAPIDKeys(ctx, h.St, "", ""); err != nil || pub2 != pub || priv2 != priv {
		t.Fatalf("VAPID keys changed on the second start: %v", err)
	}
	// The test push service is plain http on loopback: allowed here only.
	pusher := &push.Pusher{Settings: push.Settings{
		Subject: "mailto:fmn@example.org", BaseURL: "http://fmn.test", PublicKey: pub, PrivateKey: priv},
		Guard: push.Guard{AllowPrivate: true}}
	h.Start(pusher.Route())
	return pushtest.Start(t, pub, "mailto:fmn@example.org")
}

// TestPushDelivery is the push acceptance: every notification reaches a
// loopback push endpoint with a valid VAPID header and a payload that
// decrypts; a subscription made through the API gets its confirmation
// first and nothing else until confirmed.
func TestPushDelivery(t *testing.T) {
	t.Parallel()
	h := deliverytest.New(t)
	ps := startPush(t, h)
	alice := h.User("alice")

	b1, addr1 := ps.Subscribe()
	d1 := h.ConfirmedDestination(alice, fmn.KindPush, addr1) // from a signed-in browser
	b2, addr2 := ps.Subscribe()
	d2 := h.AddDestination(alice, fmn.KindPush, addr2) // through the API: confirm first

	conf := ps.Wait(b2, 1, 30*time.Second)[0]
	link, _ := conf.Payload["link"].(string)
	code := regexp.MustCompile(`^http://fmn\.test/confirm/([A-Za-z0-9_-]{16,})$`).FindStringSubmatch(link)
	if code == nil || conf.Urgency != "high" {
		t.Fatalf("confirmation push %+v", conf)
	}

	const n = 5
	var ids [][]int64
	for i := range n {
		ids = append(ids, h.Notify(deliverytest.Bodhi("update "+string(rune('a'+i))), h.Destination(d1.ID), h.Destination(d2.ID)))
	}
	got := ps.Wait(b1, n, 30*time.Second)
	seen := map[string]bool{}
	for _, p := range got {
		if p.Payload["title"] != "bodhi" || p.Payload["link"] != "https://bodhi.fedoraproject.org/updates/FEDORA-2026-1" ||
			p.Payload["app"] != "bodhi" || p.Payload["icon"] != "http://fmn.test/static/favicon.svg" ||
			!strings.HasPrefix(fmt.Sprint(p.Payload["why"]), "http://fmn.test/notifications/") ||
			p.TTL != 86400 || p.Urgency != "normal" {
			t.Fatalf("push %+v", p)
		}
		seen[p.Payload["body"].(string)] = true
	}
	if len(seen) != n {
		t.Fatalf("bodies %v, want %d different", seen, n)
	}
	for _, pair := range ids {
		h.WaitStatus(pair[0], 10*time.Second, fmn.StatusSent)
		if st := h.WaitStatus(pair[1], 10*time.Second, fmn.StatusDead); st.Error != "destination not confirmed" {
			t.Fatalf("unconfirmed push: %+v", st)
		}
	}
	if got := ps.Pushes(b2); len(got) != 1 {
		t.Fatalf("unconfirmed subscription got %d pushes, want only its confirmation", len(got))
	}

	// Opening the link confirms it; then it receives notifications.
	if _, err := h.St.ConfirmByCode(context.Background(), code[1]); err != nil {
		t.Fatal(err)
	}
	h.Notify(deliverytest.Bodhi("after confirming"), h.Destination(d2.ID))
	if p := ps.Wait(b2, 2, 30*time.Second)[1]; p.Payload["body"] != "after confirming" {
		t.Fatalf("push after confirming: %+v", p)
	}
}

// TestPushFailures: 404/410 disable the destination, 429 waits as told,
// 5xx is retried with backoff, another 4xx gives up.
func TestPushFailures(t *testing.T) {
	t.Parallel()
	h := deliverytest.New(t)
	ps := startPush(t, h)
	alice := h.User("alice")

	_, goneAddr := ps.Subscribe(http.StatusGone)
	gone := h.ConfirmedDestination(alice, fmn.KindPush, goneAddr)
	busyB, busyAddr := ps.Subscribe(http.StatusTooManyRequests)
	busy := h.ConfirmedDestination(alice, fmn.KindPush, busyAddr)
	flakyB, flakyAddr := ps.Subscribe(http.StatusServiceUnavailable)
	flaky := h.ConfirmedDestination(alice, fmn.KindPush, flakyAddr)
	_, badAddr := ps.Subscribe(http.StatusBadRequest)
	bad := h.ConfirmedDestination(alice, fmn.KindPush, badAddr)

	ids := h.Notify(deliverytest.Bodhi("hello"), gone, busy, flaky, bad)
	if n := h.WaitStatus(ids[0], 20*time.Second, fmn.StatusDead); !strings.Contains(n.Error, "410") {
		t.Fatalf("410: %+v", n)
	}
	if d := h.Destination(gone.ID); !strings.Contains(d.FailingReason, "gone") {
		t.Fatalf("destination after 410: %+v", d)
	}
	h.WaitStatus(ids[1], 20*time.Second, fmn.StatusSent)
	if len(ps.Pushes(busyB)) != 1 {
		t.Fatal("429 then accepted: want one push")
	}
	// The first retry comes after RetryPolicy's 10 s.
	h.WaitStatus(ids[2], 40*time.Second, fmn.StatusSent)
	if len(ps.Pushes(flakyB)) != 1 {
		t.Fatal("503 then accepted: want one push")
	}
	if n := h.WaitStatus(ids[3], 20*time.Second, fmn.StatusDead); !strings.Contains(n.Error, "400") {
		t.Fatalf("400: %+v", n)
	}
	if d := h.Destination(bad.ID); d.FailingReason == "" {
		t.Fatalf("destination after 400 not marked failing: %+v", d)
	}
}

// TestPushFailingNotSent: a push destination marked failing (a permanent
// answer earlier) is not pushed to again: its notifications are dead with
// the reason, and the push service hears nothing. (Before issue 12 the
// push worker checked only confirmed, enabled and muted.)
func TestPushFailingNotSent(t *testing.T) {
	t.Parallel()
	h := deliverytest.New(t)
	ps := startPush(t, h)
	b, addr := ps.Subscribe()
	d := h.ConfirmedDestination(h.User("alice"), fmn.KindPush, addr)
	if err := h.St.SetDestinationFailing(context.Background(), d.ID, "push service answered 400: bad"); err != nil {
		t.Fatal(err)
	}
	ids := h.Notify(deliverytest.Bodhi("must not be pushed"), d)
	if n := h.WaitStatus(ids[0], 20*time.Second, fmn.StatusDead, fmn.StatusSent); n.Status != fmn.StatusDead || !strings.Contains(n.Error, "failing") {
		t.Fatalf("notification to a failing destination: %+v", n)
	}
	if got := ps.Pushes(b); len(got) != 0 {
		t.Fatalf("%d pushes to a failing destination", len(got))
	}
}

// TestPushInterruptedNotResent: a notification a killed worker left
// 'sending' (the push may have reached the service) is recorded unknown and
// not pushed again. (Before issue 12 push claimed 'sending' rows again and
// pushed a second copy.)
func TestPushInterruptedNotResent(t *testing.T) {
	t.Parallel()
	h := deliverytest.New(t)
	ps := startPush(t, h)
	b, addr := ps.Subscribe()
	d := h.ConfirmedDestination(h.User("alice"), fmn.KindPush, addr)
	h.BeforeCommit = deliverytest.AsInterrupted
	ids := h.Notify(deliverytest.Bodhi("pushed before the crash"), d)
	h.BeforeCommit = nil
	if n := h.WaitStatus(ids[0], 20*time.Second, fmn.StatusUnknown, fmn.StatusSent); n.Status != fmn.StatusUnknown {
		t.Fatalf("interrupted notification: %+v", n)
	}
	// The next one goes out: the channel works, it only did not repeat.
	next := h.Notify(deliverytest.Bodhi("after"), d)
	h.WaitStatus(next[0], 20*time.Second, fmn.StatusSent)
	if got := ps.Pushes(b); len(got) != 1 {
		t.Fatalf("%d pushes, want 1 (the second notification only)", len(got))
	}
}

// TestPushBurstToOneDestination: a burst to one destination at a push
// service that answers at once arrives whole, one push at a time, and the
// pushes that waited for the destination's turn are no delivery failures:
// fmn_delivery_failures_total{channel="push"} stays 0 (each such wait was
// counted as a failure before, which made the failing-deliveries alert
// fire for a healthy push service).
func TestPushBurstToOneDestination(t *testing.T) {
	t.Parallel()
	h := deliverytest.New(t)
	ps := startPush(t, h)
	b, addr := ps.Subscribe()
	d := h.ConfirmedDestination(h.User("alice"), fmn.KindPush, addr)
	const n = 40
	var ids []int64
	for i := range n {
		ids = append(ids, h.Notify(deliverytest.Bodhi(fmt.Sprintf("burst %d", i)), d)...)
	}
	if got := ps.Wait(b, n, 90*time.Second); len(got) != n {
		t.Fatalf("%d of %d pushed", len(got), n)
	}
	for _, id := range ids {
		h.WaitStatus(id, 10*time.Second, fmn.StatusSent)
	}
	if f := h.Count(h.Metrics.Failures, "push"); f != 0 {
		t.Errorf("fmn_delivery_failures_total{channel=push} = %v after a burst to a healthy push service, want 0", f)
	}
	var snoozes int
	if err := h.St.Pool.QueryRow(context.Background(),
		`SELECT coalesce(sum((metadata->>'snoozes')::int), 0) FROM river_job WHERE kind = 'notify'`).Scan(&snoozes); err != nil {
		t.Fatal(err)
	}
	t.Logf("%d pushes; jobs put off for their turn %d times, waits counted %v", n, snoozes,
		h.Count(h.Metrics.Waits, "push"))
}
