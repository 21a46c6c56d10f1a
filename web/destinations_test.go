package web

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"fmn"
	"fmn/rules"
	"fmn/store"
)

func countRows(t *testing.T, st *store.Store, query string, args ...any) int {
	t.Helper()
	var n int
	if err := st.Pool.QueryRow(context.Background(), query, args...).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// apiCall sends a JSON request with a bearer token.
func (s *testSite) apiCall(method, path, token, payload string) (int, string) {
	s.t.Helper()
	req, _ := http.NewRequest(method, s.srv.URL+path, strings.NewReader(payload))
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	return resp.StatusCode, body(s.t, resp)
}

// TestSignedInAddressIsConfirmed (issue 14, finding 5): signing in by
// emailed link proved the address, so an email destination with it is
// confirmed at once (no confirmation mail), and one waiting for
// confirmation is confirmed by the sign-in. A token proves no address.
func TestSignedInAddressIsConfirmed(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newSite(t, AuthConfig{}, "")
	c := s.signIn("kim@example.org")
	resp := s.postForm(c, "/destinations", url.Values{"kind": {"email"}, "address": {"Kim@Example.org"}})
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("add the signed-in address: %d", resp.StatusCode)
	}
	ds, _ := s.st.ListDestinations(ctx, 1)
	if len(ds) != 1 || !ds[0].Confirmed {
		t.Fatalf("the address just signed in with is not confirmed: %+v", ds)
	}
	if n := countRows(t, s.st, `SELECT count(*) FROM river_job WHERE kind = 'confirm'`); n != 0 {
		t.Fatalf("%d confirmation mails for an address the sign-in proved", n)
	}

	// Through the API with a token: not proved, a confirmation goes out.
	lee, err := s.st.EnsureUser(ctx, "lee", "lee@example.org")
	if err != nil {
		t.Fatal(err)
	}
	tok, _ := s.st.CreateToken(ctx, lee.ID, "script")
	if st, b := s.apiCall("POST", "/api/v1/destinations", tok, `{"kind":"email","address":"lee@example.org"}`); st != 201 || !strings.Contains(b, `"confirmed":false`) {
		t.Fatalf("token adds an address: %d %s", st, b)
	}
	if n := countRows(t, s.st, `SELECT count(*) FROM river_job WHERE kind = 'confirm'`); n != 1 {
		t.Fatalf("%d confirmation jobs, want 1", n)
	}
	// Lee signs in by emailed link to that address: the waiting destination
	// is confirmed by it.
	s.signIn("lee@example.org")
	if n := countRows(t, s.st, `SELECT count(*) FROM destinations WHERE user_id = $1 AND confirmed_at IS NOT NULL`, lee.ID); n != 1 {
		t.Fatal("signing in by link did not confirm the destination with that address")
	}
}

