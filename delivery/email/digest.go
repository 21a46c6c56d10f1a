package email

import (
	"context"
	"errors"
	"fmn/delivery"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"

	"fmn"
	"fmn/apperr"
	"fmn/store"
)

// DigestArgs is the job that sends what is due of one destination's digest.
type DigestArgs struct {
	DestinationID int64 `json:"destination_id"`
}

// Kind implements river.JobArgs.
func (DigestArgs) Kind() string { return "email_digest" }

// InsertOpts: on the email queue, unique per destination while one waits
// or runs, so that ticks on several workers never stack up duplicates
// (and ClaimDigest's row lock keeps two runs from sharing an item).
func (DigestArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: string(fmn.KindEmail), MaxAttempts: 12, UniqueOpts: river.UniqueOpts{ByArgs: true}}
}

// DigestTickArgs is the periodic job that looks for digests due.
type DigestTickArgs struct{}

// Kind implements river.JobArgs.
func (DigestTickArgs) Kind() string { return "email_digest_tick" }

// InsertOpts: a tick that fails is simply superseded by the next one.
func (DigestTickArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: string(fmn.KindEmail), MaxAttempts: 1}
}

// DigestTickEvery is how often digests are looked for: the lateness of a
// daily_at digest and of mail held over quiet hours is at most this.
const DigestTickEvery = time.Minute

// staleDigest: a digest still 'sending' this long after it was claimed was
// abandoned by a stopped worker (a job's timeout is far shorter).
const staleDigest = 15 * time.Minute

// digestSize: a digest is sent at the latest when this many items wait,
// whatever the policy's after says.
const digestSize = 500

// Flush sends what of a destination's waiting items is due now: everything
// when the policy's time came (or the items were only held by quiet
// hours), else batches of exactly `after` items while that many wait. It
// returns the number of digests sent. Nothing goes out while the owner's
// quiet hours last or the destination may not receive (delivery.Decide).
func (s *Channel) Flush(ctx context.Context, destID int64) (int, error) {
	now := s.now()
	d, err := s.Store.DestinationByID(ctx, destID)
	if err != nil {
		return 0, err
	}
	quiet, err := s.quiet(ctx, d.UserID)
	if err != nil {
		return 0, err
	}
	if dec, _ := delivery.Decide(d, quiet, now); dec == delivery.Drop || dec == delivery.Skip || dec == delivery.HoldQuiet {
		return 0, nil
	}
	pol := fmn.PolicyOf(d.Delivery)
	sent := 0
	for {
		h, err := s.Store.HeldFor(ctx, destID)
		if err != nil || h.Count == 0 {
			return sent, err
		}
		minItems, limit := 1, digestSize
		if pol.Digest() && !pol.TimeDue(now, h.Oldest, quiet.Loc) {
			if pol.After == 0 || h.Count < pol.After {
				return sent, nil
			}
			minItems, limit = pol.After, pol.After
		}
		dg, err := s.Store.NextDigest(ctx, destID, minItems, limit)
		if errors.Is(err, apperr.ErrNotFound) {
			return sent, nil // another worker took them
		}
		if err != nil {
			return sent, err
		}
		ok, err := s.sendDigest(ctx, d, dg, quiet.Loc)
		if err != nil {
			return sent, err
		}
		if ok {
			sent++
		}
	}
}

func (s *Channel) quiet(ctx context.Context, userID int64) (fmn.Quiet, error) {
	us, err := s.Store.GetUserSettings(ctx, userID)
	if err != nil {
		return fmn.Quiet{}, err
	}
	return fmn.QuietOf(us.Timezone, us.QuietStart, us.QuietEnd), nil
}

