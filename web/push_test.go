package web

import (
	"context"
	"crypto/ecdh"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"github.com/riverqueue/river"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"fmn/delivery"
	"fmn/delivery/email"
	"fmn/metrics"
	"fmn/store"
	"fmn/store/storetest"
)

func newTestServer(t *testing.T) (*Server, *store.Store, string) {
	t.Helper()
	st := storetest.New(t)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	jobs, err := delivery.NewClient(st.Pool, delivery.Jobs{Register: []func(*river.Workers){(&email.Channel{}).Register}, Log: log}, false)
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(Deps{Store: st, Jobs: jobs, Metrics: metrics.New(), BaseURL: "http://fmn.test", Log: log, VAPIDPublicKey: "BPUBKEY"})
	if err != nil {
		t.Fatal(err)
	}
	u, err := st.EnsureUser(context.Background(), "alice", "")
	if err != nil {
		t.Fatal(err)
	}
	tok, err := st.CreateToken(context.Background(), u.ID, "test")
	if err != nil {
		t.Fatal(err)
	}
	return s, st, tok
}

func subscriptionJSON(t *testing.T) string {
	return subscriptionAt(t, "https://push.example.net/"+rand.Text())
}

// subscriptionAt is a browser's subscription JSON for an endpoint.
func subscriptionAt(t *testing.T, endpoint string) string {
	k, err := ecdh.P256().GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	auth := make([]byte, 16)
	rand.Read(auth)
	b, _ := json.Marshal(map[string]any{"endpoint": endpoint,
		"keys": map[string]string{"p256dh": base64.RawURLEncoding.EncodeToString(k.PublicKey().Bytes()),
			"auth": base64.RawURLEncoding.EncodeToString(auth)}})
	return string(b)
}

// TestDestinationConfirmationByKind: each kind's confirmation goes through
// its own channel, and a push subscription made by a signed-in browser at
// a browser's own push service is confirmed at once (one at another server
// is confirmed by its pushed link, like any other destination).
func TestDestinationConfirmationByKind(t *testing.T) {
	t.Parallel()
	s, st, tok := newTestServer(t)
	h := s.Handler()
	u, err := st.EnsureUser(context.Background(), "alice", "")
	if err != nil {
		t.Fatal(err)
	}
	sess, err := st.CreateSession(context.Background(), u.ID, "")
	if err != nil {
		t.Fatal(err)
	}
	post := func(viaSession bool, body any) (int, map[string]any) {
		b, _ := json.Marshal(body)
		req := httptest.NewRequest("POST", "/api/v1/destinations", strings.NewReader(string(b)))
		if viaSession {
			req.AddCookie(&http.Cookie{Name: s.cookieName(sessionCookie), Value: sess})
		} else {
			req.Header.Set("Authorization", "Bearer "+tok)
		}
		req.Header.Set("Content-Type", "application/json")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		var out map[string]any
		json.Unmarshal(rec.Body.Bytes(), &out)
		return rec.Code, out
	}
	jobKind := func(id float64) string {
		var kind string
		err := st.Pool.QueryRow(context.Background(), `SELECT kind || ' on ' || queue FROM river_job WHERE (args->>'destination_id')::bigint = $1`, int64(id)).Scan(&kind)
		if err != nil {
			return "none"
		}
		return kind
	}
	for _, c := range []struct {
		name      string
		session   bool
		kind      string
		address   string
		job       string
		confirmed bool
	}{
		{"email", false, "email", "alice@example.org", "confirm on email", false},
		{"irc", false, "irc", "alice", "confirm on irc", false},
		{"push by token", false, "push", subscriptionJSON(t), "confirm on push", false},
		{"push from a session", true, "push", subscriptionAt(t, "https://fcm.googleapis.com/fcm/send/"+rand.Text()), "none", true},
		{"push from a session, not a browser's service", true, "push", subscriptionJSON(t), "confirm on push", false},
		{"irc from a session", true, "irc", "alice2", "confirm on irc", false},
	} {
		code, d := post(c.session, map[string]string{"kind": c.kind, "address": c.address})
		if code != 201 {
			t.Fatalf("%s: %d %v", c.name, code, d)
		}
		if got := jobKind(d["id"].(float64)); got != c.job || d["confirmed"] != c.confirmed {
			t.Errorf("%s: job %s, confirmed %v; want %s, %v", c.name, got, d["confirmed"], c.job, c.confirmed)
		}
	}
	code, e := post(false, map[string]string{"kind": "push", "address": `{"endpoint":"http://push.example.net/x","keys":{}}`})
	if code != 400 || e["field"] != "address" {
		t.Fatalf("bad subscription: %d %v", code, e)
	}
	code, e = post(false, map[string]string{"kind": "irc", "address": "bad nick\r\nQUIT"})
	if code != 400 || e["field"] != "address" {
		t.Fatalf("bad nick: %d %v", code, e)
	}
}

func TestServiceWorkerAndKey(t *testing.T) {
	t.Parallel()
	s, _, _ := newTestServer(t)
	h := s.Handler()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/sw.js", nil))
	if rec.Code != 200 || rec.Header().Get("Service-Worker-Allowed") != "/" ||
		!strings.HasPrefix(rec.Header().Get("Content-Type"), "text/javascript") ||
		!strings.Contains(rec.Body.String(), "showNotification") {
		t.Fatalf("/sw.js: %d %v", rec.Code, rec.Header())
	}
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/api/v1/push/key", nil))
	if rec.Code != 200 || strings.TrimSpace(rec.Body.String()) != `{"public_key":"BPUBKEY"}` {
		t.Fatalf("/api/v1/push/key: %d %s", rec.Code, rec.Body)
	}
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/static/push.js", nil))
	if rec.Code != 200 || !strings.Contains(rec.Body.String(), "pushManager.subscribe") {
		t.Fatalf("/static/push.js: %d", rec.Code)
	}
	// The rest of the API still wants a token.
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/api/v1/me", nil))
	if rec.Code != 401 {
		t.Fatalf("/api/v1/me without a token: %d", rec.Code)
	}
}
