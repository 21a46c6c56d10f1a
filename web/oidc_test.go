package web

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/oauth2-proxy/mockoidc"
)

// TestOIDCSignIn runs the whole authorization code flow against an OpenID
// provider started in the test (mockoidc: discovery, JWKS, authorize and
// token endpoints, RS256-signed ID tokens), the browser's part played by
// following each redirect by hand.
func TestOIDCSignIn(t *testing.T) {
	t.Parallel()
	site := newOIDCSite(t)
	s, op, cfg := site.testSite, site.op, site.cfg

	// With a provider, the sign-in page offers it and emailed links are off.
	c := s.browser()
	if b := body(t, s.get(c, "/login")); !strings.Contains(b, `href="/oidc/login?next=`) || strings.Contains(b, `name="email"`) {
		t.Fatalf("sign-in page with OIDC:\n%s", b)
	}
	if resp := s.postForm(c, "/login", url.Values{"email": {"x@example.org"}}); resp.StatusCode != 404 {
		t.Fatalf("emailed link with OIDC on: %d", resp.StatusCode)
	}

	signIn := func(c *http.Client, user *mockoidc.MockUser, next string) *http.Response {
		t.Helper()
		op.QueueUser(user)
		resp := s.get(c, "/oidc/login?next="+url.QueryEscape(next))
		if resp.StatusCode != http.StatusFound || !strings.HasPrefix(resp.Header.Get("Location"), cfg.Issuer) {
			t.Fatalf("start: %d %q", resp.StatusCode, resp.Header.Get("Location"))
		}
		auth, _ := url.Parse(resp.Header.Get("Location"))
		q := auth.Query()
		if q.Get("code_challenge_method") != "S256" || q.Get("nonce") == "" || q.Get("state") == "" {
			t.Fatalf("authorize request lacks PKCE, nonce or state: %s", auth)
		}
		resp, err := c.Get(auth.String()) // the provider signs the user in
		if err != nil {
			t.Fatal(err)
		}
		cb := resp.Header.Get("Location")
		if resp.StatusCode != http.StatusFound || !strings.HasPrefix(cb, s.srv.URL+"/oidc/callback?") {
			t.Fatalf("provider answered %d %q", resp.StatusCode, cb)
		}
		resp, err = c.Get(cb)
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}

	resp := signIn(c, &mockoidc.MockUser{Subject: "s-1", PreferredUsername: "packager", Email: "p@example.org", EmailVerified: true}, "/rules")
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/rules" {
		t.Fatalf("callback: %d %q %s", resp.StatusCode, resp.Header.Get("Location"), body(t, resp))
	}
	if b := body(t, s.get(c, "/rules")); !strings.Contains(b, "Sign out packager") {
		t.Fatalf("not signed in as the claim's user:\n%s", b)
	}
	u, err := s.st.EnsureUser(context.Background(), "packager", "")
	if err != nil || u.Email != "p@example.org" {
		t.Fatalf("user from OIDC: %+v %v", u, err)
	}

	// A callback whose state is not this browser's is refused.
	other := s.browser()
	op.QueueUser(&mockoidc.MockUser{Subject: "s-2", PreferredUsername: "intruder"})
	resp = s.get(other, "/oidc/login")
	auth, _ := url.Parse(resp.Header.Get("Location"))
	resp, _ = other.Get(auth.String())
	stolen := resp.Header.Get("Location")
	victim := s.browser()
	if resp, _ := victim.Get(stolen); resp.StatusCode != 400 {
		t.Fatalf("callback in a browser that did not start the flow: %d", resp.StatusCode)
	}
	// An open redirect is not possible through next.
	resp = signIn(s.browser(), &mockoidc.MockUser{Subject: "s-3", PreferredUsername: "packager2"}, "//evil.example/x")
	if l := resp.Header.Get("Location"); l != "/" && l != "/welcome/rule" { // a new account is offered a first rule on the way
		t.Fatalf("next=//evil.example redirected to %q", resp.Header.Get("Location"))
	}
	// A user whose claim is not a usable name is refused, and not created.
	resp = signIn(s.browser(), &mockoidc.MockUser{Subject: "s-4", PreferredUsername: "bad name!"}, "/")
	if resp.StatusCode != 400 {
		t.Fatalf("unusable username claim: %d", resp.StatusCode)
	}
	var n int
	s.st.Pool.QueryRow(context.Background(), `SELECT count(*) FROM users`).Scan(&n)
	if n != 2 {
		t.Fatalf("%d users, want 2 (packager, packager2)", n)
	}
}

