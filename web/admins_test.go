package web

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/oauth2-proxy/mockoidc"
)

// TestFinding3AdminByName: FMN_ADMINS named user names, and a sign-in as
// "Ad!min@evil.example" was named "admin" and got the admin page. Admins
// are now named by verified email address (or OIDC issuer#subject); a
// name-shaped entry matches nobody (and config validation refuses it).
func TestFinding3AdminByName(t *testing.T) {
	t.Parallel()
	s := newSite(t, AuthConfig{Admins: []string{"admin", "root@example.org"}}, "")
	evil := s.signIn("Ad!min@evil.example")
	if b := body(t, s.get(evil, "/settings")); !strings.Contains(b, "Sign out admin") {
		t.Fatalf("the attacker's user should be called admin:\n%s", b)
	}
	if resp := s.get(evil, "/admin"); resp.StatusCode != http.StatusNotFound {
		t.Errorf("user named admin by a stranger's address: /admin answered %d, want 404", resp.StatusCode)
	}
	root := s.signIn("Root@Example.org")
	if resp := s.get(root, "/admin"); resp.StatusCode != http.StatusOK {
		t.Errorf("the admin's verified address: /admin answered %d, want 200", resp.StatusCode)
	}
	// Tags make another address, not the admin's.
	if resp := s.get(s.signIn("root+x@example.org"), "/admin"); resp.StatusCode != http.StatusNotFound {
		t.Errorf("root+x@: /admin answered %d, want 404", resp.StatusCode)
	}
}

// TestFinding3OIDCEmailNeedsVerified: an OpenID provider's email counts
// (for FMN_ADMINS, and as the user's address) only with email_verified;
// an admin may also be named by the provider's issuer#subject.
func TestFinding3OIDCEmailNeedsVerified(t *testing.T) {
	t.Parallel()
	op, err := mockoidc.Run()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { op.Shutdown() })
	cfg := op.Config()
	s := newSite(t, AuthConfig{OIDCIssuer: cfg.Issuer, OIDCClientID: cfg.ClientID, OIDCClientSecret: cfg.ClientSecret,
		OIDCUsernameClaim: "preferred_username", Admins: []string{"root@example.org", cfg.Issuer + "#s-admin"}}, "")
	signIn := func(user *mockoidc.MockUser) *http.Client {
		t.Helper()
		c := s.browser()
		op.QueueUser(user)
		resp := s.get(c, "/oidc/login")
		resp, err := c.Get(resp.Header.Get("Location"))
		if err != nil {
			t.Fatal(err)
		}
		resp, err = c.Get(resp.Header.Get("Location"))
		if err != nil || resp.StatusCode != http.StatusSeeOther {
			t.Fatalf("OIDC sign-in of %s: %v %v", user.PreferredUsername, resp.StatusCode, err)
		}
		return c
	}
	unverified := signIn(&mockoidc.MockUser{Subject: "s-1", PreferredUsername: "mallory", Email: "root@example.org", EmailVerified: false})
	if resp := s.get(unverified, "/admin"); resp.StatusCode != http.StatusNotFound {
		t.Errorf("unverified provider email of an admin: /admin answered %d, want 404", resp.StatusCode)
	}
	if u, err := s.st.EnsureUser(context.Background(), "mallory", ""); err != nil || u.Email != "" {
		t.Errorf("an unverified provider email was recorded as the user's: %+v %v", u, err)
	}
	verified := signIn(&mockoidc.MockUser{Subject: "s-2", PreferredUsername: "root", Email: "root@example.org", EmailVerified: true})
	if resp := s.get(verified, "/admin"); resp.StatusCode != http.StatusOK {
		t.Errorf("verified provider email of an admin: /admin answered %d, want 200", resp.StatusCode)
	}
	// By issuer#subject: the subject is the admin, whatever the name or
	// email (neither given here).
	bySubject := signIn(&mockoidc.MockUser{Subject: "s-admin", PreferredUsername: "ops"})
	if resp := s.get(bySubject, "/admin"); resp.StatusCode != http.StatusOK {
		t.Errorf("admin by issuer#subject: /admin answered %d, want 200", resp.StatusCode)
	}
	other := signIn(&mockoidc.MockUser{Subject: "s-admin2", PreferredUsername: "s-admin"})
	if resp := s.get(other, "/admin"); resp.StatusCode != http.StatusNotFound {
		t.Errorf("another subject: /admin answered %d, want 404", resp.StatusCode)
	}
}
