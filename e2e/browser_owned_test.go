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

	"fmn/owners/pagurtest"
)

// driver steps one Chromium tab through pages: each step with a deadline,
// screenshots into dir, conditions polled in the page, and every console
// error (a CSP violation included) failing the test.
type driver struct {
	t   *testing.T
	ctx context.Context
	dir string

	mu        sync.Mutex
	tolerated []string // console messages expected from now on
}

// tolerate accepts console errors containing s from now on (a form
// answered 400 on purpose logs one).
func (d *driver) tolerate(s string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.tolerated = append(d.tolerated, s)
}

func (d *driver) expected(msg string) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, s := range d.tolerated {
		if strings.Contains(msg, s) {
			return true
		}
	}
	return false
}

func newDriver(t *testing.T) *driver {
	t.Helper()
	d := &driver{t: t, ctx: newBrowser(t), dir: artifacts(t)}
	var mu sync.Mutex
	var errs []string
	go func() {
		for m, err := range chromedp.Console(d.ctx) {
			if err != nil {
				return
			}
			// The preview answering 400 to a rule being typed is the
			// editor's normal work (it shows the error); anything else fails.
			if (m.Type == "error" || m.IsException()) && !strings.Contains(m.URL+" "+m.String(), "/api/v1/rules/preview") && !d.expected(m.String()) {
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
	return d
}

func (d *driver) step(what string, steps ...chromedp.Action[chromedp.Void]) {
	d.t.Helper()
	sctx, cancel := context.WithTimeout(d.ctx, 30*time.Second)
	defer cancel()
	if err := chromedp.Do(sctx, steps...); err != nil {
		d.t.Fatalf("%s: %v", what, err)
	}
}

func (d *driver) shot(name string) {
	d.t.Helper()
	png, err := chromedp.Run(d.ctx, chromedp.FullScreenshot(100))
	if err != nil {
		d.t.Fatalf("screenshot %s: %v", name, err)
	}
	if err := os.WriteFile(filepath.Join(d.dir, name+".png"), png, 0o644); err != nil {
		d.t.Fatal(err)
	}
}

// until polls a JavaScript condition until it holds (see pollJS).
func (d *driver) until(what, cond string) chromedp.Action[chromedp.Void] {
	return pollJS(what, cond, 25*time.Second)
}

func (d *driver) h1(text string) chromedp.Action[chromedp.Void] {
	return d.until("heading "+text, fmt.Sprintf(`document.readyState === "complete" && (document.querySelector("h1")||{}).textContent === %q`, text))
}

// TestBrowserRuleEditorOwnership walks the editor's new parts in Chromium:
// a packager signs in (choosing the bus name), opens "my packages", sees
// "Packages I maintain" fill in with its count and list as dist-git is
// read, the live preview count what those packages did lately, adds
// groups, people and a container, saves, and sees the rule in words; at
// 1280 and 390 px wide.
func TestBrowserRuleEditorOwnership(t *testing.T) {
	t.Parallel()
	pg := pagurtest.Start(t)
	for _, p := range []string{"python-foo", "python-bar", "python-baz-utils"} {
		pg.SetUser("rpms", p, "packager1", "commit")
	}
	pg.SetUser("container", "fedora-toolbox", "packager1", "admin")
	s, pub, mailSrv := startWithBus(t, "FMN_DISTGIT_URL="+pg.URL)
	// A push to python-foo by someone else, for the preview to find.
	if err := pub.Publish(map[string]any{"topic": "org.fedoraproject.prod.git.receive", "msg": map[string]any{"commit": map[string]any{
		"branch": "rawhide", "name": "Zed", "email": "zed@example.org", "namespace": "rpms", "repo": "python-foo",
		"rev": "0123456789abcdef0123456789abcdef01234567", "summary": "Rebuild for Python 3.14", "message": "Rebuild\n", "username": "zed",
		"stats": map[string]any{"files": map[string]any{}, "total": map[string]any{"deletions": 1, "files": 1, "insertions": 1, "lines": 2}},
	}}}, true); err != nil {
		t.Fatal(err)
	}

	d := newDriver(t)
	d.step("sign-in page", chromedp.Navigate(s.base+"/login"), chromedp.WaitVisible(chromedp.ID("email")),
		chromedp.SendKeys(chromedp.ID("email"), "pk@example.org"), chromedp.Click(chromedp.ID("send-link")), d.h1("Check your mail"))
	link := mailLink(t, mailSrv, 1, loginLink)
	d.step("open the link", chromedp.Navigate(link), d.h1("Sign in to fmn"),
		chromedp.Click(chromedp.ID("link-action")), d.h1("Choose your name"))
	d.step("choose the bus name", chromedp.SetValue(chromedp.ID("name"), "packager1"), chromedp.Click(chromedp.ID("choose-name")),
		d.h1("Start with a rule?"), chromedp.Click(chromedp.ID("first-rule-no")), d.h1("Your notifications"))

	// The editor: the preset follows what I maintain; dist-git is read as
	// the page asks, and the script fills the count and the list.
	d.step("my packages", chromedp.Navigate(s.base+"/rules/new?preset=mine"), d.h1("New rule"),
		d.until("the maintained count", `document.getElementById("owned-count").textContent === "(4)"`),
		d.until("the owned box ticked", `document.getElementById("track.owned").checked`))
	d.step("the resolved list", chromedp.Click(chromedp.CSS("#owned-list summary")),
		d.until("the list open", `document.getElementById("owned-list").open && document.querySelector("#owned-list .chips").textContent.includes("fedora-toolbox")`))
	d.step("the preview", d.until("the preview counts python-foo's push",
		`!document.getElementById("preview").hidden && document.getElementById("preview-count").textContent.includes("matched 1 message")`))
	d.shot("01-editor-owned-1280")

	d.step("groups, people and a container",
		chromedp.SetValue(chromedp.CSS(`[id="track.groups"]`), "python-sig"),
		chromedp.SetValue(chromedp.CSS(`[id="track.agents"]`), "bob"),
		chromedp.Click(chromedp.CSS("#more-artifacts summary")),
		chromedp.SetValue(chromedp.CSS(`[id="track.containers"]`), "fedora-toolbox"),
		d.until("the container field shown", `document.getElementById("more-artifacts").open`))
	d.shot("02-editor-kinds-1280")
	d.step("save", chromedp.Click(chromedp.ID("save-rule")), d.h1("Rules"),
		d.until("the rule in words", `document.readyState === "complete" && document.body.textContent.includes("what I maintain") && document.body.textContent.includes("what these groups maintain: python-sig")`))
	d.shot("03-rules-1280")

	// A name where a pattern was typed is refused beside the field (the
	// page answers 400, which the console reports).
	d.tolerate("status of 400")
	d.step("a pattern in owned_by", chromedp.Navigate(s.base+"/rules/new"), d.h1("New rule"),
		chromedp.SetValue(chromedp.ID("name"), "x"), chromedp.SetValue(chromedp.CSS(`[id="track.owned_by"]`), "bo*"),
		chromedp.Click(chromedp.ID("save-rule")), d.until("the error beside the field", `document.readyState === "complete" && !!document.getElementById("track.owned_by-error")`))
	d.shot("04-editor-error-1280")

	d.step("phone", chromedp.EmulateViewport(390, 844), chromedp.Navigate(s.base+"/rules/new?preset=mine"), d.h1("New rule"),
		d.until("the count", `document.getElementById("owned-count").textContent === "(4)"`),
		chromedp.Click(chromedp.CSS("#owned-list summary")))
	wide, err := chromedp.Run(d.ctx, chromedp.Evaluate[bool](`document.documentElement.scrollWidth > window.innerWidth + 1`))
	if err != nil || wide {
		t.Fatalf("the editor scrolls sideways at 390 px (%v)", err)
	}
	d.shot("05-editor-owned-390")
}
