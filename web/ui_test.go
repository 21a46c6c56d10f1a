package web

import (
	"context"
	"encoding/json"
	"fmt"
	"github.com/riverqueue/river"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"fmn"
	"fmn/delivery"
	"fmn/delivery/email"
	"fmn/metrics"
	"fmn/rules"
	"fmn/rules/meta"
	"fmn/store"
	"fmn/store/storetest"
)

// testSite is a web server on a fresh database, served over real HTTP.
type testSite struct {
	t   *testing.T
	st  *store.Store
	srv *httptest.Server
}

func newSite(t *testing.T, auth AuthConfig, baseURL string, channels ...fmn.Kind) *testSite {
	t.Helper()
	st := storetest.New(t)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	jobs, err := delivery.NewClient(st.Pool, delivery.Jobs{Register: []func(*river.Workers){(&email.Channel{}).Register}, Log: log}, false)
	if err != nil {
		t.Fatal(err)
	}
	site := &testSite{t: t, st: st}
	var h http.Handler
	site.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { h.ServeHTTP(w, r) }))
	t.Cleanup(site.srv.Close)
	if baseURL == "" {
		baseURL = site.srv.URL
	}
	s, err := New(Deps{Store: st, Jobs: jobs, Metrics: metrics.New(), BaseURL: baseURL, Auth: auth, Log: log, Channels: channels})
	if err != nil {
		t.Fatal(err)
	}
	h = s.Handler()
	return site
}