// sendDigest mails a digest, claiming it (store.ClaimDigest) once the
// mailer holds a connection and recording its outcome before the
// connection goes back, as a single notification is: a killed worker
// leaves at most the sends in flight 'sending', never a digest that
// waited for the pool. It reports whether the digest was claimed (false:
// another worker took some of its items first, and nothing was sent). A
// failure is recorded as the core records a notification's
// (delivery.Deliverer.Failed); a digest that failed puts its items back,
// and the next try makes a new one (with a new Message-ID: the old one
// never arrived).
func (s *Channel) sendDigest(ctx context.Context, d fmn.Destination, dg store.Digest, loc *time.Location) (bool, error) {
	record := func(status fmn.Status, reason string) error {
		return s.Store.FinishDigest(context.WithoutCancel(ctx), dg.ID, status, reason)
	}
	env, err := s.envelope(ctx, d)
	if err != nil {
		return false, err
	}
	msg, err := s.DigestMsg(env, dg, loc)
	if err != nil {
		// It will never build: its items are given up, visibly.
		if ok, cerr := s.Store.ClaimDigest(ctx, dg); cerr != nil || !ok {
			return false, cerr
		}
		_ = record(fmn.StatusDead, "could not build the mail")
		return true, river.JobCancel(fmt.Errorf("build digest: %w", err))
	}
	claimed, recorded := false, false
	var jobErr error
	claim := func(ctx context.Context) (func(error), error) {
		ok, err := s.Store.ClaimDigest(ctx, dg)
		if err != nil || !ok {
			return nil, err
		}
		claimed = true
		return func(sendErr error) {
			recorded = true
			if sendErr != nil {
				jobErr = s.Deliverer.Failed(ctx, nil, d, sendErr, record)
				return
			}
			if jobErr = record(fmn.StatusSent, ""); jobErr == nil {
				s.Metrics.Sent.WithLabelValues(string(fmn.KindEmail)).Add(float64(len(dg.Items)))
			}
		}, nil
	}
	err = s.Mailer.Send(ctx, msg, claim)
	switch {
	case recorded:
		return jobErr == nil, jobErr
	case err != nil:
		// Before the claim (no connection to be had): nothing was taken,
		// the items still wait.
		return false, s.Deliverer.Failed(ctx, nil, d, err, func(fmn.Status, string) error { return nil })
	}
	return claimed, nil
}

// DigestWorker runs Flush for one destination.
type DigestWorker struct {
	river.WorkerDefaults[DigestArgs]
	Channel *Channel
}

// NextRetry implements river.Worker: email's own backoff.
func (w *DigestWorker) NextRetry(job *river.Job[DigestArgs]) time.Time {
	return w.Channel.Route().NextRetry(job.Attempt)
}

// Work implements river.Worker.
func (w *DigestWorker) Work(ctx context.Context, job *river.Job[DigestArgs]) error {
	_, err := w.Channel.Flush(ctx, job.Args.DestinationID)
	if errors.Is(err, apperr.ErrNotFound) {
		return nil // destination deleted
	}
	return err
}

// DigestTickWorker finds the destinations whose digest is due and queues
// a DigestArgs job for each. River runs periodic jobs on its elected
// leader only, and DigestArgs is unique per destination, so any number of
// workers may run this.
type DigestTickWorker struct {
	river.WorkerDefaults[DigestTickArgs]
	Channel *Channel
}

// Work implements river.Worker.
func (w *DigestTickWorker) Work(ctx context.Context, job *river.Job[DigestTickArgs]) error {
	due, err := w.Channel.Due(ctx)
	if err != nil {
		return err
	}
	if len(due) == 0 {
		return nil
	}
	client, err := river.ClientFromContextSafely[pgx.Tx](ctx)
	if err != nil {
		return err
	}
	params := make([]river.InsertManyParams, len(due))
	for i, id := range due {
		params[i] = river.InsertManyParams{Args: DigestArgs{DestinationID: id}}
	}
	_, err = client.InsertMany(ctx, params)
	return err
}

// Due lists the destinations with a digest to send now, and gives up on
// digests abandoned by a stopped worker.
func (s *Channel) Due(ctx context.Context) ([]int64, error) {
	now := s.now()
	if n, err := s.Store.AbandonStaleDigests(ctx, now, staleDigest); err != nil {
		return nil, err
	} else if n > 0 {
		s.Log.Warn("digests abandoned by a stopped worker marked unknown (not resent)", "count", n)
	}
	held, err := s.Store.HeldDestinations(ctx)
	if err != nil {
		return nil, err
	}
	var due []int64
	for _, h := range held {
		d, err := s.Store.DestinationByID(ctx, h.DestinationID)
		if err != nil {
			return nil, err
		}
		if !d.Enabled || d.FailingReason != "" {
			// Turned off or failing: what waits would arrive stale (or
			// not at all) if it came back; it is given up, visibly.
			reason := "destination disabled before its digest was sent"
			if d.FailingReason != "" {
				reason = "destination failing: " + d.FailingReason
			}
			if _, err := s.Store.DropHeld(ctx, d.ID, reason); err != nil {
				return nil, err
			}
			continue
		}
		quiet, err := s.quiet(ctx, d.UserID)
		if err != nil {
			return nil, err
		}
		if dec, _ := delivery.Decide(d, quiet, now); dec == delivery.Drop || dec == delivery.Skip || dec == delivery.HoldQuiet {
			continue
		}
		pol := fmn.PolicyOf(d.Delivery)
		if !pol.Digest() || pol.TimeDue(now, h.Oldest, quiet.Loc) || pol.After > 0 && h.Count >= pol.After {
			due = append(due, d.ID)
		}
	}
	return due, nil
}
