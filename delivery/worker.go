package delivery

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"

	"fmn"
	"fmn/apperr"
	"fmn/metrics"
	"fmn/store"
)

// NotifyArgs is the job that delivers one notification, on its channel's
// queue.
type NotifyArgs struct {
	NotificationID int64 `json:"notification_id"`
}

// Kind implements river.JobArgs.
func (NotifyArgs) Kind() string { return "notify" }

// ConfirmArgs is the job that sends a new destination its confirmation,
// through that very channel.
type ConfirmArgs struct {
	DestinationID int64 `json:"destination_id"`
}

// Kind implements river.JobArgs.
func (ConfirmArgs) Kind() string { return "confirm" }

// confirmAttempts: a confirmation is wanted now or not at all.
const confirmAttempts = 5

// Decision is what Decide says to do with a notification now.
type Decision int

// The decisions.
const (
	Send       Decision = iota
	HoldDigest          // the destination's policy collects digests
	HoldQuiet           // the owner's quiet hours: wait for them to end
	Drop                // never: the reason says why
	// Skip: not sent, by the owner's own choice (the destination is muted
	// or turned off): recorded 'skipped', which is no failure.
	Skip
)

// Refusal names the condition of Reachable a destination fails, so that
// a page can put it in its own words without judging the destination
// again (and never disagree with what delivery does).
type Refusal int

// The refusals, in the order Reachable checks them.
const (
	NotRefused   Refusal = iota
	NotConfirmed         // no one gets what they did not agree to
	Disabled             // its owner turned it off
	Failing              // it failed for good, and would fail again
)

// Refused is the first condition of Reachable that d fails, or NotRefused.
func Refused(d fmn.Destination) Refusal {
	switch {
	case !d.Confirmed:
		return NotConfirmed
	case !d.Enabled:
		return Disabled
	case d.FailingReason != "":
		return Failing
	}
	return NotRefused
}

// Reachable says whether anything at all may be sent to d: it is
// confirmed, turned on, and not failing (its owner turns it on again once
// it is fixed). Send, or why not (see Refused).
func Reachable(d fmn.Destination) (Decision, string) {
	switch Refused(d) {
	case NotConfirmed:
		return Drop, "destination not confirmed"
	case Disabled:
		return Skip, "destination disabled"
	case Failing:
		return Drop, "destination failing: " + d.FailingReason
	}
	return Send, ""
}

// Decide says whether d may receive a notification now: the owner's latest
// word wins over the match made earlier. A muted destination's
// notifications are dropped, not held: a mute means "not now", not "all of
// it later".
func Decide(d fmn.Destination, quiet fmn.Quiet, now time.Time) (Decision, string) {
	if dec, reason := Reachable(d); dec != Send {
		return dec, reason
	}
	switch {
	case d.MutedUntil != nil && now.Before(*d.MutedUntil):
		return Skip, "destination muted until " + d.MutedUntil.UTC().Format(time.RFC3339)
	case quiet.Active(now):
		return HoldQuiet, "quiet hours"
	case fmn.PolicyOf(d.Delivery).Digest():
		return HoldDigest, "digest"
	}
	return Send, ""
}

// Deliverer works the notification and confirmation jobs of every route.
type Deliverer struct {
	Store   *store.Store
	Metrics *metrics.Metrics
	Log     *slog.Logger
	// Now is the clock (time.Now when nil).
	Now func() time.Time

	routes map[fmn.Kind]*Route
	queues map[string]*Route
}

// NewDeliverer sets up the routes; a kind without one has no sender here.
func NewDeliverer(st *store.Store, m *metrics.Metrics, log *slog.Logger, routes ...Route) *Deliverer {
	dl := &Deliverer{Store: st, Metrics: m, Log: log, routes: map[fmn.Kind]*Route{}, queues: map[string]*Route{}}
	for i := range routes {
		r := &routes[i]
		dl.routes[r.Kind], dl.queues[string(r.Kind)] = r, r
	}
	return dl
}

func (dl *Deliverer) now() time.Time {
	if dl.Now != nil {
		return dl.Now()
	}
	return time.Now()
}

// gone turns "not found" into a cancelled job: the notification or the
// destination was deleted, and no retry will bring it back.
func gone(err error, what string, id int64) error {
	if errors.Is(err, apperr.ErrNotFound) {
		return river.JobCancel(fmt.Errorf("%s %d: %w", what, id, errGone))
	}
	return err
}

