package consumer

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"

	"fmn/metrics"
	"fmn/rules"
	"fmn/rules/meta"
	"fmn/store"
)

// Enqueuer queues delivery jobs for new notifications inside the transaction
// that created them, so that a match and its delivery commit together.
type Enqueuer interface {
	Enqueue(ctx context.Context, tx pgx.Tx, ns []store.NewNotification) error
}

// Ingester stores what the subscribers read and turns matches into
// notifications and delivery jobs, all in one transaction per batch.
type Ingester struct {
	Store   *store.Store
	Rules   *rules.Live
	Queue   Enqueuer
	Metrics *metrics.Metrics
	Log     *slog.Logger
	// OnStored, when set, is called after each committed batch with the
	// number of new messages (the web UI's live view listens here).
	OnStored func(n int)
}

// maxBatch bounds one transaction: big enough to amortise the commit under a
// burst, small enough to keep latency low.
const maxBatch = 256

// Run stores messages from src until it is closed or ctx ends. A database
// error is retried with backoff, never dropped: what a subscriber read is
// stored before the ingester takes the next batch.
func (in *Ingester) Run(ctx context.Context, src <-chan Received) error {
	batch := make([]Received, 0, maxBatch)
	for {
		batch = batch[:0]
		select {
		case <-ctx.Done():
			return nil
		case r, ok := <-src:
			if !ok {
				return nil
			}
			batch = append(batch, r)
		}
	drain:
		for len(batch) < maxBatch {
			select {
			case r, ok := <-src:
				if !ok {
					break drain
				}
				batch = append(batch, r)
			default:
				break drain
			}
		}
		backoff := 100 * time.Millisecond
		for {
			err := in.Ingest(ctx, batch)
			if err == nil {
				break
			}
			if ctx.Err() != nil {
				return nil
			}
			in.Log.Error("storing bus messages failed, retrying", "err", err, "batch", len(batch), "backoff", backoff)
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(backoff):
			}
			backoff = min(backoff*2, 10*time.Second)
		}
	}
}

// Ingest stores one batch and its notifications.
func (in *Ingester) Ingest(ctx context.Context, batch []Received) error {
	msgs := make([]store.NewMessage, len(batch))
	for i, r := range batch {
		e := r.Envelope
		msgs[i] = store.NewMessage{
			MsgID:    e.MsgID,
			Meta:     meta.Extract(e.Topic, e.Body, e.Username),
			SentAt:   e.Timestamp,
			Endpoint: r.Endpoint,
			Envelope: e.Raw,
		}
	}
	var stored, dup, matched int
	err := in.Store.InTx(ctx, func(tx pgx.Tx) error {
		stored, dup, matched = 0, 0, 0
		set, err := in.Rules.Current(ctx, tx)
		if err != nil {
			return err
		}
		ids, err := store.InsertMessages(ctx, tx, msgs)
		if err != nil {
			return err
		}
		var all []store.NewNotification
		var ms []rules.Match // one buffer for the batch: matching allocates nothing
		for i, id := range ids {
			if id == 0 {
				dup++
				continue
			}
			stored++
			ms = set.AppendMatches(ms[:0], &msgs[i].Meta)
			if len(ms) == 0 {
				continue
			}
			ns, err := store.InsertNotifications(ctx, tx, id, ms)
			if err != nil {
				return err
			}
			all = append(all, ns...)
		}
		matched = len(all)
		if len(all) > 0 {
			if err := in.Queue.Enqueue(ctx, tx, all); err != nil {
				return fmt.Errorf("queue deliveries: %w", err)
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	in.Metrics.BusStored.Add(float64(stored))
	in.Metrics.BusDuplicate.Add(float64(dup))
	in.Metrics.Matched.Add(float64(matched))
	if in.OnStored != nil && stored > 0 {
		in.OnStored(stored)
	}
	return nil
}
