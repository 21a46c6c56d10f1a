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

	"fmn"
	"fmn/store"
)

// Rescue: River gives a job left running by a killed process back to the
// queue once it has been running this long past its start, and its own
// timeout has passed too (so a channel with a longer timeout waits for
// it); River's rescuer looks every 30 s. Unset, River would wait an hour
// more than the job timeout: that was the 62-minute stranding. With every
// route's Timeout at 2 minutes at most, a killed process's work resumes
// within RescueBound.
const (
	Rescue      = 75 * time.Second
	RescueBound = 3 * time.Minute
)

// jobTimeout is River's default for the jobs that name no route (sign-in
// links, digests); Rescue is just above it.
const jobTimeout = time.Minute

// Queue inserts delivery jobs; it is what the consumer calls inside its
// transaction.
type Queue struct {
	Client *river.Client[pgx.Tx]
	// Attempts per channel (from the routes); a channel not listed gets
	// no job: with no sender built it can have no confirmed destination.
	Attempts map[fmn.Kind]int
}

// Enqueue implements consumer.Enqueuer: one NotifyArgs job per
// notification, on its channel's queue.
func (q Queue) Enqueue(ctx context.Context, tx pgx.Tx, ns []store.NewNotification) error {
	params := make([]river.InsertManyParams, 0, len(ns))
	for _, n := range ns {
		if a, ok := q.Attempts[n.Kind]; ok {
			params = append(params, river.InsertManyParams{Args: NotifyArgs{NotificationID: n.ID},
				InsertOpts: &river.InsertOpts{Queue: string(n.Kind), MaxAttempts: a}})
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

// ConfirmLimits bound confirmations per channel (see store.ConfirmLimit):
// three to one address a day by email, an hour elsewhere; five asked by
// one user an hour; on IRC and Matrix thirty a minute in all, so the bot
// never floods itself off the network, sixty for push.
var ConfirmLimits = map[fmn.Kind]store.ConfirmLimit{
	fmn.KindEmail:  {PerAddress: 3, Window: 24 * time.Hour, PerUser: 5},
	fmn.KindIRC:    {PerAddress: 3, Window: time.Hour, PerUser: 5, PerMinute: 30},
	fmn.KindMatrix: {PerAddress: 3, Window: time.Hour, PerUser: 5, PerMinute: 30},
	fmn.KindPush:   {PerAddress: 3, Window: time.Hour, PerUser: 5, PerMinute: 60},
}

// Confirm queues the confirmation of destination d in tx, within the
// channel's ConfirmLimits: past them it returns apperr.ErrRateLimited and
// queues nothing. This is the one way a confirmation is asked for.
func (q Queue) Confirm(ctx context.Context, tx pgx.Tx, d fmn.Destination) error {
	if err := store.RecordConfirmSend(ctx, tx, d.UserID, d.Kind, fmn.AddressKey(d.Kind, d.Address), ConfirmLimits[d.Kind], time.Now()); err != nil {
		return err
	}
	_, err := q.Client.InsertTx(ctx, tx, ConfirmArgs{DestinationID: d.ID},
		&river.InsertOpts{Queue: string(d.Kind), MaxAttempts: confirmAttempts})
	if err != nil {
		return fmt.Errorf("queue confirmation: %w", err)
	}
	return nil
}

// NewQueue is the Queue of the routes.
func NewQueue(c *river.Client[pgx.Tx], routes []Route) Queue {
	q := Queue{Client: c, Attempts: map[fmn.Kind]int{}}
	for _, r := range routes {
		q.Attempts[r.Kind] = r.Attempts
	}
	return q
}

// Jobs is what the River client is built from.
type Jobs struct {
	Deliverer *Deliverer
	Routes    []Route
	// Register adds the channels' own job kinds (email's sign-in links
	// and digests).
	Register []func(*river.Workers)
	// Periodic jobs, run by River's elected leader only.
	Periodic []*river.PeriodicJob
	Log      *slog.Logger
}

// RetryPolicy backs off from 10 s, doubling to two hours, for the jobs
// whose worker has no backoff of its own.
type RetryPolicy struct{}

// NextRetry implements river.ClientRetryPolicy.
func (RetryPolicy) NextRetry(job *rivertype.JobRow) time.Time {
	return Route{Backoff: 10 * time.Second, MaxBackoff: 2 * time.Hour}.NextRetry(job.Attempt)
}

// NewClient builds the River client. With work false it only inserts jobs
// (the consume and web roles); with work true it also works every route's
// queue (but a Later one's).
func NewClient(pool *pgxpool.Pool, j Jobs, work bool) (*river.Client[pgx.Tx], error) {
	workers := river.NewWorkers()
	dl := j.Deliverer
	if dl == nil {
		dl = NewDeliverer(nil, nil, j.Log)
	}
	river.AddWorker(workers, NotifyWorker{Deliverer: dl})
	river.AddWorker(workers, ConfirmWorker{Deliverer: dl})
	river.AddWorker(workers, TestWorker{Deliverer: dl})
	for _, reg := range j.Register {
		reg(workers)
	}
	cfg := &river.Config{
		Workers:              workers,
		Logger:               j.Log,
		RetryPolicy:          RetryPolicy{},
		JobTimeout:           jobTimeout,
		RescueStuckJobsAfter: Rescue,
	}
	if work {
		cfg.Queues = map[string]river.QueueConfig{}
		for _, r := range j.Routes {
			if !r.Later {
				cfg.Queues[string(r.Kind)] = river.QueueConfig{MaxWorkers: r.Workers}
			}
		}
		if len(cfg.Queues) == 0 {
			cfg.Queues[river.QueueDefault] = river.QueueConfig{MaxWorkers: 1}
		}
		cfg.PeriodicJobs = j.Periodic
		cfg.FetchCooldown = 20 * time.Millisecond
		cfg.FetchPollInterval = 500 * time.Millisecond
	}
	c, err := river.NewClient(riverpgxv5.New(pool), cfg)
	if err != nil {
		return nil, fmt.Errorf("set up job queue: %w", err)
	}
	return c, nil
}

// QueueConfig is the River queue of a route, for a Later route's holder
// to add.
func (r Route) QueueConfig() river.QueueConfig { return river.QueueConfig{MaxWorkers: r.Workers} }
