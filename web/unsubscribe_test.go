package web

import (
	"context"
	"encoding/json"
	"github.com/riverqueue/river"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"fmn"
	"fmn/delivery"
	"fmn/delivery/email"
	"fmn/metrics"
	"fmn/store"
	"fmn/store/storetest"
)

// emailHarness is the web handler on a database of the test's own, with
// an API token for one user.
type emailHarness struct {
	t     *testing.T
	st    *store.Store
	srv   *httptest.Server
	token string
	user  store.User
}

func newEmailHarness(t *testing.T) *emailHarness {
	t.Helper()
	st := storetest.New(t)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	jobs, err := delivery.NewClient(st.Pool, delivery.Jobs{Register: []func(*river.Workers){(&email.Channel{}).Register}, Log: log}, false)
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(Deps{Store: st, Jobs: jobs, Metrics: metrics.New(), BaseURL: "https://fmn.example.org", Log: log})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(s.Handler())
	t.Cleanup(srv.Close)
	h := &emailHarness{t: t, st: st, srv: srv}
	h.user, h.token = h.newUser("alice")
	return h
}

func (h *emailHarness) newUser(name string) (store.User, string) {
	h.t.Helper()
	u, err := h.st.EnsureUser(context.Background(), name, "")
	if err != nil {
		h.t.Fatal(err)
	}
	tok, err := h.st.CreateToken(context.Background(), u.ID, "test")
	if err != nil {
		h.t.Fatal(err)
	}
	return u, tok
}

