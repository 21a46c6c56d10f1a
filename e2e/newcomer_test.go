package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"fmn/consumer"
	"fmn/delivery/email/smtptest"
)

// walk is one browser tab driven through fmn, with the helpers a walk
// needs: steps under a deadline, conditions polled in the page, and
// screenshots named after the step and the window's width.
type walk struct {
	t     *testing.T
	ctx   context.Context
	dir   string
	width int
}

func newWalk(t *testing.T) *walk {
	w := &walk{t: t, ctx: newBrowser(t), dir: artifacts(t), width: 1280}
	// A refused form answers 400, by design: the browser notes it.
	failOnConsoleErrors(t, w.ctx, func(where string) bool { return strings.Contains(where, "status of 400 (Bad Request)") })
	return w
}

// failOnConsoleErrors fails the test for every console error or uncaught
// exception in the tab (a CSP violation shows up there too), except those
// whose URL and text ignore accepts.
func failOnConsoleErrors(t *testing.T, ctx context.Context, ignore func(where string) bool) {
	var mu sync.Mutex
	var errs []string
	go func() {
		for m, err := range chromedp.Console(ctx) {
			if err != nil {
				return
			}
			if (m.Type == "error" || m.IsException()) && !ignore(m.URL+" "+m.String()) {
				mu.Lock()
				errs = append(errs, m.String())
				mu.Unlock()
			}
		}
	}()
	t.Cleanup(func() {
		mu.Lock()
		defer mu.Unlock()
		if len(errs) > 0 {
			t.Errorf("browser console errors:\n%s", strings.Join(errs, "\n"))
		}
	})
}

func (w *walk) step(what string, steps ...chromedp.Action[chromedp.Void]) {
	w.t.Helper()
	ctx, cancel := context.WithTimeout(w.ctx, 30*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		w.t.Fatalf("%s: %v", what, err)
	}
}

// size sets the window's width (the height is a phone's or a laptop's).
func (w *walk) size(width int) {
	w.t.Helper()
	height := 900
	if width < 600 {
		height = 844
	}
	w.width = width
	w.step(fmt.Sprintf("width %d", width), chromedp.EmulateViewport(int64(width), int64(height)))
}

func (w *walk) shot(name string) {
	w.t.Helper()
	png, err := chromedp.Run(w.ctx, chromedp.FullScreenshot(100))
	if err != nil {
		w.t.Fatalf("screenshot %s: %v", name, err)
	}
	if err := os.WriteFile(filepath.Join(w.dir, fmt.Sprintf("%s-%d.png", name, w.width)), png, 0o644); err != nil {
		w.t.Fatal(err)
	}
}

// until polls a JavaScript condition on a loaded page until it holds (a
// page navigating meanwhile is simply looked at again).
func (w *walk) until(what, cond string) chromedp.Action[chromedp.Void] {
	return func(c context.Context, tg *chromedp.Target) (chromedp.Void, error) {
		deadline := time.Now().Add(25 * time.Second)
		var last error
		for {
			ok, err := chromedp.Evaluate[bool](`document.readyState === "complete" && !!(`+cond+")", chromedp.EvalIgnoreExceptions)(c, tg)
			if err == nil && ok {
				return chromedp.Void{}, nil
			}
			last = err
			if time.Now().After(deadline) || c.Err() != nil {
				// Say what the page showed, to tell a slow page from a wrong one.
				sctx, cancel := context.WithTimeout(context.WithoutCancel(c), 2*time.Second)
				shown, _ := chromedp.Evaluate[string](`(document.querySelector("main")||document.body).innerText.slice(0, 600)`)(sctx, tg)
				cancel()
				return chromedp.Void{}, fmt.Errorf("waiting for %s (%s): %v; the page shows:\n%s", what, cond, last, shown)
			}
			time.Sleep(50 * time.Millisecond) // polling the page with a deadline
		}
	}
}

func (w *walk) h1(text string) chromedp.Action[chromedp.Void] {
	return w.until("heading "+text, fmt.Sprintf(`document.readyState === "complete" && (document.querySelector("h1")||{}).textContent === %q`, text))
}

// eval runs an expression in the page (awaiting it when it is a promise).
func eval[T any](w *walk, expr string) T {
	w.t.Helper()
	v, err := chromedp.Run(w.ctx, chromedp.Evaluate[T](expr, chromedp.EvalAwaitPromise))
	if err != nil {
		w.t.Fatalf("evaluate %s: %v", expr, err)
	}
	return v
}