func (dl *Deliverer) route(queue string) *Route {
	if r := dl.queues[queue]; r != nil {
		return r
	}
	return &Route{Timeout: time.Minute, Backoff: 10 * time.Second, MaxBackoff: 2 * time.Hour}
}

// NextRetry is a route's backoff: Backoff doubling per attempt up to
// MaxBackoff, without jitter so tests can reason about it.
func (r Route) NextRetry(attempt int) time.Time {
	d := r.Backoff << min(max(attempt-1, 0), 16)
	return time.Now().Add(min(d, r.MaxBackoff))
}

// notify delivers one notification: it loads it and its destination,
// decides, claims when the channel holds what it needs, sends, and records
// the outcome.
func (dl *Deliverer) notify(ctx context.Context, job *rivertype.JobRow, id int64) error {
	td, err := dl.Store.GetToDeliver(ctx, id)
	if err != nil {
		return gone(err, "notification or its destination", id)
	}
	n, d := td.Notification, td.Destination
	if n.Status.Final() {
		return nil // sent or given up by an earlier attempt
	}
	r := dl.routes[d.Kind]
	if r == nil {
		return river.JobCancel(fmt.Errorf("no %s channel is set up here", d.Kind))
	}
	now := dl.now()
	if n.Status == fmn.StatusSending && !r.Again {
		// A worker stopped while sending it: it may have arrived.
		_, err := dl.Store.ClaimNotification(ctx, n.ID, now, false)
		dl.Log.Warn("notification was being sent when a worker stopped; not sending it again",
			"notification_id", n.ID, "destination_id", d.ID, "channel", d.Kind)
		return err
	}
	if n.Status != fmn.StatusSending {
		quiet := td.Quiet
		dec, reason := Decide(d, quiet, now)
		holder, _ := r.Channel.(Digester)
		switch {
		case dec == Drop:
			return dl.Store.FinishNotification(ctx, n.ID, fmn.StatusDead, reason)
		case dec == Skip || dec == HoldQuiet && holder == nil:
			// The owner's own choice (a mute, quiet hours on a channel
			// that cannot hold), not a failure.
			return dl.Store.FinishNotification(ctx, n.ID, fmn.StatusSkipped, reason)
		case dec != Send && holder != nil:
			return holder.Hold(ctx, d, n, fmn.PolicyOf(d.Delivery), quiet)
		case r.Stale > 0 && now.Sub(n.CreatedAt) > r.Stale:
			return dl.Store.FinishNotification(ctx, n.ID, fmn.StatusDead,
				fmt.Sprintf("not sent within %s: too late to be news", r.Stale))
		}
	}
	// outcome records what the send did and says what the job does next;
	// the channel calls it (through the claim's record) while it still
	// holds its connection, or it runs after Send for a failure before the
	// claim.
	claimed := false
	outcome := func(err error) error {
		if err == nil {
			if !claimed {
				return nil
			}
			if err := dl.Store.FinishNotification(context.WithoutCancel(ctx), n.ID, fmn.StatusSent, ""); err != nil {
				return err
			}
			dl.Metrics.Sent.WithLabelValues(string(d.Kind)).Inc()
			return nil
		}
		return dl.Failed(ctx, job, d, err, func(status fmn.Status, reason string) error {
			if !claimed && status == fmn.StatusFailed {
				return nil // nothing was claimed: the notification stays as it was
			}
			return dl.Store.FinishNotification(context.WithoutCancel(ctx), n.ID, status, reason)
		})
	}
	var recorded bool
	var jobErr error
	claim := func(ctx context.Context) (func(error), error) {
		res, err := dl.Store.ClaimNotification(ctx, n.ID, dl.now(), r.Again)
		if err != nil || res != store.ClaimOK {
			return nil, err
		}
		claimed = true
		return func(sendErr error) { recorded, jobErr = true, outcome(sendErr) }, nil
	}
	err = r.Channel.Send(ctx, d, n, claim)
	if recorded {
		return jobErr
	}
	return outcome(err)
}

