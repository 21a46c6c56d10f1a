package delivery

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/riverqueue/river"

	"fmn/apperr"
	"fmn/metrics"
	"fmn/store"
)

// IRCArgs is the job that sends one notification by IRC private message.
type IRCArgs struct {
	NotificationID int64 `json:"notification_id"`
}

// Kind implements river.JobArgs.
func (IRCArgs) Kind() string { return "irc_notification" }

// InsertOpts: IRC has its own queue, so a network outage holds back IRC
// only. An IRC line is news of the moment: eight attempts (about 40 minutes
// with RetryPolicy) and then it is dropped rather than sent hours late.
func (IRCArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: ChannelIRC, MaxAttempts: 8}
}

// IRCConfirmArgs is the job that sends an IRC destination its confirmation.
type IRCConfirmArgs struct {
	DestinationID int64 `json:"destination_id"`
}

// Kind implements river.JobArgs.
func (IRCConfirmArgs) Kind() string { return "irc_confirm" }

// InsertOpts: a confirmation on the IRC queue, a few tries.
func (IRCConfirmArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: ChannelIRC, MaxAttempts: 5}
}

// IRCConfirmLimit: three confirmations to one nick an hour, thirty a minute
// on the whole network. A confirmation goes to a nick nobody vouched for:
// these bound what anyone can make the bot say to strangers.
var IRCConfirmLimit = store.ConfirmLimit{PerAddress: 3, Window: time.Hour, PerMinute: 30}

// While the bot is offline (the network is down, or the bot is between
// reconnections) jobs wait without spending attempts, up to these ages: a
// notification an hour late is no longer news on IRC; a confirmation is
// worth sending as long as its owner may still look for it.
const (
	ircOfflineGrace        = time.Hour
	ircConfirmOfflineGrace = 24 * time.Hour
	ircOfflineRecheck      = 15 * time.Second
)

// ircJobTimeout covers the wait for a turn in the bot's paced queues.
const ircJobTimeout = 10 * time.Minute

// IRCWorker sends one notification as a private message.
type IRCWorker struct {
	river.WorkerDefaults[IRCArgs]
	Store   *store.Store
	Bot     *IRCBot
	Metrics *metrics.Metrics
	Log     *slog.Logger
}

// Timeout implements river.Worker: a job may wait its turn behind others.
func (w *IRCWorker) Timeout(*river.Job[IRCArgs]) time.Duration { return ircJobTimeout }

// Work sends the notification unless it was sent already, or the
// destination is unconfirmed, disabled or muted by now.
func (w *IRCWorker) Work(ctx context.Context, job *river.Job[IRCArgs]) error {
	n, d, err := notificationAndDestination(ctx, w.Store, job.Args.NotificationID)
	if err != nil {
		return err
	}
	if reason := undeliverable(d); reason != "" {
		_ = w.Store.FinishNotification(ctx, n.ID, "dead", reason)
		return nil
	}
	if !w.Bot.Online() {
		if time.Since(job.CreatedAt) < ircOfflineGrace {
			return river.JobSnooze(ircOfflineRecheck)
		}
		_ = w.Store.FinishNotification(ctx, n.ID, "dead", "the IRC network was unreachable for an hour")
		return river.JobCancel(ErrIRCOffline)
	}
	ok, err := w.Store.ClaimNotification(ctx, n.ID)
	if err != nil || !ok {
		return err
	}
	summary := n.Message.Summary
	if summary == "" {
		summary = n.Message.Topic
	}
	line := IRCNotificationLine(n.Message.App, summary, n.Message.Link, IRCTextBudget(w.Bot.Nick(), d.Address))
	if err := w.Bot.Deliver(ctx, d.Address, line); err != nil {
		w.Metrics.Failures.WithLabelValues(ChannelIRC).Inc()
		status := "failed"
		if job.Attempt >= job.MaxAttempts {
			status = "dead"
		}
		_ = w.Store.FinishNotification(context.WithoutCancel(ctx), n.ID, status, err.Error())
		return err
	}
	if err := w.Store.FinishNotification(ctx, n.ID, "sent", ""); err != nil {
		return err
	}
	w.Metrics.Sent.WithLabelValues(ChannelIRC).Inc()
	return nil
}

// notificationAndDestination loads what a worker needs, cancelling the job
// when either is gone.
func notificationAndDestination(ctx context.Context, st *store.Store, id int64) (store.Notification, store.Destination, error) {
	n, err := st.GetNotification(ctx, id)
	if errors.Is(err, apperr.ErrNotFound) {
		return n, store.Destination{}, river.JobCancel(fmt.Errorf("notification %d is gone", id))
	}
	if err != nil {
		return n, store.Destination{}, err
	}
	d, err := st.DestinationByID(ctx, n.DestinationID)
	if errors.Is(err, apperr.ErrNotFound) {
		return n, d, river.JobCancel(fmt.Errorf("destination %d is gone", n.DestinationID))
	}
	return n, d, err
}

// undeliverable says why a notification must not go to d now: the owner's
// latest word wins over the match made earlier. A muted notification is
// dropped, not held: a mute means "not now", not "all of it later".
func undeliverable(d store.Destination) string {
	switch {
	case !d.Confirmed:
		return "destination not confirmed"
	case !d.Enabled:
		return "destination disabled"
	case d.MutedUntil != nil && d.MutedUntil.After(time.Now()):
		return "destination muted"
	}
	return ""
}

// IRCConfirmWorker sends an IRC destination its confirmation: the link, and
// the code to say back to the bot.
type IRCConfirmWorker struct {
	river.WorkerDefaults[IRCConfirmArgs]
	Store   *store.Store
	Bot     *IRCBot
	BaseURL string
	Log     *slog.Logger
}

// Timeout implements river.Worker.
func (w *IRCConfirmWorker) Timeout(*river.Job[IRCConfirmArgs]) time.Duration { return ircJobTimeout }

// Work makes a fresh code and says it to the nick, within the rate limit.
func (w *IRCConfirmWorker) Work(ctx context.Context, job *river.Job[IRCConfirmArgs]) error {
	d, err := w.Store.DestinationByID(ctx, job.Args.DestinationID)
	if errors.Is(err, apperr.ErrNotFound) {
		return river.JobCancel(errors.New("destination is gone"))
	}
	if err != nil {
		return err
	}
	if d.Confirmed || !d.Enabled {
		return nil
	}
	if !w.Bot.Online() {
		// Wait without spending attempts or the rate limit.
		if time.Since(job.CreatedAt) < ircConfirmOfflineGrace {
			return river.JobSnooze(ircOfflineRecheck)
		}
		return river.JobCancel(ErrIRCOffline)
	}
	wait, err := w.Store.AllowConfirm(ctx, ChannelIRC, store.FoldNick(d.Address), IRCConfirmLimit)
	if err != nil {
		return err
	}
	if wait > 0 {
		w.Log.Info("IRC confirmation rate limited", "destination", d.ID, "wait", wait.Round(time.Second))
		return river.JobSnooze(wait)
	}
	code, owner, err := w.Store.NewConfirmation(ctx, d.ID)
	if errors.Is(err, apperr.ErrNotFound) {
		return nil // confirmed meanwhile
	}
	if err != nil {
		return err
	}
	line := fmt.Sprintf("fmn: %s asked to send notifications to this nick. To accept, open %s/confirm/%s or reply: confirm %s — not you? Ignore this.",
		IRCClean(owner), w.BaseURL, code, code)
	return w.Bot.Say(ctx, d.Address, line)
}
