package web

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"testing"
)

// TestFinding7ForwardedHeadersNotBelieved: a client talking to fmn
// directly cannot choose its address. Under chi's RealIP every request with
// a new X-Forwarded-For (or X-Real-IP, True-Client-IP) was a new client, so
// the per-client sign-in limit (10 in ten minutes) never bit.
func TestFinding7ForwardedHeadersNotBelieved(t *testing.T) {
	t.Parallel()
	site := newSite(t, AuthConfig{}, "")
	c := site.browser()
	var last int
	for i := range loginPerClient + 1 {
		form := url.Values{"email": {fmt.Sprintf("user%d@example.org", i)}}
		req, _ := http.NewRequest("POST", site.srv.URL+"/login", strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		ip := fmt.Sprintf("203.0.113.%d", i+1)
		req.Header.Set("X-Forwarded-For", ip)
		req.Header.Set("X-Real-IP", ip)
		req.Header.Set("True-Client-IP", ip)
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		last = resp.StatusCode
		if i < loginPerClient && last != http.StatusOK {
			t.Fatalf("request %d: %d", i+1, last)
		}
	}
	if last != http.StatusTooManyRequests {
		t.Fatalf("request %d from one peer with forged forwarded headers: %d, want 429", loginPerClient+1, last)
	}
}

// TestFinding7PlusTagsShareAddressLimit: victim+1@, Victim+2@, … reach one
// mailbox and share its five sign-in links an hour.
func TestFinding7PlusTagsShareAddressLimit(t *testing.T) {
	t.Parallel()
	site := newSite(t, AuthConfig{}, "")
	c := site.browser()
	addrs := []string{"victim@example.org", "victim+1@example.org", "Victim+2@Example.org",
		"VICTIM@example.org", "victim+fmn@EXAMPLE.ORG", "victim+6@example.org"}
	for i, a := range addrs {
		resp := site.postForm(c, "/login", url.Values{"email": {a}})
		resp.Body.Close()
		want := http.StatusOK
		if i >= loginPerAddress {
			want = http.StatusTooManyRequests
		}
		if resp.StatusCode != want {
			t.Errorf("sign-in %d (%s): %d, want %d", i+1, a, resp.StatusCode, want)
		}
	}
	// Another mailbox at the same domain is not affected.
	resp := site.postForm(c, "/login", url.Values{"email": {"victimized@example.org"}})
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("another address: %d", resp.StatusCode)
	}
}

// Behind a trusted proxy the client is the rightmost address that is not a
// trusted proxy; what the client wrote to the left of it is not believed.
func TestClientIPTrustedProxies(t *testing.T) {
	t.Parallel()
	s := &Server{Deps: Deps{TrustedProxies: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("::1/128")}}}
	cases := []struct {
		remote string
		xff    []string
		want   string
	}{
		{"198.51.100.7:4000", []string{"1.2.3.4"}, "198.51.100.7"},           // untrusted peer: header ignored
		{"10.1.2.3:4000", nil, "10.1.2.3"},                                   // proxy without header
		{"10.1.2.3:4000", []string{"1.2.3.4"}, "1.2.3.4"},                    // one proxy
		{"10.1.2.3:4000", []string{"6.6.6.6, 1.2.3.4, 10.9.9.9"}, "1.2.3.4"}, // client forged the left part
		{"10.1.2.3:4000", []string{"6.6.6.6", "1.2.3.4"}, "1.2.3.4"},         // several header lines
		{"10.1.2.3:4000", []string{"garbage, 1.2.3.4"}, "1.2.3.4"},
		{"10.1.2.3:4000", []string{"1.2.3.4, garbage"}, "10.1.2.3"},
		{"[::1]:4000", []string{"2001:db8::5"}, "2001:db8::5"},
		{"[::ffff:10.0.0.1]:4000", []string{"::ffff:1.2.3.4"}, "1.2.3.4"},
	}
	for _, c := range cases {
		r := httptest.NewRequest("GET", "/", nil)
		r.RemoteAddr = c.remote
		for _, v := range c.xff {
			r.Header.Add("X-Forwarded-For", v)
		}
		r.Header.Set("X-Real-IP", "6.6.6.6")
		if got := s.clientIP(r); got != c.want {
			t.Errorf("%s %q: %s, want %s", c.remote, c.xff, got, c.want)
		}
	}
}
