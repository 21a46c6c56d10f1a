package delivery

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"

	"fmn/apperr"
	"fmn/metrics"
	"fmn/store"
)

// MailSettings are the parts of the configuration mail needs.
type MailSettings struct {
	From    string
	BaseURL string
}

// Sender holds what sending mail needs; the email, digest and tick
// workers share one.
type Sender struct {
	Store       *store.Store
	Mailer      Mailer
	Render      *Renderer
	Settings    MailSettings
	Unsubscribe *Unsubscriber
	Metrics     *metrics.Metrics
	Log         *slog.Logger
	// Now is the clock (time.Now when nil); tests move a fake one.
	Now func() time.Time
	// RetryBase is the first retry delay of a failed send (30 s when
	// zero); it doubles per attempt up to two hours.
	RetryBase time.Duration
}

func (s *Sender) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

// Email retries: a first retry after 30 s, doubling to a cap of two hours,
// twelve attempts in all (EmailArgs.InsertOpts), spanning about nine
// hours. The short first steps ride out a restarting relay or greylisting
// (usually 5–15 minutes); the cap keeps a dead server from being hammered;
// past nine hours a notification is stale news and is better declared dead
// (visible in the history) than delivered the next day.
const (
	defaultRetryBase = 30 * time.Second
	maxRetryDelay    = 2 * time.Hour
)

func (s *Sender) nextRetry(attempt int) time.Time {
	base := s.RetryBase
	if base <= 0 {
		base = defaultRetryBase
	}
	d := base << min(max(attempt-1, 0), 16)
	return time.Now().Add(min(d, maxRetryDelay))
}

// envelope gives the address and footer links of a destination.
func (s *Sender) envelope(ctx context.Context, d store.Destination) (Envelope, error) {
	tok, err := s.Unsubscribe.Token(ctx, d.ID)
	if err != nil {
		return Envelope{}, err
	}
	return Envelope{To: d.Address, Token: tok, Unsubscribe: s.Settings.BaseURL + "/unsubscribe/" + tok}, nil
}

// EmailWorker mails one notification, or holds it for a digest.
type EmailWorker struct {
	river.WorkerDefaults[EmailArgs]
	Sender *Sender

	// afterSend, when set (by tests), runs between the SMTP server's
	// acceptance and the recording of it; an error from it stands for the
	// worker dying right there.
	afterSend func() error
}

// NextRetry implements river.Worker: email's own backoff.
func (w *EmailWorker) NextRetry(job *river.Job[EmailArgs]) time.Time {
	return w.Sender.nextRetry(job.Attempt)
}

// errDestinationFailing is why mail to a destination marked failing stops.
var errDestinationFailing = errors.New("destination failing")

// Work sends the notification unless it was sent already. The notification
// row is the idempotency record: claimed ('sending', attempt counted) and
// committed before the SMTP server is contacted, marked sent after. Mail
// for a muted destination is dropped; during quiet hours or under a digest
// policy it is held for a digest instead.
func (w *EmailWorker) Work(ctx context.Context, job *river.Job[EmailArgs]) error {
	s := w.Sender
	now := s.now()
	n, err := s.Store.GetNotification(ctx, job.Args.NotificationID)
	if errors.Is(err, apperr.ErrNotFound) {
		return river.JobCancel(fmt.Errorf("notification %d is gone", job.Args.NotificationID))
	}
	if err != nil {
		return err
	}
	if n.Status != "pending" && n.Status != "failed" && n.Status != "sending" {
		return nil // sent, held or given up by an earlier attempt
	}
	d, err := s.Store.DestinationByID(ctx, n.DestinationID)
	if errors.Is(err, apperr.ErrNotFound) {
		return river.JobCancel(fmt.Errorf("destination %d is gone", n.DestinationID))
	}
	if err != nil {
		return err
	}
	if n.Status != "sending" {
		switch {
		case !d.Confirmed || !d.Enabled:
			// Changed since the match: honour the owner's latest word.
			return s.Store.FinishNotification(ctx, n.ID, "dead", "destination disabled or unconfirmed")
		case d.FailingReason != "":
			return s.Store.FinishNotification(ctx, n.ID, "dead", "destination failing: "+d.FailingReason)
		case d.MutedUntil != nil && now.Before(*d.MutedUntil):
			// Dropped, not held: a mute says "not now, not later"; holding
			// would greet the owner with everything they muted.
			return s.Store.FinishNotification(ctx, n.ID, "dead", "destination muted until "+d.MutedUntil.UTC().Format(time.RFC3339))
		}
		us, err := s.Store.GetUserSettings(ctx, d.UserID)
		if err != nil {
			return err
		}
		quiet := QuietOf(us.Timezone, us.QuietStart, us.QuietEnd)
		pol := PolicyOf(d.Delivery)
		if pol.Digest() || quiet.Active(now) {
			waiting, err := s.Store.HoldForDigest(ctx, n.ID, d.ID, now)
			if err != nil {
				return err
			}
			if pol.After > 0 && waiting >= pol.After && !quiet.Active(now) {
				// Enough items: send the digest from here, at once. A
				// failure leaves them waiting for the periodic check.
				if _, err := s.Flush(ctx, d.ID); err != nil {
					s.Log.Warn("digest send failed; the periodic check retries", "destination_id", d.ID, "err", err)
				}
			}
			return nil
		}
	}
	claim, err := s.Store.ClaimSend(ctx, n.ID, now)
	if err != nil {
		return err
	}
	switch claim {
	case store.ClaimDone:
		return nil
	case store.ClaimInterrupted:
		s.Log.Warn("notification was being sent when a worker stopped; not sending it again",
			"notification_id", n.ID, "destination_id", d.ID)
		return nil
	}
	env, err := s.envelope(ctx, d)
	if err != nil {
		_ = s.Store.FinishNotification(ctx, n.ID, "failed", "internal error")
		return err
	}
	m, err := s.NotificationMsg(env, n)
	if err != nil {
		_ = s.Store.FinishNotification(ctx, n.ID, "dead", "could not build the mail")
		return river.JobCancel(fmt.Errorf("build mail: %w", err))
	}
	if err := s.Mailer.Send(ctx, m); err != nil {
		return s.sendFailed(ctx, job.JobRow, d, func(status, reason string) error {
			return s.Store.FinishNotification(ctx, n.ID, status, reason)
		}, err)
	}
	if w.afterSend != nil {
		if err := w.afterSend(); err != nil {
			return err
		}
	}
	if err := s.Store.FinishNotification(ctx, n.ID, "sent", ""); err != nil {
		return err
	}
	s.Metrics.Sent.WithLabelValues(ChannelEmail).Inc()
	return nil
}