// startWithBus starts the service with an SMTP server and a bus publisher
// of the test's own, and waits until the service subscribes.
func startWithBus(t *testing.T, env ...string) (*service, *consumer.Publisher, *smtptest.Server) {
	t.Helper()
	mailSrv := smtptest.Start(t)
	busEP := fmt.Sprintf("tcp://127.0.0.1:%d", freePort(t))
	pub, err := consumer.NewPublisher(context.Background(), busEP, false)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pub.Close() })
	s := startService(t, append([]string{"FMN_SMTP_URL=" + mailSrv.URL(), "FMN_BUS_ENDPOINTS=" + busEP}, env...)...)
	eventually(t, 15*time.Second, "the service subscribed to the bus", func() bool {
		return pub.WaitSubscribers(context.Background(), 100*time.Millisecond)
	})
	return s, pub, mailSrv
}

// publishKernelPush publishes bob's push to rpms/kernel with the summary.
func publishKernelPush(t *testing.T, pub *consumer.Publisher, summary string) {
	t.Helper()
	err := pub.Publish(map[string]any{
		"topic": "org.fedoraproject.prod.git.receive",
		"msg": map[string]any{"commit": map[string]any{
			"branch": "rawhide", "email": "bob@example.org", "message": summary + "\n", "name": "Bob",
			"repo": "kernel", "rev": "66abdea4014eb2f0745fc38f86e20c7d7009237e", "summary": summary, "username": "bob",
			"stats": map[string]any{"files": map[string]any{}, "total": map[string]any{"deletions": 1, "files": 1, "insertions": 1, "lines": 2}},
		}},
	}, true)
	if err != nil {
		t.Fatal(err)
	}
}

// headerOneRow holds when the page header is one row high (a wrapped menu
// doubles it).
const headerOneRow = `(() => { const h = document.querySelector("header").getBoundingClientRect().height;
	return h < 64; })()`

