// Package smtptest runs a real SMTP server in the test process (emersion's
// go-smtp) that keeps every message it accepts, so tests can check what fmn
// sent byte for byte, and can make it fail on purpose.
package smtptest

import (
	"crypto/x509"
	"io"
	"net"
	"net/mail"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// Message is one accepted mail.
type Message struct {
	From string
	To   []string
	Data []byte
}

// Parsed parses the message's headers and body.
func (m Message) Parsed() (*mail.Message, error) {
	return mail.ReadMessage(strings.NewReader(string(m.Data)))
}

// Server is a running SMTP server.
type Server struct {
	Addr string
	// RootCAs trusts the server's certificate (StartTLS servers only).
	RootCAs *x509.CertPool

	scheme string

	mu     sync.Mutex
	msgs   []Message
	fail   *smtp.SMTPError
	times  int // failures left when FailTimes set them; 0 = until FailWith(0)
	conns  int
	auths  []string // user:password of every AUTH PLAIN
	drops  int      // messages to keep while cutting the connection before the answer
	notify chan struct{}
	srv    *smtp.Server
}

func newServer() *Server {
	s := &Server{notify: make(chan struct{}, 1), scheme: "smtp"}
	s.srv = smtp.NewServer(backend{s})
	s.srv.Domain = "localhost"
	s.srv.AllowInsecureAuth = true
	s.srv.ReadTimeout = 10 * time.Second
	s.srv.WriteTimeout = 10 * time.Second
	return s
}

// Start listens on a free loopback port; the server stops with the test.
func Start(t testing.TB) *Server {
	t.Helper()
	s := newServer()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("smtptest: listen: %v", err)
	}
	s.Addr = ln.Addr().String()
	go s.srv.Serve(counting{ln, s})
	t.Cleanup(func() { s.srv.Close() })
	return s
}

// URL is the smtp:// URL for FMN_SMTP_URL.
func (s *Server) URL() string { return s.scheme + "://" + s.Addr }

// FailWith makes every following DATA fail with code (4xx temporary, 5xx
// permanent); code 0 accepts again.
func (s *Server) FailWith(code int, msg string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if code == 0 {
		s.fail = nil
		return
	}
	s.fail = &smtp.SMTPError{Code: code, EnhancedCode: smtp.EnhancedCodeNotSet, Message: msg}
	s.times = 0
}

// FailTimes makes the next n DATA commands fail with code, then accepts
// again.
func (s *Server) FailTimes(n, code int, msg string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fail = &smtp.SMTPError{Code: code, EnhancedCode: smtp.EnhancedCodeNotSet, Message: msg}
	s.times = n
}

// DropReplies makes the server keep the next n messages but cut the
// connection before answering them: the client cannot know they arrived.
func (s *Server) DropReplies(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.drops = n
}

// Auths returns the user:password pairs clients authenticated with.
func (s *Server) Auths() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.auths...)
}

// Connections returns how many TCP connections were accepted so far.
func (s *Server) Connections() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.conns
}

// Messages returns a copy of what was accepted so far.
func (s *Server) Messages() []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Message(nil), s.msgs...)
}

// WaitFor waits until at least n messages were accepted and returns them;
// it fails the test at the timeout.
func (s *Server) WaitFor(t testing.TB, n int, timeout time.Duration) []Message {
	t.Helper()
	deadline := time.After(timeout)
	for {
		if ms := s.Messages(); len(ms) >= n {
			return ms
		}
		select {
		case <-s.notify:
		case <-deadline:
			t.Fatalf("smtptest: waited %s for %d messages, got %d", timeout, n, len(s.Messages()))
		}
	}
}

type backend struct{ s *Server }

func (b backend) NewSession(c *smtp.Conn) (smtp.Session, error) {
	return &session{s: b.s, conn: c}, nil
}

// counting counts the TCP connections a server accepts.
type counting struct {
	net.Listener
	s *Server
}

func (l counting) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.s.mu.Lock()
		l.s.conns++
		l.s.mu.Unlock()
	}
	return c, err
}

type session struct {
	s    *Server
	conn *smtp.Conn
	from string
	to   []string
}

// AuthMechanisms and Auth accept PLAIN with any credentials and record
// them, so tests can check what a client sent.
func (x *session) AuthMechanisms() []string { return []string{sasl.Plain} }
func (x *session) Auth(mech string) (sasl.Server, error) {
	return sasl.NewPlainServer(func(_, username, password string) error {
		x.s.mu.Lock()
		x.s.auths = append(x.s.auths, username+":"+password)
		x.s.mu.Unlock()
		return nil
	}), nil
}
func (x *session) Mail(from string, _ *smtp.MailOptions) error {
	x.from = from
	return nil
}
func (x *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	x.to = append(x.to, to)
	return nil
}
func (x *session) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	x.s.mu.Lock()
	if f := x.s.fail; f != nil {
		if x.s.times > 0 {
			if x.s.times--; x.s.times == 0 {
				x.s.fail = nil
			}
		}
		x.s.mu.Unlock()
		return f
	}
	x.s.msgs = append(x.s.msgs, Message{From: x.from, To: x.to, Data: b})
	drop := x.s.drops > 0
	if drop {
		x.s.drops--
	}
	x.s.mu.Unlock()
	if drop {
		x.conn.Conn().Close()
	}
	select {
	case x.s.notify <- struct{}{}:
	default:
	}
	return nil
}
func (x *session) Reset()        { x.from, x.to = "", nil }
func (x *session) Logout() error { return nil }
