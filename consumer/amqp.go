package consumer

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"sync"
	"sync/atomic"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"fmn/metrics"
)

// AMQPBinding binds the source's queue to an exchange with a routing key.
type AMQPBinding struct {
	Exchange   string
	RoutingKey string
}

// AMQPSource consumes fedora-messaging's bus: one durable queue on one
// broker, read with manual acknowledgements. A message is acknowledged only
// once the transaction storing it (with its notifications and their jobs)
// has committed; until then the broker keeps it, and redelivers it if fmn
// dies or the connection drops (the msg_id makes the second copy
// harmless). A message that can never be stored is rejected without
// requeueing, so it cannot come back forever, and counted.
//
// The reconnect loop is fmn's own (amqp091-go's automatic recovery is young
// and has had regressions): each connection declares the queue and its
// bindings again, so a broker that lost them (a new node, a deleted queue)
// is set up as before.
//
// One goroutine owns each connection's channel (amqp091-go's channels are
// not safe to share): it reads deliveries, hands them on, rejects poison
// and sends the acknowledgements the ingester asks for through ackSession.
type AMQPSource struct {
	URL      string
	Queue    string
	Bindings []AMQPBinding
	// Prefetch is how many unacknowledged messages the broker may send at
	// once (basic.qos).
	Prefetch int
	// TLS is the client configuration for amqps:// (nil: the system's
	// roots); with External the client certificate in it authenticates,
	// by SASL EXTERNAL, instead of the URL's user and password.
	TLS      *tls.Config
	External bool
	MaxBytes int
	// ReconnectMax caps the redial backoff (0: DefaultReconnectMax).
	ReconnectMax time.Duration
	// DrainTimeout is how long a stopping source waits for the
	// acknowledgements of what it already handed on (0: 10 s); what is not
	// acknowledged by then is redelivered at the next start.
	DrainTimeout time.Duration
	Metrics      *metrics.Metrics
	Log          *slog.Logger

	mu     sync.Mutex
	status EndpointStatus
	logged map[string]time.Time // reason → when a drop was last logged
}

var _ Source = (*AMQPSource)(nil)

// Endpoint names the source in metrics, /readyz and the messages' endpoint
// column: the broker and the queue, never the credentials.
func (s *AMQPSource) Endpoint() string {
	return AMQPEndpoint(s.URL, s.Queue)
}

// AMQPEndpoint is the label of a queue on a broker: scheme://host:port/vhost#queue.
func AMQPEndpoint(rawURL, queue string) string {
	u, err := amqp.ParseURI(rawURL)
	if err != nil {
		return "amqp://(invalid)#" + queue
	}
	vhost := ""
	if u.Vhost != "/" {
		vhost = url.PathEscape(u.Vhost)
	}
	return fmt.Sprintf("%s://%s/%s#%s", u.Scheme, net.JoinHostPort(u.Host, fmt.Sprint(u.Port)), vhost, queue)
}

// Status reports the broker connection's state.
func (s *AMQPSource) Status() []EndpointStatus {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.status
	st.Endpoint = s.Endpoint()
	return []EndpointStatus{st}
}

// Ready reports whether the broker is connected and the queue consumed.
func (s *AMQPSource) Ready() bool { return s.Status()[0].Connected }

func (s *AMQPSource) update(f func(*EndpointStatus)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f(&s.status)
}

// Run consumes until ctx ends. Before returning it waits (up to
// DrainTimeout) for the acknowledgements of what it handed on, so the
// ingester reading out must keep going until out is closed after Run.
func (s *AMQPSource) Run(ctx context.Context, out chan<- Received) error {
	ep := s.Endpoint()
	log := s.Log.With("endpoint", ep)
	s.Metrics.BusConnected.WithLabelValues(ep).Set(0)
	sched := newRedial(minBackoff, s.ReconnectMax)
	for ctx.Err() == nil {
		err := s.session(ctx, ep, out, sched.reset)
		s.update(func(st *EndpointStatus) {
			st.Connected = false
			if err != nil {
				st.LastError = err.Error()
			}
		})
		s.Metrics.BusConnected.WithLabelValues(ep).Set(0)
		if ctx.Err() != nil {
			return nil
		}
		wait := sched.next()
		log.Warn("AMQP broker connection lost, reconnecting", "err", err, "backoff", wait)
		s.update(func(st *EndpointStatus) { st.Reconnects++ })
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait):
		}
	}
	return nil
}

// dial connects, with a deadline on the TCP, TLS and AMQP handshakes (and
// none after, heartbeats take over).
func (s *AMQPSource) dial(ctx context.Context) (*amqp.Connection, error) {
	return DialAMQP(ctx, s.URL, s.TLS, s.External, "fmn consumer")
}

