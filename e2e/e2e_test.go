// Package e2e starts the built fmn binary against a real PostgreSQL, a real
// SMTP server and real ZeroMQ sockets, and drives it as a user would.
package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"fmn/consumer"
	"fmn/consumer/amqptest"
	"fmn/delivery/email/smtptest"
	"fmn/rules"
	"fmn/store/storetest"
)

var fmnBin string

func TestMain(m *testing.M) {
	// The RabbitMQ node the AMQP tests share starts while fmn builds.
	amqptest.StartShared(amqptest.Options{})
	dir, err := os.MkdirTemp("", "fmn-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmnBin = filepath.Join(dir, "fmn")
	build := exec.Command("go", "build", "-o", fmnBin, "fmn/cmd/fmn")
	build.Stdout, build.Stderr = os.Stdout, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build fmn:", err)
		os.Exit(1)
	}
	code := m.Run()
	amqptest.StopShared()
	os.RemoveAll(dir)
	os.Exit(code)
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// service is a running `fmn serve`.
type service struct {
	t     *testing.T
	base  string
	env   []string
	token string
	log   *bytes.Buffer
}

func startService(t *testing.T, extraEnv ...string) *service {
	t.Helper()
	port := freePort(t)
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	env := append(os.Environ(),
		"FMN_DATABASE_URL="+storetest.URL(t),
		fmt.Sprintf("FMN_LISTEN=127.0.0.1:%d", port),
		"FMN_BASE_URL="+base,
		"FMN_DATA_DIR="+t.TempDir(),
		"FMN_MAIL_FROM=fmn@example.org",
	)
	env = append(env, extraEnv...)
	var logBuf bytes.Buffer
	cmd := exec.Command(fmnBin, "serve")
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = &logBuf, &logBuf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s := &service{t: t, base: base, env: env, log: &logBuf}
	t.Cleanup(func() {
		cmd.Process.Signal(os.Interrupt)
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("fmn serve exited with %v; log:\n%s", err, logBuf.String())
			}
		case <-time.After(20 * time.Second):
			cmd.Process.Kill()
			t.Errorf("fmn serve did not stop within 20s of SIGINT")
		}
		if t.Failed() {
			t.Logf("fmn serve log:\n%s", logBuf.String())
		}
	})
	eventually(t, 30*time.Second, "service healthy", func() bool {
		resp, err := http.Get(base + "/healthz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
	return s
}

func (s *service) run(args ...string) string {
	s.t.Helper()
	cmd := exec.Command(fmnBin, args...)
	cmd.Env = s.env
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		s.t.Fatalf("fmn %s: %v\n%s", strings.Join(args, " "), err, errOut.String())
	}
	return out.String()
}

// call makes an API request and decodes the JSON answer into out (if not
// nil); it returns the status.
func (s *service) call(method, path string, body any, out any) int {
	s.t.Helper()
	var rd io.Reader
	if body != nil {
		if raw, ok := body.(string); ok {
			rd = strings.NewReader(raw)
		} else {
			b, _ := json.Marshal(body)
			rd = bytes.NewReader(b)
		}
	}
	req, _ := http.NewRequest(method, s.base+path, rd)
	req.Header.Set("Authorization", "Bearer "+s.token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			s.t.Fatalf("%s %s: decode %q: %v", method, path, b, err)
		}
	}
	return resp.StatusCode
}

func eventually(t *testing.T, timeout time.Duration, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func metric(t *testing.T, base, line string) float64 {
	t.Helper()
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, line+" ") {
			var v float64
			fmt.Sscan(strings.TrimPrefix(l, line+" "), &v)
			return v
		}
	}
	return 0
}

