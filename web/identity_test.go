package web

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/oauth2-proxy/mockoidc"
)

// TestFirstSignInChoosesName: the first emailed sign-in asks for the bus
// name (jdoe@gmail.com is johnd on the bus), checks it, and only then
// creates the account; the name can be changed in settings.
func TestFirstSignInChoosesName(t *testing.T) {
	t.Parallel()
	s := newSite(t, AuthConfig{}, "")
	s.signIn("taken@example.org") // holds the name "taken"

	c := s.browser()
	resp := s.openLink(c, "/login/"+s.loginToken(c, "jdoe@gmail.com"))
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/welcome" {
		t.Fatalf("first sign-in: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	var n int
	s.st.Pool.QueryRow(context.Background(), `SELECT count(*) FROM users WHERE email = 'jdoe@gmail.com'`).Scan(&n)
	if n != 0 {
		t.Fatal("the account exists before a name was chosen")
	}
	if b := body(t, s.get(c, "/welcome")); !strings.Contains(b, "jdoe@gmail.com") || !strings.Contains(b, `value="jdoe"`) {
		t.Fatalf("name step:\n%s", b)
	}
	for _, bad := range []struct{ name, want string }{
		{"", "1–64 letters"},
		{"john doe", "1–64 letters"},
		{"-johnd", "1–64 letters"},
		{strings.Repeat("a", 65), "1–64 letters"},
		{"taken", "is taken"},
	} {
		resp := s.chooseName(c, bad.name)
		b := body(t, resp)
		if resp.StatusCode != 400 || !strings.Contains(b, `id="name-error"`) || !strings.Contains(b, bad.want) {
			t.Fatalf("name %q: %d\n%s", bad.name, resp.StatusCode, b)
		}
	}
	resp = s.chooseName(c, "johnd")
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/welcome/rule" {
		t.Fatalf("choose johnd: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	if b := body(t, s.get(c, "/settings")); !strings.Contains(b, `<strong id="user-name">johnd</strong>`) {
		t.Fatalf("settings after sign-up:\n%s", b)
	}
	// The sign-up is spent: a second post makes no second account.
	if resp := s.chooseName(c, "johnd2"); resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/login" {
		t.Fatalf("a spent sign-up: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	// The next sign-in from the address goes straight in.
	again := s.browser()
	resp = s.openLink(again, "/login/"+s.loginToken(again, "JDoe@gmail.com"))
	if resp.Header.Get("Location") != "/" {
		t.Fatalf("second sign-in: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}

	// Renaming: checked the same way, then effective.
	if resp := s.postForm(c, "/settings/name", url.Values{"name": {"taken"}}); resp.StatusCode != 400 || !strings.Contains(body(t, resp), "is taken") {
		t.Fatalf("rename to a taken name: %d", resp.StatusCode)
	}
	if resp := s.postForm(c, "/settings/name", url.Values{"name": {"bad name"}}); resp.StatusCode != 400 {
		t.Fatalf("rename to a bad name: %d", resp.StatusCode)
	}
	if resp := s.postForm(c, "/settings/name", url.Values{"name": {"john.d"}}); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("rename: %d", resp.StatusCode)
	}
	if b := body(t, s.get(c, "/settings")); !strings.Contains(b, `<strong id="user-name">john.d</strong>`) {
		t.Fatalf("settings after rename:\n%s", b)
	}
	// A sign-up cookie nobody made leads back to sign-in.
	if resp := s.get(s.browser(), "/welcome"); resp.Header.Get("Location") != "/login" {
		t.Fatalf("welcome without a sign-up: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
}

// TestOIDCGroupsClaim: each sign-in sets the user's groups to the claim's
// list, shown on the settings page; the name cannot be changed there.
func TestOIDCGroupsClaim(t *testing.T) {
	t.Parallel()
	s := newOIDCSite(t)
	c := s.signInAs(&mockoidc.MockUser{Subject: "g-1", PreferredUsername: "grouper", Groups: []string{"python-sig", "packager", "bad group!"}})
	b := body(t, s.get(c, "/settings"))
	if !strings.Contains(b, "<strong>python-sig</strong>") || !strings.Contains(b, "<strong>packager</strong>") || strings.Contains(b, "bad group") {
		t.Fatalf("groups on settings:\n%s", b)
	}
	if strings.Contains(b, `action="/settings/name"`) {
		t.Fatal("an OIDC account is offered a rename")
	}
	if resp := s.postForm(c, "/settings/name", url.Values{"name": {"other"}}); resp.StatusCode != 400 || !strings.Contains(body(t, resp), "identity provider") {
		t.Fatalf("rename of an OIDC account: %d", resp.StatusCode)
	}
	c = s.signInAs(&mockoidc.MockUser{Subject: "g-1", PreferredUsername: "grouper", Groups: []string{"packager"}})
	if b := body(t, s.get(c, "/settings")); strings.Contains(b, "python-sig") || !strings.Contains(b, "<strong>packager</strong>") {
		t.Fatalf("groups after a sign-in with fewer:\n%s", b)
	}
}
