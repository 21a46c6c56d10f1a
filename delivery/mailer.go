package delivery

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/wneessen/go-mail"
)

// Mailer sends mail. SMTPMailer talks to a server; FolderMailer writes files,
// for running fmn on a laptop without one.
type Mailer interface {
	Send(ctx context.Context, m *mail.Msg) error
}

// SMTPMailer sends through the server named by FMN_SMTP_URL.
type SMTPMailer struct {
	client *mail.Client
}

// NewSMTPMailer parses an smtp:// or smtps:// URL: smtps is TLS from the
// first byte (port 465 by default); smtp uses STARTTLS when the server offers
// it (port 587 by default, 25 if given). User and password in the URL turn on
// authentication.
func NewSMTPMailer(raw string) (*SMTPMailer, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("parse SMTP URL: %w", err)
	}
	opts := []mail.Option{mail.WithTimeout(30 * time.Second)}
	port := 587
	if u.Scheme == "smtps" {
		port = 465
		opts = append(opts, mail.WithSSL())
	} else {
		opts = append(opts, mail.WithTLSPolicy(mail.TLSOpportunistic))
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
	c, err := mail.NewClient(u.Hostname(), opts...)
	if err != nil {
		return nil, fmt.Errorf("set up SMTP client: %w", err)
	}
	return &SMTPMailer{client: c}, nil
}

// Send delivers one message.
func (s *SMTPMailer) Send(ctx context.Context, m *mail.Msg) error {
	if err := s.client.DialAndSendWithContext(ctx, m); err != nil {
		return fmt.Errorf("send mail: %w", err)
	}
	return nil
}

// FolderMailer writes each message to Dir as an .eml file.
type FolderMailer struct {
	Dir string
}

// Send writes m atomically (temporary file, then rename), so a reader of the
// folder never sees half a message.
func (f FolderMailer) Send(ctx context.Context, m *mail.Msg) error {
	if err := os.MkdirAll(f.Dir, 0o750); err != nil {
		return fmt.Errorf("create mail folder: %w", err)
	}
	name := fmt.Sprintf("%s-%d.eml", time.Now().UTC().Format("20060102T150405.000000000"), os.Getpid())
	tmp := filepath.Join(f.Dir, "."+name)
	if err := m.WriteToFile(tmp); err != nil {
		return fmt.Errorf("write mail file: %w", err)
	}
	if err := os.Rename(tmp, filepath.Join(f.Dir, name)); err != nil {
		return fmt.Errorf("write mail file: %w", err)
	}
	return nil
}

// IsPermanent reports whether an SMTP failure will not go away by retrying
// (a 5xx answer): the job then stops instead of retrying for hours.
func IsPermanent(err error) bool {
	var se *mail.SendError
	if errors.As(err, &se) {
		return !se.IsTemp()
	}
	return false
}
