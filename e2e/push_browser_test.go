package e2e

import (
	"context"
	"testing"
	"time"

	"github.com/chromedp/cdproto/browser"
	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/serviceworker"
	"github.com/chromedp/chromedp"
)

// TestServiceWorkerShowsPush: in a real Chromium, /sw.js registers for the
// whole site and shows a pushed payload as a notification with its title,
// body and link; a link that is not http(s) becomes the site's root.
// (Chromium's own push service is out of reach here, so the push is handed to
// the worker through DevTools; the encryption is tested in delivery/ and
// e2e/irc_push_test.go.)
func TestServiceWorkerShowsPush(t *testing.T) {
	t.Parallel()
	s := startService(t)
	ctx := newBrowser(t)
	if _, err := chromedp.CallBrowser(ctx, browser.SetPermission, browser.SetPermissionParams{
		Permission: &browser.PermissionDescriptor{Name: "notifications"},
		Setting:    browser.PermissionSettingGranted, Origin: s.base,
	}); err != nil {
		t.Fatal(err)
	}
	ectx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	regs := chromedp.Events(ectx, serviceworker.WorkerRegistrationUpdated)
	if _, err := chromedp.Call(ctx, serviceworker.Enable, cdp.Empty{}); err != nil {
		t.Fatal(err)
	}
	if err := chromedp.Do(ctx, chromedp.Navigate(s.base+"/")); err != nil {
		t.Fatal(err)
	}
	scope, err := chromedp.Run(ctx, chromedp.Evaluate[string](
		`navigator.serviceWorker.register("/sw.js", {scope: "/"}).then(() => navigator.serviceWorker.ready).then(r => r.scope)`,
		chromedp.EvalAwaitPromise))
	if err != nil || scope != s.base+"/" {
		t.Fatalf("service worker scope %q, %v", scope, err)
	}
	var id serviceworker.RegistrationID
	for ev, err := range regs {
		if err != nil {
			t.Fatalf("no service worker registration seen: %v", err)
		}
		for _, r := range ev.Registrations {
			if r.ScopeURL == s.base+"/" && !r.IsDeleted {
				id = r.RegistrationID
			}
		}
		if id != "" {
			break
		}
	}
	push := func(data string) {
		t.Helper()
		if _, err := chromedp.Call(ctx, serviceworker.DeliverPushMessage, serviceworker.DeliverPushMessageParams{
			Origin: s.base, RegistrationID: id, Data: data}); err != nil {
			t.Fatal(err)
		}
	}
	type shown struct {
		Title, Body, Link, Tag, Why string
	}
	notifications := func(n int) []shown {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for {
			got, err := chromedp.Run(ctx, chromedp.Evaluate[[]shown](`navigator.serviceWorker.ready
				.then(r => r.getNotifications())
				.then(ns => ns.map(n => ({Title: n.title, Body: n.body, Link: (n.data || {}).link || "", Tag: n.tag,
					Why: (n.actions || []).some(a => a.action === "why") ? (n.data || {}).why || "" : ""})))`,
				chromedp.EvalAwaitPromise))
			if err != nil {
				t.Fatal(err)
			}
			if len(got) >= n {
				return got
			}
			if time.Now().After(deadline) {
				t.Fatalf("%d notifications shown, want %d", len(got), n)
			}
			time.Sleep(50 * time.Millisecond) // polling the browser with a deadline
		}
	}
	push(`{"title":"bodhi","body":"alice commented on FEDORA-2026-1","link":"https://bodhi.fedoraproject.org/updates/FEDORA-2026-1","app":"bodhi","tag":"fmn-1","why":"` + s.base + `/notifications/1"}`)
	got := notifications(1)
	// The "why" page is offered as the notification's action.
	if want := (shown{"bodhi", "alice commented on FEDORA-2026-1", "https://bodhi.fedoraproject.org/updates/FEDORA-2026-1", "fmn-1", s.base + "/notifications/1"}); got[0] != want {
		t.Fatalf("shown %+v, want %+v", got[0], want)
	}
	push(`{"title":"x","body":"y","link":"javascript:alert(1)","tag":"fmn-2"}`)
	for _, n := range notifications(2) {
		if n.Tag == "fmn-2" && n.Link != s.base+"/" {
			t.Fatalf("a javascript: link kept: %+v", n)
		}
	}
}
