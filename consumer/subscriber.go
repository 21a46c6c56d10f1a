package consumer

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/go-zeromq/zmq4"

	"fmn/metrics"
)

// Received is one decoded bus message and where it came from.
type Received struct {
	Endpoint   string
	Envelope   Envelope
	ReceivedAt time.Time
}

// EndpointStatus is what /readyz and the admin page show of an endpoint.
type EndpointStatus struct {
	Endpoint    string    `json:"endpoint"`
	Connected   bool      `json:"connected"`
	LastMessage time.Time `json:"last_message"`
	Received    int64     `json:"received"`
	Dropped     int64     `json:"dropped"`
	LastError   string    `json:"last_error,omitempty"`
}

// Reconnect backoff: quick enough to pick up a restarted publisher within
// seconds, slow enough not to hammer one that is down.
const (
	minBackoff = 100 * time.Millisecond
	maxBackoff = 5 * time.Second
)

// Subscriber reads every endpoint through a SUB socket of its own: zmq4's
// automatic reconnect only redials the last endpoint a socket dialed, and a
// socket's Recv fails when any one of its peers drops, so one socket per
// publisher keeps one publisher's trouble from touching the others.
type Subscriber struct {
	Endpoints   []string
	TopicPrefix string
	MaxBytes    int
	Metrics     *metrics.Metrics
	Log         *slog.Logger

	mu     sync.Mutex
	status map[string]*EndpointStatus
}

// Run reads until ctx ends, sending decoded messages to out. Invalid frames
// are counted and dropped here, never passed on.
func (s *Subscriber) Run(ctx context.Context, out chan<- Received) error {
	s.mu.Lock()
	s.status = map[string]*EndpointStatus{}
	for _, ep := range s.Endpoints {
		s.status[ep] = &EndpointStatus{Endpoint: ep}
	}
	s.mu.Unlock()
	var wg sync.WaitGroup
	for _, ep := range s.Endpoints {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.runEndpoint(ctx, ep, out)
		}()
	}
	wg.Wait()
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

func (s *Subscriber) runEndpoint(ctx context.Context, ep string, out chan<- Received) {
	log := s.Log.With("endpoint", ep)
	backoff := minBackoff
	for ctx.Err() == nil {
		err := s.session(ctx, ep, out, func() { backoff = minBackoff })
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
		log.Debug("bus endpoint disconnected, will retry", "err", err, "backoff", backoff)
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, maxBackoff)
	}
}

// session dials once and reads until the connection fails.
func (s *Subscriber) session(ctx context.Context, ep string, out chan<- Received, connected func()) error {
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	sub := zmq4.NewSub(sctx, zmq4.WithDialerMaxRetries(0), zmq4.WithDialerTimeout(5*time.Second))
	defer sub.Close()
	if err := sub.Dial(ep); err != nil {
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
	for {
		msg, err := sub.Recv()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		now := time.Now()
		s.Metrics.BusReceived.WithLabelValues(ep).Inc()
		s.Metrics.BusLastSeen.WithLabelValues(ep).Set(float64(now.Unix()))
		env, err := DecodeFrames(msg.Frames, s.MaxBytes)
		if err != nil {
			reason := "invalid"
			var de *DecodeError
			if errors.As(err, &de) {
				reason = de.Reason
			}
			s.Metrics.BusDropped.WithLabelValues(reason).Inc()
			s.update(ep, func(st *EndpointStatus) { st.Received++; st.Dropped++; st.LastMessage = now })
			s.Log.Warn("dropped bus message", "endpoint", ep, "reason", reason, "err", err)
			continue
		}
		s.update(ep, func(st *EndpointStatus) { st.Received++; st.LastMessage = now })
		select {
		case out <- Received{Endpoint: ep, Envelope: env, ReceivedAt: now}:
		case <-ctx.Done():
			return nil
		}
	}
}
