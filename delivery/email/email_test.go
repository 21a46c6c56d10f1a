package email

import (
	"crypto/tls"
	"errors"
	"fmn/delivery"
	"io"
	"log/slog"
	"mime"
	"mime/multipart"
	"net/mail"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
	gomail "github.com/wneessen/go-mail"

	"fmn/delivery/email/smtptest"
	"fmn/metrics"
	"fmn/rules/meta"
	"fmn/store"
)

// parts returns the text and HTML bodies of a multipart/alternative mail.
func parts(t *testing.T, m *mail.Message) (text, html string) {
	t.Helper()
	mt, params, err := mime.ParseMediaType(m.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/alternative" {
		t.Fatalf("Content-Type %q: want multipart/alternative (%v)", m.Header.Get("Content-Type"), err)
	}
	r := multipart.NewReader(m.Body, params["boundary"])
	for {
		p, err := r.NextPart()
		if err == io.EOF {
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(decodePart(p))
		switch ct, _, _ := mime.ParseMediaType(p.Header.Get("Content-Type")); ct {
		case "text/plain":
			text = string(b)
		case "text/html":
			html = string(b)
		}
	}
}

func decodePart(p *multipart.Part) io.Reader {
	// multipart.Part decodes quoted-printable itself; base64 is not used
	// by go-mail for text parts by default.
	return p
}

func parseMail(t *testing.T, m smtptest.Message) *mail.Message {
	t.Helper()
	pm, err := m.Parsed()
	if err != nil {
		t.Fatalf("parse mail: %v\n%s", err, m.Data)
	}
	return pm
}

// TestImmediateMailHeaders sends one notification through River, the SMTP
// pool and a real SMTP server, and checks every header users sort by.
func TestImmediateMailHeaders(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	q := f.startRiver(f.worker())
	id := f.notify(q, bodhiMeta(1))
	msgs := f.smtp.WaitFor(t, 1, 20*time.Second)
	f.waitStatus(id, "sent")
	m := parseMail(t, msgs[0])
	h := m.Header
	want := map[string]string{
		"Subject":               "[bodhi] bob commented on bodhi update kernel-6.1 (karma: 1)",
		"To":                    "<alice@example.org>",
		"List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
		"X-Fedmsg-Topic":        "org.fedoraproject.prod.bodhi.update.comment",
		"X-Fedmsg-Category":     "bodhi",
		"X-Fedmsg-Username":     "bob",
		"X-Fedmsg-Package":      "kernel",
		"X-Fedmsg-Rule":         "my packages",
		"List-Id":               "fmn notifications <notifications.fmn.example.org>",
		"Auto-Submitted":        "auto-generated",
	}
	for k, v := range want {
		if got := h.Get(k); got != v {
			t.Errorf("%s = %q, want %q", k, got, v)
		}
	}
	if got, wantID := h.Get("Message-Id"), "<fmn."; !strings.HasPrefix(got, wantID) || !strings.HasSuffix(got, "@example.org>") {
		t.Errorf("Message-ID = %q", got)
	}
	tok, err := f.sender.Unsubscribe.Token(f.ctx, f.destID)
	if err != nil {
		t.Fatal(err)
	}
	lu := h.Get("List-Unsubscribe")
	if !strings.Contains(lu, "<"+testBaseURL+"/unsubscribe/"+tok+">") || !strings.Contains(lu, "<mailto:fmn@example.org?subject=unsubscribe%20"+tok+">") {
		t.Errorf("List-Unsubscribe = %q", lu)
	}
	ref := h.Get("References")
	if !strings.HasPrefix(ref, "<fmn.thread.") || h.Get("In-Reply-To") != ref {
		t.Errorf("References = %q, In-Reply-To = %q", ref, h.Get("In-Reply-To"))
	}
	text, html := parts(t, m)
	for _, s := range []string{"https://bodhi.fedoraproject.org/updates/FEDORA-2026-0001", "By:       bob",
		`your rule "my packages" matched`, testBaseURL + "/rules", testBaseURL + "/unsubscribe/" + tok} {
		if !strings.Contains(text, s) {
			t.Errorf("text body lacks %q:\n%s", s, text)
		}
	}
	if !strings.Contains(html, `<a href="https://bodhi.fedoraproject.org/updates/FEDORA-2026-0001">`) {
		t.Errorf("HTML body lacks the link:\n%s", html)
	}

	// A second message about the same update threads with the first.
	id2 := f.notify(q, bodhiMeta(4)) // 4 % 3 == 1: same update link
	msgs = f.smtp.WaitFor(t, 2, 20*time.Second)
	f.waitStatus(id2, "sent")
	if got := parseMail(t, msgs[1]).Header.Get("References"); got != ref {
		t.Errorf("second mail References = %q, want %q", got, ref)
	}
}

// TestTemporaryFailureRetried: 451 twice, then accepted: exactly one copy.
func TestTemporaryFailureRetried(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.smtp.FailTimes(2, 451, "greylisted, try again later")
	q := f.startRiver(f.worker())
	id := f.notify(q, bodhiMeta(1))
	_, attempts := f.waitStatus(id, "sent")
	if attempts != 3 {
		t.Errorf("send attempts = %d, want 3", attempts)
	}
	if n := len(f.smtp.Messages()); n != 1 {
		t.Errorf("server got %d copies, want 1", n)
	}
	d, err := f.st.DestinationByID(f.ctx, f.destID)
	if err != nil || d.FailingReason != "" {
		t.Errorf("destination failing_reason = %q (%v), want none", d.FailingReason, err)
	}
}

// TestPermanentFailureMarksDestination: a 550 stops at once and tells the
// owner why, and later mail to that address is not attempted.
func TestPermanentFailureMarksDestination(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.smtp.FailWith(550, "mailbox unavailable")
	q := f.startRiver(f.worker())
	id := f.notify(q, bodhiMeta(1))
	reason, attempts := f.waitStatus(id, "dead")
	if attempts != 1 || !strings.Contains(reason, "550") {
		t.Errorf("attempts = %d, reason %q; want 1 attempt with the 550", attempts, reason)
	}
	d, err := f.st.DestinationByID(f.ctx, f.destID)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(d.FailingReason, "550") || !strings.Contains(d.FailingReason, "mailbox unavailable") {
		t.Errorf("failing_reason = %q, want the server's answer", d.FailingReason)
	}
	f.smtp.FailWith(0, "")
	id2 := f.notify(q, bodhiMeta(2))
	reason, _ = f.waitStatus(id2, "dead")
	if !strings.Contains(reason, "destination failing") {
		t.Errorf("second notification: %q", reason)
	}
	if n := len(f.smtp.Messages()); n != 0 {
		t.Errorf("server got %d mails, want none", n)
	}
	// Turning the destination on again clears the failure.
	on := true
	d, err = f.st.UpdateDestination(f.ctx, f.userID, f.destID, store.DestinationPatch{Enabled: &on})
	if err != nil || d.FailingReason != "" {
		t.Errorf("after re-enabling: failing_reason %q (%v)", d.FailingReason, err)
	}
}

// TestWorkerKilledBetweenSendAndRecord: the SMTP server accepted the mail,
// then the worker died before recording it. The retry must not send a
// second copy; the notification ends 'unknown' with the reason.
func TestWorkerKilledBetweenSendAndRecord(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	var killed atomic.Bool
	f.sender.Mailer = afterSend{f.sender.Mailer, func() error {
		if killed.CompareAndSwap(false, true) {
			panic("worker killed") // River recovers it; nothing is recorded
		}
		return nil
	}}
	q := f.startRiver(f.worker())
	id := f.notify(q, bodhiMeta(1))
	reason, attempts := f.waitStatus(id, "unknown")
	if attempts != 1 || !strings.Contains(reason, "may have arrived") {
		t.Errorf("attempts %d, reason %q", attempts, reason)
	}
	if !killed.Load() {
		t.Fatal("the kill hook never ran")
	}
	if n := len(f.smtp.Messages()); n != 1 {
		t.Errorf("server got %d copies, want exactly 1", n)
	}
}

// TestMutedDropsMail: nothing is sent to a muted destination.
func TestMutedDropsMail(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	until := f.clock.Now().Add(time.Hour)
	p := &until
	if _, err := f.st.UpdateDestination(f.ctx, f.userID, f.destID, store.DestinationPatch{MutedUntil: &p}); err != nil {
		t.Fatal(err)
	}
	w := f.worker()
	id := f.notify(nil, bodhiMeta(1))
	if err := f.work(w, id, 1); err != nil {
		t.Fatal(err)
	}
	if s, reason, _ := f.status(id); s != "skipped" || !strings.Contains(reason, "muted") {
		t.Errorf("status %q (%s), want skipped: muted", s, reason)
	}
	if n := len(f.smtp.Messages()); n != 0 {
		t.Errorf("server got %d mails, want none", n)
	}
}

// TestHostileContent: CR/LF and HTML in bus content change no header and
// inject no markup.
func TestHostileContent(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	w := f.worker()
	id := f.notify(nil, meta.Metadata{
		Topic:     "org.fedoraproject.prod.evil\r\nBcc: victim@example.com",
		App:       "evil\nX-Injected: yes",
		Agent:     "mallory\r\n\r\n<b>body</b>",
		Summary:   "hello\r\nBcc: victim@example.com\r\n\r\n<script>alert(1)</script><img src=x onerror=alert(2)>",
		Link:      "javascript:alert(3)",
		Packages:  []string{"kernel\r\nX-More: 1"},
		Usernames: []string{},
	})
	if err := f.work(w, id, 1); err != nil {
		t.Fatal(err)
	}
	msgs := f.smtp.WaitFor(t, 1, 10*time.Second)
	m := parseMail(t, msgs[0])
	for _, k := range []string{"Bcc", "X-Injected", "X-More"} {
		if v := m.Header.Get(k); v != "" {
			t.Errorf("header %s injected: %q", k, v)
		}
	}
	if len(msgs[0].To) != 1 || msgs[0].To[0] != "alice@example.org" {
		t.Errorf("recipients %v", msgs[0].To)
	}
	if s := m.Header.Get("Subject"); strings.ContainsAny(s, "\r\n") || !strings.Contains(s, "hello Bcc: victim@example.com") {
		t.Errorf("Subject %q", s)
	}
	text, html := parts(t, m)
	if strings.Contains(html, "<script") || strings.Contains(html, "<img") || strings.Contains(html, "<b>") {
		t.Errorf("markup injected into HTML:\n%s", html)
	}
	if !strings.Contains(html, "&lt;script&gt;") {
		t.Errorf("summary not shown escaped:\n%s", html)
	}
	if strings.Contains(html, `href="javascript:`) {
		t.Errorf("javascript: link kept:\n%s", html)
	}
	if strings.Contains(text, "\nBcc:") {
		t.Errorf("text body lines broken by content:\n%s", text)
	}
}

// TestPoolReusesConnections: a burst goes over at most the pool's sockets.
func TestPoolReusesConnections(t *testing.T) {
	t.Parallel()
	srv := smtptest.Start(t)
	mailer, err := NewSMTPMailer(srv.URL(), 2)
	if err != nil {
		t.Fatal(err)
	}
	defer mailer.Close()
	const n = 40
	errs := make(chan error, n)
	for i := range n {
		go func() {
			m := testMsg(i)
			errs <- mailer.Send(t.Context(), m, nil)
		}()
	}
	for range n {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	srv.WaitFor(t, n, 10*time.Second)
	if c := srv.Connections(); c > 2 {
		t.Errorf("%d connections for %d mails, want at most 2", c, n)
	}
}

func TestIsPermanent(t *testing.T) {
	t.Parallel()
	srv := smtptest.Start(t)
	mailer, err := NewSMTPMailer(srv.URL(), 1)
	if err != nil {
		t.Fatal(err)
	}
	defer mailer.Close()
	for _, tc := range []struct {
		code int
		perm bool
	}{{451, false}, {421, false}, {550, true}, {554, true}} {
		srv.FailWith(tc.code, "no")
		err := mailer.Send(t.Context(), testMsg(tc.code), nil)
		if err == nil || IsPermanent(err) != tc.perm {
			t.Errorf("%d: err %v, permanent %v, want %v", tc.code, err, IsPermanent(err), tc.perm)
		}
	}
	// A server that is not there is a temporary failure.
	dead, err := NewSMTPMailer("smtp://127.0.0.1:1", 1)
	if err != nil {
		t.Fatal(err)
	}
	if err := dead.Send(t.Context(), testMsg(0), nil); err == nil || IsPermanent(err) {
		t.Errorf("connection refused: %v, permanent %v", err, IsPermanent(err))
	}
}

func testMsg(i int) *gomail.Msg {
	m := gomail.NewMsg()
	_ = m.From("fmn@example.org")
	_ = m.To("alice@example.org")
	m.Subject("test")
	m.SetBodyString(gomail.TypeTextPlain, strings.Repeat("x", i%7+1))
	return m
}

// TestLostAnswerNotRetried: the server kept the mail but the connection
// broke before its answer. fmn cannot know; it records 'unknown' and does
// not send a second copy.
func TestLostAnswerNotRetried(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.smtp.DropReplies(1)
	q := f.startRiver(f.worker())
	id := f.notify(q, bodhiMeta(1))
	reason, attempts := f.waitStatus(id, "unknown")
	if attempts != 1 || !strings.Contains(reason, "may have arrived") {
		t.Errorf("attempts %d, reason %q", attempts, reason)
	}
	// The next notification goes out normally on a fresh connection.
	id2 := f.notify(q, bodhiMeta(2))
	f.waitStatus(id2, "sent")
	if n := len(f.smtp.Messages()); n != 2 {
		t.Errorf("server got %d mails, want 2 (one each)", n)
	}
}

// TestWorkerProcessKilled kills a real worker process (os.Exit, nothing
// deferred runs) right after the SMTP server accepted its mail and before
// it recorded that, then lets a new worker retry the job as River does
// after rescuing it: no second copy.
func TestWorkerProcessKilled(t *testing.T) {
	if os.Getenv("FMN_KILLED_WORKER_DB") != "" {
		killedWorkerChild(t)
		return
	}
	t.Parallel()
	f := newFixture(t)
	id := f.notify(nil, bodhiMeta(1))
	cmd := exec.Command(os.Args[0], "-test.run=^TestWorkerProcessKilled$", "-test.count=1")
	cmd.Env = append(os.Environ(), "FMN_KILLED_WORKER_DB="+f.dbURL, "FMN_KILLED_WORKER_SMTP="+f.smtp.URL(),
		"FMN_KILLED_WORKER_ID="+strconv.FormatInt(id, 10))
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 77 {
		t.Fatalf("worker process: %v, want exit 77\n%s", err, out)
	}
	if n := len(f.smtp.Messages()); n != 1 {
		t.Fatalf("server got %d mails from the killed worker, want 1", n)
	}
	if s, _, _ := f.status(id); s != "sending" {
		t.Fatalf("status after the kill %q, want sending", s)
	}
	if err := f.work(f.worker(), id, 2); err != nil {
		t.Fatal(err)
	}
	if s, reason, attempts := f.status(id); s != "unknown" || attempts != 1 {
		t.Errorf("after the retry: %s (%s), %d attempts", s, reason, attempts)
	}
	if n := len(f.smtp.Messages()); n != 1 {
		t.Errorf("server got %d copies, want exactly 1", n)
	}
}

// killedWorkerChild is the worker process of TestWorkerProcessKilled.
func killedWorkerChild(t *testing.T) {
	ctx := t.Context()
	st, err := store.Open(ctx, os.Getenv("FMN_KILLED_WORKER_DB"))
	if err != nil {
		t.Fatal(err)
	}
	mailer, err := NewSMTPMailer(os.Getenv("FMN_KILLED_WORKER_SMTP"), 1)
	if err != nil {
		t.Fatal(err)
	}
	render, err := NewRenderer()
	if err != nil {
		t.Fatal(err)
	}
	id, _ := strconv.ParseInt(os.Getenv("FMN_KILLED_WORKER_ID"), 10, 64)
	s := &Channel{Store: st, Mailer: afterSend{mailer, func() error { os.Exit(77); return nil }}, Render: render,
		Settings:    Settings{From: "fmn@example.org", BaseURL: testBaseURL},
		Unsubscribe: &Unsubscriber{Store: st}, Metrics: metrics.New(), Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	w := delivery.NotifyWorker{Deliverer: delivery.NewDeliverer(st, s.Metrics, s.Log, s.Route())}
	err = w.Work(ctx, &river.Job[delivery.NotifyArgs]{JobRow: &rivertype.JobRow{Attempt: 1, MaxAttempts: 12, Queue: "email"},
		Args: delivery.NotifyArgs{NotificationID: id}})
	t.Fatalf("worker survived: %v", err)
}

// TestSMTPTLSAndAuth: STARTTLS on smtp://, TLS on smtps://, and the URL's
// user and password used for AUTH once per connection, not once per mail.
func TestSMTPTLSAndAuth(t *testing.T) {
	t.Parallel()
	for _, implicit := range []bool{false, true} {
		srv := smtptest.StartTLS(t, implicit)
		u := strings.Replace(srv.URL(), "://", "://fmn%40example.org:s3cr%3At@", 1)
		mailer, err := NewSMTPMailer(u, 1, gomail.WithTLSConfig(&tls.Config{RootCAs: srv.RootCAs, ServerName: "127.0.0.1"}))
		if err != nil {
			t.Fatal(err)
		}
		for i := range 3 {
			if err := mailer.Send(t.Context(), testMsg(i), nil); err != nil {
				t.Fatalf("%s: %v", srv.URL(), err)
			}
		}
		mailer.Close()
		if got := srv.Auths(); len(got) != 1 || got[0] != "fmn@example.org:s3cr:t" {
			t.Errorf("%s: auths %q, want one with the URL's credentials", srv.URL(), got)
		}
		if len(srv.Messages()) != 3 || srv.Connections() != 1 {
			t.Errorf("%s: %d mails over %d connections, want 3 over 1", srv.URL(), len(srv.Messages()), srv.Connections())
		}
	}
	// Without TLS, the password is never sent: the send fails instead.
	plain := smtptest.Start(t)
	mailer, err := NewSMTPMailer("smtp://u:p@"+plain.Addr, 1)
	if err != nil {
		t.Fatal(err)
	}
	if err := mailer.Send(t.Context(), testMsg(0), nil); err == nil || len(plain.Auths()) != 0 {
		t.Errorf("auth over plain text: %v, auths %q", err, plain.Auths())
	}
	if _, err := NewSMTPMailer("http://"+plain.Addr, 1); err == nil {
		t.Error("http:// accepted as an SMTP URL")
	}
}

// TestFinding11SMTPStartTLSStripped: with FMN_SMTP_TLS=required (the
// default off loopback) a server that does not offer STARTTLS, as when a
// network attacker strips it, gets no mail in clear: the send fails.
// Before, smtp:// fell back to plain text.
func TestFinding11SMTPStartTLSStripped(t *testing.T) {
	t.Parallel()
	stripped := smtptest.Start(t) // offers no STARTTLS
	mailer, err := NewSMTPMailerTLS(stripped.URL(), TLSRequired, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer mailer.Close()
	if err := mailer.Send(t.Context(), testMsg(0), nil); err == nil || len(stripped.Messages()) != 0 {
		t.Fatalf("TLS required, STARTTLS stripped: err %v, %d mails in clear", err, len(stripped.Messages()))
	}
	// Opportunistic (the default on loopback) and none still send.
	for _, mode := range []string{TLSOpportunistic, TLSNone} {
		m, err := NewSMTPMailerTLS(stripped.URL(), mode, 1)
		if err != nil {
			t.Fatal(err)
		}
		if err := m.Send(t.Context(), testMsg(1), nil); err != nil {
			t.Errorf("%s: %v", mode, err)
		}
		m.Close()
	}
	// Required with a server offering STARTTLS works.
	tlsSrv := smtptest.StartTLS(t, false)
	m, err := NewSMTPMailerTLS(tlsSrv.URL(), TLSRequired, 1, gomail.WithTLSConfig(&tls.Config{RootCAs: tlsSrv.RootCAs, ServerName: "127.0.0.1"}))
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if err := m.Send(t.Context(), testMsg(2), nil); err != nil || len(tlsSrv.Messages()) != 1 {
		t.Errorf("required with STARTTLS: %v, %d mails", err, len(tlsSrv.Messages()))
	}
	if TLSMode("smtp://mail.example.org:587") != TLSRequired || TLSMode("smtp://127.0.0.1:2525") != TLSOpportunistic {
		t.Error("default TLS modes")
	}
}
