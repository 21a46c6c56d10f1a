package push_test

import (
	"context"
	"crypto/ecdh"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"fmn"
	"fmn/delivery/deliverytest"
	"fmn/delivery/push"
	"fmn/delivery/push/pushtest"
)

// subscriptionAt is a browser subscription's JSON for an endpoint, with
// real keys (nobody decrypts what is sent there).
func subscriptionAt(t testing.TB, endpoint string) string {
	t.Helper()
	k, err := ecdh.P256().GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	auth := make([]byte, 16)
	rand.Read(auth)
	b, _ := json.Marshal(map[string]any{"endpoint": endpoint, "keys": map[string]string{
		"p256dh": base64.RawURLEncoding.EncodeToString(k.PublicKey().Bytes()), "auth": base64.RawURLEncoding.EncodeToString(auth)}})
	return string(b)
}

// startGuarded is startPush with the guard as given.
func startGuarded(t testing.TB, h *deliverytest.Harness, g push.Guard) *pushtest.Service {
	t.Helper()
	pub, priv, err := push.VAPIDKeys(context.Background(), h.St, "", "")
	if err != nil {
		t.Fatal(err)
	}
	pusher := &push.Pusher{Settings: push.Settings{Subject: "mailto:fmn@example.org", BaseURL: "http://fmn.test",
		PublicKey: pub, PrivateKey: priv}, Guard: g}
	h.Start(pusher.Route())
	return pushtest.Start(t, pub, "mailto:fmn@example.org")
}

// TestFinding1PushSSRF: with the guard on (the default), a push
// destination aimed at loopback, or at a name resolving to it, reaches
// nothing, and the reason in failing_reason is fmn's own; a redirect is not
// followed (to any address); a push service's answer body never reaches
// the user; no proxy from the environment is used. Before, the push client
// followed redirects (a 307 kept the POST body) and 200 bytes of any non-2xx
// answer landed in failing_reason.
func TestFinding1PushSSRF(t *testing.T) {
	t.Parallel()
	h := deliverytest.New(t)
	ps := startGuarded(t, h, push.Guard{})
	alice := h.User("alice")

	// A loopback push service: the guard refuses it at dial time, by name
	// (localhost resolves to 127.0.0.1) or by address.
	b, addr := ps.Subscribe()
	var sub fmn.Subscription
	json.Unmarshal([]byte(addr), &sub)
	byName := strings.Replace(addr, "127.0.0.1", "localhost", 1)
	for _, a := range []string{addr, byName} {
		d := h.ConfirmedDestination(alice, fmn.KindPush, a)
		ids := h.Notify(deliverytest.Bodhi("must not arrive"), d)
		n := h.WaitStatus(ids[0], 20*time.Second, fmn.StatusDead, fmn.StatusSent)
		if n.Status != fmn.StatusDead {
			t.Errorf("push to %s: %+v", sub.Endpoint, n)
		}
		if d := h.Destination(d.ID); !strings.Contains(d.FailingReason, "fmn only reaches public push services") {
			t.Errorf("failing_reason %q does not say why", d.FailingReason)
		}
	}
	if got := len(ps.Pushes(b)); got != 0 {
		t.Fatalf("the loopback push service got %d pushes", got)
	}
	if tr := (push.Guard{}).Client(time.Second).Transport.(*http.Transport); tr.Proxy != nil {
		t.Error("the push client takes its proxy from the environment")
	}
}

// TestFinding1PushRedirectAndBody: even where private addresses are
// allowed (so the test can run on loopback), a redirect is not followed
// and an error answer's body is not kept.
func TestFinding1PushRedirectAndBody(t *testing.T) {
	t.Parallel()
	h := deliverytest.New(t)
	ps := startGuarded(t, h, push.Guard{AllowPrivate: true})
	alice := h.User("alice")
	target, targetAddr := ps.Subscribe()
	var targetSub fmn.Subscription
	json.Unmarshal([]byte(targetAddr), &targetSub)
	redirector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, targetSub.Endpoint, http.StatusTemporaryRedirect)
	}))
	defer redirector.Close()
	leaky := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusForbidden)
		w.Write([]byte("AWS_SECRET_ACCESS_KEY=hunter2 internal service says no"))
	}))
	defer leaky.Close()

	red := h.ConfirmedDestination(alice, fmn.KindPush, subscriptionAt(t, redirector.URL+"/push"))
	leak := h.ConfirmedDestination(alice, fmn.KindPush, subscriptionAt(t, leaky.URL+"/push"))
	ids := h.Notify(deliverytest.Bodhi("hello"), red, leak)
	for i, d := range []fmn.Destination{red, leak} {
		n := h.WaitStatus(ids[i], 20*time.Second, fmn.StatusDead, fmn.StatusSent)
		reason := h.Destination(d.ID).FailingReason
		if n.Status != fmn.StatusDead || reason == "" || strings.Contains(reason+n.Error, "hunter2") || strings.Contains(reason+n.Error, "internal service") {
			t.Errorf("destination %d: %+v, failing_reason %q", d.ID, n, reason)
		}
	}
	if got := len(ps.Pushes(target)); got != 0 {
		t.Fatalf("the redirect was followed: the target got %d pushes", got)
	}
	if r := h.Destination(red.ID).FailingReason; !strings.Contains(r, "307") || !strings.Contains(r, "redirect") {
		t.Errorf("redirect's failing_reason: %q", r)
	}
}

// TestFinding5SlowEndpointDelaysOnlyItsOwner: twenty destinations of one
// user at a tarpit (a push service that never answers) hold at most that
// user's share of the push workers; another user's pushes keep flowing.
// Before, each tarpit request held one of the twenty workers for 30 s.
func TestFinding5SlowEndpointDelaysOnlyItsOwner(t *testing.T) {
	t.Parallel()
	h := deliverytest.New(t)
	ps := startGuarded(t, h, push.Guard{AllowPrivate: true})
	var held, peak, seen, first atomic.Int64
	release := make(chan struct{})
	tarpit := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen.Add(1)
		first.CompareAndSwap(0, time.Now().UnixNano())
		n := held.Add(1)
		defer held.Add(-1)
		// The peak counts until shortly before the first push can time out
		// (10 s): after that, a request the client gave up may linger here
		// a moment beside its successor.
		if time.Since(time.Unix(0, first.Load())) < 8*time.Second {
			for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
			}
		}
		select {
		case <-release:
		case <-r.Context().Done():
		case <-time.After(40 * time.Second):
		}
	}))
	defer tarpit.Close()
	defer close(release)

	mallory, alice := h.User("mallory"), h.User("alice")
	var slow []fmn.Destination
	for range 20 {
		slow = append(slow, h.ConfirmedDestination(mallory, fmn.KindPush, subscriptionAt(t, tarpit.URL+"/push")))
	}
	b, addr := ps.Subscribe()
	fast := h.ConfirmedDestination(alice, fmn.KindPush, addr)
	for range 3 {
		h.Notify(deliverytest.Bodhi("to the tarpit"), slow...)
	}
	// Let the tarpit catch what it can before alice's pushes are made.
	deadline := time.Now().Add(10 * time.Second)
	for seen.Load() == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	for i := range 10 {
		h.Notify(deliverytest.Bodhi("for alice "+string(rune('a'+i))), fast)
	}
	if got := ps.Wait(b, 10, 20*time.Second); len(got) < 10 {
		t.Fatalf("alice got %d of 10 pushes while mallory's destinations sat at a tarpit", len(got))
	}
	if n := peak.Load(); n > 2 {
		t.Errorf("the tarpit held %d requests at once, want at most 2 (one user's share)", n)
	}
}
