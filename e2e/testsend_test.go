package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"fmn"
	"fmn/delivery/irc/irctest"
	"fmn/delivery/matrix/dendritetest"
	"fmn/store"
)

// signInByMail signs in on the web as a person does without OpenID: asks
// for a link at /login, finds the mail in the service's mail folder and
// presses its button. It returns a client holding the session.
func (s *service) signInByMail(t *testing.T, address string) *http.Client {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.PostForm(s.base+"/login", url.Values{"email": {address}})
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("ask for a sign-in link: %v %v", err, resp)
	}
	resp.Body.Close()
	dataDir := s.setting("FMN_DATA_DIR")
	linkRE := regexp.MustCompile(regexp.QuoteMeta(s.base) + `/login/[A-Za-z0-9_-]{16,}`)
	var link string
	eventually(t, 30*time.Second, "the sign-in mail", func() bool {
		files, _ := filepath.Glob(filepath.Join(dataDir, "mail", "*.eml"))
		for _, f := range files {
			b, _ := os.ReadFile(f)
			if l := linkRE.FindString(strings.ReplaceAll(string(b), "=\r\n", "")); l != "" {
				link = l
			}
		}
		return link != ""
	})
	resp, err = c.PostForm(link, nil)
	if err != nil || resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/" {
		t.Fatalf("press the sign-in link's button: %v %v", err, resp)
	}
	resp.Body.Close()
	return c
}