// TestBrowserNewcomer walks issue 14's first hour as a newcomer would, at
// 1280 and at 390 px: a rule written before any destination fills the
// history, calmly; "why?" explains a notification; a destination added
// later offers itself to that rule; the delivery form hides the digest's
// fields under "at once", takes "2 hours" and keeps a refused value beside
// its error; deleting asks first; a mistyped destination is deleted; the
// header stays one row on a phone, its menu opening without script.
func TestBrowserNewcomer(t *testing.T) {
	t.Parallel()
	s, pub, mailSrv := startWithBus(t)
	publish := func(summary string) { t.Helper(); publishKernelPush(t, pub, summary) }
	w := newWalk(t)

	// Sign up by emailed link; the first rule is offered, and declined.
	w.step("sign in", chromedp.Navigate(s.base+"/login"), chromedp.SendKeys(chromedp.ID("email"), "nina@example.org"),
		chromedp.Click(chromedp.ID("send-link")), w.h1("Check your mail"))
	w.step("the link", chromedp.Navigate(mailLink(t, mailSrv, 1, loginLink)), w.h1("Sign in to fmn"),
		chromedp.Click(chromedp.ID("link-action")), w.h1("Choose your name"),
		chromedp.Click(chromedp.ID("choose-name")), w.h1("Start with a rule?"))
	w.shot("01-first-rule-offer")
	w.size(390)
	w.shot("01-first-rule-offer")
	if !eval[bool](w, headerOneRow) {
		t.Fatal("the header takes more than one row at 390 px")
	}
	w.size(1280)
	w.step("not now", chromedp.Click(chromedp.ID("first-rule-no")), w.h1("Your notifications"))

	// A rule before any destination.
	w.step("new rule", chromedp.Navigate(s.base+"/rules/new"), w.h1("New rule"),
		chromedp.SendKeys(chromedp.ID("name"), "kernel"), chromedp.SetValue(chromedp.CSS(`[id="track.packages"]`), "kernel"),
		chromedp.Click(chromedp.ID("save-rule")), w.h1("Rules"),
		w.until("saved notice", `(document.querySelector(".notice")||{}).textContent === "Saved."`),
		w.until("history-only note", `document.querySelector("#rules .card").textContent.includes("only fill your history")`))
	w.shot("02-rule-without-destination")

	// Its match reaches the history, calmly, with a "why?".
	w.step("history", chromedp.Navigate(s.base+"/"), w.h1("Your notifications"),
		w.until("the live stream", `document.body.dataset.live === "open"`))
	publish("Update to 6.12.2")
	w.step("recorded", w.until("the notification", `document.querySelectorAll("#history li").length === 1`),
		w.until("its state", `document.querySelector("#history li .status").textContent === "kept in your history"`))
	if red := eval[int](w, `document.querySelectorAll("#history .status-bad, #history .error").length`); red != 0 {
		t.Fatalf("%d red marks on a history-only notification", red)
	}
	w.step("reload", chromedp.Reload(), w.until("stored", `document.querySelectorAll("#history li").length === 1`))
	w.shot("03-history-recorded")
	w.size(390)
	w.shot("03-history-recorded")
	w.size(1280)
	w.step("why", chromedp.Click(chromedp.CSS(`#history a.why`)), w.h1("Why you got this"),
		w.until("the hit", `(document.getElementById("why-hit")||{}).textContent === "package kernel"`),
		w.until("nothing sent", `document.getElementById("where").textContent.includes("Nothing was sent")`))
	w.shot("04-why")
	w.size(390)
	w.shot("04-why")
	w.size(1280)

	// A destination added later offers itself to the rule.
	w.step("add a destination", chromedp.Navigate(s.base+"/destinations"), w.h1("Destinations"),
		chromedp.SendKeys(chromedp.ID("address"), "nina.work@example.org"), chromedp.Click(chromedp.ID("add-destination")),
		w.until("the offer, open", `document.querySelector("details.offer[open] input[name=rule]:checked")`))
	w.shot("05-destination-offer")
	w.size(390)
	w.shot("05-destination-offer")
	w.size(1280)
	w.step("attach", chromedp.Click(chromedp.CSS(`details.offer button[type=submit]`)),
		w.until("attached", `document.body.textContent.includes("Rules sending here: kernel")`))

	// The delivery form.
	w.step("open the delivery form", chromedp.Click(chromedp.CSS(`#destinations details:not(.offer) summary`)),
		w.until("the form", `document.querySelector("form.policy")`))
	hidden := `getComputedStyle(document.querySelector("form.policy .digest-fields")).display === "none" && document.querySelector("form.policy .digest-fields").disabled`
	if !eval[bool](w, hidden) {
		t.Fatal("digest fields shown or enabled under at once")
	}
	w.step("digest", chromedp.Click(chromedp.CSS(`form.policy input[value=digest]`)),
		w.until("digest fields shown", `getComputedStyle(document.querySelector("form.policy .digest-fields")).display !== "none" && !document.querySelector("form.policy .digest-fields").disabled`),
		chromedp.SendKeys(chromedp.CSS(`form.policy input[name=every]`), "fortnightly"),
		chromedp.Click(chromedp.CSS(`form.policy button[type=submit]`)),
		w.until("the error beside every", `document.querySelector("form.policy input[name=every]").getAttribute("aria-invalid") === "true"`))
	if v := eval[string](w, `document.querySelector("form.policy input[name=every]").value`); v != "fortnightly" {
		t.Fatalf("the refused value is %q", v)
	}
	if unit := eval[string](w, `document.querySelector("form.policy .with-unit").textContent.trim()`); !strings.HasSuffix(unit, "items") {
		t.Fatalf("'or after' unit: %q", unit)
	}
	w.shot("06-delivery-error")
	w.size(390)
	w.shot("06-delivery-error")
	w.size(1280)
	w.step("two hours", chromedp.SetValue(chromedp.CSS(`form.policy input[name=every]`), "2 hours"),
		chromedp.Click(chromedp.CSS(`form.policy button[type=submit]`)),
		w.until("saved", `(document.querySelector(".notice")||{}).textContent === "Saved." && document.body.textContent.includes("a digest every 2 hours")`))
	// Back to at once: the fields go away, and the summary says it.
	w.step("at once", chromedp.Click(chromedp.CSS(`#destinations details:not(.offer) summary`)),
		chromedp.Click(chromedp.CSS(`form.policy input[value=immediate]`)), w.until("hidden again", hidden),
		chromedp.Click(chromedp.CSS(`form.policy button[type=submit]`)),
		w.until("at once", `document.querySelector("#destinations .card p strong").textContent === "at once"`))

	// A mistyped destination, deleted after a question.
	w.step("typo", chromedp.SendKeys(chromedp.ID("address"), "nina@exmaple.org"), chromedp.Click(chromedp.ID("add-destination")),
		w.until("two cards", `document.querySelectorAll("#destinations > li").length === 2`))
	w.shot("07-unconfirmed-resend")
	w.step("ask to delete", chromedp.Click(chromedp.CSS(`#destinations > li:nth-child(2) a.danger`)), w.h1("Delete nina@exmaple.org?"))
	w.shot("08-delete-question")
	w.size(390)
	w.shot("08-delete-question")
	w.size(1280)
	w.step("delete", chromedp.Click(chromedp.ID("confirm-yes")), w.h1("Destinations"),
		w.until("deleted", `(document.querySelector(".notice")||{}).textContent === "Deleted." && document.querySelectorAll("#destinations > li").length === 1`))

	// Deleting a rule asks first; "keep it" keeps it.
	w.step("ask to delete the rule", chromedp.Navigate(s.base+"/rules"), w.h1("Rules"),
		chromedp.Click(chromedp.CSS(`#rules a.danger`)), w.h1("Delete rule “kernel”?"),
		chromedp.Click(chromedp.ID("confirm-no")), w.h1("Rules"),
		w.until("still there", `document.querySelectorAll("#rules .card").length === 1`))

	// Phones: one row on every page, and the menu opens without script.
	w.size(390)
	for _, p := range []string{"/", "/rules", "/destinations", "/settings", "/rules/new"} {
		w.step("phone "+p, chromedp.Navigate(s.base+p), w.until("loaded", `document.readyState === "complete"`))
		if !eval[bool](w, headerOneRow) {
			t.Fatalf("the header of %s takes more than one row at 390 px", p)
		}
		if sw := eval[int](w, `document.documentElement.scrollWidth`); sw > 390 {
			wide := eval[[]string](w, `[...document.querySelectorAll("body *")].filter(e => e.getBoundingClientRect().right > 391).slice(0, 8).map(e => e.tagName + "#" + e.id + "." + e.className + " " + Math.round(e.getBoundingClientRect().right))`)
			t.Fatalf("%s is %d px wide at 390 px: it scrolls sideways (%v)", p, sw, wide)
		}
		if p == "/destinations" {
			w.shot("08b-phone-destinations")
		}
	}
	w.shot("09-phone-editor")
	w.step("menu", chromedp.Click(chromedp.ID("menu-button")),
		w.until("menu open", `document.querySelector(".compact-menu").open && document.querySelector('.compact-menu a[href="/destinations"]').getBoundingClientRect().height > 0`))
	w.shot("10-phone-menu")
	w.step("menu link", chromedp.Click(chromedp.CSS(`.compact-menu a[href="/destinations"]`)), w.h1("Destinations"))
	w.size(1280)
	if eval[bool](w, `getComputedStyle(document.querySelector(".compact-menu")).display !== "none"`) {
		t.Fatal("the compact menu shows at 1280 px")
	}
}

