package delivery

import (
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
// never holds it back. Ten attempts with the retry policy below span about a
// day: past that a notification is stale and the destination is likely gone.
func (EmailArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: ChannelEmail, MaxAttempts: 10}
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

// Workers bundles what the job workers need.
type Workers struct {
	Email   *EmailWorker
	Confirm *ConfirmWorker
	Login   *LoginWorker
	Test    *TestSendWorker
}

// NewClient builds the River client. With work false it only inserts jobs
// (the consume and web roles); with work true it also works every channel's
// queue.
func NewClient(pool *pgxpool.Pool, w Workers, work bool, log *slog.Logger) (*river.Client[pgx.Tx], error) {
	workers := river.NewWorkers()
	river.AddWorker(workers, w.Email)
	river.AddWorker(workers, w.Confirm)
	river.AddWorker(workers, w.Login)
	river.AddWorker(workers, w.Test)
	cfg := &river.Config{
		Workers:     workers,
		Logger:      log,
		RetryPolicy: RetryPolicy{},
		JobTimeout:  2 * time.Minute,
	}
	if work {
		cfg.Queues = map[string]river.QueueConfig{
			ChannelEmail: {MaxWorkers: 10},
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
