package consumer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-zeromq/zmq4"

	"fmn/consumer/fedmsg"
	"fmn/metrics"
	"fmn/rules/meta"
)

// Received is one decoded bus message and where it came from.
type Received struct {
	Endpoint   string
	Envelope   Envelope
	ReceivedAt time.Time
	Replayed   bool // fetched from the publisher's replay endpoint

	meta *meta.Metadata // what the rules see, once extracted
	hdr  *headerMeta    // fedora-messaging's headers, authoritative; nil on ZeroMQ
	ack  ackRef         // the AMQP delivery to acknowledge once stored; none on ZeroMQ

	charge int64 // what the backlog charged for it (see cost)
}

// extract returns (computing once) the message's metadata, cleaned for
// storing.
func (r *Received) extract() meta.Metadata {
	if r.meta == nil {
		e := r.Envelope
		m := meta.Extract(e.Topic, e.Body, e.Username)
		if r.hdr != nil {
			m = r.hdr.overlay(m)
		}
		m = storableMeta(m)
		r.meta = &m
	}
	return *r.meta
}

// EndpointStatus is what /readyz and the admin page show of an endpoint.
type EndpointStatus struct {
	Endpoint    string    `json:"endpoint"`
	Connected   bool      `json:"connected"`
	LastMessage time.Time `json:"last_message"`
	Received    int64     `json:"received"`
	Dropped     int64     `json:"dropped"`
	Reconnects  int64     `json:"reconnects"`
	// Acked counts the messages acknowledged to an AMQP broker once
	// stored (or dropped for good); ZeroMQ has no acknowledgements.
	Acked     int64  `json:"acked,omitempty"`
	LastError string `json:"last_error,omitempty"`
}

// minBackoff is the first wait before a source redials (see redial).
const minBackoff = 100 * time.Millisecond

// DefaultBacklogBytes is the memory the readers may fill while the
// database is slower than the bus (see backlog).
const DefaultBacklogBytes = 256 << 20

// errSilent ends a session whose endpoint said nothing for too long.
var errSilent = errors.New("no message within the silence limit; reconnecting")

// Subscriber reads every endpoint through a SUB socket of its own: zmq4's
// automatic reconnect only redials the last endpoint a socket dialed, and a
// socket's Recv fails when any one of its peers drops, so one socket per
// publisher keeps one publisher's trouble from touching the others.
type Subscriber struct {
	Endpoints   []string
	TopicPrefix string
	MaxBytes    int
	// Verifier, when set, checks every envelope's signature; failures are
	// dropped and counted by reason, never passed on.
	Verifier *fedmsg.Verifier
	// Silence is how long an endpoint may say nothing before its
	// connection is redialed (0: never).
	Silence time.Duration
	// BacklogBytes bounds what waits for the ingester (0: the default).
	BacklogBytes int64
	// ReconnectMax caps the redial backoff (0: DefaultReconnectMax).
	ReconnectMax time.Duration
	Metrics      *metrics.Metrics
	Log          *slog.Logger

	mu     sync.Mutex
	status map[string]*EndpointStatus
	logged map[string]time.Time // reason → when a drop was last logged
	quiet  map[string]int       // reason → drops not logged since
}

// Run reads until ctx ends, sending decoded messages to out. Invalid frames
// are counted and dropped here, never passed on. When ctx ends, what was
// already read is still delivered before Run returns.
func (s *Subscriber) Run(ctx context.Context, out chan<- Received) error {
	s.mu.Lock()
	s.status = map[string]*EndpointStatus{}
	for _, ep := range s.Endpoints {
		s.status[ep] = &EndpointStatus{Endpoint: ep}
	}
	s.mu.Unlock()
	max := s.BacklogBytes
	if max <= 0 {
		max = DefaultBacklogBytes
	}
	q := newBacklog(max)
	pumped := make(chan struct{})
	go func() { defer close(pumped); q.pump(context.Background(), out) }()
	var wg sync.WaitGroup
	for _, ep := range s.Endpoints {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.runEndpoint(ctx, ep, q)
		}()
	}
	wg.Wait()
	q.close()
	<-pumped
	return nil
}

// Status reports every endpoint's state.
func (s *Subscriber) Status() []EndpointStatus {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]EndpointStatus, 0, len(s.Endpoints))
	for _, ep := range s.Endpoints {
		if st, ok := s.status[ep]; ok {
			out = append(out, *st)
		} else {
			out = append(out, EndpointStatus{Endpoint: ep})
		}
	}
	return out
}

// Ready reports whether every endpoint is connected.
func (s *Subscriber) Ready() bool {
	for _, st := range s.Status() {
		if !st.Connected {
			return false
		}
	}
	return true
}

func (s *Subscriber) update(ep string, f func(*EndpointStatus)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if st, ok := s.status[ep]; ok {
		f(st)
	}
}

// dropLogEvery is how often a drop of one reason is logged: a flood of bad
// frames must not become a flood of log lines (the metric counts them all).
const dropLogEvery = 10 * time.Second

// drop counts a refused message, and logs it unless one of the same reason
// was logged within dropLogEvery.
func (s *Subscriber) drop(ep, reason string, err error) {
	s.Metrics.BusDropped.WithLabelValues(reason).Inc()
	now := time.Now()
	s.mu.Lock()
	if st, ok := s.status[ep]; ok {
		st.Dropped++
	}
	if s.logged == nil {
		s.logged, s.quiet = map[string]time.Time{}, map[string]int{}
	}
	if now.Sub(s.logged[reason]) < dropLogEvery {
		s.quiet[reason]++
		s.mu.Unlock()
		return
	}
	suppressed := s.quiet[reason]
	s.logged[reason], s.quiet[reason] = now, 0
	s.mu.Unlock()
	s.Log.Warn("dropped bus message", "endpoint", ep, "reason", reason, "err", err, "not_logged_since_last", suppressed)
}