// TestBrowserEditorFilters (issue 14, findings 3 and 8): a rule made
// through the API with filters.apps and severity_at_least shows both in
// the editor, whose preview counts what the preview endpoint counts (it
// used to ignore them: 530 where the endpoint said 0); the preview items
// are links with their time and topic; on a phone the preview comes before
// Save. At 1280 and 390 px.
func TestBrowserEditorFilters(t *testing.T) {
	t.Parallel()
	s, pub, mailSrv := startWithBus(t)
	for i := range 3 {
		publishKernelPush(t, pub, fmt.Sprintf("Update to 6.13.%d", i))
	}
	w := newWalk(t)
	w.step("sign in", chromedp.Navigate(s.base+"/login"), chromedp.SendKeys(chromedp.ID("email"), "ola@example.org"),
		chromedp.Click(chromedp.ID("send-link")), w.h1("Check your mail"))
	w.step("the link", chromedp.Navigate(mailLink(t, mailSrv, 1, loginLink)), w.h1("Sign in to fmn"),
		chromedp.Click(chromedp.ID("link-action")), w.h1("Choose your name"),
		chromedp.Click(chromedp.ID("choose-name")), w.h1("Start with a rule?"),
		chromedp.Click(chromedp.ID("first-rule-no")), w.h1("Your notifications"),
		w.until("the three pushes stored", `true`))
	// The API, from this signed-in browser: the rule "bodhi news about my
	// package", and what the preview endpoint says of it.
	apiPreview := func(rule string) int {
		t.Helper()
		n, err := chromedp.Run(w.ctx, chromedp.Evaluate[int](`fetch("/api/v1/rules/preview", {method: "POST", headers: {"Content-Type": "application/json"},
			body: JSON.stringify(`+rule+`)}).then(r => r.json()).then(d => d.count)`, chromedp.EvalAwaitPromise))
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	eventually(t, 20*time.Second, "the pushes stored", func() bool {
		return apiPreview(`{track: {packages: ["kernel"]}}`) == 3
	})
	filtered := `{name: "bodhi news", track: {packages: ["kernel"]}, filters: {apps: ["bodhi"], severity_at_least: "warning"}}`
	id, err := chromedp.Run(w.ctx, chromedp.Evaluate[int](`fetch("/api/v1/rules", {method: "POST", headers: {"Content-Type": "application/json"},
		body: JSON.stringify(`+filtered+`)}).then(r => r.json()).then(d => d.id)`, chromedp.EvalAwaitPromise))
	if err != nil || id == 0 {
		t.Fatalf("create the rule through the API: %d %v", id, err)
	}
	want := apiPreview(filtered)
	if want != 0 {
		t.Fatalf("the preview endpoint counts %d for the filtered rule, want 0", want)
	}
	previewSays := func(n int) string {
		return fmt.Sprintf(`!document.getElementById("preview").hidden && document.getElementById("preview-count").textContent.includes("would have matched %d message")`, n)
	}
	w.step("editor", chromedp.Navigate(fmt.Sprintf("%s/rules/%d", s.base, id)), w.h1("Edit rule"),
		w.until("filters.apps shown", `document.getElementById("filters.apps").value === "bodhi"`),
		w.until("severity shown", `document.getElementById("filters.severity_at_least").value === "warning"`),
		w.until("the preview agrees with the endpoint", previewSays(want)))
	w.shot("11-editor-filters")
	// Loosen the filters: both previews follow.
	w.step("loosen", chromedp.SetValue(chromedp.CSS(`[id="filters.apps"]`), "dist-git"),
		chromedp.Evaluate[chromedp.Void](`document.getElementById("filters.severity_at_least").value = ""`),
		chromedp.SendKeys(chromedp.ID("name"), " "), // an input event
		w.until("three now", previewSays(3)))
	if n := apiPreview(`{track: {packages: ["kernel"]}, filters: {apps: ["dist-git"]}}`); n != 3 {
		t.Fatalf("the endpoint counts %d for the loosened rule", n)
	}
	item := eval[map[string]any](w, `(() => { const li = document.querySelector("#preview-list li");
		return {href: (li.querySelector(".summary a")||{}).href || "", topic: (li.querySelector("code")||{}).textContent || "",
			time: (li.querySelector("time")||{}).textContent || "", title: (li.querySelector("time")||{}).title || ""}; })()`)
	if !strings.HasPrefix(item["href"].(string), "https://src.fedoraproject.org/") || item["topic"] != "org.fedoraproject.prod.git.receive" ||
		item["time"] == "" || !strings.HasSuffix(item["title"].(string), "UTC") {
		t.Fatalf("preview item: %v", item)
	}
	w.shot("12-editor-preview")
	w.size(390)
	w.step("phone editor", chromedp.Reload(), w.h1("Edit rule"), w.until("preview", previewSays(0)))
	if !eval[bool](w, `document.getElementById("preview").getBoundingClientRect().top < document.getElementById("save-rule").getBoundingClientRect().top`) {
		t.Fatal("on a phone the preview is not before Save")
	}
	if sw := eval[int](w, `document.documentElement.scrollWidth`); sw > 390 {
		t.Fatalf("the editor is %d px wide at 390 px: it scrolls sideways", sw)
	}
	w.step("phone loosen", chromedp.Evaluate[chromedp.Void](`document.getElementById("filters.apps").value = "";
		document.getElementById("filters.severity_at_least").value = "";
		document.getElementById("rule-form").dispatchEvent(new Event("input", {bubbles: true}))`), w.until("three", previewSays(3)))
	w.step("scroll to the preview", chromedp.ScrollIntoView(chromedp.ID("preview")))
	w.shot("12-editor-preview")
	// Saved as loosened, the rule keeps what the editor shows.
	w.step("save", chromedp.Click(chromedp.ID("save-rule")), w.h1("Rules"))
	got := eval[string](w, fmt.Sprintf(`fetch("/api/v1/rules/%d").then(r => r.json()).then(d => JSON.stringify(d.filters))`, id))
	if got != "{}" {
		t.Fatalf("filters after saving the loosened rule: %s", got)
	}
}
