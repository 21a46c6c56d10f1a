package email

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/riverqueue/river"

	"fmn"
	"fmn/apperr"
	"fmn/store"
)

// LoginArgs is the job that mails a sign-in link.
type LoginArgs struct {
	LinkID int64 `json:"link_id"`
}

// Kind implements river.JobArgs.
func (LoginArgs) Kind() string { return "email_login" }

// InsertOpts: a sign-in link is wanted within the minute; after a few quick
// tries the user asks again.
func (LoginArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: string(fmn.KindEmail), MaxAttempts: 3}
}

// LoginWorker mails sign-in links. As with confirmations, the secret is made
// at send time and only its hash is stored.
type LoginWorker struct {
	river.WorkerDefaults[LoginArgs]
	Channel *Channel
}

type loginMail struct {
	Link, Expires, BaseURL string
}

// Work makes the link's token and mails it.
func (w *LoginWorker) Work(ctx context.Context, job *river.Job[LoginArgs]) error {
	tok, email, err := w.Channel.Store.NewLoginToken(ctx, job.Args.LinkID)
	if errors.Is(err, apperr.ErrNotFound) {
		return river.JobCancel(errors.New("sign-in request is gone or used"))
	}
	if err != nil {
		return err
	}
	body, err := w.Channel.Render.Text("login", loginMail{
		Link:    w.Channel.Settings.BaseURL + "/login/" + tok,
		Expires: time.Now().Add(store.LoginLinkTTL).UTC().Format("15:04 MST"),
		BaseURL: w.Channel.Settings.BaseURL,
	})
	if err != nil {
		return river.JobCancel(err)
	}
	return sendServiceMail(ctx, w.Channel.Mailer, w.Channel.Settings, fmt.Sprintf("login.%d", job.Args.LinkID), email,
		"Your fmn sign-in link", body)
}