// DialAMQP connects to a broker; tlsConf and external as in AMQPSource.
func DialAMQP(ctx context.Context, rawURL string, tlsConf *tls.Config, external bool, name string) (*amqp.Connection, error) {
	const handshake = 15 * time.Second
	props := amqp.NewConnectionProperties()
	host, _ := os.Hostname()
	props.SetClientConnectionName(fmt.Sprintf("%s on %s (pid %d)", name, host, os.Getpid()))
	// A stop during the handshake (a broker that accepts and then says
	// nothing) must not wait for its deadline: ctx ending closes the
	// socket until the handshake is over.
	var stopWatch func() bool
	defer func() {
		if stopWatch != nil {
			stopWatch()
		}
	}()
	cfg := amqp.Config{
		Heartbeat:  10 * time.Second,
		Properties: props,
		Dial: func(network, addr string) (net.Conn, error) {
			d := net.Dialer{Timeout: handshake}
			c, err := d.DialContext(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			stopWatch = context.AfterFunc(ctx, func() { c.Close() })
			return c, c.SetDeadline(time.Now().Add(handshake))
		},
	}
	if tlsConf != nil {
		cfg.TLSClientConfig = tlsConf.Clone()
	}
	if external {
		cfg.SASL = []amqp.Authentication{&amqp.ExternalAuth{}}
	}
	conn, err := amqp.DialConfig(rawURL, cfg)
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", redactAMQP(rawURL), err)
	}
	return conn, nil
}

// AMQPTLS builds the client TLS configuration: the CA file's roots (or the
// system's), and the client certificate when certFile is set.
func AMQPTLS(caFile, certFile, keyFile string) (*tls.Config, error) {
	conf := &tls.Config{MinVersion: tls.VersionTLS12}
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("read AMQP CA certificate: %w", err)
		}
		conf.RootCAs = x509.NewCertPool()
		if !conf.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("AMQP CA certificate %s: no PEM certificate in it", caFile)
		}
	}
	if certFile != "" {
		cert, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return nil, fmt.Errorf("load AMQP client certificate: %w", err)
		}
		conf.Certificates = []tls.Certificate{cert}
	}
	return conf, nil
}

func redactAMQP(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparseable AMQP URL)"
	}
	return u.Redacted()
}

// DeclareAMQP declares the durable queue and binds it, as every connection
// of the source does; the publish tool and tests use it to set up a queue
// before fmn first starts.
func DeclareAMQP(ch *amqp.Channel, queue string, bindings []AMQPBinding) error {
	if _, err := ch.QueueDeclare(queue, true, false, false, false, nil); err != nil {
		return fmt.Errorf("declare queue %q: %w", queue, err)
	}
	for _, b := range bindings {
		if err := ch.QueueBind(queue, b.RoutingKey, b.Exchange, false, nil); err != nil {
			return fmt.Errorf("bind queue %q to %s with %q: %w", queue, b.Exchange, b.RoutingKey, err)
		}
	}
	return nil
}

// session connects once and consumes until the connection fails or ctx
// ends.
func (s *AMQPSource) session(ctx context.Context, ep string, out chan<- Received, connected func()) error {
	conn, err := s.dial(ctx)
	if err != nil {
		return err
	}
	// Buffered: the library sends one error and closes; an unread,
	// unbuffered notification channel would block its shutdown forever.
	connClosed := conn.NotifyClose(make(chan *amqp.Error, 1))
	// A broker that does not answer the close is not waited for long: the
	// shutdown has a budget (and the socket closes regardless).
	defer func() { conn.CloseDeadline(time.Now().Add(time.Second)) }()
	ch, err := conn.Channel()
	if err != nil {
		return fmt.Errorf("open channel: %w", err)
	}
	chClosed := ch.NotifyClose(make(chan *amqp.Error, 1))
	cancelled := ch.NotifyCancel(make(chan string, 1))
	if err := DeclareAMQP(ch, s.Queue, s.Bindings); err != nil {
		return err
	}
	prefetch := s.Prefetch
	if prefetch <= 0 {
		// 0 would mean no limit at all; two batches keep the ingester busy.
		prefetch = 2 * maxBatch
	}
	if err := ch.Qos(prefetch, 0, false); err != nil {
		return fmt.Errorf("set prefetch: %w", err)
	}
	tag := fmt.Sprintf("fmn-%d-%d", os.Getpid(), time.Now().UnixNano())
	deliveries, err := ch.Consume(s.Queue, tag, false, false, false, false, nil)
	if err != nil {
		return fmt.Errorf("consume queue %q: %w", s.Queue, err)
	}
	connected()
	s.update(func(st *EndpointStatus) { st.Connected, st.LastError = true, "" })
	s.Metrics.BusConnected.WithLabelValues(ep).Set(1)
	s.Log.Info("AMQP broker connected", "endpoint", ep, "prefetch", prefetch)
	received, lastSeen := s.Metrics.BusReceived.WithLabelValues(ep), s.Metrics.BusLastSeen.WithLabelValues(ep)

	acks := &ackSession{wake: make(chan struct{}, 1)}
	var (
		// pending is the message waiting to be handed on (when has):
		// while one waits, no further delivery is read.
		pending  Received
		has      bool
		lastSent uint64   // highest tag handed on
		acked    uint64   // highest tag acknowledged
		inFlight []uint64 // tags handed on and not yet acknowledged, in order
	)
	ackDone := func() error {
		if t := acks.max.Load(); t > acked {
			// Everything up to t is stored or dropped: the ingester
			// settles in the order it received (see ackSession).
			if err := ch.Ack(t, true); err != nil {
				return fmt.Errorf("acknowledge: %w", err)
			}
			acked = t
			n := 0
			for n < len(inFlight) && inFlight[n] <= t {
				n++
			}
			inFlight = append(inFlight[:0], inFlight[n:]...)
			s.update(func(st *EndpointStatus) { st.Acked += int64(n) })
		}
		return nil
	}
	closed := func(e *amqp.Error) error {
		if e == nil {
			return errors.New("connection closed")
		}
		return e
	}
	for {
		var send chan<- Received
		var in <-chan amqp.Delivery
		if has {
			send = out
		} else {
			in = deliveries
		}
		select {
		case <-ctx.Done():
			return s.drain(ch, tag, acks, ackDone, &acked, lastSent, chClosed, connClosed)
		case d, ok := <-in:
			if !ok {
				select {
				case e := <-chClosed:
					return closed(e)
				case e := <-connClosed:
					return closed(e)
				case <-time.After(time.Second):
					return errors.New("the broker stopped the delivery stream")
				}
			}
			now := time.Now()
			received.Inc()
			lastSeen.Set(float64(now.Unix()))
			s.update(func(st *EndpointStatus) { st.Received++; st.LastMessage = now })
			env, hm, err := DecodeDelivery(&d, s.MaxBytes)
			if err != nil {
				// Never requeued: it would come straight back.
				if rerr := ch.Reject(d.DeliveryTag, false); rerr != nil {
					return fmt.Errorf("reject: %w", rerr)
				}
				s.drop(ep, dropReason(err), fmt.Errorf("message_id %q: %w", d.MessageId, err))
				continue
			}
			pending, has = Received{Endpoint: ep, Envelope: env, ReceivedAt: now, hdr: hm,
				ack: ackRef{s: acks, tag: d.DeliveryTag}}, true
		case send <- pending:
			lastSent, pending, has = pending.ack.tag, Received{}, false
			inFlight = append(inFlight, lastSent)
		case <-acks.wake:
			if err := ackDone(); err != nil {
				return err
			}
		case e := <-chClosed:
			return closed(e)
		case e := <-connClosed:
			return closed(e)
		case <-cancelled:
			return fmt.Errorf("the broker cancelled the consumer of queue %q (deleted?)", s.Queue)
		}
	}
}

