package email

import (
	"context"
	"errors"
	"fmn/delivery"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/riverqueue/river"
	"github.com/wneessen/go-mail"
	"github.com/wneessen/go-mail/smtp"
)

// Mailer sends mail. SMTPMailer talks to a server; FolderMailer writes files,
// for running fmn on a laptop without one.
// Send calls claim (when not nil) once it holds what the send needs, just
// before the message leaves; claim reporting false sends nothing.
type Mailer interface {
	Send(ctx context.Context, m *mail.Msg, claim delivery.Claim) error
}

// SMTPMailer sends through the server named by FMN_SMTP_URL over a small
// pool of reused connections: a burst of notifications costs a handful of
// TCP and TLS handshakes, not one per mail, and never more than MaxConns
// sockets at once (mail servers limit connections per client and punish
// those that open too many).
type SMTPMailer struct {
	client  *mail.Client
	slots   chan struct{}  // one token per connection that may be open
	idle    chan *idleConn // connections ready for the next mail
	idleTTL time.Duration
}

type idleConn struct {
	c    *smtp.Client
	used time.Time
}

// Pool defaults: four connections carry hundreds of mails a second to a
// nearby relay while staying under common per-client connection limits;
// a connection idle for 30 s is closed before the server's own timeout
// (RFC 5321 suggests at least 5 minutes) could cut it mid-command.
const (
	DefaultSMTPConns = 4
	smtpIdleTTL      = 30 * time.Second
)

// TLS modes of smtp:// (FMN_SMTP_TLS). smtps:// is TLS from the first byte
// whatever the mode.
const (
	// TLSRequired: STARTTLS or nothing. A network attacker who strips the
	// server's STARTTLS offer gets no mail (and no password) in clear: the
	// send fails and is retried.
	TLSRequired = "required"
	// TLSOpportunistic: STARTTLS when offered, plain text otherwise (the
	// default for a relay on loopback, where nobody sits in between).
	TLSOpportunistic = "opportunistic"
	// TLSNone: never STARTTLS (a local relay without TLS at all).
	TLSNone = "none"
)

// TLSMode is the default FMN_SMTP_TLS for an SMTP URL: required, unless
// the server is on loopback.
func TLSMode(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return TLSRequired
	}
	h := u.Hostname()
	if ip := net.ParseIP(h); h == "localhost" || ip != nil && ip.IsLoopback() {
		return TLSOpportunistic
	}
	return TLSRequired
}

// NewSMTPMailer parses an smtp:// or smtps:// URL: smtps is TLS from the
// first byte (port 465 by default); smtp uses STARTTLS as tlsMode says
// (TLSRequired, TLSOpportunistic or TLSNone; "" is TLSMode(raw)) (port 587
// by default, 25 if given). User and password in the URL turn on
// authentication (go-mail picks the mechanism, and sends a password in
// clear only over TLS). maxConns bounds the pool (0 = DefaultSMTPConns);
// extra options go to go-mail (tests pass the CA of their server).
func NewSMTPMailer(raw string, maxConns int, extra ...mail.Option) (*SMTPMailer, error) {
	return NewSMTPMailerTLS(raw, "", maxConns, extra...)
}

// NewSMTPMailerTLS is NewSMTPMailer with FMN_SMTP_TLS's mode.
func NewSMTPMailerTLS(raw, tlsMode string, maxConns int, extra ...mail.Option) (*SMTPMailer, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("parse SMTP URL: %w", err)
	}
	if tlsMode == "" {
		tlsMode = TLSMode(raw)
	}
	policy := map[string]mail.TLSPolicy{TLSRequired: mail.TLSMandatory, TLSOpportunistic: mail.TLSOpportunistic, TLSNone: mail.NoTLS}
	tlsPolicy, ok := policy[tlsMode]
	if !ok {
		return nil, fmt.Errorf("SMTP TLS mode %q: want required, opportunistic or none", tlsMode)
	}
	opts := []mail.Option{mail.WithTimeout(30 * time.Second)}
	port := 587
	switch u.Scheme {
	case "smtps":
		port = 465
		opts = append(opts, mail.WithSSL())
	case "smtp":
		opts = append(opts, mail.WithTLSPolicy(tlsPolicy))
	default:
		return nil, fmt.Errorf("SMTP URL: scheme must be smtp or smtps, not %q", u.Scheme)
	}
	if p := u.Port(); p != "" {
		if port, err = strconv.Atoi(p); err != nil {
			return nil, fmt.Errorf("SMTP URL port: %w", err)
		}
	}
	opts = append(opts, mail.WithPort(port))
	if u.User != nil {
		pw, _ := u.User.Password()
		opts = append(opts, mail.WithSMTPAuth(mail.SMTPAuthAutoDiscover), mail.WithUsername(u.User.Username()), mail.WithPassword(pw))
	}
	c, err := mail.NewClient(u.Hostname(), append(opts, extra...)...)
	if err != nil {
		return nil, fmt.Errorf("set up SMTP client: %w", err)
	}
	if maxConns <= 0 {
		maxConns = DefaultSMTPConns
	}
	return &SMTPMailer{client: c, slots: make(chan struct{}, maxConns),
		idle: make(chan *idleConn, maxConns), idleTTL: smtpIdleTTL}, nil
}

