// Package irctest runs a real IRC server (Debian's ngircd) for tests, and
// real IRC clients (irc-go) that record the private messages they receive.
//
// Each Start gives the test a server of its own on a free loopback port,
// started in the foreground from a generated configuration and killed when
// the test ends. scripts/ensure-ngircd.sh installs ngircd when missing.
package irctest

import (
	"bufio"
	"cmp"
	"context"
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ergochat/irc-go/ircevent"
	"github.com/ergochat/irc-go/ircmsg"
)

// Server is a running ngircd.
type Server struct {
	Addr string // host:port

	bin, conf string
	mu        sync.Mutex
	proc      *process
}

type process struct {
	cmd    *exec.Cmd
	exited chan struct{}
	out    *strings.Builder
	outMu  *sync.Mutex
}

func (p *process) log() string {
	p.outMu.Lock()
	defer p.outMu.Unlock()
	return p.out.String()
}

func (p *process) kill() {
	_ = p.cmd.Process.Kill()
	<-p.exited
}

// start runs ngircd on s.conf and waits until it listens.
func (s *Server) start() (*process, bool, error) {
	cmd := exec.Command(s.bin, "--nodaemon", "--config", s.conf)
	p := &process{cmd: cmd, exited: make(chan struct{}), out: &strings.Builder{}, outMu: &sync.Mutex{}}
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			p.outMu.Lock()
			p.out.WriteString(sc.Text() + "\n")
			p.outMu.Unlock()
		}
	}()
	if err := cmd.Start(); err != nil {
		return nil, false, fmt.Errorf("start ngircd: %w", err)
	}
	go func() { _ = cmd.Wait(); pw.Close(); close(p.exited) }()
	if waitListening(s.Addr, p.exited, 10*time.Second) {
		return p, true, nil
	}
	p.kill()
	return p, false, nil
}

// Stop kills the server (the clients see their connection drop).
func (s *Server) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc != nil {
		s.proc.kill()
		s.proc = nil
	}
}

// Restart starts the server again on the same address.
func (s *Server) Restart(t testing.TB) {
	t.Helper()
	s.Stop()
	// The port was ours a moment ago; give the kernel a few tries.
	for attempt := 0; ; attempt++ {
		p, ok, err := s.start()
		if err != nil {
			t.Fatal(err)
		}
		if ok {
			s.mu.Lock()
			s.proc = p
			s.mu.Unlock()
			return
		}
		if attempt == 20 {
			t.Fatalf("ngircd did not listen again on %s:\n%s", s.Addr, p.log())
		}
	}
}

// URL is the server's irc:// URL.
func (s *Server) URL() string { return "irc://" + s.Addr }

func ngircdPath() (string, error) {
	if p, err := exec.LookPath("ngircd"); err == nil {
		return p, nil
	}
	for _, p := range []string{"/usr/sbin/ngircd", "/usr/local/sbin/ngircd"} {
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("ngircd not found: run scripts/ensure-ngircd.sh (or apt-get install ngircd)")
}

// config is an ngircd configuration for one test: loopback only, long nicks,
// no connection limit per address (benchmarks open many), no PAM, ident or
// DNS (nothing to wait for), and no system include directory.
const config = `[Global]
Name = irc.fmn.test
Info = fmn test server
Listen = 127.0.0.1
Ports = %d
MotdPhrase = "fmn test server"
IncludeDir = %s
[Limits]
MaxNickLength = 30
MaxConnectionsIP = 0
PingTimeout = %d
PongTimeout = %d
[Options]
PAM = no
Ident = no
DNS = no
`

// Options change the server's configuration.
type Options struct {
	// PingTimeout: idle seconds before the server PINGs a client (120);
	// PongTimeout: seconds it then waits for the PONG (20).
	PingTimeout, PongTimeout int
}

// Start runs ngircd for the test and stops it at the test's end.
func Start(t testing.TB) *Server { return StartWith(t, Options{}) }

// StartWith is Start with options.
func StartWith(t testing.TB, o Options) *Server {
	t.Helper()
	bin, err := ngircdPath()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	inc := filepath.Join(dir, "conf.d")
	if err := os.Mkdir(inc, 0o755); err != nil {
		t.Fatal(err)
	}
	// A free port can be taken by someone else between our probe and
	// ngircd's bind; try a few.
	for attempt := 0; attempt < 5; attempt++ {
		port, err := freePort()
		if err != nil {
			t.Fatal(err)
		}
		conf := filepath.Join(dir, "ngircd.conf")
		if err := os.WriteFile(conf, fmt.Appendf(nil, config, port, inc, cmp.Or(o.PingTimeout, 120), cmp.Or(o.PongTimeout, 20)), 0o644); err != nil {
			t.Fatal(err)
		}
		s := &Server{Addr: fmt.Sprintf("127.0.0.1:%d", port), bin: bin, conf: conf}
		p, ok, err := s.start()
		if err != nil {
			t.Fatal(err)
		}
		if ok {
			s.proc = p
			t.Cleanup(s.Stop)
			return s
		}
		if attempt == 4 {
			t.Fatalf("ngircd did not start listening on %s:\n%s", s.Addr, p.log())
		}
	}
	return nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func waitListening(addr string, exited <-chan struct{}, within time.Duration) bool {
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			return false
		default:
		}
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			return true
		}
		time.Sleep(20 * time.Millisecond) // polling a port; nothing to wait on
	}
	return false
}