func (h *emailHarness) api(token, method, path, body string) (int, map[string]any) {
	h.t.Helper()
	req, _ := http.NewRequest(method, h.srv.URL+"/api/v1"+path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	b, _ := io.ReadAll(resp.Body)
	_ = json.Unmarshal(b, &out)
	return resp.StatusCode, out
}

// confirmedDestination makes a confirmed email destination for the user.
func (h *emailHarness) confirmedDestination(userID int64, addr string) fmn.Destination {
	h.t.Helper()
	ctx := context.Background()
	var d fmn.Destination
	err := h.st.InTx(ctx, func(tx pgx.Tx) error {
		var err error
		d, err = store.CreateDestination(ctx, tx, userID, "email", addr)
		return err
	})
	if err != nil {
		h.t.Fatal(err)
	}
	code, err := h.st.NewConfirmCode(ctx, d.ID)
	if err != nil {
		h.t.Fatal(err)
	}
	if d, err = h.st.ConfirmByCode(ctx, code); err != nil {
		h.t.Fatal(err)
	}
	return d
}

// TestOneClickUnsubscribe: a POST as a mail provider sends it (RFC 8058:
// no cookies, no Origin, form body List-Unsubscribe=One-Click) turns the
// destination off at once; GET only shows the button; a forged token
// changes nothing.
func TestOneClickUnsubscribe(t *testing.T) {
	t.Parallel()
	h := newEmailHarness(t)
	d := h.confirmedDestination(h.user.ID, "alice@example.org")
	other := h.confirmedDestination(h.user.ID, "alice@work.example.org")
	tok, err := (&email.Unsubscriber{Store: h.st}).Token(context.Background(), d.ID)
	if err != nil {
		t.Fatal(err)
	}
	enabled := func(id int64) bool {
		got, err := h.st.DestinationByID(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		return got.Enabled
	}

	resp, err := http.Get(h.srv.URL + "/unsubscribe/" + tok)
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(page), `<form method="post" action="/unsubscribe/`+tok+`">`) {
		t.Fatalf("GET: %d\n%s", resp.StatusCode, page)
	}
	if !enabled(d.ID) {
		t.Fatal("GET changed the destination")
	}

	// A forged token: another destination's id with this one's signature.
	sig := tok[strings.IndexByte(tok, '.'):]
	for _, bad := range []string{"x", "1", jsonNumber(other.ID) + sig, tok + "x"} {
		resp, err := http.PostForm(h.srv.URL+"/unsubscribe/"+url.PathEscape(bad), url.Values{"List-Unsubscribe": {"One-Click"}})
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound {
			t.Errorf("forged %q: %d, want 404", bad, resp.StatusCode)
		}
	}
	if !enabled(other.ID) || !enabled(d.ID) {
		t.Fatal("a forged token changed a destination")
	}

	// As a mail provider posts it: form body, no cookie, maybe an Origin
	// of its own (the signed token, not the origin, is the authority).
	req, _ := http.NewRequest("POST", h.srv.URL+"/unsubscribe/"+tok, strings.NewReader("List-Unsubscribe=One-Click"))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", "https://mail.provider.example")
	req.Header.Set("Sec-Fetch-Site", "cross-site")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("one-click POST: %d", resp.StatusCode)
	}
	if enabled(d.ID) {
		t.Error("destination still enabled after the one-click POST")
	}
	if !enabled(other.ID) {
		t.Error("the other destination was turned off too")
	}
	// Twice is harmless.
	resp, err = http.PostForm(h.srv.URL+"/unsubscribe/"+tok, url.Values{"List-Unsubscribe": {"One-Click"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("second POST: %d", resp.StatusCode)
	}
}

func jsonNumber(v int64) string { return strconv.FormatInt(v, 10) }

// TestBadAddresses: what could inject a header or is not an address is
// refused with the field named, and nothing is created.
func TestBadAddresses(t *testing.T) {
	t.Parallel()
	h := newEmailHarness(t)
	for _, addr := range []string{
		"alice@example.org\r\nBcc: victim@example.com",
		"alice@example.org\nBcc: victim@example.com",
		"alice",
		"alice@",
		"alice@example",
		strings.Repeat("a", 250) + "@example.org",
		"Alice <alice@example.org>",
		"",
	} {
		body, _ := json.Marshal(map[string]string{"kind": "email", "address": addr})
		status, out := h.api(h.token, "POST", "/destinations", string(body))
		if status != 400 || out["field"] != "address" {
			t.Errorf("%q: %d %v, want 400 on field address", addr, status, out)
		}
	}
	ds, err := h.st.ListDestinations(context.Background(), h.user.ID)
	if err != nil || len(ds) != 0 {
		t.Errorf("destinations after bad input: %v (%v)", ds, err)
	}
}

// TestConfirmationRateLimits: a user may ask for five confirmation mails an
// hour; an address gets three a day, whoever asks.
func TestConfirmationRateLimits(t *testing.T) {
	t.Parallel()
	h := newEmailHarness(t)
	for i := range 6 {
		body, _ := json.Marshal(map[string]string{"kind": "email", "address": "a" + jsonNumber(int64(i)) + "@example.org"})
		status, _ := h.api(h.token, "POST", "/destinations", string(body))
		want := 201
		if i == 5 {
			want = 429
		}
		if status != want {
			t.Errorf("destination %d: %d, want %d", i, status, want)
		}
	}
	ds, _ := h.st.ListDestinations(context.Background(), h.user.ID)
	if len(ds) != 5 {
		t.Errorf("%d destinations, want 5 (the refused one is not created)", len(ds))
	}
	// Four strangers ask to mail one victim: the fourth is refused.
	for i := range 4 {
		_, tok := h.newUser("user" + jsonNumber(int64(i)))
		status, _ := h.api(tok, "POST", "/destinations", `{"kind":"email","address":"victim@example.com"}`)
		want := 201
		if i == 3 {
			want = 429
		}
		if status != want {
			t.Errorf("stranger %d: %d, want %d", i, status, want)
		}
	}
	// The address limit ignores case.
	_, tok := h.newUser("user9")
	if status, _ := h.api(tok, "POST", "/destinations", `{"kind":"email","address":"Victim@example.com"}`); status != 429 {
		t.Errorf("same address in other case: %d, want 429", status)
	}
}

// TestPatchDelivery: the policy is validated and stored normalised.
func TestPatchDelivery(t *testing.T) {
	t.Parallel()
	h := newEmailHarness(t)
	d := h.confirmedDestination(h.user.ID, "alice@example.org")
	path := "/destinations/" + jsonNumber(d.ID)
	status, out := h.api(h.token, "PATCH", path, `{"delivery":{"mode":"digest","every":"60m","after":10}}`)
	if status != 200 {
		t.Fatalf("PATCH: %d %v", status, out)
	}
	if got, _ := json.Marshal(out["delivery"]); string(got) != `{"after":10,"every":"1h","mode":"digest"}` {
		t.Errorf("delivery = %s", got)
	}
	status, out = h.api(h.token, "PATCH", path, `{"delivery":{"mode":"digest","daily_at":"26:00"}}`)
	if status != 400 || out["field"] != "delivery.daily_at" {
		t.Errorf("bad daily_at: %d %v", status, out)
	}
	// A permanent failure is visible to the owner; turning the
	// destination on again clears it.
	if err := h.st.SetDestinationFailing(context.Background(), d.ID, "550 5.1.1 mailbox unavailable"); err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest("GET", h.srv.URL+"/api/v1/destinations", nil)
	req.Header.Set("Authorization", "Bearer "+h.token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var list []map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&list)
	resp.Body.Close()
	if len(list) != 1 || list[0]["failing_reason"] != "550 5.1.1 mailbox unavailable" {
		t.Errorf("GET /destinations: %v", list)
	}
	if status, out = h.api(h.token, "PATCH", path, `{"enabled":true}`); status != 200 || out["failing_reason"] != nil {
		t.Errorf("re-enable: %d %v", status, out)
	}
	status, out = h.api(h.token, "PATCH", path, `{"muted_until":"2030-01-01T00:00:00Z","enabled":false}`)
	if status != 200 || out["muted_until"] != "2030-01-01T00:00:00Z" || out["enabled"] != false {
		t.Errorf("mute: %d %v", status, out)
	}
}
