package delivery

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/riverqueue/river"
	"github.com/wneessen/go-mail"

	"fmn/apperr"
	"fmn/metrics"
	"fmn/store"
)

// MailSettings are the parts of the configuration mail needs.
type MailSettings struct {
	From    string
	BaseURL string
}

// EmailWorker mails one notification.
type EmailWorker struct {
	river.WorkerDefaults[EmailArgs]
	Store    *store.Store
	Mailer   Mailer
	Render   *Renderer
	Settings MailSettings
	Metrics  *metrics.Metrics
	Log      *slog.Logger
}

type notificationMail struct {
	Message  store.Message
	RuleName string
	BaseURL  string
}

// Work sends the notification unless it was sent already. The notification
// row is the idempotency record: claimed before sending, marked sent after.
func (w *EmailWorker) Work(ctx context.Context, job *river.Job[EmailArgs]) error {
	n, err := w.Store.GetNotification(ctx, job.Args.NotificationID)
	if errors.Is(err, apperr.ErrNotFound) {
		return river.JobCancel(fmt.Errorf("notification %d is gone", job.Args.NotificationID))
	}
	if err != nil {
		return err
	}
	d, err := w.Store.DestinationByID(ctx, n.DestinationID)
	if errors.Is(err, apperr.ErrNotFound) {
		return river.JobCancel(fmt.Errorf("destination %d is gone", n.DestinationID))
	}
	if err != nil {
		return err
	}
	if !d.Confirmed || !d.Enabled {
		// Changed since the match: honour the owner's latest word.
		_ = w.Store.FinishNotification(ctx, n.ID, "dead", "destination disabled or unconfirmed")
		return river.JobCancel(errors.New("destination disabled or unconfirmed"))
	}
	ok, err := w.Store.ClaimNotification(ctx, n.ID)
	if err != nil {
		return err
	}
	if !ok {
		return nil // sent already, by an earlier attempt
	}
	m, err := w.notificationMsg(d.Address, n)
	if err != nil {
		return river.JobCancel(fmt.Errorf("build mail: %w", err))
	}
	if err := w.Mailer.Send(ctx, m); err != nil {
		w.Metrics.Failures.WithLabelValues(ChannelEmail).Inc()
		if IsPermanent(err) {
			_ = w.Store.FinishNotification(ctx, n.ID, "dead", err.Error())
			_ = w.Store.SetDestinationFailing(ctx, d.ID, err.Error())
			return river.JobCancel(err)
		}
		status := "failed"
		if job.Attempt >= job.MaxAttempts {
			status = "dead"
		}
		_ = w.Store.FinishNotification(ctx, n.ID, status, err.Error())
		return err
	}
	if err := w.Store.FinishNotification(ctx, n.ID, "sent", ""); err != nil {
		return err
	}
	w.Metrics.Sent.WithLabelValues(ChannelEmail).Inc()
	return nil
}

func (w *EmailWorker) notificationMsg(to string, n store.Notification) (*mail.Msg, error) {
	data := notificationMail{Message: n.Message, RuleName: n.RuleName, BaseURL: w.Settings.BaseURL}
	text, err := w.Render.Text("notification", data)
	if err != nil {
		return nil, err
	}
	html, err := w.Render.HTML("notification", data)
	if err != nil {
		return nil, err
	}
	m := mail.NewMsg()
	if err := m.From(w.Settings.From); err != nil {
		return nil, err
	}
	if err := m.To(to); err != nil {
		return nil, err
	}
	subject := n.Message.Summary
	if subject == "" {
		subject = n.Message.Topic
	}
	m.Subject(OneLine(fmt.Sprintf("[%s] %s", n.Message.App, subject), 200))
	m.SetMessageIDWithValue(fmt.Sprintf("fmn.%d.%d@%s", n.ID, n.DestinationID, mailDomain(w.Settings.From)))
	m.SetDate()
	m.SetGenHeader("X-Fedmsg-Topic", OneLine(n.Message.Topic, 200))
	m.SetGenHeader("X-Fedmsg-Category", OneLine(n.Message.App, 100))
	if n.Message.Agent != "" {
		m.SetGenHeader("X-Fedmsg-Username", OneLine(n.Message.Agent, 100))
	}
	m.SetBodyString(mail.TypeTextPlain, text)
	m.AddAlternativeString(mail.TypeTextHTML, html)
	return m, nil
}

func mailDomain(from string) string {
	if i := strings.LastIndexByte(from, '@'); i >= 0 {
		return strings.TrimRight(from[i+1:], ">")
	}
	return "fmn.invalid"
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
	code, err := w.Store.NewConfirmCode(ctx, d.ID)
	if errors.Is(err, apperr.ErrNotFound) {
		return nil // confirmed meanwhile
	}
	if err != nil {
		return err
	}
	owner, err := w.Store.UserName(ctx, d.UserID)
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
	m := mail.NewMsg()
	if err := m.From(w.Settings.From); err != nil {
		return river.JobCancel(err)
	}
	if err := m.To(d.Address); err != nil {
		return river.JobCancel(err)
	}
	m.Subject("Confirm your fmn notifications")
	m.SetMessageIDWithValue(fmt.Sprintf("fmn.confirm.%d.%d@%s", d.ID, time.Now().UnixNano(), mailDomain(w.Settings.From)))
	m.SetDate()
	m.SetBodyString(mail.TypeTextPlain, body)
	if err := w.Mailer.Send(ctx, m); err != nil {
		if IsPermanent(err) {
			_ = w.Store.SetDestinationFailing(ctx, d.ID, err.Error())
			return river.JobCancel(err)
		}
		return err
	}
	return nil
}