func (s *Subscriber) runEndpoint(ctx context.Context, ep string, q *backlog) {
	log := s.Log.With("endpoint", ep)
	sched := newRedial(minBackoff, s.ReconnectMax)
	for ctx.Err() == nil {
		err := s.session(ctx, ep, q, sched.reset)
		s.update(ep, func(st *EndpointStatus) {
			st.Connected = false
			if err != nil {
				st.LastError = err.Error()
			}
		})
		s.Metrics.BusConnected.WithLabelValues(ep).Set(0)
		if ctx.Err() != nil {
			return
		}
		var wait time.Duration
		if errors.Is(err, errSilent) {
			// A quiet connection, not a failing one: redial at once.
			log.Info("bus endpoint silent, reconnecting", "silence", s.Silence)
			sched.reset()
		} else {
			wait = sched.next()
			log.Debug("bus endpoint disconnected, will retry", "err", err, "backoff", wait)
		}
		s.update(ep, func(st *EndpointStatus) { st.Reconnects++ })
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
	}
}

// session dials once and reads until the connection fails or falls silent.
func (s *Subscriber) session(ctx context.Context, ep string, q *backlog, connected func()) error {
	sctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	limit := uint64(s.MaxBytes)
	if limit == 0 {
		limit = 4 << 20
	}
	gctx := withGuard(sctx, GuardLimits{
		Frame: limit,
		// The topic frame and the envelope: the envelope's limit plus
		// room for a topic.
		Message: limit + 64<<10,
		OnViolation: func(err error) {
			s.drop(ep, "oversized", err)
		},
	})
	sub := zmq4.NewSub(gctx, zmq4.WithDialerMaxRetries(0), zmq4.WithDialerTimeout(5*time.Second))
	defer sub.Close()
	if err := sub.Dial(GuardedEndpoint(ep)); err != nil {
		return err
	}
	if err := sub.SetOption(zmq4.OptionSubscribe, s.TopicPrefix); err != nil {
		return err
	}
	connected()
	s.update(ep, func(st *EndpointStatus) { st.Connected, st.LastError = true, "" })
	s.Metrics.BusConnected.WithLabelValues(ep).Set(1)
	s.Log.Info("bus endpoint connected", "endpoint", ep)
	// Recv does not watch ctx; closing the socket is what unblocks it.
	go func() { <-sctx.Done(); sub.Close() }()

	var last atomic.Int64
	last.Store(time.Now().UnixNano())
	if s.Silence > 0 {
		go s.watchdog(sctx, cancel, &last)
	}
	for {
		msg, err := sub.Recv()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if cause := context.Cause(sctx); errors.Is(cause, errSilent) {
				return cause
			}
			return err
		}
		now := time.Now()
		last.Store(now.UnixNano())
		s.Metrics.BusReceived.WithLabelValues(ep).Inc()
		s.Metrics.BusLastSeen.WithLabelValues(ep).Set(float64(now.Unix()))
		s.update(ep, func(st *EndpointStatus) { st.Received++; st.LastMessage = now })
		env, err := DecodeFrames(msg.Frames, s.MaxBytes)
		if err != nil {
			s.drop(ep, dropReason(err), err)
			continue
		}
		if s.Verifier != nil {
			if err := s.Verifier.Verify(env.Fields); err != nil {
				s.drop(ep, SignatureReason(err), fmt.Errorf("msg_id %s: %w", env.MsgID, err))
				continue
			}
		}
		if !q.put(Received{Endpoint: ep, Envelope: env, ReceivedAt: now}) {
			s.drop(ep, "backlog", fmt.Errorf("msg_id %s: the backlog waiting for the database is full", env.MsgID))
		}
	}
}

// watchdog cancels the session when nothing arrived for s.Silence. A
// half-open TCP connection (the publisher's host vanished, a NAT forgot
// the flow) or a relay that lost its upstream looks exactly like a quiet
// bus; redialing is cheap and tells the two apart.
func (s *Subscriber) watchdog(ctx context.Context, cancel context.CancelCauseFunc, last *atomic.Int64) {
	tick := time.NewTicker(max(s.Silence/4, 10*time.Millisecond))
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-tick.C:
			if now.Sub(time.Unix(0, last.Load())) > s.Silence {
				cancel(errSilent)
				return
			}
		}
	}
}

func dropReason(err error) string {
	var de *DecodeError
	if errors.As(err, &de) {
		return de.Reason
	}
	return "invalid"
}

// SignatureReason is the dropped-metric label for a failed signature check.
func SignatureReason(err error) string {
	switch {
	case errors.Is(err, fedmsg.ErrUnsigned):
		return "unsigned"
	case errors.Is(err, fedmsg.ErrUnsupportedCrypto), errors.Is(err, fedmsg.ErrMalformed):
		return "signature_malformed"
	case errors.Is(err, fedmsg.ErrUntrusted), errors.Is(err, fedmsg.ErrCertRejected), errors.Is(err, fedmsg.ErrCertTime):
		return "certificate_untrusted"
	case errors.Is(err, fedmsg.ErrRevoked), errors.Is(err, fedmsg.ErrCRL):
		return "certificate_revoked"
	case errors.Is(err, fedmsg.ErrNotAuthorized):
		return "routing_policy"
	default:
		return "bad_signature"
	}
}
