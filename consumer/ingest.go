package consumer

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"fmn/metrics"
	"fmn/rules"
	"fmn/store"
)

// Enqueuer queues delivery jobs for new notifications inside the transaction
// that created them, so that a match and its delivery commit together.
type Enqueuer interface {
	Enqueue(ctx context.Context, tx pgx.Tx, ns []store.NewNotification) error
}

// Ingester stores what the subscribers read and turns matches into
// notifications and delivery jobs, all in one transaction per batch. It is
// used by one goroutine at a time (Run's, or one caller of Ingest): it
// keeps the endpoints' positions between batches. Several may share one
// Rules.
type Ingester struct {
	Store   *store.Store
	Rules   *rules.Live
	Queue   Enqueuer
	Metrics *metrics.Metrics
	Log     *slog.Logger
	// OnStored, when set, is called after each committed batch with the
	// number of new messages (the web UI's live view listens here).
	OnStored func(n int)
	// Committed, when set, is called after each committed batch with its
	// messages (stored or found already there), e.g. to measure latency.
	// Messages from an AMQP broker are acknowledged just before, never
	// earlier: a failed transaction leaves them with the broker.
	Committed func(batch []Received)
	// Replay, when set, fetches what a gap in an endpoint's seq_id
	// stream lost (see sequence.go).
	Replay Replayer
	// InTx, when set, is called in the storing transaction for each
	// message stored for the first time, after matching: owners/ records
	// there what dist-git and the account system said changed, so that a
	// crash loses none of it and a duplicate does it once.
	InTx func(ctx context.Context, tx pgx.Tx, topic string, body any) error

	positions map[string]int64 // committed last seq_id per endpoint
	names     store.KnownNames // names message_names holds (see store.KnownNames)

	retryMu  sync.Mutex
	retrying error // the error a batch is being retried after; nil while storing works
}

// Retrying returns the error the ingester is retrying a batch after, or nil
// while it stores normally. /readyz is not ready meanwhile: the database
// may answer a ping again while the ingester still waits out its backoff,
// and ready must mean that messages are being stored.
func (in *Ingester) Retrying() error {
	in.retryMu.Lock()
	defer in.retryMu.Unlock()
	return in.retrying
}

func (in *Ingester) setRetrying(err error) {
	in.retryMu.Lock()
	in.retrying = err
	in.retryMu.Unlock()
	if err != nil {
		in.Metrics.IngestRetrying.Set(1)
	} else {
		in.Metrics.IngestRetrying.Set(0)
	}
}

// maxBatch bounds one transaction: big enough to amortise the commit under a
// burst, small enough to keep latency low.
const maxBatch = 1000

// Run stores messages from src until it is closed or ctx ends. A database
// error is retried with backoff, never dropped: what a subscriber read is
// stored before the ingester takes the next batch. ctx is the ingester's
// deadline, not the subscribers': ending it gives up even on a batch being
// retried, so that a shutdown during a database outage ends.
func (in *Ingester) Run(ctx context.Context, src <-chan Received) error {
	// A stage of its own extracts each message's metadata while the
	// previous batch is in the database: the two overlap instead of
	// adding up.
	extracted := make(chan Received, maxBatch)
	go func(from <-chan Received) {
		defer close(extracted)
		for r := range from {
			r.extract()
			select {
			case extracted <- r:
			case <-ctx.Done():
				return
			}
		}
	}(src)
	src = extracted
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
		if err := in.ingestRetrying(ctx, batch); err != nil {
			// ctx ended (the shutdown's deadline) before the database
			// took the batch: it is left unstored, as in a crash, and
			// its positions unsaved, so numbered streams replay it.
			in.Log.Warn("shutdown: stopped retrying; a batch read from the bus was not stored", "messages", len(batch))
			return nil
		}
	}
}

// ingestRetrying plans and stores a batch, retrying with backoff until it
// is stored or ctx ends (its only error). A plan (with what a replay
// fetched) is made once and kept across retries of the store.
func (in *Ingester) ingestRetrying(ctx context.Context, batch []Received) error {
	backoff := 100 * time.Millisecond
	var p *batchPlan
	for {
		var err error
		if p == nil {
			var np batchPlan
			if np, err = in.plan(ctx, batch); err == nil {
				p = &np
			}
		}
		if p != nil {
			if err = in.store(ctx, *p); err == nil {
				in.setRetrying(nil)
				return nil
			}
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		in.setRetrying(err)
		in.Log.Error("storing bus messages failed, retrying", "err", err, "batch", len(batch), "backoff", backoff)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 10*time.Second)
	}
}

