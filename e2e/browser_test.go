package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/oauth2-proxy/mockoidc"

	"fmn/delivery/email/smtptest"
)

// chromium finds Debian's browser; scripts/ensure-chromium.sh installs it.
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Fatal("chromium is not installed: run scripts/ensure-chromium.sh (make test does)")
	return ""
}

// newBrowser starts a headless Chromium with a fresh profile and returns a
// context for one tab. The browser stops when the test ends.
func newBrowser(t *testing.T) context.Context {
	t.Helper()
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromium(t)),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-default-apps", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 900),
	}
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(alloc)
	t.Cleanup(func() { cancel(); cancelAlloc() })
	// The first run starts the browser; it must not carry a timeout.
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	return ctx
}

// artifacts is where screenshots go: $FMN_ARTIFACTS, else fmn-artifacts in
// the temporary directory (one fixed folder, replaced on each run, so runs
// do not pile up). The path is logged.
func artifacts(t *testing.T) string {
	t.Helper()
	root := os.Getenv("FMN_ARTIFACTS")
	if root == "" {
		root = filepath.Join(os.TempDir(), "fmn-artifacts")
	}
	dir := filepath.Join(root, t.Name())
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshots in %s", dir)
	return dir
}

var loginLink = regexp.MustCompile(`http://127\.0\.0\.1:\d+/login/[A-Za-z0-9_-]{16,}`)

// mailLink waits for the n-th mail (1-based) and returns the link in it.
func mailLink(t *testing.T, srv *smtptest.Server, n int, re *regexp.Regexp) string {
	t.Helper()
	ms := srv.WaitFor(t, n, 30*time.Second)
	link := re.FindString(string(ms[n-1].Data))
	if link == "" {
		t.Fatalf("no link in mail %d:\n%s", n, ms[n-1].Data)
	}
	return link
}