// sendFailed records a failed send: a permanent failure (5xx) marks the
// destination failing with the server's words and stops; anything else is
// retried, and declared dead on the last attempt.
func (s *Sender) sendFailed(ctx context.Context, job *rivertype.JobRow, d store.Destination, record func(status, reason string) error, err error) error {
	s.Metrics.Failures.WithLabelValues(ChannelEmail).Inc()
	reason := OneLine(err.Error(), 500)
	if IsPermanent(err) {
		_ = record("dead", reason)
		if ferr := s.Store.SetDestinationFailing(ctx, d.ID, reason); ferr != nil {
			s.Log.Error("mark destination failing", "destination_id", d.ID, "err", ferr)
		}
		s.Log.Warn("permanent SMTP failure; destination marked failing", "destination_id", d.ID, "err", err)
		return river.JobCancel(err)
	}
	if IsAmbiguous(err) {
		// The server may have the mail: better possibly missing than
		// surely doubled. Recorded as unknown, not retried.
		_ = record("unknown", "the connection failed while the SMTP server was answering the sent message; it may have arrived, and is not sent again: "+reason)
		return river.JobCancel(err)
	}
	status := "failed"
	if job != nil && job.Attempt >= job.MaxAttempts {
		status = "dead"
	}
	if rerr := record(status, reason); rerr != nil {
		return errors.Join(err, rerr)
	}
	return err
}

// ConfirmWorker mails a destination its confirmation link. The code is made
// here, at send time, so it never sits in plain text in the job table.
type ConfirmWorker struct {
	river.WorkerDefaults[ConfirmArgs]
	Store    *store.Store
	Mailer   Mailer
	Render   *Renderer
	Settings MailSettings
	Log      *slog.Logger
}

type confirmMail struct {
	User, Link, Expires, BaseURL string
}

// Work makes a fresh code and mails its link.
func (w *ConfirmWorker) Work(ctx context.Context, job *river.Job[ConfirmArgs]) error {
	d, err := w.Store.DestinationByID(ctx, job.Args.DestinationID)
	if errors.Is(err, apperr.ErrNotFound) {
		return river.JobCancel(errors.New("destination is gone"))
	}
	if err != nil {
		return err
	}
	if d.Confirmed {
		return nil
	}
	code, owner, err := w.Store.NewConfirmation(ctx, d.ID)
	if errors.Is(err, apperr.ErrNotFound) {
		return nil // confirmed meanwhile
	}
	if err != nil {
		return err
	}
	body, err := w.Render.Text("confirm", confirmMail{
		User:    owner,
		Link:    w.Settings.BaseURL + "/confirm/" + code,
		Expires: time.Now().Add(store.ConfirmTTL).UTC().Format("2006-01-02 15:04 MST"),
		BaseURL: w.Settings.BaseURL,
	})
	if err != nil {
		return river.JobCancel(err)
	}
	return sendServiceMail(ctx, w.Mailer, w.Settings, fmt.Sprintf("confirm.%d", d.ID), d.Address,
		"Confirm your fmn notifications", body,
		func(err error) { _ = w.Store.SetDestinationFailing(ctx, d.ID, err.Error()) })
}