// pressLink does what a person does with a mailed link: opens it (a page
// with one button, changing nothing) and presses the button (a POST back
// to the link).
func pressLink(link string) (*http.Response, error) {
	resp, err := http.Get(link)
	if err != nil {
		return nil, err
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != 200 {
		return resp, err
	}
	if !strings.Contains(string(b), `id="link-action"`) {
		return nil, fmt.Errorf("GET %s: no button on the page", link)
	}
	return http.Post(link, "application/x-www-form-urlencoded", nil)
}

var confirmLink = regexp.MustCompile(`http://127\.0\.0\.1:\d+/confirm/[A-Za-z0-9_-]{16,}`)

type apiErr struct {
	Error string `json:"error"`
	Field string `json:"field"`
}

// TestWalkingSkeleton is issue 2's acceptance: from a token to a confirmed
// email destination, a bodhi rule, the whole corpus published with
// `fmn publish -corpus`, each message stored once and exactly one mail per
// matching message, and bad input refused without harm.
func TestWalkingSkeleton(t *testing.T) {
	t.Parallel()
	mailSrv := smtptest.Start(t)
	busPort, junkPort := freePort(t), freePort(t)
	busEP := fmt.Sprintf("tcp://127.0.0.1:%d", busPort)
	junk, err := consumer.NewPublisher(context.Background(), fmt.Sprintf("tcp://127.0.0.1:%d", junkPort), false)
	if err != nil {
		t.Fatal(err)
	}
	defer junk.Close()
	s := startService(t, "FMN_SMTP_URL="+mailSrv.URL(),
		"FMN_BUS_ENDPOINTS="+busEP+","+fmt.Sprintf("tcp://127.0.0.1:%d", junkPort))
	s.token = strings.TrimSpace(s.run("token", "create", "-user", "alice", "-email", "alice@example.org"))
	if len(s.token) < 20 {
		t.Fatalf("token %q too short", s.token)
	}

	var me struct{ Name string }
	if st := s.call("GET", "/api/v1/me", nil, &me); st != 200 || me.Name != "alice" {
		t.Fatalf("GET /me = %d %+v", st, me)
	}

	// Bad input: a header-injection address and malformed rules are 400s
	// naming the field.
	var e apiErr
	if st := s.call("POST", "/api/v1/destinations", map[string]string{"kind": "email", "address": "a@example.org\r\nBcc: victim@example.org"}, &e); st != 400 || e.Field != "address" {
		t.Fatalf("CRLF address: %d %+v", st, e)
	}
	if st := s.call("POST", "/api/v1/rules", `{"name": "x", "track": {"topics": "not-a-list"}}`, &e); st != 400 || e.Field != "track.topics" {
		t.Fatalf("malformed rule: %d %+v", st, e)
	}
	if st := s.call("POST", "/api/v1/rules", map[string]any{"name": "nothing"}, &e); st != 400 || e.Field != "track" {
		t.Fatalf("rule tracking nothing: %d %+v", st, e)
	}

	type dest struct {
		ID        int64
		Confirmed bool
	}
	var d1, d2 dest
	if st := s.call("POST", "/api/v1/destinations", map[string]string{"kind": "email", "address": "alice@example.org"}, &d1); st != 201 {
		t.Fatalf("add destination: %d", st)
	}
	if st := s.call("POST", "/api/v1/destinations", map[string]string{"kind": "email", "address": "alice-unconfirmed@example.org"}, &d2); st != 201 {
		t.Fatalf("add second destination: %d", st)
	}
	ms := mailSrv.WaitFor(t, 2, 30*time.Second)
	var link string
	for _, m := range ms {
		if m.To[0] == "alice@example.org" {
			link = confirmLink.FindString(string(m.Data))
		}
	}
	if link == "" {
		t.Fatalf("no confirmation link in the mail to alice: %q", ms)
	}
	// A wrong code through the API changes nothing.
	if st := s.call("POST", fmt.Sprintf("/api/v1/destinations/%d/confirm", d1.ID), map[string]string{"code": "wrong-code-wrong-code"}, &e); st != 400 || e.Field != "code" {
		t.Fatalf("wrong code: %d %+v", st, e)
	}
	resp, err := pressLink(link)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("open confirmation link: %v %v", err, resp.StatusCode)
	}
	resp.Body.Close()
	if resp, _ := http.Get(link); resp.StatusCode != 404 {
		t.Fatalf("a confirmation link works twice: %d", resp.StatusCode)
	}
	var ds []dest
	s.call("GET", "/api/v1/destinations", nil, &ds)
	if len(ds) != 2 || !ds[0].Confirmed || ds[1].Confirmed {
		t.Fatalf("destinations after confirming the first: %+v", ds)
	}

	const topicGlob = "org.fedoraproject.*.bodhi.*"
	var rule struct{ ID int64 }
	if st := s.call("POST", "/api/v1/rules", map[string]any{
		"name": "bodhi", "track": map[string]any{"topics": []string{topicGlob}},
		"destinations": []int64{d1.ID, d2.ID},
	}, &rule); st != 201 {
		t.Fatalf("create rule: %d", st)
	}

	// A malformed frame is counted and dropped; the service stays ready.
	eventually(t, 15*time.Second, "junk publisher's subscriber", func() bool { return junk.WaitSubscribers(context.Background(), 100*time.Millisecond) })
	if err := junk.Send("org.fedoraproject.prod.bodhi.update.comment", []byte("{not json")); err != nil {
		t.Fatal(err)
	}
	if err := junk.SendFrames([]byte("only-one-frame")); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "dropped frames counted", func() bool {
		return metric(t, s.base, `fmn_bus_messages_dropped_total{reason="json"}`) == 1 &&
			metric(t, s.base, `fmn_bus_messages_dropped_total{reason="frames"}`) == 1
	})
	if n := metric(t, s.base, `fmn_bus_messages_stored_total`); n != 0 {
		t.Fatalf("bad frames stored: %v", n)
	}

	// Publish the whole corpus with the real tool.
	corpus, err := consumer.ReadCorpus("../testdata/fedmsg-meta.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	s.run("publish", "-endpoint", busEP, "-corpus", "../testdata", "-wait", "30s")

	type msg struct {
		MsgID string `json:"msg_id"`
		Topic string
	}
	var got []msg
	eventually(t, 60*time.Second, "every corpus message stored", func() bool {
		got = nil
		s.call("GET", "/api/v1/messages?limit=1000", nil, &got)
		return len(got) >= len(corpus)
	})
	if len(got) != len(corpus) {
		t.Fatalf("stored %d messages, published %d", len(got), len(corpus))
	}
	seen := map[string]bool{}
	for _, m := range got {
		if seen[m.MsgID] {
			t.Fatalf("msg_id %s stored twice", m.MsgID)
		}
		seen[m.MsgID] = true
	}

	g := rules.CompileGlob(topicGlob)
	want := 0
	for _, env := range corpus {
		if g.Match(env["topic"].(string)) {
			want++
		}
	}
	if want == 0 {
		t.Fatal("the corpus has no bodhi messages; the test would prove nothing")
	}
	total := 2 + want // two confirmations, then one mail per match
	mailSrv.WaitFor(t, total, 60*time.Second)
	// Give a duplicate time to show up before counting.
	time.Sleep(2 * time.Second)
	all := mailSrv.Messages()
	if len(all) != total {
		t.Fatalf("SMTP server got %d mails, want %d (2 confirmations + %d matches)", len(all), total, want)
	}
	ids := map[string]bool{}
	for _, m := range all[2:] {
		if len(m.To) != 1 || m.To[0] != "alice@example.org" {
			t.Fatalf("notification to %v: only the confirmed destination may receive one", m.To)
		}
		pm, err := m.Parsed()
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(pm.Header.Get("X-Fedmsg-Topic"), ".bodhi.") {
			t.Fatalf("mail for topic %q", pm.Header.Get("X-Fedmsg-Topic"))
		}
		id := pm.Header.Get("Message-Id")
		if ids[id] {
			t.Fatalf("mail %s sent twice", id)
		}
		ids[id] = true
	}
	var ns []struct{ Status string }
	s.call("GET", "/api/v1/notifications?limit=500", nil, &ns)
	sent := 0
	for _, n := range ns {
		if n.Status == "sent" {
			sent++
		}
	}
	if sent != want {
		t.Fatalf("%d notifications marked sent, want %d", sent, want)
	}
	if v := metric(t, s.base, `fmn_notifications_sent_total{channel="email"}`); v != float64(want) {
		t.Fatalf("fmn_notifications_sent_total{channel=email} = %v, want %d", v, want)
	}
	// The junk endpoint that sent bad frames is still connected and the
	// database reachable. (The corpus publisher has exited, so /readyz as a
	// whole rightly says not ready now.)
	var ready struct {
		Database  string
		Endpoints []struct {
			Endpoint  string
			Connected bool
		}
	}
	resp, err = http.Get(s.base + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	json.NewDecoder(resp.Body).Decode(&ready)
	resp.Body.Close()
	if ready.Database != "ok" || len(ready.Endpoints) != 2 || !ready.Endpoints[1].Connected {
		t.Fatalf("readyz after bad input: %+v", ready)
	}
}
