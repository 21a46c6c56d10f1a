package delivery

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivertype"

	"fmn/store"
)

// EmailArgs is the job that mails one notification.
type EmailArgs struct {
	NotificationID int64 `json:"notification_id"`
}

// Kind implements river.JobArgs.
func (EmailArgs) Kind() string { return "email_notification" }

// InsertOpts puts mail on its own queue so that an outage of another channel
// never holds it back. Twelve attempts with EmailWorker's backoff (30 s
// doubling, capped at 2 h) span about nine hours: see Sender.nextRetry.
func (EmailArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: ChannelEmail, MaxAttempts: 12}
}

// ConfirmArgs is the job that mails a destination its confirmation link.
type ConfirmArgs struct {
	DestinationID int64 `json:"destination_id"`
}

// Kind implements river.JobArgs.
func (ConfirmArgs) Kind() string { return "email_confirm" }

// InsertOpts: a confirmation is wanted now or not at all; a few quick tries.
func (ConfirmArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: ChannelEmail, MaxAttempts: 5}
}

// RetryPolicy backs off exponentially from 10 s, doubling to a cap of two
// hours, with River's jitter left out so tests can reason about it: a
// flapping SMTP server is retried quickly, a dead one is not hammered.
type RetryPolicy struct{}

// NextRetry implements river.ClientRetryPolicy.
func (RetryPolicy) NextRetry(job *rivertype.JobRow) time.Time {
	d := 10 * time.Second << min(job.Attempt-1, 10)
	return time.Now().Add(min(d, 2*time.Hour))
}

// Queue inserts delivery jobs; it is what the consumer calls inside its
// transaction.
type Queue struct {
	Client *river.Client[pgx.Tx]
}

// Enqueue implements consumer.Enqueuer.
func (q Queue) Enqueue(ctx context.Context, tx pgx.Tx, ns []store.NewNotification) error {
	params := make([]river.InsertManyParams, 0, len(ns))
	for _, n := range ns {
		switch n.Kind {
		case ChannelEmail:
			params = append(params, river.InsertManyParams{Args: EmailArgs{NotificationID: n.ID}})
		case ChannelIRC:
			params = append(params, river.InsertManyParams{Args: IRCArgs{NotificationID: n.ID}})
		case ChannelPush:
			params = append(params, river.InsertManyParams{Args: PushArgs{NotificationID: n.ID}})
		default:
			// A channel whose sender is not built cannot have confirmed
			// destinations; keep the row, queue nothing.
		}
	}
	if len(params) == 0 {
		return nil
	}
	if _, err := q.Client.InsertManyTx(ctx, tx, params); err != nil {
		return fmt.Errorf("insert delivery jobs: %w", err)
	}
	return nil
}

// ConfirmJob is the job that sends a new destination of kind its
// confirmation, through that very channel.
func ConfirmJob(kind string, destinationID int64) river.JobArgs {
	switch kind {
	case ChannelIRC:
		return IRCConfirmArgs{DestinationID: destinationID}
	case ChannelPush:
		return PushConfirmArgs{DestinationID: destinationID}
	}
	return ConfirmArgs{DestinationID: destinationID}
}

// IRCQueueConfig: IRC jobs mostly wait for their turn in the bot's paced
// queues; many in flight let a burst fold into one "N more" line.
var IRCQueueConfig = river.QueueConfig{MaxWorkers: 200}

// Workers bundles what the job workers need. IRC and Push may be nil: their
// kinds are still registered (so any role can insert them) but their queues
// are worked only where the channel is set up.
type Workers struct {
	Email      *EmailWorker
	Confirm    *ConfirmWorker
	Login      *LoginWorker
	Test       *TestSendWorker
	Digest     *DigestWorker
	DigestTick *DigestTickWorker

	IRC         *IRCWorker
	IRCConfirm  *IRCConfirmWorker
	Push        *PushWorker
	PushConfirm *PushConfirmWorker
}

// NewClient builds the River client. With work false it only inserts jobs
// (the consume and web roles); with work true it also works every channel's
// queue.
func NewClient(pool *pgxpool.Pool, w Workers, work bool, log *slog.Logger) (*river.Client[pgx.Tx], error) {
	workers := river.NewWorkers()
	river.AddWorker(workers, w.Email)
	river.AddWorker(workers, w.Confirm)
	river.AddWorker(workers, w.Digest)
	river.AddWorker(workers, w.DigestTick)
	river.AddWorker(workers, w.Login)
	river.AddWorker(workers, w.Test)
	river.AddWorker(workers, cmp.Or(w.IRC, &IRCWorker{}))
	river.AddWorker(workers, cmp.Or(w.IRCConfirm, &IRCConfirmWorker{}))
	river.AddWorker(workers, cmp.Or(w.Push, &PushWorker{}))
	river.AddWorker(workers, cmp.Or(w.PushConfirm, &PushConfirmWorker{}))
	cfg := &river.Config{
		Workers:     workers,
		Logger:      log,
		RetryPolicy: RetryPolicy{},
		JobTimeout:  2 * time.Minute,
	}
	if work {
		cfg.Queues = map[string]river.QueueConfig{
			// Workers mostly wait on the SMTP pool and the database; 50
			// keep a small SMTP pool busy (River fetches at most this many
			// jobs per fetch).
			ChannelEmail: {MaxWorkers: 50},
		}
		// Digests are checked only where their worker is wired (a client
		// built for one channel's tests has none).
		if w.DigestTick != nil && w.DigestTick.Sender != nil {
			cfg.PeriodicJobs = append(cfg.PeriodicJobs, river.NewPeriodicJob(river.PeriodicInterval(DigestTickEvery),
				func() (river.JobArgs, *river.InsertOpts) { return DigestTickArgs{}, nil },
				&river.PeriodicJobOpts{RunOnStart: true}))
		}
		// A bot with a Lock adds its queue when it takes the lock.
		if w.IRC != nil && w.IRC.Bot != nil && w.IRC.Bot.Lock == nil {
			cfg.Queues[ChannelIRC] = IRCQueueConfig
		}
		if w.Push != nil && w.Push.Pusher != nil {
			cfg.Queues[ChannelPush] = river.QueueConfig{MaxWorkers: 20}
		}
		cfg.FetchCooldown = 20 * time.Millisecond
		cfg.FetchPollInterval = 500 * time.Millisecond
	}
	c, err := river.NewClient(riverpgxv5.New(pool), cfg)
	if err != nil {
		return nil, fmt.Errorf("set up job queue: %w", err)
	}
	return c, nil
}