// TestSendATestEveryChannel: "Send a test" on a confirmed destination of
// every channel (IRC through a real ngircd, Matrix through a real
// Dendrite, push through the test push service, and email) delivers a test
// message there, and the page says it is on its way. Before, only email
// had a sender: the others' jobs were cancelled ("no test sender for irc
// destinations") while the page said the test was sent.
func TestSendATestEveryChannel(t *testing.T) {
	t.Parallel()
	ircd := irctest.Start(t)
	hs := dendritetest.Start(t)
	bot := hs.Register(t, "fmnbot", "bot-password-1")
	alice := hs.Register(t, "alice", "alice-password-1")
	s := startService(t, "FMN_IRC_URL="+ircd.URL(), "FMN_IRC_NICK=fmn", "FMN_MATRIX_URL="+hs.URL, "FMN_MATRIX_TOKEN="+bot.Token,
		"FMN_PUSH_SUBJECT=mailto:push-admin@example.org", "FMN_PUSH_ALLOW_PRIVATE=true")
	s.token = strings.TrimSpace(s.run("token", "create", "-user", "alice", "-email", "alice@example.org"))
	push := s.pushService(t)
	browser, sub := push.Subscribe()
	nick := ircd.Connect(t, "alice")
	web := s.signInByMail(t, "alice@example.org")

	// The destinations are stored confirmed: confirming is not what this
	// test is about (TestIRCAndPush and TestMatrixKilledMidStream are).
	st := openStore(t, s.setting("FMN_DATABASE_URL"))
	ctx := context.Background()
	me, err := st.EnsureUser(ctx, "alice", "")
	if err != nil {
		t.Fatal(err)
	}
	confirmed := func(kind fmn.Kind, address string) int64 {
		var d fmn.Destination
		if err := st.InTx(ctx, func(tx pgx.Tx) error {
			var err error
			if d, err = store.CreateDestination(ctx, tx, me.ID, kind, address); err != nil {
				return err
			}
			d, err = store.ConfirmNow(ctx, tx, d.ID)
			return err
		}); err != nil {
			t.Fatal(err)
		}
		return d.ID
	}
	dIRC, dMatrix, dPush := confirmed(fmn.KindIRC, "alice"), confirmed(fmn.KindMatrix, alice.ID), confirmed(fmn.KindPush, sub)
	dMail := confirmed(fmn.KindEmail, "alice@example.org")

	press := func(id int64) {
		t.Helper()
		resp, err := web.PostForm(fmt.Sprintf("%s/destinations/%d/test", s.base, id), nil)
		if err != nil || resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/destinations?done=test" {
			t.Fatalf("press Send a test on destination %d: %v %+v", id, err, resp)
		}
		resp.Body.Close()
	}
	// A mute keeps bus news away, not a test asked for now.
	if resp, err := web.PostForm(fmt.Sprintf("%s/destinations/%d/mute", s.base, dIRC), url.Values{"for": {"1h"}}); err != nil || resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("mute: %v %+v", err, resp)
	}
	for _, id := range []int64{dMail, dIRC, dMatrix, dPush} {
		press(id)
	}

	// What became of the test jobs, for a failure's message.
	jobs := func() string {
		var out []string
		rows, _ := st.Pool.Query(ctx, `SELECT queue, state, coalesce(errors[array_length(errors, 1)]->>'error', '') FROM river_job WHERE kind = 'test_send' ORDER BY id`)
		for rows.Next() {
			var q, state, e string
			_ = rows.Scan(&q, &state, &e)
			out = append(out, q+" "+state+" "+e)
		}
		return strings.Join(out, "; ")
	}
	wctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	if pm, ok := nick.WaitFor(wctx, func(p irctest.PM) bool { return strings.Contains(p.Text, "test message") }); !ok {
		t.Fatalf("no IRC test message; alice got %+v; test jobs: %s", nick.PMs(), jobs())
	} else if !strings.HasPrefix(pm.From, "fmn") {
		t.Fatalf("IRC test message from %q", pm.From)
	}
	if p := push.Wait(browser, 1, 60*time.Second)[0]; !strings.Contains(fmt.Sprint(p.Payload["title"], p.Payload["body"]), "test message") {
		t.Fatalf("push %+v is not the test message", p.Payload)
	}
	var seen []dendritetest.Event
	eventually(t, 60*time.Second, "the Matrix test message", func() bool {
		for _, e := range alice.Sync(t, time.Second) {
			if e.Sender == bot.ID && strings.Contains(e.Body, "test message") {
				seen = append(seen, e)
			}
		}
		return len(seen) > 0
	})
	eventually(t, 30*time.Second, "the test mail", func() bool { return s.mailsWith("Subject: fmn test message") == 1 })

	// Pressed again: a second test, not the first recognised again (a
	// Matrix transaction id, a Message-ID are per test).
	press(dMatrix)
	eventually(t, 60*time.Second, "the second Matrix test message", func() bool {
		for _, e := range alice.Sync(t, time.Second) {
			if e.Sender == bot.ID && strings.Contains(e.Body, "test message") {
				seen = append(seen, e)
			}
		}
		return len(seen) == 2
	})
	if seen[0].ID == seen[1].ID {
		t.Fatalf("the second test is the first event again: %+v", seen)
	}
	// Every test job ends completed (a moment after its message arrived).
	eventually(t, 30*time.Second, "every test job completed", func() bool {
		var open int
		st.Pool.QueryRow(ctx, `SELECT count(*) FROM river_job WHERE kind = 'test_send' AND state <> 'completed'`).Scan(&open)
		return open == 0
	})
	// Each on its channel's queue.
	if j := jobs(); j != "email completed ; irc completed ; matrix completed ; push completed ; matrix completed " {
		t.Fatalf("test jobs: %s", j)
	}
	// A failing destination gets no test: the page says what to do.
	if err := st.SetDestinationFailing(ctx, dPush, "the push service answered 410"); err != nil {
		t.Fatal(err)
	}
	resp, err := web.PostForm(fmt.Sprintf("%s/destinations/%d/test", s.base, dPush), nil)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(b), "Delivery here is failing") {
		t.Fatalf("test to a failing destination: %d\n%s", resp.StatusCode, b)
	}
}

// mailsWith counts the mails in the service's mail folder holding line.
func (s *service) mailsWith(line string) int {
	files, _ := filepath.Glob(filepath.Join(s.setting("FMN_DATA_DIR"), "mail", "*.eml"))
	n := 0
	for _, f := range files {
		if b, _ := os.ReadFile(f); strings.Contains(string(b), line+"\r\n") {
			n++
		}
	}
	return n
}

// setting is the value of an FMN_ setting the service was started with
// (the last one given wins, as in the environment).
func (s *service) setting(name string) string {
	var v string
	for _, e := range s.env {
		if val, ok := strings.CutPrefix(e, name+"="); ok {
			v = val
		}
	}
	return v
}