// PM is a private message a Client received.
type PM struct {
	From string
	Text string
	At   time.Time
}

// Client is a real IRC user (irc-go) that records the private messages
// sent to it.
type Client struct {
	Nick string
	conn *ircevent.Connection

	mu     sync.Mutex
	pms    []PM
	signal chan struct{}
}

// Connect registers nick on the server; the client quits at the test's end.
func (s *Server) Connect(t testing.TB, nick string) *Client {
	t.Helper()
	c := &Client{Nick: nick, signal: make(chan struct{}, 1)}
	c.conn = &ircevent.Connection{
		Server: s.Addr, Nick: nick, User: "test", RealName: "fmn test user",
		Timeout: 10 * time.Second, KeepAlive: time.Minute, ReconnectFreq: time.Hour,
		Log: nil,
	}
	c.conn.Log = quietLog()
	c.conn.AddCallback("PRIVMSG", func(m ircmsg.Message) {
		if len(m.Params) < 2 {
			return
		}
		c.mu.Lock()
		c.pms = append(c.pms, PM{From: m.Nick(), Text: m.Params[1], At: time.Now()})
		c.mu.Unlock()
		select {
		case c.signal <- struct{}{}:
		default:
		}
	})
	if err := c.conn.Connect(); err != nil {
		t.Fatalf("connect %s to ngircd: %v", nick, err)
	}
	if got := c.conn.CurrentNick(); got != nick {
		t.Fatalf("connected as %q, want %q", got, nick)
	}
	done := make(chan struct{})
	go func() { c.conn.Loop(); close(done) }()
	t.Cleanup(func() { c.conn.Quit(); <-done })
	return c
}

// Say sends a private message from this client.
func (c *Client) Say(target, text string) error { return c.conn.Privmsg(target, text) }

// PMs returns a copy of the messages received so far.
func (c *Client) PMs() []PM {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]PM(nil), c.pms...)
}

// WaitPMs waits until at least n messages arrived and returns them all;
// after the deadline it returns what arrived and false.
func (c *Client) WaitPMs(ctx context.Context, n int) ([]PM, bool) {
	for {
		if pms := c.PMs(); len(pms) >= n {
			return pms, true
		}
		select {
		case <-c.signal:
		case <-ctx.Done():
			return c.PMs(), false
		}
	}
}

// WaitFor waits for a message whose text satisfies ok.
func (c *Client) WaitFor(ctx context.Context, ok func(PM) bool) (PM, bool) {
	seen := 0
	for {
		pms := c.PMs()
		for _, p := range pms[seen:] {
			if ok(p) {
				return p, true
			}
		}
		seen = len(pms)
		select {
		case <-c.signal:
		case <-ctx.Done():
			return PM{}, false
		}
	}
}

func quietLog() *log.Logger { return log.New(io.Discard, "", 0) }