// browser is an HTTP client with its own cookies that does not follow
// redirects, so each step can be checked.
func (s *testSite) browser() *http.Client {
	jar, _ := cookiejar.New(nil)
	return &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

// loginToken asks for a sign-in link through the page and makes its token
// as the mailing job does (the job itself is tested end to end in e2e/).
func (s *testSite) loginToken(c *http.Client, email string) string {
	s.t.Helper()
	resp := s.postForm(c, "/login", url.Values{"email": {email}})
	if resp.StatusCode != 200 {
		s.t.Fatalf("POST /login %s: %d", email, resp.StatusCode)
	}
	var id int64
	if err := s.st.Pool.QueryRow(context.Background(), `SELECT (args->>'link_id')::bigint FROM river_job WHERE kind = 'email_login' ORDER BY id DESC LIMIT 1`).Scan(&id); err != nil {
		s.t.Fatalf("no sign-in job queued: %v", err)
	}
	tok, _, err := s.st.NewLoginToken(context.Background(), id)
	if err != nil {
		s.t.Fatal(err)
	}
	return tok
}

// signIn returns a browser signed in as the user of email; a first
// sign-in takes the name the name step suggests, and leaves the first
// rule's offer (/welcome/rule) unanswered.
func (s *testSite) signIn(email string) *http.Client {
	s.t.Helper()
	c := s.browser()
	resp := s.openLink(c, "/login/"+s.loginToken(c, email))
	want := "/"
	if resp.StatusCode == http.StatusSeeOther && resp.Header.Get("Location") == "/welcome" {
		resp, want = s.chooseName(c, s.suggestedName(c)), "/welcome/rule"
	}
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != want {
		s.t.Fatalf("sign-in link: %d to %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	return c
}

var nameValue = regexp.MustCompile(`id="name" name="name"[^>]* value="([^"]*)"`)

// suggestedName reads the name the first sign-in's name step offers.
func (s *testSite) suggestedName(c *http.Client) string {
	s.t.Helper()
	resp := s.get(c, "/welcome")
	b := body(s.t, resp)
	m := nameValue.FindStringSubmatch(b)
	if resp.StatusCode != 200 || m == nil {
		s.t.Fatalf("name step: %d\n%s", resp.StatusCode, b)
	}
	return m[1]
}

// chooseName posts the name step.
func (s *testSite) chooseName(c *http.Client, name string) *http.Response {
	s.t.Helper()
	return s.postForm(c, "/welcome", url.Values{"name": {name}})
}

// openLink opens a mailed link as a person does: the GET shows a page
// with one button that posts back to the link, and the POST acts. A link
// that does not work answers the GET with its error page, returned as is.
func (s *testSite) openLink(c *http.Client, path string) *http.Response {
	s.t.Helper()
	resp := s.get(c, path)
	if resp.StatusCode != http.StatusOK {
		return resp
	}
	if b := body(s.t, resp); !strings.Contains(b, `<form method="post" action="`+path+`">`) || !strings.Contains(b, `id="link-action"`) {
		s.t.Fatalf("GET %s: no button posting to the link:\n%s", path, b)
	}
	return s.postForm(c, path, nil)
}

func (s *testSite) get(c *http.Client, path string) *http.Response {
	s.t.Helper()
	resp, err := c.Get(s.srv.URL + path)
	if err != nil {
		s.t.Fatal(err)
	}
	return resp
}

func (s *testSite) postForm(c *http.Client, path string, v url.Values) *http.Response {
	s.t.Helper()
	resp, err := c.PostForm(s.srv.URL+path, v)
	if err != nil {
		s.t.Fatal(err)
	}
	return resp
}

func body(t *testing.T, resp *http.Response) string {
	t.Helper()
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestEmailSignIn(t *testing.T) {
	t.Parallel()
	s := newSite(t, AuthConfig{}, "")
	c := s.browser()

	// A visitor is sent to sign in.
	resp := s.get(c, "/rules")
	if resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(resp.Header.Get("Location"), "/login?next=") {
		t.Fatalf("visitor on /rules: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}

	resp = s.postForm(c, "/rules/1/delete", nil)
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/login" {
		t.Fatalf("visitor posting a form: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}

	// A malformed address is refused beside the field, and nothing queued.
	resp = s.postForm(c, "/login", url.Values{"email": {"not an address"}})
	if b := body(t, resp); resp.StatusCode != 400 || !strings.Contains(b, `id="email-error"`) {
		t.Fatalf("bad address: %d\n%s", resp.StatusCode, b)
	}
	var jobs int
	s.st.Pool.QueryRow(context.Background(), `SELECT count(*) FROM river_job`).Scan(&jobs)
	if jobs != 0 {
		t.Fatalf("a bad address queued %d jobs", jobs)
	}

	tok := s.loginToken(c, "Jane.Doe+fmn@example.org")
	if len(tok) < 16 || strings.Trim(tok, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_") != "" {
		t.Fatalf("token %q is not 16+ URL-safe characters", tok)
	}
	resp = s.openLink(c, "/login/"+tok)
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/welcome" {
		t.Fatalf("open link: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	if name := s.suggestedName(c); name != "jane.doe" {
		t.Fatalf("name step suggests %q, want jane.doe", name)
	}
	resp = s.chooseName(c, "jane.doe")
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/welcome/rule" {
		t.Fatalf("choose name: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	sc := strings.Join(resp.Header.Values("Set-Cookie"), "\n")
	for _, want := range []string{"fmn_session=", "HttpOnly", "SameSite=Lax", "Path=/"} {
		if !strings.Contains(sc, want) {
			t.Fatalf("session cookie %q lacks %s", sc, want)
		}
	}
	if strings.Contains(sc, "Secure") {
		t.Fatalf("http site sets a Secure cookie: %q", sc)
	}
	if b := body(t, s.get(c, "/")); !strings.Contains(b, "Sign out jane.doe") {
		t.Fatalf("home after sign-in does not show the user:\n%s", b)
	}
	// Single use.
	if resp := s.get(s.browser(), "/login/"+tok); resp.StatusCode != 404 {
		t.Fatalf("a sign-in link works twice: %d", resp.StatusCode)
	}
	// A second sign-in from the same address is the same user; another
	// address with the same local part gets a unique name.
	s.signIn("jane.doe+other@example.org")
	s.signIn("Jane.Doe+fmn@example.org")
	var names []string
	rows, _ := s.st.Pool.Query(context.Background(), `SELECT name FROM users ORDER BY id`)
	names, _ = pgx.CollectRows(rows, pgx.RowTo[string])
	if fmt.Sprint(names) != "[jane.doe jane.doe2]" {
		t.Fatalf("users after three sign-ins: %v", names)
	}

	// An expired link does not work.
	tok = s.loginToken(s.browser(), "late@example.org")
	s.st.Pool.Exec(context.Background(), `UPDATE login_links SET expires_at = now() - interval '1 second'`)
	if resp := s.get(s.browser(), "/login/"+tok); resp.StatusCode != 404 {
		t.Fatalf("an expired link works: %d", resp.StatusCode)
	}

	// Sign out ends the session server-side: the old cookie is dead.
	old := c.Jar.Cookies(mustURL(s.srv.URL))
	resp = s.postForm(c, "/logout", nil)
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("logout: %d", resp.StatusCode)
	}
	replay := s.browser()
	replay.Jar.SetCookies(mustURL(s.srv.URL), old)
	if resp := s.get(replay, "/settings"); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("a signed-out session still works: %d", resp.StatusCode)
	}
}

func mustURL(s string) *url.URL {
	u, err := url.Parse(s)
	if err != nil {
		panic(err)
	}
	return u
}

func TestSignInRateLimited(t *testing.T) {
	t.Parallel()
	s := newSite(t, AuthConfig{}, "")
	c := s.browser()
	for i := range loginPerAddress {
		if resp := s.postForm(c, "/login", url.Values{"email": {"victim@example.org"}}); resp.StatusCode != 200 {
			t.Fatalf("request %d: %d", i+1, resp.StatusCode)
		}
	}
	resp := s.postForm(c, "/login", url.Values{"email": {"VICTIM@example.org"}})
	if b := body(t, resp); resp.StatusCode != http.StatusTooManyRequests || !strings.Contains(b, "email-error") {
		t.Fatalf("sixth link to one address in an hour: %d\n%s", resp.StatusCode, b)
	}
	// Per client: a few more addresses, then refused whatever the address.
	var last int
	for i := range loginPerClient {
		last = s.postForm(c, "/login", url.Values{"email": {fmt.Sprintf("u%d@example.org", i)}}).StatusCode
	}
	if last != http.StatusTooManyRequests {
		t.Fatalf("one client asking %d times in a row: last status %d", loginPerClient+loginPerAddress+1, last)
	}
}

func TestSessionExpiresAndSecureCookies(t *testing.T) {
	t.Parallel()
	s := newSite(t, AuthConfig{}, "https://fmn.example.org")
	if _, err := s.st.EnsureUser(context.Background(), "sec", "sec@example.org"); err != nil {
		t.Fatal(err)
	}
	c := s.browser()
	tok := s.loginToken(c, "sec@example.org")
	resp := s.openLink(c, "/login/"+tok)
	sc := resp.Header.Get("Set-Cookie")
	for _, want := range []string{"__Host-fmn_session=", "Secure", "HttpOnly", "SameSite=Lax"} {
		if !strings.Contains(sc, want) {
			t.Fatalf("https session cookie %q lacks %s", sc, want)
		}
	}
	// The jar does not send Secure cookies over http; send it by hand.
	val := strings.TrimPrefix(strings.SplitN(sc, ";", 2)[0], "__Host-fmn_session=")
	req, _ := http.NewRequest("GET", s.srv.URL+"/settings", nil)
	req.AddCookie(&http.Cookie{Name: "__Host-fmn_session", Value: val})
	if resp, _ := s.browser().Do(req); resp.StatusCode != 200 {
		t.Fatalf("live session: %d", resp.StatusCode)
	}
	s.st.Pool.Exec(context.Background(), `UPDATE sessions SET expires_at = now() - interval '1 second'`)
	if resp, _ := s.browser().Do(req); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("expired session: %d", resp.StatusCode)
	}
}

// seed gives a user a destination, a rule and one notification whose
// message carries markup everywhere it can.
func seed(t *testing.T, st *store.Store, email string) (userID, destID, ruleID int64) {
	t.Helper()
	ctx := context.Background()
	if err := st.Pool.QueryRow(ctx, `SELECT id FROM users WHERE email = $1`, email).Scan(&userID); err != nil {
		t.Fatal(err)
	}
	err := st.InTx(ctx, func(tx pgx.Tx) error {
		d, err := store.CreateDestination(ctx, tx, userID, "email", email)
		destID = d.ID
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	r, err := st.SaveRule(ctx, rules.Rule{UserID: userID, Name: `<b>rule</b>`, Enabled: true,
		Track: rules.Track{Packages: []string{"kernel"}}, Destinations: []int64{destID}})
	if err != nil {
		t.Fatal(err)
	}
	ruleID = r.ID
	err = st.InTx(ctx, func(tx pgx.Tx) error {
		ids, err := store.InsertMessages(ctx, tx, []store.NewMessage{{
			MsgID: fmt.Sprintf("evil-%d", userID),
			Meta: meta.Metadata{Topic: "org.fedoraproject.prod.git.receive", App: `<i>git</i>`, Agent: `<img src=x onerror=alert(2)>`,
				Usernames: []string{}, Packages: []string{"kernel"},
				Summary: `fix: <script>alert(1)</script> & "quotes"`, Link: "javascript:alert(3)"},
			Envelope: []byte(`{}`),
		}})
		if err != nil {
			return err
		}
		_, err = store.InsertNotifications(ctx, tx, ids[0], []rules.Match{{UserID: userID, RuleID: ruleID, DestinationID: destID}})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return userID, destID, ruleID
}

func TestMarkupIsEscaped(t *testing.T) {
	t.Parallel()
	s := newSite(t, AuthConfig{}, "")
	c := s.signIn("mallory@example.org")
	seed(t, s.st, "mallory@example.org")
	check := func(where, b string) {
		t.Helper()
		for _, bad := range []string{"<script>alert", "<img src=x", "<i>git</i>", "<b>rule</b>", `href="javascript:`} {
			if strings.Contains(b, bad) {
				t.Fatalf("%s renders %q unescaped", where, bad)
			}
		}
	}
	home := body(t, s.get(c, "/"))
	if !strings.Contains(home, "fix: &lt;script&gt;alert(1)&lt;/script&gt; &amp; &#34;quotes&#34;") {
		t.Fatalf("history does not show the summary as text:\n%s", home)
	}
	check("history", home)
	check("bus page", body(t, s.get(s.browser(), "/")))
	check("rules page", body(t, s.get(c, "/rules")))

	// The feed escapes it too.
	resp := s.postForm(c, "/settings/feed", nil)
	page := body(t, resp)
	i := strings.Index(page, s.srv.URL+"/feed/")
	if i < 0 {
		t.Fatalf("no feed address on the settings page:\n%s", page)
	}
	feedURL := page[i : i+len(s.srv.URL+"/feed/")+32]
	resp, err := http.Get(feedURL)
	if err != nil || resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/atom+xml") {
		t.Fatalf("feed: %v %v", err, resp)
	}
	feed := body(t, resp)
	if !strings.Contains(feed, "fix: &lt;script&gt;alert(1)&lt;/script&gt;") || strings.Contains(feed, "<script>") || strings.Contains(feed, "javascript:") {
		t.Fatalf("feed does not escape:\n%s", feed)
	}
	if !strings.Contains(feed, `<link href="`+s.srv.URL+`/notifications/`) || !strings.Contains(feed, `rel="related"`) {
		t.Fatalf("feed entries do not link to why they were made:\n%s", feed)
	}
	if resp, _ := http.Get(s.srv.URL + "/feed/not-a-real-feed-token-at-all"); resp.StatusCode != 404 {
		t.Fatalf("unknown feed: %d", resp.StatusCode)
	}
	// Every page carries the strict policy.
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") || strings.Contains(csp, "unsafe-inline") {
		t.Fatalf("CSP %q", csp)
	}
}

func TestForgedCrossSitePostRefused(t *testing.T) {
	t.Parallel()
	s := newSite(t, AuthConfig{}, "")
	c := s.signIn("victim@example.org")
	_, destID, ruleID := seed(t, s.st, "victim@example.org")
	forge := func(method, path, ctype, payload string, extra map[string]string) int {
		req, _ := http.NewRequest(method, s.srv.URL+path, strings.NewReader(payload))
		req.Header.Set("Content-Type", ctype)
		for k, v := range extra {
			req.Header.Set(k, v)
		}
		resp, err := c.Do(req) // carries the victim's cookie
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	modern := map[string]string{"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"}
	old := map[string]string{"Origin": "https://evil.example"} // a browser without Sec-Fetch-Site
	form := "application/x-www-form-urlencoded"
	for _, h := range []map[string]string{modern, old} {
		for _, p := range []struct{ path, payload string }{
			{fmt.Sprintf("/rules/%d/delete", ruleID), ""},
			{"/destinations", "kind=email&address=attacker%40evil.example"},
			{"/settings/delete", "confirm=victim"},
			{"/settings/tokens", "label=stolen"},
		} {
			if st := forge("POST", p.path, form, p.payload, h); st != http.StatusForbidden {
				t.Fatalf("forged POST %s with %v: %d, want 403", p.path, h, st)
			}
		}
		if st := forge("POST", "/api/v1/rules", "text/plain", `{"name":"x","track":{"apps":["koji"]}}`, h); st != http.StatusForbidden {
			t.Fatalf("forged cookie API POST: %d", st)
		}
		if st := forge("PATCH", fmt.Sprintf("/api/v1/destinations/%d", destID), "application/json", `{"enabled":false}`, h); st != http.StatusForbidden {
			t.Fatalf("forged cookie API PATCH: %d", st)
		}
	}
	var n int
	s.st.Pool.QueryRow(context.Background(), `SELECT (SELECT count(*) FROM rules) + (SELECT count(*) FROM destinations) + (SELECT count(*) FROM api_tokens) + (SELECT count(*) FROM users)`).Scan(&n)
	if n != 3 {
		t.Fatalf("forged requests changed data: %d rows, want 3 (rule, destination, user)", n)
	}
	// The same requests from the site itself go through.
	if st := forge("POST", fmt.Sprintf("/rules/%d/delete", ruleID), form, "", map[string]string{"Origin": s.srv.URL, "Sec-Fetch-Site": "same-origin"}); st != http.StatusSeeOther {
		t.Fatalf("same-origin POST: %d", st)
	}
}

func TestOtherUsersObjectsAreNotFound(t *testing.T) {
	t.Parallel()
	s := newSite(t, AuthConfig{}, "")
	s.signIn("alice@example.org")
	_, destID, ruleID := seed(t, s.st, "alice@example.org")
	bob := s.signIn("bob@example.org")
	tok, err := s.st.CreateToken(context.Background(), 2, "bob")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.st.CreateToken(context.Background(), 1, "alice"); err != nil {
		t.Fatal(err)
	}
	aliceTokens, _ := s.st.ListTokens(context.Background(), 1)

	pages := []struct{ method, path string }{
		{"GET", fmt.Sprintf("/rules/%d", ruleID)},
		{"POST", fmt.Sprintf("/rules/%d", ruleID)},
		{"POST", fmt.Sprintf("/rules/%d/enabled", ruleID)},
		{"POST", fmt.Sprintf("/rules/%d/delete", ruleID)},
		{"POST", fmt.Sprintf("/destinations/%d/enabled", destID)},
		{"POST", fmt.Sprintf("/destinations/%d/policy", destID)},
		{"POST", fmt.Sprintf("/destinations/%d/mute", destID)},
		{"POST", fmt.Sprintf("/destinations/%d/test", destID)},
		{"POST", fmt.Sprintf("/settings/tokens/%d/revoke", aliceTokens[0].ID)},
	}
	for _, p := range pages {
		req, _ := http.NewRequest(p.method, s.srv.URL+p.path, strings.NewReader("name=stolen&track.apps=koji&enabled=false&mode=immediate&for=1h"))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		resp, err := bob.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != 404 {
			t.Fatalf("bob %s %s: %d, want 404", p.method, p.path, resp.StatusCode)
		}
		resp.Body.Close()
	}
	api := []struct{ method, path, body string }{
		{"GET", fmt.Sprintf("/api/v1/rules/%d", ruleID), ""},
		{"PUT", fmt.Sprintf("/api/v1/rules/%d", ruleID), `{"name":"x","track":{"apps":["koji"]}}`},
		{"DELETE", fmt.Sprintf("/api/v1/rules/%d", ruleID), ""},
		{"PATCH", fmt.Sprintf("/api/v1/destinations/%d", destID), `{"enabled":false}`},
	}
	for _, a := range api {
		for _, auth := range []string{"cookie", "token"} {
			req, _ := http.NewRequest(a.method, s.srv.URL+a.path, strings.NewReader(a.body))
			req.Header.Set("Content-Type", "application/json")
			client := bob
			if auth == "token" {
				req.Header.Set("Authorization", "Bearer "+tok)
				client = http.DefaultClient
			}
			resp, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != 404 {
				t.Fatalf("bob (%s) %s %s: %d, want 404", auth, a.method, a.path, resp.StatusCode)
			}
			resp.Body.Close()
		}
	}
	// Bob's own lists hold nothing of Alice's.
	for _, p := range []string{"/", "/rules", "/destinations", "/settings"} {
		if b := body(t, s.get(bob, p)); strings.Contains(b, "alice@example.org") || strings.Contains(b, "&lt;b&gt;rule") {
			t.Fatalf("bob's %s shows alice's data", p)
		}
	}
	var ns []json.RawMessage
	req, _ := http.NewRequest("GET", s.srv.URL+"/api/v1/notifications", nil)
	resp, _ := bob.Do(req)
	json.NewDecoder(resp.Body).Decode(&ns)
	resp.Body.Close()
	if len(ns) != 0 {
		t.Fatalf("bob sees %d notifications of alice's", len(ns))
	}
	// Alice's rule and destination are untouched.
	r, err := s.st.GetRule(context.Background(), 1, ruleID)
	if err != nil || !r.Enabled || r.Name != "<b>rule</b>" {
		t.Fatalf("alice's rule after bob's attempts: %+v %v", r, err)
	}
	d, err := s.st.GetDestination(context.Background(), 1, destID)
	if err != nil || !d.Enabled || d.MutedUntil != nil {
		t.Fatalf("alice's destination after bob's attempts: %+v %v", d, err)
	}
	// Admin is not for bob either: it does not exist for him.
	if resp := s.get(bob, "/admin"); resp.StatusCode != 404 {
		t.Fatalf("non-admin on /admin: %d", resp.StatusCode)
	}
}

func TestRuleEditorAndSettings(t *testing.T) {
	t.Parallel()
	s := newSite(t, AuthConfig{Admins: []string{"pat@example.org"}}, "")
	c := s.signIn("pat@example.org")
	if b := body(t, s.get(c, "/rules")); !strings.Contains(b, "No rules yet") || !strings.Contains(b, "/rules/new?preset=mine") {
		t.Fatalf("empty rules page:\n%s", b)
	}
	b := body(t, s.get(c, "/rules/new"))
	for _, want := range []string{`<option value="bodhi">`, `list="apps-list"`, `<label for="track.packages">`} {
		if !strings.Contains(b, want) {
			t.Fatalf("editor lacks %s", want)
		}
	}
	// A rule tracking nothing is refused beside the track fieldset.
	resp := s.postForm(c, "/rules", url.Values{"name": {"empty"}})
	if b := body(t, resp); resp.StatusCode != 400 || !strings.Contains(b, `id="track-error"`) {
		t.Fatalf("rule tracking nothing: %d\n%s", resp.StatusCode, b)
	}
	resp = s.postForm(c, "/rules", url.Values{"name": {"kernel"}, "enabled": {"on"}, "track.packages": {"kernel, python-*"},
		"filters.not_my_actions": {"on"}})
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("save rule: %d %s", resp.StatusCode, body(t, resp))
	}
	rs, _ := s.st.ListRules(context.Background(), 1)
	if len(rs) != 1 || fmt.Sprint(rs[0].Track.Packages) != "[kernel python-*]" || !rs[0].Filters.NotMyActions || !rs[0].Enabled {
		t.Fatalf("saved rule: %+v", rs)
	}
	s.postForm(c, fmt.Sprintf("/rules/%d/enabled", rs[0].ID), url.Values{"enabled": {"false"}})
	if r, _ := s.st.GetRule(context.Background(), 1, rs[0].ID); r.Enabled {
		t.Fatal("turning a rule off did not")
	}

	// Settings: a bad zone is said beside the field; a good one is kept.
	resp = s.postForm(c, "/settings", url.Values{"timezone": {"Mars/Olympus"}})
	if b := body(t, resp); resp.StatusCode != 400 || !strings.Contains(b, `id="timezone-error"`) {
		t.Fatalf("bad zone: %d\n%s", resp.StatusCode, b)
	}
	resp = s.postForm(c, "/settings", url.Values{"timezone": {"Europe/Prague"}, "quiet_start": {"22:00"}, "quiet_end": {"07:00"}})
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("save settings: %d", resp.StatusCode)
	}
	us, _ := s.st.GetUserSettings(context.Background(), 1)
	if us.Timezone != "Europe/Prague" || *us.QuietStart != "22:00" {
		t.Fatalf("settings: %+v", us)
	}
	// Tokens: created (shown once, usable), revoked (then refused).
	b = body(t, s.postForm(c, "/settings/tokens", url.Values{"label": {"script"}}))
	i := strings.Index(b, `id="new-token">`)
	if i < 0 {
		t.Fatalf("new token not shown:\n%s", b)
	}
	tok := b[i+len(`id="new-token">`):]
	tok = tok[:strings.IndexByte(tok, '<')]
	if _, err := s.st.UserByToken(context.Background(), tok); err != nil {
		t.Fatalf("shown token does not work: %v", err)
	}
	ts, _ := s.st.ListTokens(context.Background(), 1)
	s.postForm(c, fmt.Sprintf("/settings/tokens/%d/revoke", ts[0].ID), nil)
	if _, err := s.st.UserByToken(context.Background(), tok); err == nil {
		t.Fatal("revoked token still works")
	}
	// Admin page for an admin.
	if resp := s.get(c, "/admin"); resp.StatusCode != 200 {
		t.Fatalf("admin on /admin: %d", resp.StatusCode)
	}
	// Deleting the account needs the name typed, then removes everything.
	seed(t, s.st, "pat@example.org")
	resp = s.postForm(c, "/settings/delete", url.Values{"confirm": {"nope"}})
	if b := body(t, resp); resp.StatusCode != 400 || !strings.Contains(b, `id="confirm-error"`) {
		t.Fatalf("delete without confirmation: %d", resp.StatusCode)
	}
	if resp := s.postForm(c, "/settings/delete", url.Values{"confirm": {"pat"}}); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("delete account: %d", resp.StatusCode)
	}
	var left int
	s.st.Pool.QueryRow(context.Background(), `SELECT (SELECT count(*) FROM users) + (SELECT count(*) FROM rules) + (SELECT count(*) FROM destinations)
		+ (SELECT count(*) FROM notifications) + (SELECT count(*) FROM sessions) + (SELECT count(*) FROM api_tokens)`).Scan(&left)
	if left != 0 {
		t.Fatalf("%d rows of the deleted user remain", left)
	}
	if resp := s.get(c, "/settings"); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("deleted user still signed in: %d", resp.StatusCode)
	}
}

// TestDestinationsOfferConfiguredChannels is issue 14's finding 6: make
// run's default has no IRC bot, yet the page offered IRC nicks, said "a
// confirmation was sent", and the destination waited for it forever. The
// page offers, and the form and the API accept, only the channels this fmn
// delivers through.
func TestDestinationsOfferConfiguredChannels(t *testing.T) {
	t.Parallel()
	s := newSite(t, AuthConfig{}, "", fmn.KindEmail, fmn.KindPush)
	c := s.signIn("fay@example.org")
	b := body(t, s.get(c, "/destinations"))
	if !strings.Contains(b, `<option value="email"`) || strings.Contains(b, `<option value="irc"`) || strings.Contains(b, `<option value="matrix"`) {
		t.Fatalf("kinds offered without IRC and Matrix configured:\n%s", b)
	}
	resp := s.postForm(c, "/destinations", url.Values{"kind": {"irc"}, "address": {"fay"}})
	if b := body(t, resp); resp.StatusCode != 400 || !strings.Contains(b, "does not deliver by irc") {
		t.Fatalf("IRC destination without a bot: %d\n%s", resp.StatusCode, b)
	}
	if ds, _ := s.st.ListDestinations(context.Background(), 1); len(ds) != 0 {
		t.Fatalf("stored anyway: %+v", ds)
	}
	all := newSite(t, AuthConfig{}, "", fmn.KindEmail, fmn.KindIRC, fmn.KindMatrix, fmn.KindPush)
	b = body(t, all.get(all.signIn("gus@example.org"), "/destinations"))
	if !strings.Contains(b, `<option value="irc"`) || !strings.Contains(b, `<option value="matrix"`) {
		t.Fatalf("kinds offered with IRC and Matrix configured:\n%s", b)
	}
}

func TestDestinationsPage(t *testing.T) {
	t.Parallel()
	s := newSite(t, AuthConfig{}, "")
	c := s.signIn("dee@example.org")
	if b := body(t, s.get(c, "/destinations")); !strings.Contains(b, "No destinations yet") {
		t.Fatalf("empty destinations page:\n%s", b)
	}
	resp := s.postForm(c, "/destinations", url.Values{"kind": {"email"}, "address": {"dee.work@example.org\r\nBcc: x@example.org"}})
	if b := body(t, resp); resp.StatusCode != 400 || !strings.Contains(b, `id="address-error"`) {
		t.Fatalf("header injection address: %d\n%s", resp.StatusCode, b)
	}
	// Another address than the one signed in with: it must be confirmed.
	resp = s.postForm(c, "/destinations", url.Values{"kind": {"email"}, "address": {"dee.work@example.org"}})
	if resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(resp.Header.Get("Location"), "/destinations?done=added") {
		t.Fatalf("add: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	if resp := s.postForm(c, "/destinations", url.Values{"kind": {"email"}, "address": {"dee.work@example.org"}}); resp.StatusCode != 400 {
		t.Fatalf("adding twice: %d", resp.StatusCode)
	}
	ds, _ := s.st.ListDestinations(context.Background(), 1)
	if len(ds) != 1 || ds[0].Confirmed {
		t.Fatalf("destinations: %+v", ds)
	}
	id := ds[0].ID
	var confirmJobs int
	s.st.Pool.QueryRow(context.Background(), `SELECT count(*) FROM river_job WHERE kind = 'confirm' AND queue = 'email'`).Scan(&confirmJobs)
	if confirmJobs != 1 {
		t.Fatalf("%d confirmation jobs, want 1", confirmJobs)
	}
	// Nothing is sent to an unconfirmed destination, not even a test.
	resp = s.postForm(c, fmt.Sprintf("/destinations/%d/test", id), nil)
	if b := body(t, resp); resp.StatusCode != 400 || !strings.Contains(b, "Confirm this destination first") {
		t.Fatalf("test to unconfirmed: %d", resp.StatusCode)
	}
	code, err := s.st.NewConfirmCode(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	if b := body(t, s.openLink(c, "/confirm/"+code)); !strings.Contains(b, "Destination confirmed") {
		t.Fatalf("confirm page:\n%s", b)
	}
	if resp := s.postForm(c, fmt.Sprintf("/destinations/%d/test", id), nil); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("test send: %d", resp.StatusCode)
	}
	var testJobs int
	s.st.Pool.QueryRow(context.Background(), `SELECT count(*) FROM river_job WHERE kind = 'test_send' AND queue = 'email'`).Scan(&testJobs)
	if testJobs != 1 {
		t.Fatalf("%d test jobs, want 1", testJobs)
	}
	// Mute for a day, then unmute.
	s.postForm(c, fmt.Sprintf("/destinations/%d/mute", id), url.Values{"for": {"24h"}})
	d, _ := s.st.GetDestination(context.Background(), 1, id)
	if d.MutedUntil == nil || time.Until(*d.MutedUntil) < 23*time.Hour {
		t.Fatalf("muted until %v", d.MutedUntil)
	}
	if b := body(t, s.get(c, "/destinations")); !strings.Contains(b, "muted until") {
		t.Fatal("the page does not say the destination is muted")
	}
	if resp := s.postForm(c, fmt.Sprintf("/destinations/%d/mute", id), url.Values{"for": {"forever"}}); resp.StatusCode != 400 {
		t.Fatalf("mute for a bad duration: %d", resp.StatusCode)
	}
	s.postForm(c, fmt.Sprintf("/destinations/%d/mute", id), url.Values{"for": {""}})
	if d, _ := s.st.GetDestination(context.Background(), 1, id); d.MutedUntil != nil {
		t.Fatalf("still muted until %v", d.MutedUntil)
	}
	// Delivery policy: the delivery package judges; an error shows beside
	// the form and changes nothing.
	if resp := s.postForm(c, fmt.Sprintf("/destinations/%d/policy", id), url.Values{"mode": {"immediate"}}); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("immediate policy: %d", resp.StatusCode)
	}
	resp = s.postForm(c, fmt.Sprintf("/destinations/%d/policy", id), url.Values{"mode": {"sometimes"}})
	if b := body(t, resp); resp.StatusCode != 400 || !strings.Contains(b, `role="alert"`) {
		t.Fatalf("bad policy: %d\n%s", resp.StatusCode, b)
	}
	if d, _ := s.st.GetDestination(context.Background(), 1, id); policyText(d.Delivery) != "at once" {
		t.Fatalf("policy after a refused change: %s", d.Delivery)
	}
	// Off and on.
	s.postForm(c, fmt.Sprintf("/destinations/%d/enabled", id), url.Values{"enabled": {"false"}})
	if d, _ := s.st.GetDestination(context.Background(), 1, id); d.Enabled {
		t.Fatal("turning a destination off did not")
	}
	// The API takes the session cookie (the pages' scripts use it).
	var me struct{ Name string }
	resp = s.get(c, "/api/v1/me")
	json.NewDecoder(resp.Body).Decode(&me)
	resp.Body.Close()
	if me.Name != "dee" {
		t.Fatalf("GET /api/v1/me with the session cookie: %d %+v", resp.StatusCode, me)
	}
	if resp := s.get(s.browser(), "/api/v1/me"); resp.StatusCode != 401 {
		t.Fatalf("GET /api/v1/me without credentials: %d", resp.StatusCode)
	}
}
