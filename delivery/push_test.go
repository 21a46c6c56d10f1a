package delivery_test

import (
	"context"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"fmn/delivery"
	"fmn/delivery/pushtest"
)

// startPush sets up VAPID keys (made and kept in the database, as on a
// first start), a push service, and the push workers.
func startPush(t testing.TB, h *harness) *pushtest.Service {
	t.Helper()
	ctx := context.Background()
	pub, priv, err := delivery.VAPIDKeys(ctx, h.st, "", "")
	if err != nil {
		t.Fatal(err)
	}
	// A second start finds the same pair.
	if pub2, priv2, err := delivery.VAPIDKeys(ctx, h.st, "", ""); err != nil || pub2 != pub || priv2 != priv {
		t.Fatalf("VAPID keys changed on the second start: %v", err)
	}
	pusher := &delivery.Pusher{Settings: delivery.PushSettings{
		Subject: "mailto:fmn@example.org", BaseURL: "http://fmn.test", PublicKey: pub, PrivateKey: priv}}
	h.start(delivery.Workers{
		Push:        &delivery.PushWorker{Store: h.st, Pusher: pusher, Metrics: h.metrics, Log: h.log},
		PushConfirm: &delivery.PushConfirmWorker{Store: h.st, Pusher: pusher, Log: h.log},
	})
	return pushtest.Start(t, pub, "mailto:fmn@example.org")
}

// TestPushDelivery is the push acceptance: every notification reaches a
// loopback push endpoint with a valid VAPID header and a payload that
// decrypts; a subscription made through the API gets its confirmation
// first and nothing else until confirmed.
func TestPushDelivery(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	ps := startPush(t, h)
	alice := h.user("alice")

	b1, addr1 := ps.Subscribe()
	d1 := h.confirmedDestination(alice, "push", addr1) // from a signed-in browser
	b2, addr2 := ps.Subscribe()
	d2 := h.addDestination(alice, "push", addr2) // through the API: confirm first

	conf := ps.Wait(b2, 1, 30*time.Second)[0]
	link, _ := conf.Payload["link"].(string)
	code := regexp.MustCompile(`^http://fmn\.test/confirm/([A-Za-z0-9_-]{16,})$`).FindStringSubmatch(link)
	if code == nil || conf.Urgency != "high" {
		t.Fatalf("confirmation push %+v", conf)
	}

	const n = 5
	var ids [][]int64
	for i := range n {
		ids = append(ids, h.notify(bodhi("update "+string(rune('a'+i))), h.destination(d1.ID), h.destination(d2.ID)))
	}
	got := ps.Wait(b1, n, 30*time.Second)
	seen := map[string]bool{}
	for _, p := range got {
		if p.Payload["title"] != "bodhi" || p.Payload["link"] != "https://bodhi.fedoraproject.org/updates/FEDORA-2026-1" ||
			p.Payload["app"] != "bodhi" || p.Payload["icon"] != "http://fmn.test/static/favicon.svg" ||
			p.TTL != 86400 || p.Urgency != "normal" {
			t.Fatalf("push %+v", p)
		}
		seen[p.Payload["body"].(string)] = true
	}
	if len(seen) != n {
		t.Fatalf("bodies %v, want %d different", seen, n)
	}
	for _, pair := range ids {
		h.waitStatus(pair[0], 10*time.Second, "sent")
		if st := h.waitStatus(pair[1], 10*time.Second, "dead"); st.Error != "destination not confirmed" {
			t.Fatalf("unconfirmed push: %+v", st)
		}
	}
	if got := ps.Pushes(b2); len(got) != 1 {
		t.Fatalf("unconfirmed subscription got %d pushes, want only its confirmation", len(got))
	}

	// Opening the link confirms it; then it receives notifications.
	if _, err := h.st.ConfirmByCode(context.Background(), code[1]); err != nil {
		t.Fatal(err)
	}
	h.notify(bodhi("after confirming"), h.destination(d2.ID))
	if p := ps.Wait(b2, 2, 30*time.Second)[1]; p.Payload["body"] != "after confirming" {
		t.Fatalf("push after confirming: %+v", p)
	}
}

// TestPushFailures: 404/410 disable the destination, 429 waits as told,
// 5xx is retried with backoff, another 4xx gives up.
func TestPushFailures(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	ps := startPush(t, h)
	alice := h.user("alice")

	_, goneAddr := ps.Subscribe(http.StatusGone)
	gone := h.confirmedDestination(alice, "push", goneAddr)
	busyB, busyAddr := ps.Subscribe(http.StatusTooManyRequests)
	busy := h.confirmedDestination(alice, "push", busyAddr)
	flakyB, flakyAddr := ps.Subscribe(http.StatusServiceUnavailable)
	flaky := h.confirmedDestination(alice, "push", flakyAddr)
	_, badAddr := ps.Subscribe(http.StatusBadRequest)
	bad := h.confirmedDestination(alice, "push", badAddr)

	ids := h.notify(bodhi("hello"), gone, busy, flaky, bad)
	if n := h.waitStatus(ids[0], 20*time.Second, "dead"); !strings.Contains(n.Error, "410") {
		t.Fatalf("410: %+v", n)
	}
	if d := h.destination(gone.ID); d.Enabled || !strings.Contains(d.FailingReason, "gone") {
		t.Fatalf("destination after 410: %+v", d)
	}
	h.waitStatus(ids[1], 20*time.Second, "sent")
	if len(ps.Pushes(busyB)) != 1 {
		t.Fatal("429 then accepted: want one push")
	}
	// The first retry comes after RetryPolicy's 10 s.
	h.waitStatus(ids[2], 40*time.Second, "sent")
	if len(ps.Pushes(flakyB)) != 1 {
		t.Fatal("503 then accepted: want one push")
	}
	if n := h.waitStatus(ids[3], 20*time.Second, "dead"); !strings.Contains(n.Error, "400") {
		t.Fatalf("400: %+v", n)
	}
	if d := h.destination(bad.ID); d.FailingReason == "" {
		t.Fatalf("destination after 400 not marked failing: %+v", d)
	}
}