// Failed records a failed send to d as its channel reads the error, and
// returns what the job does next: record writes the status of what was
// sent (a notification, a digest). A permanent failure also marks the
// destination failing. Every failure is counted in
// fmn_delivery_failures_total; a send that only waits for its turn (Wait)
// records nothing and is counted apart, in fmn_delivery_waits_total.
func (dl *Deliverer) Failed(ctx context.Context, job *rivertype.JobRow, d fmn.Destination, err error, record func(fmn.Status, string) error) error {
	reason := Clean(err.Error())
	v := Verdict{Outcome: Temporary}
	if r := dl.routes[d.Kind]; r != nil {
		v = r.Channel.Classify(err)
	}
	if v.Outcome == Wait {
		dl.Metrics.Waits.WithLabelValues(string(d.Kind)).Inc()
		return river.JobSnooze(max(v.RetryAfter, 100*time.Millisecond))
	}
	dl.Metrics.Failures.WithLabelValues(string(d.Kind)).Inc()
	switch v.Outcome {
	case Permanent:
		if ferr := dl.Store.SetDestinationFailing(context.WithoutCancel(ctx), d.ID, reason); ferr != nil {
			dl.Log.Error("mark destination failing", "destination_id", d.ID, "err", ferr)
		}
		_ = record(fmn.StatusDead, reason)
		dl.Log.Warn("permanent failure; destination marked failing", "destination_id", d.ID, "channel", d.Kind, "err", err)
		return river.JobCancel(err)
	case Unknown:
		_ = record(fmn.StatusUnknown, "the connection failed while the server was answering; it may have arrived, and is not sent again: "+reason)
		return river.JobCancel(err)
	case RateLimited:
		_ = record(fmn.StatusFailed, reason)
		return river.JobSnooze(max(v.RetryAfter, time.Second))
	}
	status := fmn.StatusFailed
	if job != nil && job.Attempt >= job.MaxAttempts {
		status = fmn.StatusDead
	}
	if rerr := record(status, reason); rerr != nil {
		return errors.Join(err, rerr)
	}
	return err
}

// confirm sends a destination its confirmation. The code is made here, at
// send time, so it never sits in plain text in the job table; a
// confirmation still not sent when its code would have expired is dropped.
func (dl *Deliverer) confirm(ctx context.Context, job *rivertype.JobRow, id int64) error {
	d, err := dl.Store.DestinationByID(ctx, id)
	if err != nil {
		return gone(err, "destination", id)
	}
	if d.Confirmed || !d.Enabled {
		return nil
	}
	r := dl.routes[d.Kind]
	if r == nil {
		return river.JobCancel(fmt.Errorf("no %s channel is set up here", d.Kind))
	}
	if dl.now().Sub(job.CreatedAt) > store.ConfirmTTL {
		return river.JobCancel(errors.New("confirmation not sent within its code's lifetime"))
	}
	code, owner, err := dl.Store.NewConfirmation(ctx, d.ID)
	if errors.Is(err, apperr.ErrNotFound) {
		return nil // confirmed meanwhile
	}
	if err != nil {
		return err
	}
	if err := r.Channel.Confirm(ctx, d, owner, code); err != nil {
		return dl.Failed(ctx, job, d, err, func(fmn.Status, string) error { return nil })
	}
	return nil
}

// NotifyWorker is the River worker of NotifyArgs, for every channel.
type NotifyWorker struct {
	river.WorkerDefaults[NotifyArgs]
	*Deliverer
}

// Work implements river.Worker.
func (w NotifyWorker) Work(ctx context.Context, job *river.Job[NotifyArgs]) error {
	return w.notify(ctx, job.JobRow, job.Args.NotificationID)
}

// Timeout implements river.Worker: the route's.
func (w NotifyWorker) Timeout(job *river.Job[NotifyArgs]) time.Duration {
	return w.route(job.Queue).Timeout
}

// NextRetry implements river.Worker: the route's backoff.
func (w NotifyWorker) NextRetry(job *river.Job[NotifyArgs]) time.Time {
	return w.route(job.Queue).NextRetry(job.Attempt)
}

// ConfirmWorker is the River worker of ConfirmArgs, for every channel.
type ConfirmWorker struct {
	river.WorkerDefaults[ConfirmArgs]
	*Deliverer
}

// Work implements river.Worker.
func (w ConfirmWorker) Work(ctx context.Context, job *river.Job[ConfirmArgs]) error {
	return w.confirm(ctx, job.JobRow, job.Args.DestinationID)
}

// Timeout implements river.Worker: the route's.
func (w ConfirmWorker) Timeout(job *river.Job[ConfirmArgs]) time.Duration {
	return w.route(job.Queue).Timeout
}
