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

// cost is what a received message holds in memory: the raw envelope and
// its decoded form. The decoded form is not a fixed multiple of the raw
// size: a long string costs about its length again, but "[{},{},…]" costs
// some 70 bytes a "{}" and '{"a":1}' nearly 400 (a Go map's first group of
// slots), so a 4 MiB envelope can hold 90 MiB once decoded. heapEstimate
// counts what the decoder builds, from one pass over the raw bytes.
func cost(r Received) int64 { return heapEstimate(r.Envelope.Raw) + receivedOverhead }

// receivedOverhead is a Received's own fields and the Envelope's.
const receivedOverhead = 512

// What encoding/json builds for each piece of an envelope (decoded into
// map[string]any with UseNumber), in bytes, measured on Go 1.26 (see
// TestBacklogChargeMatchesHeap): a scalar value is an interface and its
// boxed value; an array an interface, a slice header and its growth; an
// object a map, plus its first group of slots once it has an entry; each
// entry its slot, its key's string header and data.
const (
	heapScalar   = 40
	heapArray    = 45
	heapObject   = 70
	heapGroup    = 260
	heapEntry    = 40
	heapKey      = 24
	heapPerInput = 1 // the raw envelope itself, kept beside the decoded form
)

// heapEstimate is the memory a raw JSON envelope and its decoded form
// hold together. It does not validate (the decoder does).
func heapEstimate(raw []byte) int64 {
	var n int64 = int64(len(raw)) * heapPerInput
	var strBytes, strings, scalars, arrays, objects, groups, entries int64
	inStr, scalar := false, false
	prev := byte(0) // the last byte outside strings and whitespace
	for i := 0; i < len(raw); i++ {
		c := raw[i]
		if inStr {
			switch c {
			case '\\':
				i++
				strBytes++
			case '"':
				inStr = false
			default:
				strBytes++
			}
			continue
		}
		switch c {
		case ' ', '\t', '\r', '\n':
			continue
		case '"':
			inStr, scalar = true, false
			strings++
		case '{':
			objects++
			scalar = false
		case '[':
			arrays++
			scalar = false
		case ':':
			entries++
			scalar = false
		case ',', ']', '}':
			scalar = false
		default: // a number or a literal: count its first byte
			if !scalar {
				scalars++
				scalar = true
			}
		}
		if prev == '{' && c != '}' {
			groups++
		}
		prev = c
	}
	values := strings - entries // strings that are not object keys
	n += strBytes + heapScalar*(values+scalars) + heapArray*arrays + heapObject*objects +
		heapGroup*groups + (heapEntry+heapKey)*entries
	return n
}

// put queues r; it returns false (and queues nothing) when the budget is
// spent.
func (b *backlog) put(r Received) bool {
	c := cost(r)
	r.charge = c
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
	b.bytes -= r.charge
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