// TestBrowser walks the UI as a new user would, in a real Chromium: sign
// in by emailed link, add and confirm an email destination, write a rule in
// the editor and see its preview, watch a matching bus message arrive live
// on the history (escaped), look at settings and admin, and sign out. Each
// page is saved as a screenshot.
func TestBrowser(t *testing.T) {
	t.Parallel()
	s, pub, mailSrv := startWithBus(t, "FMN_ADMINS=jane@example.org")
	publish := func(summary string) { t.Helper(); publishKernelPush(t, pub, summary) }
	// One kernel message before the rule exists, for the preview to find.
	publish("Update to 6.12.1")

	ctx := newBrowser(t)
	dir := artifacts(t)
	// Every console error or uncaught exception is a failure (a CSP
	// violation shows up here too), except the preview's probe while that
	// endpoint is missing.
	failOnConsoleErrors(t, ctx, func(where string) bool { return strings.Contains(where, "/api/v1/rules/preview") })
	step := func(what string, steps ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		if err := chromedp.Do(sctx, steps...); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	shot := func(name string) {
		t.Helper()
		png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
		if err != nil {
			t.Fatalf("screenshot %s: %v", name, err)
		}
		if err := os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	waitJS := func(what, cond string) chromedp.Action[chromedp.Void] { return pollJS(what, cond, 20*time.Second) }
	h1Is := func(text string) chromedp.Action[chromedp.Void] {
		return waitJS("heading "+text, fmt.Sprintf(`document.readyState === "complete" && (document.querySelector("h1")||{}).textContent === %q`, text))
	}

	step("visitor home", chromedp.Navigate(s.base+"/"), chromedp.WaitVisible(chromedp.CSS(".hero")),
		waitJS("the bus message", `document.body.textContent.includes("Update to 6.12.1")`))
	shot("01-home-visitor")

	// Sign in by emailed link.
	step("sign-in page", chromedp.Click(chromedp.CSS(`header a[href="/login"]`)), chromedp.WaitVisible(chromedp.ID("email")))
	shot("02-login")
	step("ask for a link", chromedp.SendKeys(chromedp.ID("email"), "jane@example.org"), chromedp.Click(chromedp.ID("send-link")),
		h1Is("Check your mail"))
	shot("03-login-sent")
	link := mailLink(t, mailSrv, 1, loginLink)
	// A first sign-in asks for the bus name, suggesting the address's.
	step("open the link", chromedp.Navigate(link), h1Is("Sign in to fmn"))
	shot("03a-sign-in-button")
	step("press sign in", chromedp.Click(chromedp.ID("link-action")), h1Is("Choose your name"))
	if v, _ := chromedp.Run(ctx, chromedp.Value(chromedp.ID("name"))); v != "jane" {
		t.Fatalf("the name step suggests %q, want jane", v)
	}
	shot("03b-choose-name")
	// A new account is offered a first rule; this walk writes its own.
	step("choose the name", chromedp.Click(chromedp.ID("choose-name")), h1Is("Start with a rule?"))
	shot("03c-first-rule-offer")
	step("not now", chromedp.Click(chromedp.ID("first-rule-no")), h1Is("Your notifications"),
		chromedp.WaitVisible(chromedp.ID("history-empty")))
	if loc, _ := chromedp.Run(ctx, chromedp.Location()); loc != s.base+"/" {
		t.Fatalf("after the sign-in link the browser is at %s", loc)
	}
	shot("04-history-empty")

	// Add and confirm an email destination.
	step("destinations", chromedp.Click(chromedp.CSS(`nav a[href="/destinations"]`)), h1Is("Destinations"))
	shot("05-destinations-empty")
	// The address jane signed in with needs no confirmation: the sign-in
	// link proved it. Another address does.
	step("add the signed-in address", chromedp.SendKeys(chromedp.ID("address"), "jane@example.org"), chromedp.Click(chromedp.ID("add-destination")),
		chromedp.WaitVisible(chromedp.CSS(".badge.confirmed")))
	step("add email", chromedp.SendKeys(chromedp.ID("address"), "jane.work@example.org"), chromedp.Click(chromedp.ID("add-destination")),
		chromedp.WaitVisible(chromedp.CSS(".badge.unconfirmed")))
	shot("06-destination-unconfirmed")
	confirm := mailLink(t, mailSrv, 2, confirmLink)
	step("open the confirmation link", chromedp.Navigate(confirm), h1Is("Confirm this destination"))
	step("confirm", chromedp.Click(chromedp.ID("link-action")), h1Is("Destination confirmed"))
	step("confirmed", chromedp.Navigate(s.base+"/destinations"), waitJS("both confirmed", `document.querySelectorAll(".badge.confirmed").length === 2`))
	shot("07-destination-confirmed")
	step("test message", chromedp.Click(chromedp.CSS(`#destinations details summary`)),
		chromedp.Click(chromedp.CSS(`form[action$="/test"] button`)), waitJS("the notice", `(document.querySelector(".notice")||{}).textContent.includes("test message is on its way")`))
	if ms := mailSrv.WaitFor(t, 3, 30*time.Second); !strings.Contains(string(ms[2].Data), "Subject: fmn test message") {
		t.Fatalf("third mail is not the test message:\n%s", ms[2].Data)
	}

	// Write a rule with the editor.
	step("rules", chromedp.Click(chromedp.CSS(`nav a[href="/rules"]`)), chromedp.WaitVisible(chromedp.ID("preset-mine")))
	shot("08-rules-empty")
	step("editor", chromedp.Click(chromedp.ID("new-rule")), h1Is("New rule"),
		chromedp.SendKeys(chromedp.ID("name"), "kernel"),
		// The app picker suggests names seen on the bus and known to fmn.
		chromedp.SendKeys(chromedp.CSS(`[id="track.packages"]`), "kern"),
		waitJS("package suggestions", `[...document.querySelectorAll("#packages-list option")].some(o => o.value === "kernel")`),
		chromedp.SetValue(chromedp.CSS(`[id="track.packages"]`), "kernel"),
		chromedp.SendKeys(chromedp.CSS(`[id="filters.apps_exclude"]`), "bod"),
		waitJS("app suggestions", `[...document.querySelectorAll("#apps-list option")].some(o => o.value === "bodhi")`),
		chromedp.SetValue(chromedp.CSS(`[id="filters.apps_exclude"]`), "koji"),
		chromedp.SendKeys(chromedp.ID("name"), " commits"), // an input event for the preview
	)
	status, err := chromedp.Run(ctx, chromedp.Evaluate[int](`fetch("/api/v1/rules/preview", {method: "POST", headers: {"Content-Type": "application/json"},
		body: JSON.stringify({name: "probe", track: {packages: ["kernel"]}})}).then(r => r.status)`, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatal(err)
	}
	if status == 404 || status == 405 { // 405: chi's answer while only /rules/{id} matches
		// POST /api/v1/rules/preview comes with issue 4; until it is merged
		// the box must stay hidden rather than show an error.
		t.Logf("POST /api/v1/rules/preview answers %d (not on this branch): checking that the preview box stays hidden", status)
		step("no preview", waitJS("hidden preview", `document.getElementById("preview").hidden`))
	} else {
		step("preview", waitJS("preview count", `(document.getElementById("preview-count")||{}).textContent.includes("would have matched 1 message")`),
			waitJS("preview example", `document.querySelector("#preview-list li") && document.querySelector("#preview-list li").textContent.includes("Update to 6.12.1")`))
	}
	checked, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`document.querySelector('input[name="destinations"]').checked`))
	if err != nil || !checked {
		t.Fatalf("the confirmed destination is not ticked for a new rule: %v", err)
	}
	shot("09-rule-editor")
	step("save rule", chromedp.Click(chromedp.ID("save-rule")), h1Is("Rules"),
		waitJS("the rule card", `document.querySelector("#rules .card h2").textContent === "kernel commits"`))
	shot("10-rules")

	// A matching message appears live in the history, as text: once per
	// destination of the rule (both of jane's are ticked).
	step("history live", chromedp.Click(chromedp.CSS(`nav a[href="/"]`)), h1Is("Your notifications"),
		waitJS("the live stream", `document.body.dataset.live === "open"`))
	publish(`<script>document.title="pwned"</script><b>bold</b> fix`)
	step("live notification", waitJS("the notification", `document.querySelectorAll("#history li").length === 2`))
	row, err := chromedp.Run(ctx, chromedp.Evaluate[map[string]any](`(() => { const li = document.querySelector("#history li");
		return {text: li.querySelector(".summary").textContent, elements: li.querySelectorAll("script, b").length,
			title: document.title, emptyHidden: document.getElementById("history-empty").hidden}; })()`))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(row["text"].(string), `<script>document.title="pwned"</script><b>bold</b> fix`) || row["elements"].(float64) != 0 ||
		row["title"] == "pwned" || row["emptyHidden"] != true {
		t.Fatalf("live notification: %v", row)
	}
	shot("11-history-live")
	// After a reload it is in the server-rendered history too, still text.
	step("history reloaded", chromedp.Reload(), waitJS("the stored notification", `document.querySelectorAll("#history li").length === 2`))
	row, _ = chromedp.Run(ctx, chromedp.Evaluate[map[string]any](`({elements: document.querySelectorAll("#history script, #history b").length, title: document.title})`))
	if row["elements"].(float64) != 0 || row["title"] == "pwned" {
		t.Fatalf("stored notification rendered as markup: %v", row)
	}

	step("settings", chromedp.Click(chromedp.CSS(`nav a[href="/settings"]`)), h1Is("Settings"),
		chromedp.SendKeys(chromedp.ID("label"), "laptop"), chromedp.Click(chromedp.ID("create-token")),
		chromedp.WaitVisible(chromedp.ID("new-token")))
	shot("12-settings")
	step("admin", chromedp.Click(chromedp.CSS(`nav a[href="/admin"]`)), h1Is("Admin"))
	shot("13-admin")

	// Readable on a phone.
	step("phone", chromedp.EmulateViewport(390, 844), chromedp.Navigate(s.base+"/rules/new"), h1Is("New rule"))
	shot("14-phone-rule-editor")
	step("phone home", chromedp.Navigate(s.base+"/"), h1Is("Your notifications"))
	shot("15-phone-history")
	step("desktop", chromedp.EmulateViewport(1280, 900))

	// Keyboard: the first Tab lands on the skip link, and focus is visible.
	focus, err := chromedp.Run(ctx, chromedp.Evaluate[string](`(() => { const a = document.querySelector(".skip"); a.focus();
		return getComputedStyle(a).outlineStyle + " " + getComputedStyle(a).left; })()`))
	if err != nil || !strings.HasPrefix(focus, "solid") {
		t.Fatalf("focused skip link style %q: %v", focus, err)
	}

	// Sign out: back to the visitor's page, and the pages ask to sign in.
	step("sign out", chromedp.Click(chromedp.ID("sign-out")), chromedp.WaitVisible(chromedp.CSS(".hero")))
	shot("16-signed-out")
	step("signed out", chromedp.Navigate(s.base+"/settings"), h1Is("Sign in"))
}

// TestBrowserOIDC signs in through an OpenID provider started in the test
// (mockoidc: discovery, JWKS, authorize and token endpoints, RS256 ID
// tokens), with the real binary and a real browser following the redirects.
func TestBrowserOIDC(t *testing.T) {
	t.Parallel()
	op, err := mockoidc.Run()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { op.Shutdown() })
	cfg := op.Config()
	s := startService(t, "FMN_OIDC_ISSUER="+cfg.Issuer, "FMN_OIDC_CLIENT_ID="+cfg.ClientID,
		"FMN_OIDC_CLIENT_SECRET="+cfg.ClientSecret, "FMN_OIDC_USERNAME_CLAIM=preferred_username")
	op.QueueUser(&mockoidc.MockUser{Subject: "42", PreferredUsername: "packager", Email: "packager@example.org", EmailVerified: true})

	ctx := newBrowser(t)
	dir := artifacts(t)
	sctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	err = chromedp.Do(sctx,
		chromedp.Navigate(s.base+"/rules"), // sent to sign in, then back here
		chromedp.WaitVisible(chromedp.ID("oidc-login")),
	)
	if err != nil {
		t.Fatal(err)
	}
	if png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100)); err == nil {
		os.WriteFile(filepath.Join(dir, "01-login-oidc.png"), png, 0o644)
	}
	err = chromedp.Do(sctx,
		chromedp.Click(chromedp.ID("oidc-login")),
		chromedp.WaitVisible(chromedp.ID("sign-out")),
	)
	if err != nil {
		t.Fatal(err)
	}
	loc, _ := chromedp.Run(ctx, chromedp.Location())
	who, _ := chromedp.Run(ctx, chromedp.Text(chromedp.ID("sign-out")))
	if loc != s.base+"/rules" || who != "Sign out packager" {
		t.Fatalf("after the provider: at %s, %q", loc, who)
	}
	if png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100)); err == nil {
		os.WriteFile(filepath.Join(dir, "02-signed-in.png"), png, 0o644)
	}
}

// pollJS polls a JavaScript condition until it holds, at most within. It
// evaluates afresh each time, so a page navigating meanwhile (a form post)
// is simply looked at again.
func pollJS(what, cond string, within time.Duration) chromedp.Action[chromedp.Void] {
	return func(c context.Context, tg *chromedp.Target) (chromedp.Void, error) {
		deadline := time.Now().Add(within)
		var last error
		for {
			ok, err := chromedp.Evaluate[bool]("!!("+cond+")", chromedp.EvalIgnoreExceptions)(c, tg)
			if err == nil && ok {
				return chromedp.Void{}, nil
			}
			last = err
			if time.Now().After(deadline) || c.Err() != nil {
				return chromedp.Void{}, fmt.Errorf("waiting for %s (%s): %v", what, cond, last)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
}
