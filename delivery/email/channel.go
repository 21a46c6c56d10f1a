// Package email is fmn's email channel: notifications and digests as
// multipart mail through a small pool of SMTP connections (or into a
// folder on a laptop), confirmation and sign-in mails, one-click
// unsubscribe links. Its test server is smtptest.
package email

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/riverqueue/river"

	"fmn"
	"fmn/delivery"
	"fmn/metrics"
	"fmn/store"
)

// Settings are the parts of the configuration mail needs.
type Settings struct {
	From    string
	BaseURL string
}

// Channel sends mail; it is a delivery.Channel and a delivery.Digester.
type Channel struct {
	Store       *store.Store
	Mailer      Mailer
	Render      *Renderer
	Settings    Settings
	Unsubscribe *Unsubscriber
	Metrics     *metrics.Metrics
	Log         *slog.Logger
	// Deliverer records failed digests as the core records failed
	// notifications (set by whoever builds both).
	Deliverer *delivery.Deliverer
	// Now is the clock (time.Now when nil); tests move a fake one.
	Now func() time.Time
}

func (s *Channel) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

// Email's queue: a first retry after 30 s, doubling to a cap of two hours,
// twelve attempts in all, spanning about nine hours. The short first steps
// ride out a restarting relay or greylisting (usually 5–15 minutes); the cap
// keeps a dead server from being hammered; past nine hours a notification
// is stale news and is better declared dead (visible in the history) than
// delivered the next day. Fifty jobs at once keep the pool of
// DefaultSMTPConns busy; each waits for a connection before it claims its
// notification, so a killed process leaves at most the pool's sends in
// flight unknown. A minute covers the wait and the send (go-mail's own
// timeout is 30 s).
func (s *Channel) Route() delivery.Route {
	return delivery.Route{Kind: fmn.KindEmail, Channel: s, Attempts: 12, Timeout: time.Minute, Workers: 50,
		Backoff: 30 * time.Second, MaxBackoff: 2 * time.Hour}
}

// envelope gives the address and footer links of a destination.
func (s *Channel) envelope(ctx context.Context, d fmn.Destination) (Envelope, error) {
	tok, err := s.Unsubscribe.Token(ctx, d.ID)
	if err != nil {
		return Envelope{}, err
	}
	return Envelope{To: d.Address, Token: tok, Unsubscribe: s.Settings.BaseURL + "/unsubscribe/" + tok}, nil
}

// buildError: the mail could not be made (a From or To address go-mail
// refuses): sending it again will not help.
type buildError struct{ err error }

func (e buildError) Error() string { return "build mail: " + e.err.Error() }
func (e buildError) Unwrap() error { return e.err }

// Send implements delivery.Channel: the Message-ID is fixed per
// notification and destination; the claim is made once the mailer holds a
// connection.
func (s *Channel) Send(ctx context.Context, d fmn.Destination, n fmn.Notification, claim delivery.Claim) error {
	env, err := s.envelope(ctx, d)
	if err != nil {
		return err
	}
	m, err := s.NotificationMsg(env, n)
	if err != nil {
		return buildError{err}
	}
	return s.Mailer.Send(ctx, m, claim)
}

// Classify implements delivery.Channel: a 5xx answer is permanent, a
// connection that broke after the whole message was written is unknown,
// anything else (4xx, refused or lost connections, timeouts) temporary.
func (s *Channel) Classify(err error) delivery.Verdict {
	var be buildError
	switch {
	case IsPermanent(err), errors.As(err, &be):
		return delivery.Verdict{Outcome: delivery.Permanent}
	case IsAmbiguous(err):
		return delivery.Verdict{Outcome: delivery.Unknown}
	}
	return delivery.Verdict{Outcome: delivery.Temporary}
}

type confirmMail struct {
	User, Link, Expires, BaseURL string
}

// Confirm implements delivery.Channel: a plain mail with the link.
func (s *Channel) Confirm(ctx context.Context, d fmn.Destination, owner, code string) error {
	body, err := s.Render.Text("confirm", confirmMail{
		User:    owner,
		Link:    s.Settings.BaseURL + "/confirm/" + code,
		Expires: time.Now().Add(store.ConfirmTTL).UTC().Format("2006-01-02 15:04 MST"),
		BaseURL: s.Settings.BaseURL,
	})
	if err != nil {
		return river.JobCancel(err)
	}
	m, err := serviceMail(s.Settings, fmt.Sprintf("confirm.%d", d.ID), d.Address, "Confirm your fmn notifications", body)
	if err != nil {
		return buildError{err}
	}
	return s.Mailer.Send(ctx, m, nil)
}

// Tell implements delivery.Channel: a plain mail, the note's title as its
// subject.
func (s *Channel) Tell(ctx context.Context, d fmn.Destination, n delivery.Note) error {
	m, err := serviceMail(s.Settings, n.Key, d.Address, n.Title, n.Text+"\n\n-- \nfmn, "+s.Settings.BaseURL+"\n")
	if err != nil {
		return buildError{err}
	}
	return s.Mailer.Send(ctx, m, nil)
}

// Hold implements delivery.Digester: the notification waits for the
// destination's digest; when the policy's count is reached (outside quiet
// hours) the digest goes out from here, at once.
func (s *Channel) Hold(ctx context.Context, d fmn.Destination, n fmn.Notification, pol fmn.Policy, quiet fmn.Quiet) error {
	now := s.now()
	waiting, err := s.Store.HoldForDigest(ctx, n.ID, d.ID, now)
	if err != nil {
		return err
	}
	if pol.After > 0 && waiting >= pol.After && !quiet.Active(now) {
		// A failure leaves the items waiting for the periodic check.
		if _, err := s.Flush(ctx, d.ID); err != nil {
			s.Log.Warn("digest send failed; the periodic check retries", "destination_id", d.ID, "err", err)
		}
	}
	return nil
}

// Register adds email's own job kinds: sign-in links, digests.
func (s *Channel) Register(w *river.Workers) {
	river.AddWorker(w, &LoginWorker{Channel: s})
	river.AddWorker(w, &DigestWorker{Channel: s})
	river.AddWorker(w, &DigestTickWorker{Channel: s})
}

// Periodic is the digest check, every DigestTickEvery.
func (s *Channel) Periodic() *river.PeriodicJob {
	return river.NewPeriodicJob(river.PeriodicInterval(DigestTickEvery),
		func() (river.JobArgs, *river.InsertOpts) { return DigestTickArgs{}, nil },
		&river.PeriodicJobOpts{RunOnStart: true})
}
