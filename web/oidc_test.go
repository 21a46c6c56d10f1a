package web

import (
	"context"
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
	op, err := mockoidc.Run()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { op.Shutdown() })
	cfg := op.Config()
	s := newSite(t, AuthConfig{OIDCIssuer: cfg.Issuer, OIDCClientID: cfg.ClientID, OIDCClientSecret: cfg.ClientSecret,
		OIDCUsernameClaim: "preferred_username"}, "")

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
	if resp.Header.Get("Location") != "/" {
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