// Ingest checks one batch's sequence (replaying gaps) and stores it with
// its notifications, once.
func (in *Ingester) Ingest(ctx context.Context, batch []Received) error {
	p, err := in.plan(ctx, batch)
	if err != nil {
		return err
	}
	return in.store(ctx, p)
}

// store writes a planned batch. When the batch fails for a message's
// content (which no retry cures), the messages are stored one at a time
// and the ones the database refuses are dropped and counted (reason
// "unstorable"), so that one message can never stall the bus.
func (in *Ingester) store(ctx context.Context, p batchPlan) error {
	err := in.storeTx(ctx, p)
	if err == nil || !isDataError(err) {
		return err
	}
	for _, r := range p.msgs {
		err := in.storeTx(ctx, batchPlan{msgs: []Received{r}})
		if isDataError(err) {
			in.Metrics.BusDropped.WithLabelValues("unstorable").Inc()
			in.Log.Error("dropped a bus message the database refuses", "endpoint", r.Endpoint, "msg_id", r.Envelope.MsgID, "err", err)
			// Settled like a stored one: a broker redelivering it would
			// only be refused again.
			settle([]Received{r})
			continue
		}
		if err != nil {
			return err
		}
	}
	return in.storeTx(ctx, batchPlan{positions: p.positions, gaps: p.gaps})
}

// storeTx writes a planned batch, its notifications, delivery jobs, gaps
// and positions in one transaction.
func (in *Ingester) storeTx(ctx context.Context, p batchPlan) error {
	// The same msg_id twice in one batch (a relay and its source, or a
	// replayed message that also arrived live) is stored once.
	seen := make(map[string]bool, len(p.msgs))
	batch := p.msgs[:0:0]
	for _, r := range p.msgs {
		if seen[r.Envelope.MsgID] {
			continue
		}
		seen[r.Envelope.MsgID] = true
		batch = append(batch, r)
	}
	msgs := make([]store.NewMessage, len(batch))
	for i, r := range batch {
		e := r.Envelope
		msgs[i] = store.NewMessage{
			MsgID:    cleanNUL(e.MsgID),
			Meta:     r.extract(),
			SentAt:   e.Timestamp,
			Endpoint: r.Endpoint,
			Envelope: storableEnvelope(e),
		}
	}
	// The day's partition of the message log exists (made a week ahead by
	// the retention job); this checks, cheaply, where no job runs.
	if err := in.Store.EnsurePartitions(ctx, time.Now()); err != nil {
		return err
	}
	var stored, dup, matched int
	var newNames []store.Name
	err := in.Store.InTx(ctx, func(tx pgx.Tx) error {
		stored, dup, matched = 0, 0, 0
		set, err := in.Rules.Current(ctx, tx)
		if err != nil {
			return err
		}
		sms, added, err := store.StoreMessageBatch(ctx, tx, msgs, &in.names)
		if err != nil {
			return err
		}
		newNames = added
		var mms []store.MessageMatches
		for i, sm := range sms {
			if sm.ID == 0 {
				dup++
				continue
			}
			stored++
			if ms := set.Match(msgs[i].Meta); len(ms) > 0 {
				mms = append(mms, store.MessageMatches{MessageID: sm.ID, ReceivedAt: sm.ReceivedAt, Matches: ms})
			}
			if in.InTx != nil {
				if err := in.InTx(ctx, tx, batch[i].Envelope.Topic, batch[i].Envelope.Body); err != nil {
					return err
				}
			}
		}
		all, err := store.InsertNotificationBatch(ctx, tx, mms)
		if err != nil {
			return err
		}
		matched = len(all)
		if len(all) > 0 {
			if err := in.Queue.Enqueue(ctx, tx, all); err != nil {
				return fmt.Errorf("queue deliveries: %w", err)
			}
		}
		if err := store.InsertBusGaps(ctx, tx, p.gaps); err != nil {
			return err
		}
		return store.SaveBusPositions(ctx, tx, p.positions)
	})
	if err != nil {
		return err
	}
	in.names.Learn(newNames)
	in.committed(p)
	// Only now may a broker forget them: every message of the batch,
	// repeats included, is stored.
	settle(p.msgs)
	in.Metrics.BusStored.Add(float64(stored))
	in.Metrics.BusDuplicate.Add(float64(dup + len(p.msgs) - len(batch)))
	in.Metrics.Matched.Add(float64(matched))
	if in.Committed != nil {
		in.Committed(batch)
	}
	if in.OnStored != nil && stored > 0 {
		in.OnStored(stored)
	}
	return nil
}