// drain stops consuming and waits for the acknowledgements of what was
// handed on; what is not handed on yet goes back to the queue when the
// channel closes.
func (s *AMQPSource) drain(ch *amqp.Channel, tag string, acks *ackSession, ackDone func() error, acked *uint64,
	lastSent uint64, chClosed, connClosed <-chan *amqp.Error) error {
	if err := ch.Cancel(tag, false); err != nil {
		return nil
	}
	timeout := s.DrainTimeout
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	deadline := time.After(timeout)
	for *acked < lastSent {
		select {
		case <-acks.wake:
			if err := ackDone(); err != nil {
				return nil
			}
		case <-deadline:
			s.Log.Warn("stopping before every stored message was acknowledged; the broker will redeliver the rest",
				"endpoint", s.Endpoint(), "acked_tag", *acked, "last_tag", lastSent)
			return nil
		case <-chClosed:
			return nil
		case <-connClosed:
			return nil
		}
	}
	return nil
}

func (s *AMQPSource) drop(ep, reason string, err error) {
	s.Metrics.BusDropped.WithLabelValues(reason).Inc()
	now := time.Now()
	s.mu.Lock()
	s.status.Dropped++
	if s.logged == nil {
		s.logged = map[string]time.Time{}
	}
	quiet := now.Sub(s.logged[reason]) < dropLogEvery
	if !quiet {
		s.logged[reason] = now
	}
	s.mu.Unlock()
	if !quiet {
		s.Log.Warn("rejected AMQP message", "endpoint", ep, "reason", reason, "err", err)
	}
}

// ackRef names an AMQP delivery: the session that received it and its
// delivery tag. The zero value (ZeroMQ messages) acknowledges nothing.
type ackRef struct {
	s   *ackSession
	tag uint64
}

// done records that the message is stored (or dropped for good).
func (a ackRef) done() {
	if a.s != nil {
		a.s.done(a.tag)
	}
}

// ackSession carries acknowledgements from the ingester to the goroutine
// that owns the channel, without ever blocking the ingester: it keeps only
// the highest tag settled and a wake-up. One tag stands for all below it
// (basic.ack with multiple), which holds because the ingester stores
// messages in the order the source handed them on and settles every one of
// them, and the source settles the ones it rejects itself. A session that
// has ended is never woken again; its tags mean nothing on the next
// connection, whose redeliveries are recognised by msg_id.
type ackSession struct {
	max  atomic.Uint64
	wake chan struct{}
}

func (s *ackSession) done(tag uint64) {
	for {
		cur := s.max.Load()
		if tag <= cur || s.max.CompareAndSwap(cur, tag) {
			break
		}
	}
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// settle acknowledges each message that came from a broker.
func settle(msgs []Received) {
	for i := range msgs {
		msgs[i].ack.done()
	}
}
