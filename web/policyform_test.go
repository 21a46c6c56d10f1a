package web

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"fmn"
)

func TestParseHumanDuration(t *testing.T) {
	t.Parallel()
	cases := []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"2 hours", 2 * time.Hour, true},
		{"2 Hours", 2 * time.Hour, true},
		{"90 min", 90 * time.Minute, true},
		{"1h30m", 90 * time.Minute, true},
		{"1 hour 30 minutes", 90 * time.Minute, true},
		{"1 hour and 30 minutes", 90 * time.Minute, true},
		{"1.5h", 90 * time.Minute, true},
		{"1,5 hours", 90 * time.Minute, true},
		{"an hour", time.Hour, true},
		{"a day", 24 * time.Hour, true},
		{"1 week", 7 * 24 * time.Hour, true},
		{"45", 45 * time.Minute, true},
		{"30m", 30 * time.Minute, true},
		{"", 0, false},
		{"fortnightly", 0, false},
		{"2 lightyears", 0, false},
		{"0 hours", 0, false},
		{"-1h", 0, false},
	}
	for _, c := range cases {
		got, ok := parseHumanDuration(c.in)
		if ok != c.ok || (ok && got != c.want) {
			t.Errorf("parseHumanDuration(%q) = %v, %v; want %v, %v", c.in, got, ok, c.want, c.ok)
		}
	}
	for _, d := range []time.Duration{2 * time.Hour, 90 * time.Minute, 24 * time.Hour, 7 * 24 * time.Hour, 26 * time.Hour, 5 * time.Minute} {
		back, ok := parseHumanDuration(humanDuration(d))
		if !ok || back != d {
			t.Errorf("humanDuration(%v) = %q does not read back (%v)", d, humanDuration(d), back)
		}
	}
}

// TestDeliveryForm (issue 14, finding 7): "every" takes durations as
// people write them; a refused form keeps what was typed with the error
// beside its field; "after" says its unit; the digest fields sit apart
// from "at once" and are not part of an immediate policy.
func TestDeliveryForm(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newSite(t, AuthConfig{}, "")
	c := s.signIn("quin@example.org")
	if resp := s.postForm(c, "/destinations", url.Values{"kind": {"email"}, "address": {"quin@example.org"}}); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("add: %d", resp.StatusCode)
	}
	var uid, id int64
	s.st.Pool.QueryRow(ctx, `SELECT user_id, id FROM destinations`).Scan(&uid, &id)
	path := fmt.Sprintf("/destinations/%d/policy", id)
	stored := func() fmn.Policy {
		d, err := s.st.GetDestination(ctx, uid, id)
		if err != nil {
			t.Fatal(err)
		}
		return fmn.PolicyOf(d.Delivery)
	}

	page := body(t, s.get(c, "/destinations"))
	for _, want := range []string{`class="digest-fields"`, `<span>items</span>`, `list="every-choices"`, `<option value="2 hours">`,
		fmt.Sprintf(`id="mode-%d-immediate" name="mode" type="radio" value="immediate" checked`, id)} {
		if !strings.Contains(page, want) {
			t.Fatalf("delivery form lacks %q:\n%s", want, page)
		}
	}

	for _, c2 := range []struct{ in, want string }{{"2 hours", "2h"}, {"90 min", "1h30m"}, {"1h30m", "1h30m"}, {"a day", "24h"}} {
		in, want := c2.in, c2.want // in this order: "a day" is saved last
		resp := s.postForm(c, path, url.Values{"mode": {"digest"}, "every": {in}})
		if resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(resp.Header.Get("Location"), "/destinations?done=saved") {
			t.Fatalf("every %q: %d %q", in, resp.StatusCode, resp.Header.Get("Location"))
		}
		if p := stored(); p.Mode != "digest" || p.Every != want {
			t.Fatalf("every %q stored as %+v, want %s", in, p, want)
		}
	}
	page = body(t, s.get(c, "/destinations?done=saved"))
	if !strings.Contains(page, "Saved.") || !strings.Contains(page, "a digest every 1 day, whichever comes first") ||
		!strings.Contains(page, `value="1 day"`) {
		t.Fatalf("after saving a digest:\n%s", page)
	}

	// Refused: the typed value stays, the error is beside its field, and
	// nothing changes.
	resp := s.postForm(c, path, url.Values{"mode": {"digest"}, "every": {"fortnightly"}, "after": {"12"}})
	page = body(t, resp)
	if resp.StatusCode != 400 || !strings.Contains(page, `value="fortnightly"`) || !strings.Contains(page, `value="12"`) ||
		!strings.Contains(page, fmt.Sprintf(`aria-describedby="every-%d-error"`, id)) || !strings.Contains(page, fmt.Sprintf(`id="every-%d-error">Write a duration like`, id)) ||
		!strings.Contains(page, fmt.Sprintf(`id="mode-%d-digest" name="mode" type="radio" value="digest" checked`, id)) {
		t.Fatalf("bad every: %d\n%s", resp.StatusCode, page)
	}
	resp = s.postForm(c, path, url.Values{"mode": {"digest"}, "every": {"2 minutes"}})
	if page = body(t, resp); resp.StatusCode != 400 || !strings.Contains(page, `value="2 minutes"`) || !strings.Contains(page, "from 5 minutes to 1 week") {
		t.Fatalf("too often: %d\n%s", resp.StatusCode, page)
	}
	resp = s.postForm(c, path, url.Values{"mode": {"digest"}, "after": {"ten"}})
	if page = body(t, resp); resp.StatusCode != 400 || !strings.Contains(page, `value="ten"`) || !strings.Contains(page, fmt.Sprintf(`id="after-%d-error"`, id)) {
		t.Fatalf("bad after: %d\n%s", resp.StatusCode, page)
	}
	resp = s.postForm(c, path, url.Values{"mode": {"digest"}})
	if page = body(t, resp); resp.StatusCode != 400 || !strings.Contains(page, "Fill in at least one") {
		t.Fatalf("digest without fields: %d\n%s", resp.StatusCode, page)
	}
	if p := stored(); p.Every != "24h" {
		t.Fatalf("refused forms changed the policy: %+v", p)
	}
	// "At once": what the (hidden) digest fields still hold is not part of
	// it, and the summary says so plainly.
	if resp := s.postForm(c, path, url.Values{"mode": {"immediate"}, "every": {"1 day"}, "after": {"5"}}); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("immediate: %d", resp.StatusCode)
	}
	if p := stored(); p.Mode != "immediate" || p.Every != "" || p.After != 0 {
		t.Fatalf("immediate stored as %+v", p)
	}
	if page := body(t, s.get(c, "/destinations")); !strings.Contains(page, "Delivery: <strong>at once</strong>") {
		t.Fatalf("summary after at once:\n%s", page)
	}
}
