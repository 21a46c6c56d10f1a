package web

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/oauth2-proxy/mockoidc"
)

// TestFirstRuleOffered: right after the first sign-in (the name step, or a
// first OpenID sign-in to the start page), a new user is offered "my
// packages, not my own actions" sent to the address they signed in with.
// Yes makes it (the address confirmed by the sign-in, no confirmation
// mail); not now makes nothing and is not asked again in that browser;
// later sign-ins go straight in.
func TestFirstRuleOffered(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newSite(t, AuthConfig{}, "")
	c := s.signIn("una@example.org") // ends at /welcome/rule
	page := body(t, s.get(c, "/welcome/rule"))
	if !strings.Contains(page, "Start with a rule?") || !strings.Contains(page, `<strong id="first-rule-address">una@example.org</strong>`) ||
		!strings.Contains(page, "except what you did yourself") {
		t.Fatalf("first rule offer:\n%s", page)
	}
	resp := s.postForm(c, "/welcome/rule", url.Values{"answer": {"yes"}})
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/rules?done=first" {
		t.Fatalf("yes: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	var uid int64
	s.st.Pool.QueryRow(ctx, `SELECT id FROM users WHERE name = 'una'`).Scan(&uid)
	rs, _ := s.st.ListRules(ctx, uid)
	ds, _ := s.st.ListDestinations(ctx, uid)
	if len(rs) != 1 || len(ds) != 1 {
		t.Fatalf("after yes: rules %+v, destinations %+v", rs, ds)
	}
	r, d := rs[0], ds[0]
	if r.Name != "my packages" || !r.Enabled || !r.Track.Owned || !r.Track.Mine || !r.Filters.NotMyActions ||
		len(r.Destinations) != 1 || r.Destinations[0] != d.ID || d.Address != "una@example.org" || !d.Confirmed {
		t.Fatalf("first rule %+v to %+v", r, d)
	}
	if n := countRows(t, s.st, `SELECT count(*) FROM river_job WHERE kind = 'confirm'`); n != 0 {
		t.Fatalf("%d confirmation mails for the address signed in with", n)
	}
	if b := body(t, s.get(c, "/rules?done=first")); !strings.Contains(b, "Your first rule is on") || !strings.Contains(b, "what I maintain") {
		t.Fatalf("rules page after the first rule:\n%s", b)
	}
	// The next sign-in goes straight in.
	again := s.browser()
	if resp := s.openLink(again, "/login/"+s.loginToken(again, "una@example.org")); resp.Header.Get("Location") != "/" {
		t.Fatalf("second sign-in: %q", resp.Header.Get("Location"))
	}

	// Not now: nothing made.
	v := s.signIn("vic@example.org")
	resp = s.postForm(v, "/welcome/rule", url.Values{"answer": {"no"}, "next": {"/"}})
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/" {
		t.Fatalf("not now: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	if n := countRows(t, s.st, `SELECT count(*) FROM rules r JOIN users u ON u.id = r.user_id WHERE u.name = 'vic'`); n != 0 {
		t.Fatalf("not now made %d rules", n)
	}
}

// TestFirstRuleOfferedAfterOIDC: a first OpenID sign-in to the start page
// is offered the rule too, unless the person was heading elsewhere or
// declined in this browser; an account with rules is never asked.
func TestFirstRuleOfferedAfterOIDC(t *testing.T) {
	t.Parallel()
	s := newOIDCSite(t)
	c, to := s.signInTo(&mockoidc.MockUser{Subject: "w-1", PreferredUsername: "wes", Email: "wes@example.org", EmailVerified: true})
	if to != "/welcome/rule" {
		t.Fatalf("first OpenID sign-in goes to %q", to)
	}
	if b := body(t, s.get(c, "/welcome/rule")); !strings.Contains(b, "wes@example.org") {
		t.Fatalf("offer after OpenID:\n%s", b)
	}
	if resp := s.postForm(c, "/welcome/rule", url.Values{"answer": {"yes"}}); resp.Header.Get("Location") != "/rules?done=first" {
		t.Fatalf("yes: %q", resp.Header.Get("Location"))
	}
	if _, to := s.signInTo(&mockoidc.MockUser{Subject: "w-1", PreferredUsername: "wes", Email: "wes@example.org", EmailVerified: true}); to != "/" {
		t.Fatalf("an account with a rule is offered again: %q", to)
	}
}