// Send delivers one message on a pooled connection, dialling one when none
// is idle and the pool has room, waiting otherwise. The claim is made with
// a connection in hand: however many workers wait for the pool, at most
// MaxConns notifications are claimed and not yet answered at any moment. A
// reused connection the server closed meanwhile fails the NOOP go-mail
// sends first; the mail then goes out on a fresh connection, which cannot
// double it because nothing of it was sent.
func (s *SMTPMailer) Send(ctx context.Context, m *mail.Msg, claim delivery.Claim) error {
	select {
	case s.slots <- struct{}{}:
	case <-ctx.Done():
		return fmt.Errorf("send mail: waiting for an SMTP connection: %w", ctx.Err())
	}
	defer func() { <-s.slots }()
	conn := s.takeIdle()
	fresh := conn == nil
	if fresh {
		var err error
		if conn, err = s.client.DialToSMTPClientWithContext(ctx); err != nil {
			return fmt.Errorf("send mail: connect to SMTP server: %w", err)
		}
	}
	record := func(error) {}
	if claim != nil {
		var err error
		if record, err = claim(ctx); record == nil {
			s.putIdle(conn)
			return err
		}
	}
	err := s.client.SendWithSMTPClient(conn, m)
	var se *mail.SendError
	if err != nil && !fresh && errors.As(err, &se) && se.Reason == mail.ErrConnCheck {
		s.discard(conn)
		if conn, err = s.client.DialToSMTPClientWithContext(ctx); err != nil {
			err = fmt.Errorf("send mail: connect to SMTP server: %w", err)
			record(err)
			return err
		}
		err = s.client.SendWithSMTPClient(conn, m)
	}
	if err != nil {
		err = fmt.Errorf("send mail: %w", err)
		record(err)
		s.discard(conn)
		return err
	}
	record(nil)
	s.putIdle(conn)
	return nil
}

func (s *SMTPMailer) takeIdle() *smtp.Client {
	for {
		select {
		case ic := <-s.idle:
			if time.Since(ic.used) < s.idleTTL {
				return ic.c
			}
			s.discard(ic.c)
		default:
			return nil
		}
	}
}

func (s *SMTPMailer) putIdle(c *smtp.Client) {
	select {
	case s.idle <- &idleConn{c: c, used: time.Now()}:
	default:
		s.discard(c)
	}
}

// discard ends a connection politely when it still answers; a failed
// connection is simply closed.
func (s *SMTPMailer) discard(c *smtp.Client) {
	if err := s.client.CloseWithSMTPClient(c); err != nil {
		_ = c.Close()
	}
}

// Close quits every idle connection.
func (s *SMTPMailer) Close() {
	for {
		select {
		case ic := <-s.idle:
			s.discard(ic.c)
		default:
			return
		}
	}
}

// FolderMailer writes each message to Dir as an .eml file.
type FolderMailer struct {
	Dir string
}

// Send writes m atomically (temporary file, then rename), so a reader of the
// folder never sees half a message.
func (f FolderMailer) Send(ctx context.Context, m *mail.Msg, claim delivery.Claim) error {
	if err := os.MkdirAll(f.Dir, 0o750); err != nil {
		return fmt.Errorf("create mail folder: %w", err)
	}
	record := func(error) {}
	if claim != nil {
		var err error
		if record, err = claim(ctx); record == nil {
			return err
		}
	}
	name := fmt.Sprintf("%s-%d.eml", time.Now().UTC().Format("20060102T150405.000000000"), os.Getpid())
	tmp := filepath.Join(f.Dir, "."+name)
	err := m.WriteToFile(tmp)
	if err == nil {
		err = os.Rename(tmp, filepath.Join(f.Dir, name))
	}
	if err != nil {
		err = fmt.Errorf("write mail file: %w", err)
	}
	record(err)
	return err
}

// IsAmbiguous reports whether a failed send may nevertheless have been
// accepted: the whole message was written and the connection failed while
// waiting for the server's final answer (no SMTP code came back). Retrying
// could deliver a second copy, so such a send is not retried.
func IsAmbiguous(err error) bool {
	var se *mail.SendError
	return errors.As(err, &se) && se.Reason == mail.ErrSMTPDataClose && se.ErrorCode() == 0
}

// IsPermanent reports whether an SMTP failure will not go away by retrying:
// a 5xx answer from the server. Everything else (4xx answers, a refused or
// lost connection, a timeout) is temporary. go-mail's own IsTemp is not
// used: it calls any error not starting with '4' permanent, connection
// losses included.
func IsPermanent(err error) bool {
	var se *mail.SendError
	if errors.As(err, &se) {
		code := se.ErrorCode()
		return code >= 500 && code < 600
	}
	return false
}

// serviceMail builds one of fmn's own plain-text mails (a confirmation, a
// sign-in link, a test) to to, with a Message-ID unique to this send.
func serviceMail(settings Settings, idPart, to, subject, body string) (*mail.Msg, error) {
	m := mail.NewMsg()
	if err := m.From(settings.From); err != nil {
		return nil, err
	}
	if err := m.To(to); err != nil {
		return nil, err
	}
	m.Subject(subject)
	m.SetMessageIDWithValue(fmt.Sprintf("fmn.%s.%d@%s", idPart, time.Now().UnixNano(), mailDomain(settings.From)))
	m.SetDate()
	m.SetBodyString(mail.TypeTextPlain, body)
	return m, nil
}

// sendServiceMail sends a service mail of email's own jobs (sign-in links,
// tests): a permanent failure comes back wrapped in river.JobCancel, so the
// job stops instead of retrying.
func sendServiceMail(ctx context.Context, mailer Mailer, settings Settings, idPart, to, subject, body string) error {
	m, err := serviceMail(settings, idPart, to, subject, body)
	if err != nil {
		return river.JobCancel(err)
	}
	if err := mailer.Send(ctx, m, nil); err != nil {
		if IsPermanent(err) {
			return river.JobCancel(err)
		}
		return err
	}
	return nil
}