// TestDestinationResendAndDelete (issue 14, finding 5): a confirmation can
// be sent again, within the one confirmation limit; a destination can be
// deleted through the API and from its page after a confirmation step,
// keeping its history; others' destinations are not found.
func TestDestinationResendAndDelete(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newSite(t, AuthConfig{}, "")
	c := s.signIn("mo@example.org")
	var uid int64
	s.st.Pool.QueryRow(ctx, `SELECT id FROM users`).Scan(&uid)
	tok, _ := s.st.CreateToken(ctx, uid, "script")
	st, b := s.apiCall("POST", "/api/v1/destinations", tok, `{"kind":"email","address":"mo-typo@example.org"}`)
	if st != 201 {
		t.Fatalf("add: %d %s", st, b)
	}
	ds, _ := s.st.ListDestinations(ctx, uid)
	id := ds[0].ID
	if page := body(t, s.get(c, "/destinations")); !strings.Contains(page, fmt.Sprintf(`id="resend-%d"`, id)) ||
		!strings.Contains(page, fmt.Sprintf(`href="/destinations/%d/delete"`, id)) {
		t.Fatalf("no resend button or delete link:\n%s", page)
	}
	// Again from the page, then through the API: three to one address in a
	// day is the limit (the first was the add).
	resp := s.postForm(c, fmt.Sprintf("/destinations/%d/resend", id), nil)
	if resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(resp.Header.Get("Location"), "/destinations?done=resent") {
		t.Fatalf("resend: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	if st, b := s.apiCall("POST", fmt.Sprintf("/api/v1/destinations/%d/resend", id), tok, ``); st != http.StatusAccepted {
		t.Fatalf("API resend: %d %s", st, b)
	}
	resp = s.postForm(c, fmt.Sprintf("/destinations/%d/resend", id), nil)
	if b := body(t, resp); resp.StatusCode != http.StatusTooManyRequests || !strings.Contains(b, "Several confirmations went to this address") {
		t.Fatalf("fourth confirmation in a day: %d\n%s", resp.StatusCode, b)
	}
	if n := countRows(t, s.st, `SELECT count(*) FROM river_job WHERE kind = 'confirm'`); n != 3 {
		t.Fatalf("%d confirmation jobs, want 3", n)
	}

	// A confirmed one needs no resend.
	good := s.postForm(c, "/destinations", url.Values{"kind": {"email"}, "address": {"mo@example.org"}})
	if good.StatusCode != http.StatusSeeOther {
		t.Fatalf("add signed-in address: %d", good.StatusCode)
	}
	ds, _ = s.st.ListDestinations(ctx, uid)
	goodID := ds[1].ID
	if st, _ := s.apiCall("POST", fmt.Sprintf("/api/v1/destinations/%d/resend", goodID), tok, ``); st != 400 {
		t.Fatalf("resend to a confirmed destination: %d", st)
	}

	// Deleting from the page asks first, naming the rule left without a
	// destination, and the question's page changes nothing.
	rule, err := s.st.SaveRule(ctx, rules.Rule{UserID: uid, Name: "kernel", Enabled: true,
		Track: rules.Track{Packages: []string{"kernel"}}, Destinations: []int64{goodID}})
	if err != nil {
		t.Fatal(err)
	}
	nid := storeMatch(t, s.st, "k9", kernelCommit, rules.Match{UserID: uid, RuleID: rule.ID, DestinationID: goodID})
	ask := body(t, s.get(c, fmt.Sprintf("/destinations/%d/delete", goodID)))
	if !strings.Contains(ask, "Delete mo@example.org?") || !strings.Contains(ask, "Rule “kernel” sends only here") ||
		!strings.Contains(ask, fmt.Sprintf(`action="/destinations/%d/delete"`, goodID)) {
		t.Fatalf("delete question:\n%s", ask)
	}
	if len(mustDests(t, s.st, uid)) != 2 {
		t.Fatal("asking deleted something")
	}
	resp = s.postForm(c, fmt.Sprintf("/destinations/%d/delete", goodID), nil)
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/destinations?done=deleted" {
		t.Fatalf("delete: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	n, err := s.st.UserNotification(ctx, uid, nid)
	if err != nil || n.DestinationID != 0 || n.Status != "dead" || n.Error != "destination deleted" {
		t.Fatalf("the waiting notification of a deleted destination: %+v %v", n, err)
	}
	if r, _ := s.st.GetRule(ctx, uid, rule.ID); len(r.Destinations) != 0 {
		t.Fatalf("rule still sends to the deleted destination: %+v", r)
	}
	if page := body(t, s.get(c, fmt.Sprintf("/notifications/%d", nid))); !strings.Contains(page, "Its destination has been deleted since") {
		t.Fatalf("notification page after the destination went:\n%s", page)
	}

	// Another user's destination: not found, through both doors.
	other := s.signIn("nell@example.org")
	if resp := s.postForm(other, fmt.Sprintf("/destinations/%d/delete", id), nil); resp.StatusCode != 404 {
		t.Fatalf("another user deleting from the page: %d", resp.StatusCode)
	}
	if resp := s.get(other, fmt.Sprintf("/destinations/%d/delete", id)); resp.StatusCode != 404 {
		t.Fatalf("another user's delete question: %d", resp.StatusCode)
	}
	if resp := s.postForm(other, fmt.Sprintf("/destinations/%d/resend", id), nil); resp.StatusCode != 404 {
		t.Fatalf("another user resending: %d", resp.StatusCode)
	}
	// The API: DELETE answers 204, then 404.
	if st, b := s.apiCall("DELETE", fmt.Sprintf("/api/v1/destinations/%d", id), tok, ``); st != http.StatusNoContent {
		t.Fatalf("API delete: %d %s", st, b)
	}
	if st, _ := s.apiCall("DELETE", fmt.Sprintf("/api/v1/destinations/%d", id), tok, ``); st != 404 {
		t.Fatalf("API delete twice: %d", st)
	}
	if len(mustDests(t, s.st, uid)) != 0 {
		t.Fatal("destinations left")
	}
	// Adding the typo'd address again starts afresh.
	if st, b := s.apiCall("POST", "/api/v1/destinations", tok, `{"kind":"email","address":"mo-fixed@example.org"}`); st != 201 {
		t.Fatalf("add after delete: %d %s", st, b)
	}
}

func mustDests(t *testing.T, st *store.Store, uid int64) []fmn.Destination {
	t.Helper()
	ds, err := st.ListDestinations(context.Background(), uid)
	if err != nil {
		t.Fatal(err)
	}
	return ds
}
