package consumer

import (
	"context"
	"sync"
)

// backlog is the hand-off between the endpoint readers and the ingester.
//
// A reader must never wait for the database: zmq4 queues only 10 messages
// per socket, so a reader that stops reading pushes back onto the
// publisher. What happens there depends on the publisher: measured here, a
// zmq4 PUB facing a SUB whose reader stalled for 2 s queued all 20,000
// messages (2 KB each) in its own memory, without bound, and delivered
// them later; a libzmq publisher (fedmsg's) queues up to its high-water
// mark and then drops, silently (for messages without a seq_id, nobody
// would ever know). Either way the cost of a slow database would land on
// the publishers. So readers put into
// this queue, which never blocks, and one pump moves its contents, in
// order, into the ingester's bounded channel. The queue is bounded by
// memory instead: beyond its budget (FMN_BUS_BUFFER_BYTES) a message is
// dropped and counted (reason "backlog"), the one place where fmn itself
// lets go of a message, and only after the database has been unavailable
// or slower than the bus for the whole budget. Gaps this causes in seq_id
// numbered streams are replayed like any other.
type backlog struct {
	mu     sync.Mutex
	items  []Received
	head   int
	bytes  int64
	max    int64
	wake   chan struct{}
	closed bool
}

func newBacklog(maxBytes int64) *backlog {
	return &backlog{max: maxBytes, wake: make(chan struct{}, 1)}
}

// cost approximates what a received message holds in memory: the raw
// envelope and its decoded form (a few times the raw size).
func cost(r Received) int64 { return int64(len(r.Envelope.Raw))*3 + 512 }

// put queues r; it returns false (and queues nothing) when the budget is
// spent.
func (b *backlog) put(r Received) bool {
	c := cost(r)
	b.mu.Lock()
	if b.max > 0 && b.bytes+c > b.max && len(b.items) > b.head {
		b.mu.Unlock()
		return false
	}
	b.items = append(b.items, r)
	b.bytes += c
	b.mu.Unlock()
	select {
	case b.wake <- struct{}{}:
	default:
	}
	return true
}

// close tells pump that nothing more will be put; pump then delivers what
// is left and returns.
func (b *backlog) close() {
	b.mu.Lock()
	b.closed = true
	b.mu.Unlock()
	select {
	case b.wake <- struct{}{}:
	default:
	}
}

// take removes the oldest message.
func (b *backlog) take() (Received, bool, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.head == len(b.items) {
		return Received{}, false, b.closed
	}
	r := b.items[b.head]
	b.items[b.head] = Received{}
	b.head++
	b.bytes -= cost(r)
	if b.head == len(b.items) {
		b.items, b.head = b.items[:0], 0
	} else if b.head > 1024 && b.head*2 > len(b.items) {
		n := copy(b.items, b.items[b.head:])
		clear(b.items[n:])
		b.items, b.head = b.items[:n], 0
	}
	return r, true, false
}

// pump moves messages to out until close was called and the queue is
// empty. It blocks on out (that is the ingester's pace), never on readers.
// abort ends it early, losing what is queued: only for a ctx whose end
// means the ingester is gone too.
func (b *backlog) pump(abort context.Context, out chan<- Received) {
	for {
		r, ok, closed := b.take()
		if !ok {
			if closed {
				return
			}
			select {
			case <-b.wake:
			case <-abort.Done():
				return
			}
			continue
		}
		select {
		case out <- r:
		case <-abort.Done():
			return
		}
	}
}
