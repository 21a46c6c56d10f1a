package web

import (
	"net/http"
	"net/url"
	"testing"
)

// TestFinding6OpenRedirectNext: a sign-in page's next= may only lead to a
// path on this site. "/\t/evil.example" was answered as is, and browsers
// drop the tab and go to evil.example.
func TestFinding6OpenRedirectNext(t *testing.T) {
	t.Parallel()
	hostile := []string{
		"/\t/evil.example/phish", "/%09/evil.example/phish", "//evil.example", "/\\evil.example",
		"\\\\evil.example", "https://evil.example", "/\n/evil.example", "/%0a/evil.example",
		"/%2F/evil.example", "/%5Cevil.example", "/a/../\x7f/evil.example", "evil.example",
		"/ok//evil.example", "/%zz",
	}
	for _, n := range hostile {
		if got := localPath(n); got != "/" {
			t.Errorf("localPath(%q) = %q, want /", n, got)
		}
	}
	for _, n := range []string{"/", "/rules", "/rules/3?x=1", "/destinations#push", "/%E2%9C%93"} {
		if got := localPath(n); got != n {
			t.Errorf("localPath(%q) = %q, want it kept", n, got)
		}
	}

	// Through HTTP, as the review did it: a signed-in visitor sent to the
	// sign-in page is redirected, and the Location stays on the site.
	site := newSite(t, AuthConfig{}, "")
	c := site.signIn("alice@example.org")
	for _, raw := range []string{"/%09/evil.example/phish", "//evil.example", "/%5C%5Cevil.example"} {
		resp := site.get(c, "/login?next="+raw)
		resp.Body.Close()
		loc := resp.Header.Get("Location")
		if resp.StatusCode != http.StatusSeeOther || loc != "/" {
			t.Errorf("next=%s: %d to %q, want 303 to /", raw, resp.StatusCode, loc)
		}
		if u, err := url.Parse(loc); err != nil || u.Host != "" {
			t.Errorf("next=%s: Location %q leaves the site", raw, loc)
		}
	}
}