// oidcSite is a test site signing in through a mockoidc provider.
type oidcSite struct {
	*testSite
	op  *mockoidc.MockOIDC
	cfg *mockoidc.Config
}

func newOIDCSite(t *testing.T) *oidcSite {
	t.Helper()
	op, err := mockoidc.Run()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { op.Shutdown() })
	cfg := op.Config()
	s := newSite(t, AuthConfig{OIDCIssuer: cfg.Issuer, OIDCClientID: cfg.ClientID, OIDCClientSecret: cfg.ClientSecret,
		OIDCUsernameClaim: "preferred_username", OIDCGroupsClaim: "groups", OIDCScopes: []string{"groups"}}, "")
	return &oidcSite{testSite: s, op: op, cfg: cfg}
}

// signInAs runs the code flow for user in a new browser and returns it,
// signed in.
func (s *oidcSite) signInAs(user *mockoidc.MockUser) *http.Client {
	s.t.Helper()
	c, _ := s.signInTo(user)
	return c
}

// signInTo is signInAs that also returns where the sign-in sends the
// browser.
func (s *oidcSite) signInTo(user *mockoidc.MockUser) (*http.Client, string) {
	s.t.Helper()
	c := s.browser()
	s.op.QueueUser(user)
	resp := s.get(c, "/oidc/login")
	auth, _ := url.Parse(resp.Header.Get("Location"))
	resp, err := c.Get(auth.String())
	if err != nil {
		s.t.Fatal(err)
	}
	resp, err = c.Get(resp.Header.Get("Location"))
	if err != nil {
		s.t.Fatal(err)
	}
	if resp.StatusCode != http.StatusSeeOther {
		s.t.Fatalf("OIDC sign-in of %s: %d %s", user.Subject, resp.StatusCode, body(s.t, resp))
	}
	return c, resp.Header.Get("Location")
}

// me returns the signed-in user as the API shows it.
func (s *oidcSite) me(c *http.Client) map[string]any {
	s.t.Helper()
	resp := s.get(c, "/api/v1/me")
	var me map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&me); err != nil || resp.StatusCode != 200 {
		s.t.Fatalf("GET /api/v1/me: %d %v", resp.StatusCode, err)
	}
	return me
}

// TestOIDCBindsSubject: the provider's subject, not its user-name claim,
// says who signs in. Two subjects presenting one preferred_username (a
// released name handed to someone new) get two accounts: the newcomer
// never sees the first one's rules, and takes the bus name, which the
// provider now gives them.
func TestOIDCBindsSubject(t *testing.T) {
	t.Parallel()
	s := newOIDCSite(t)
	first := s.signInAs(&mockoidc.MockUser{Subject: "subject-1", PreferredUsername: "packager", Email: "old@example.org", EmailVerified: true})
	me1 := s.me(first)
	resp, err := first.Post(s.srv.URL+"/api/v1/rules", "application/json",
		strings.NewReader(`{"name":"mine","track":{"mine":true}}`))
	if err != nil || resp.StatusCode != 201 {
		t.Fatalf("create rule: %v %d", err, resp.StatusCode)
	}

	second := s.signInAs(&mockoidc.MockUser{Subject: "subject-2", PreferredUsername: "packager", Email: "new@example.org", EmailVerified: true})
	me2 := s.me(second)
	if me1["id"] == me2["id"] {
		t.Fatalf("two subjects with one preferred_username share account %v", me1["id"])
	}
	if me2["name"] != "packager" {
		t.Fatalf("the newcomer's bus name is %v, want packager", me2["name"])
	}
	if b := body(t, s.get(second, "/api/v1/rules")); strings.Contains(b, `"mine"`) {
		t.Fatalf("the second subject sees the first one's rules: %s", b)
	}
	// The first account kept its rules under a name nobody on the bus has.
	if m := s.me(first); m["id"] != me1["id"] || m["name"] == "packager" {
		t.Fatalf("first account after the name moved: %v", m)
	}
	// The same subject signing in again is the same account.
	again := s.signInAs(&mockoidc.MockUser{Subject: "subject-2", PreferredUsername: "packager"})
	if m := s.me(again); m["id"] != me2["id"] {
		t.Fatalf("subject-2 again got account %v, want %v", m["id"], me2["id"])
	}
	var n int
	s.st.Pool.QueryRow(context.Background(), `SELECT count(*) FROM users`).Scan(&n)
	if n != 2 {
		t.Fatalf("%d users, want 2", n)
	}
}
