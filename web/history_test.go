package web

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"fmn"
	"fmn/rules"
	"fmn/rules/meta"
	"fmn/store"
)

// storeMatch stores a message and the given match of it, as the ingester
// does, and returns the notification's id.
func storeMatch(t *testing.T, st *store.Store, msgID string, md meta.Metadata, m rules.Match) int64 {
	t.Helper()
	ctx := context.Background()
	err := st.InTx(ctx, func(tx pgx.Tx) error {
		ids, err := store.InsertMessages(ctx, tx, []store.NewMessage{{MsgID: msgID, Meta: md, Envelope: []byte(`{}`)}})
		if err != nil {
			return err
		}
		_, err = store.InsertNotifications(ctx, tx, ids[0], []rules.Match{m})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	var id int64
	if err := st.Pool.QueryRow(ctx, `SELECT max(id) FROM notifications`).Scan(&id); err != nil {
		t.Fatal(err)
	}
	return id
}

var kernelCommit = meta.Metadata{Topic: "org.fedoraproject.prod.git.receive", App: "dist-git", Agent: "bob",
	Usernames: []string{"bob"}, Packages: []string{"kernel"}, Summary: "bob pushed to kernel", Link: "https://src.example.org/rpms/kernel/c/1"}

// TestDestinationOffersExistingRules (issue 14, finding 4): a rule made
// before any destination fills the history (calmly, not as a failure), and
// a destination added later offers itself to the rules that have none: a
// choice the user makes, on the destinations page and on the confirmation
// page, never imposed.
func TestDestinationOffersExistingRules(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newSite(t, AuthConfig{}, "")
	c := s.signIn("fay@example.org")
	var uid int64
	s.st.Pool.QueryRow(ctx, `SELECT id FROM users`).Scan(&uid)
	early, err := s.st.SaveRule(ctx, rules.Rule{UserID: uid, Name: "kernel early", Enabled: true,
		Track: rules.Track{Packages: []string{"kernel"}}, Destinations: []int64{}})
	if err != nil {
		t.Fatal(err)
	}
	storeMatch(t, s.st, "k1", kernelCommit, rules.Match{UserID: uid, RuleID: early.ID, Hit: rules.Hit{Field: "packages", Entry: "kernel"}})
	home := body(t, s.get(c, "/"))
	if !strings.Contains(home, "bob pushed to kernel") || !strings.Contains(home, "kept in your history") || strings.Contains(home, "status-bad") {
		t.Fatalf("history of a rule without destination:\n%s", home)
	}

	resp := s.postForm(c, "/destinations", url.Values{"kind": {"email"}, "address": {"fay.other@example.org"}})
	loc := resp.Header.Get("Location")
	if resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(loc, "/destinations?done=added&id=") {
		t.Fatalf("add: %d %q", resp.StatusCode, loc)
	}
	ds, _ := s.st.ListDestinations(ctx, uid)
	d := ds[0]
	page := body(t, s.get(c, loc))
	offer := fmt.Sprintf(`id="offer-%d" open`, d.ID)
	tick := fmt.Sprintf(`id="offer-%d-%d" name="rule" type="checkbox" value="%d" checked`, d.ID, early.ID, early.ID)
	if !strings.Contains(page, offer) || !strings.Contains(page, tick) {
		t.Fatalf("the new destination does not offer itself to the rule:\n%s", page)
	}
	// Not imposed: the rule is unchanged until the user answers.
	if r, _ := s.st.GetRule(ctx, uid, early.ID); len(r.Destinations) != 0 {
		t.Fatalf("adding a destination changed the rule: %+v", r)
	}
	// Sending nothing ticked says so and changes nothing.
	resp = s.postForm(c, fmt.Sprintf("/destinations/%d/rules", d.ID), url.Values{})
	if b := body(t, resp); resp.StatusCode != 400 || !strings.Contains(b, "Tick the rules") {
		t.Fatalf("empty answer: %d\n%s", resp.StatusCode, b)
	}

	// Confirming (the mailed link, signed in) offers it again.
	code, err := s.st.NewConfirmCode(ctx, d.ID)
	if err != nil {
		t.Fatal(err)
	}
	conf := body(t, s.openLink(c, "/confirm/"+code))
	if !strings.Contains(conf, "Destination confirmed") || !strings.Contains(conf, tick) {
		t.Fatalf("confirmation page without the offer:\n%s", conf)
	}
	resp = s.postForm(c, fmt.Sprintf("/destinations/%d/rules", d.ID), url.Values{"rule": {fmt.Sprint(early.ID)}})
	if resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(resp.Header.Get("Location"), "/destinations?done=attached") {
		t.Fatalf("attach: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	if r, _ := s.st.GetRule(ctx, uid, early.ID); len(r.Destinations) != 1 || r.Destinations[0] != d.ID {
		t.Fatalf("rule after attaching: %+v", r)
	}
	page = body(t, s.get(c, "/destinations?done=attached"))
	if !strings.Contains(page, "Rules sending here: kernel early") || strings.Contains(page, offer) {
		t.Fatalf("destinations page after attaching:\n%s", page)
	}
	// Another user can neither see the offer nor answer it.
	other := s.signIn("gus@example.org")
	if resp := s.postForm(other, fmt.Sprintf("/destinations/%d/rules", d.ID), url.Values{"rule": {fmt.Sprint(early.ID)}}); resp.StatusCode != 404 {
		t.Fatalf("another user attaching: %d", resp.StatusCode)
	}
}

// TestNotificationPage ("why did I get this"): the owner sees which rule
// and which of its entries picked the message, where it went, and how to
// stop more; the history links there; nobody else can open it.
func TestNotificationPage(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newSite(t, AuthConfig{}, "")
	c := s.signIn("hal@example.org")
	uid, destID, ruleID := seed(t, s.st, "hal@example.org")
	nid := storeMatch(t, s.st, "k2", kernelCommit, rules.Match{UserID: uid, RuleID: ruleID, DestinationID: destID,
		Hit: rules.Hit{Field: "packages", Entry: "kernel"}})
	if home := body(t, s.get(c, "/")); !strings.Contains(home, fmt.Sprintf(`href="/notifications/%d"`, nid)) {
		t.Fatalf("history does not link to the notification page:\n%s", home)
	}
	page := body(t, s.get(c, fmt.Sprintf("/notifications/%d", nid)))
	for _, want := range []string{
		"Why you got this", "bob pushed to kernel", `href="https://src.example.org/rpms/kernel/c/1"`,
		fmt.Sprintf(`href="/rules/%d" id="why-rule">“&lt;b&gt;rule&lt;/b&gt;”</a>`, ruleID),
		`it follows <strong id="why-hit">package kernel</strong>`, "To <strong>hal@example.org</strong>",
		`id="rule-off"`, `id="mute-day"`,
	} {
		if !strings.Contains(page, want) {
			t.Fatalf("notification page lacks %q:\n%s", want, page)
		}
	}
	// Turning the rule off from there comes back there.
	resp := s.postForm(c, fmt.Sprintf("/rules/%d/enabled", ruleID), url.Values{"enabled": {"false"}, "next": {fmt.Sprintf("/notifications/%d", nid)}})
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != fmt.Sprintf("/notifications/%d", nid) {
		t.Fatalf("turn off from the notification page: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	if r, _ := s.st.GetRule(ctx, uid, ruleID); r.Enabled {
		t.Fatal("the rule is still on")
	}
	// "next" stays on this site.
	resp = s.postForm(c, fmt.Sprintf("/rules/%d/enabled", ruleID), url.Values{"enabled": {"true"}, "next": {"//evil.example/"}})
	if resp.Header.Get("Location") != "/" {
		t.Fatalf("next to another site: %q", resp.Header.Get("Location"))
	}
	// The JSON says which entry hit, too.
	resp = s.get(c, "/api/v1/notifications")
	if b := body(t, resp); !strings.Contains(b, `"matched":{"field":"packages","entry":"kernel"}`) {
		t.Fatalf("API notification without its hit:\n%s", b)
	}
	other := s.signIn("ivy@example.org")
	if resp := s.get(other, fmt.Sprintf("/notifications/%d", nid)); resp.StatusCode != 404 {
		t.Fatalf("another user's notification page: %d", resp.StatusCode)
	}
}

// TestHistoryStatesInWords (issue 14, finding 7): a notification skipped
// while its destination was muted reads as a calm "skipped: muted" with
// the mute's end in the reader's time zone, never a red "dead" with a raw
// UTC time; a real failure stays red.
func TestHistoryStatesInWords(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newSite(t, AuthConfig{}, "")
	c := s.signIn("rue@example.org")
	uid, destID, ruleID := seed(t, s.st, "rue@example.org")
	if err := s.st.UpdateUserSettings(ctx, uid, store.UserSettings{Timezone: "Europe/Paris"}); err != nil {
		t.Fatal(err)
	}
	muted := storeMatch(t, s.st, "m1", kernelCommit, rules.Match{UserID: uid, RuleID: ruleID, DestinationID: destID})
	if err := s.st.FinishNotification(ctx, muted, "skipped", "destination muted until 2026-06-01T10:00:00Z"); err != nil {
		t.Fatal(err)
	}
	md := kernelCommit
	md.Summary = "a second push"
	failed := storeMatch(t, s.st, "m2", md, rules.Match{UserID: uid, RuleID: ruleID, DestinationID: destID})
	if err := s.st.FinishNotification(ctx, failed, "dead", "550 mailbox unavailable"); err != nil {
		t.Fatal(err)
	}
	home := body(t, s.get(c, "/"))
	i := strings.Index(home, fmt.Sprintf(`data-id="%d"`, muted))
	j := strings.Index(home, fmt.Sprintf(`data-id="%d"`, failed))
	if i < 0 || j < 0 {
		t.Fatalf("history lacks the notifications:\n%s", home)
	}
	mutedItem, failedItem := home[i:], home[j:i]
	if !strings.Contains(mutedItem, `status-calm">skipped: muted</span>`) || strings.Contains(mutedItem, "status-bad") ||
		strings.Contains(home, "2026-06-01T10:00:00Z") {
		t.Fatalf("muted item:\n%s", mutedItem)
	}
	if !strings.Contains(failedItem, `status-bad">not sent</span>`) || !strings.Contains(failedItem, "550 mailbox unavailable") {
		t.Fatalf("failed item:\n%s", failedItem)
	}
	page := body(t, s.get(c, fmt.Sprintf("/notifications/%d", muted)))
	if !strings.Contains(page, "the destination was muted until 2026-06-01 12:00 CEST") {
		t.Fatalf("notification page does not give the mute's end in the reader's zone:\n%s", page)
	}
}

func TestHitText(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		hit  fmn.Hit
		want string
	}{
		{fmn.Hit{Field: "mine"}, "your activity (messages naming you)"},
		{fmn.Hit{Field: "packages", Entry: "python-*"}, "package python-*"},
		{fmn.Hit{Field: "topics", Entry: "org.fedoraproject.*.bodhi.*"}, "topic org.fedoraproject.*.bodhi.*"},
		{fmn.Hit{Field: "owned"}, "what you maintain in dist-git"},
		{fmn.Hit{Field: "my_groups", Entry: "python-sig"}, "what your group python-sig maintains in dist-git"},
		{fmn.Hit{Field: "agents", Entry: "carol"}, "what carol does"},
		{fmn.Hit{Field: "future_kind", Entry: "x"}, "future_kind x"},
	} {
		if got := hitText(&c.hit); got != c.want {
			t.Errorf("hitText(%+v) = %q, want %q", c.hit, got, c.want)
		}
	}
}
