package consumer

import "context"

// Source is where bus messages come from. The ZeroMQ Subscriber is one;
// an AMQP source (Fedora's bus today is fedora-messaging over AMQP) would be
// another, sitting beside it: everything after the source (sequence checks,
// replay, storing, matching) consumes Received values and does not care
// which source produced them.
//
// A source decodes and checks what it reads (size, shape, signature),
// counts and drops what fails, and never blocks its readers on what comes
// after it.
type Source interface {
	// Run reads until ctx ends, sending messages to out in the order each
	// endpoint delivered them.
	Run(ctx context.Context, out chan<- Received) error
	// Status reports each endpoint's state for /readyz and /metrics.
	Status() []EndpointStatus
	// Ready reports whether every endpoint is connected.
	Ready() bool
}

// Replayer fetches messages a source missed, for sources whose publishers
// number their messages (fedmsg's seq_id) and keep them for a while. The
// messages returned carry sequence numbers strictly between after and
// before, in order; ones the publisher no longer has are simply absent.
type Replayer interface {
	// CanReplay reports whether endpoint has somewhere to ask.
	CanReplay(endpoint string) bool
	Replay(ctx context.Context, endpoint string, after, before int64) ([]Received, error)
}

var _ Source = (*Subscriber)(nil)
