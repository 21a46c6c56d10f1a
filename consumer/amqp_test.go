package consumer

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"fmn/consumer/amqptest"
	"fmn/metrics"
	"fmn/rules"
	"fmn/rules/meta"
	"fmn/store"
	"fmn/store/storetest"
)

// The package's tests share one private RabbitMQ node (with a TLS
// listener for the EXTERNAL test), started while the others run.
func TestMain(m *testing.M) {
	os.Exit(amqptest.Main(m, amqptest.Options{TLS: true}))
}

func newAMQPSource(node *amqptest.Node, sc amqptest.Scope, prefetch int) *AMQPSource {
	return &AMQPSource{URL: node.URL(), Queue: sc.Queue, Bindings: []AMQPBinding{{sc.Exchange, "#"}},
		Prefetch: prefetch, MaxBytes: 4 << 20, DrainTimeout: 5 * time.Second, Metrics: metrics.New(), Log: quiet}
}

// amqpRig is an AMQP source feeding an ingester, wired as `fmn serve`
// wires them.
type amqpRig struct {
	t      *testing.T
	src    *AMQPSource
	in     *Ingester
	cancel context.CancelFunc
	done   chan struct{}
}

// runAMQP starts src and an ingester on st. stopIngest, when set, is the
// ingester's own context (a test whose database keeps failing needs to
// stop it); otherwise it stops when the source's output closes.
func runAMQP(t *testing.T, st *store.Store, src *AMQPSource, ingestCtx context.Context) *amqpRig {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	in := newIngester(t, st, nil)
	in.Metrics = src.Metrics
	r := &amqpRig{t: t, src: src, in: in, cancel: cancel, done: make(chan struct{})}
	ch := make(chan Received, 4096)
	go func() { src.Run(ctx, ch); close(ch) }()
	if ingestCtx == nil {
		ingestCtx = context.Background()
	}
	go func() { defer close(r.done); in.Run(ingestCtx, ch) }()
	t.Cleanup(r.stop)
	return r
}

func (r *amqpRig) stop() {
	r.cancel()
	select {
	case <-r.done:
	case <-time.After(30 * time.Second):
		r.t.Error("the AMQP source and ingester did not stop within 30s")
	}
}

func newPub(t *testing.T, node *amqptest.Node, sc amqptest.Scope) *AMQPPublisher {
	t.Helper()
	p, err := NewAMQPPublisher(context.Background(), node.URL(), nil, false, sc.Exchange)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	// The queue exists and is bound before anything is published, as
	// after fmn's first start.
	if err := DeclareAMQP(p.Channel(), sc.Queue, []AMQPBinding{{sc.Exchange, "#"}}); err != nil {
		t.Fatal(err)
	}
	return p
}

func depth(t *testing.T, node *amqptest.Node, queue string) int {
	t.Helper()
	n, err := node.QueueDepth(queue)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func countMessages(t *testing.T, st *store.Store) int64 {
	t.Helper()
	n, err := st.CountMessages(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// publishN publishes n messages, every third naming alice in its headers;
// it returns their message ids.
func publishN(t *testing.T, p *AMQPPublisher, n int, tag string) []string {
	t.Helper()
	ctx := context.Background()
	ids := make([]string, 0, n)
	for i := range n {
		md := meta.Metadata{Usernames: []string{fmt.Sprintf("user%d", i)}, Packages: []string{"pkg" + tag}}
		if i%3 == 0 {
			md.Usernames = append(md.Usernames, "alice")
		}
		id, err := p.Publish(ctx, "org.fedoraproject.prod.test."+tag, "", map[string]any{"i": i, "tag": tag}, md)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	if err := p.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	return ids
}

// Messages waiting in the queue are stored once each, with the broker's
// message_id as msg_id and the headers' sets, and acknowledged: after the
// consumer stops, nothing comes back. The prefetch never stalls the
// ingester's batching, down to one message in flight.
func TestAMQPStoredOnceAndAcked(t *testing.T) {
	t.Parallel()
	node := amqptest.Shared(t)
	for _, prefetch := range []int{1, 7, 2000} {
		t.Run(fmt.Sprint("prefetch=", prefetch), func(t *testing.T) {
			t.Parallel()
			sc := node.Scope(t)
			st := storetest.New(t)
			storetest.Follower(t, st, "alice", rules.Track{Mine: true})
			p := newPub(t, node, sc)
			const n = 300
			ids := publishN(t, p, n, "stored")
			// A redelivered or republished copy is recognised by its id.
			for _, id := range ids[:10] {
				if _, err := p.Publish(context.Background(), "org.fedoraproject.prod.test.stored", id, map[string]any{"copy": true},
					meta.Metadata{Usernames: []string{"alice"}}); err != nil {
					t.Fatal(err)
				}
			}
			p.Wait(context.Background())
			r := runAMQP(t, st, newAMQPSource(node, sc, prefetch), nil)
			waitFor(t, 60*time.Second, "every message handled", func() bool {
				return value(r.in.Metrics.BusStored)+value(r.in.Metrics.BusDuplicate) == n+10
			})
			if got := countMessages(t, st); got != n {
				t.Fatalf("%d messages stored, want %d", got, n)
			}
			waitFor(t, 10*time.Second, "every message acknowledged", func() bool { return r.src.Status()[0].Acked == n+10 })
			var notes int
			st.Pool.QueryRow(context.Background(), `SELECT count(*) FROM notifications`).Scan(&notes)
			if notes != n/3 {
				t.Errorf("%d notifications, want %d (one per message naming alice)", notes, n/3)
			}
			rows, err := st.Pool.Query(context.Background(), `SELECT msg_id, usernames, endpoint FROM messages`)
			if err != nil {
				t.Fatal(err)
			}
			for rows.Next() {
				var id, ep string
				var users []string
				rows.Scan(&id, &users, &ep)
				i := slices.Index(ids, id)
				want := []string{fmt.Sprintf("user%d", i)}
				if i%3 == 0 {
					want = append(want, "alice")
				}
				slices.Sort(want)
				if i < 0 || !slices.Equal(users, want) || ep != r.src.Endpoint() {
					t.Errorf("stored %s (index %d) usernames %q endpoint %s; want %q", id, i, users, ep, want)
				}
			}
			r.stop()
			if d := depth(t, node, sc.Queue); d != 0 {
				t.Fatalf("%d messages back in the queue after the consumer stopped: not acknowledged", d)
			}
			st0 := r.src.Status()[0]
			if st0.Received != n+10 || st0.Connected {
				t.Errorf("status after stop: %+v", st0)
			}
		})
	}
}

// A transaction that fails leaves its messages with the broker: stopped,
// the consumer gives them back, and the next one stores them all.
func TestAMQPFailedTransactionLeavesMessagesQueued(t *testing.T) {
	t.Parallel()
	node := amqptest.Shared(t)
	sc := node.Scope(t)
	st := storetest.New(t)
	ctx := context.Background()
	if _, err := st.Pool.Exec(ctx, `
		CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'storage is down'; END $$;
		CREATE TRIGGER refuse BEFORE INSERT ON messages FOR EACH STATEMENT EXECUTE FUNCTION refuse();`); err != nil {
		t.Fatal(err)
	}
	p := newPub(t, node, sc)
	const n = 50
	publishN(t, p, n, "failing")
	src := newAMQPSource(node, sc, 100)
	src.DrainTimeout = 300 * time.Millisecond
	ingestCtx, stopIngest := context.WithCancel(ctx)
	r := runAMQP(t, st, src, ingestCtx)
	waitFor(t, 30*time.Second, "every message delivered to fmn", func() bool {
		return src.Status()[0].Received == n && depth(t, node, sc.Queue) == 0
	})
	stopIngest()
	r.stop()
	if got := countMessages(t, st); got != 0 {
		t.Fatalf("%d messages stored through a failing trigger", got)
	}
	waitFor(t, 10*time.Second, "the unacknowledged messages back in the queue", func() bool {
		return depth(t, node, sc.Queue) == n
	})
	if _, err := st.Pool.Exec(ctx, `DROP TRIGGER refuse ON messages`); err != nil {
		t.Fatal(err)
	}
	r2 := runAMQP(t, st, newAMQPSource(node, sc, 100), nil)
	waitFor(t, 30*time.Second, "all stored after the database recovered", func() bool { return countMessages(t, st) == n })
	r2.stop()
	if d := depth(t, node, sc.Queue); d != 0 {
		t.Fatalf("%d left in the queue", d)
	}
}

// Poison never loops: each is rejected without requeue and counted by
// reason, the good ones around it are stored, the queue drains and the
// source stays connected.
func TestAMQPPoisonRejected(t *testing.T) {
	t.Parallel()
	node := amqptest.Shared(t)
	sc := node.Scope(t)
	st := storetest.New(t)
	p := newPub(t, node, sc)
	ctx := context.Background()
	good := func(i int) {
		if _, err := p.Publish(ctx, "org.fedoraproject.prod.test.good", "", map[string]any{"i": i}, meta.Metadata{}); err != nil {
			t.Fatal(err)
		}
	}
	raw := func(body []byte, ctype, enc string) {
		pub := amqp.Publishing{ContentType: ctype, ContentEncoding: enc, DeliveryMode: 2, MessageId: newUUID(), Body: body}
		if err := p.PublishRaw(ctx, "org.fedoraproject.prod.test.bad", pub); err != nil {
			t.Fatal(err)
		}
	}
	good(1)
	raw([]byte("this is not JSON"), "application/json", "utf-8")
	good(2)
	raw([]byte(`["a", "JSON", "array"]`), "application/json", "utf-8")
	raw([]byte(`{"big":"`+strings.Repeat("x", 5<<20)+`"}`), "application/json", "utf-8")
	raw([]byte(`{}`), "text/plain", "utf-8")
	raw([]byte(`{}`), "application/json", "gzip")
	good(3)
	if err := p.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	r := runAMQP(t, st, newAMQPSource(node, sc, 10), nil)
	waitFor(t, 30*time.Second, "good ones stored", func() bool { return countMessages(t, st) == 3 })
	waitFor(t, 10*time.Second, "queue drained", func() bool { return depth(t, node, sc.Queue) == 0 })
	for reason, want := range map[string]float64{"json": 1, "not_object": 1, "oversized": 1, "content_type": 1, "content_encoding": 1} {
		if got := value(r.src.Metrics.BusDropped.WithLabelValues(reason)); got != want {
			t.Errorf("dropped{reason=%s} = %v, want %v", reason, got, want)
		}
	}
	if !r.src.Ready() || r.src.Status()[0].Dropped != 5 {
		t.Errorf("status %+v", r.src.Status()[0])
	}
	r.stop()
	if d := depth(t, node, sc.Queue); d != 0 {
		t.Fatalf("%d poison messages came back", d)
	}
}

// proxy forwards TCP connections to the broker until cut, which drops
// every open one (a network failure, seen from fmn).
type proxy struct {
	ln    net.Listener
	to    string
	mu    sync.Mutex
	conns []net.Conn
}

func newProxy(t *testing.T, to string) *proxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{ln: ln, to: to}
	t.Cleanup(func() { ln.Close(); p.cut() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			b, err := net.Dial("tcp", to)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, c, b)
			p.mu.Unlock()
			go func() { io.Copy(b, c); b.Close() }()
			go func() { io.Copy(c, b); c.Close() }()
		}
	}()
	return p
}

func (p *proxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}

// A connection lost mid-stream is redialed by fmn's own loop; what was
// delivered but not acknowledged comes again and is recognised; every
// message is stored and notified once. A queue deleted under a running
// consumer is declared (and bound) again on the reconnect.
func TestAMQPReconnects(t *testing.T) {
	t.Parallel()
	node := amqptest.Shared(t)
	sc := node.Scope(t)
	st := storetest.New(t)
	storetest.Follower(t, st, "alice", rules.Track{Mine: true})
	p := newPub(t, node, sc)
	const n = 3000
	publishN(t, p, n, "reconnect")
	px := newProxy(t, fmt.Sprintf("127.0.0.1:%d", node.AMQPPort))
	src := newAMQPSource(node, sc, 50)
	src.URL = fmt.Sprintf("amqp://%s:%s@%s/", amqptest.User, amqptest.Password, px.ln.Addr())
	r := runAMQP(t, st, src, nil)
	waitFor(t, 30*time.Second, "some stored", func() bool { return countMessages(t, st) > 100 })
	px.cut()
	waitFor(t, 60*time.Second, "all stored after the cut", func() bool { return countMessages(t, st) == n })
	if rc := src.Status()[0].Reconnects; rc < 1 {
		t.Errorf("%d reconnects after a cut connection", rc)
	}
	var notes int
	st.Pool.QueryRow(context.Background(), `SELECT count(*) FROM notifications`).Scan(&notes)
	if notes != n/3 {
		t.Errorf("%d notifications, want %d", notes, n/3)
	}

	// The queue deleted behind fmn's back: the broker cancels the
	// consumer, fmn reconnects and declares it again.
	waitFor(t, 10*time.Second, "connected", src.Ready)
	before := src.Status()[0].Reconnects
	if err := node.WithChannel(func(ch *amqp.Channel) error { _, err := ch.QueueDelete(sc.Queue, false, false, false); return err }); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, "reconnected after the queue went", func() bool {
		return src.Status()[0].Reconnects > before && src.Ready() && depth(t, node, sc.Queue) == 0
	})
	publishN(t, p, 30, "after")
	waitFor(t, 30*time.Second, "messages to the declared-again queue stored", func() bool { return countMessages(t, st) == n+30 })
	r.stop()
}

// Fedora's public broker wants TLS and a client certificate, which
// authenticates by SASL EXTERNAL: the node's user is the certificate's
// common name, and no password is sent.
func TestAMQPTLSExternal(t *testing.T) {
	t.Parallel()
	node := amqptest.Shared(t)
	sc := node.Scope(t)
	st := storetest.New(t)
	p := newPub(t, node, sc)
	publishN(t, p, 5, "tls")
	conf, err := AMQPTLS(node.CACert, node.ClientCert, node.ClientKey)
	if err != nil {
		t.Fatal(err)
	}
	src := newAMQPSource(node, sc, 10)
	src.URL, src.TLS, src.External = node.TLSURL(), conf, true
	r := runAMQP(t, st, src, nil)
	waitFor(t, 30*time.Second, "stored over TLS", func() bool { return countMessages(t, st) == 5 })
	if !src.Ready() || !strings.HasPrefix(src.Endpoint(), "amqps://127.0.0.1:") {
		t.Errorf("status %+v", src.Status())
	}
	r.stop()

	// Without a client certificate EXTERNAL has nothing to offer; with
	// another CA the broker is not trusted. Neither connects.
	noCert, _ := AMQPTLS(node.CACert, "", "")
	otherCA, _ := AMQPTLS("", node.ClientCert, node.ClientKey)
	for name, c := range map[string]*AMQPSource{
		"no client certificate": {URL: node.TLSURL(), TLS: noCert, External: true},
		"untrusted broker":      {URL: node.TLSURL(), TLS: otherCA, External: true},
	} {
		if _, err := DialAMQP(context.Background(), c.URL, c.TLS, c.External, "test"); err == nil {
			t.Errorf("%s: connected", name)
		}
	}
}

// One process takes both buses at once, and the same message arriving on
// both is stored once: with the same id, or as Fedora's amqp_to_zmq bridge
// renames it.
func TestAMQPAndZeroMQTogether(t *testing.T) {
	t.Parallel()
	node := amqptest.Shared(t)
	sc := node.Scope(t)
	st := storetest.New(t)
	ap := newPub(t, node, sc)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	zp, err := NewPublisher(ctx, "tcp://127.0.0.1:0", false)
	if err != nil {
		t.Fatal(err)
	}
	defer zp.Close()
	m := metrics.New()
	src := newAMQPSource(node, sc, 100)
	src.Metrics = m
	sub := &Subscriber{Endpoints: []string{zp.Addr()}, MaxBytes: 1 << 20, Metrics: m, Log: quiet}
	in := newIngester(t, st, nil)
	in.Metrics = m
	ch := make(chan Received, 64)
	var wg sync.WaitGroup
	srcCtx, stopSrc := context.WithCancel(ctx)
	for _, s := range []Source{src, sub} {
		wg.Add(1)
		go func() { defer wg.Done(); s.Run(srcCtx, ch) }()
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(ch) }()
	go func() { defer close(done); in.Run(context.Background(), ch) }()
	waitFor(t, 20*time.Second, "ZeroMQ subscribed", func() bool { zp.SendFrames([]byte("warm-up")); return sub.Status()[0].Received > 0 })
	const n = 100
	for i := range n {
		// Half keep one id on both buses; half are carried by the
		// amqp_to_zmq bridge, which makes "YEAR-" + message_id.
		id, zid := fmt.Sprintf("2026-both-%d", i), ""
		zenv := map[string]any{"topic": "org.fedoraproject.prod.test.both", "msg": map[string]any{"i": i}}
		if i%2 == 1 {
			id = newUUID()
			zid, zenv["username"] = "2026-"+id, "amqp-bridge"
		} else {
			zid = id
		}
		zenv["msg_id"] = zid
		if err := zp.Publish(zenv, false); err != nil {
			t.Fatal(err)
		}
		if _, err := ap.Publish(ctx, "org.fedoraproject.prod.test.both", id, map[string]any{"i": i}, meta.Metadata{}); err != nil {
			t.Fatal(err)
		}
	}
	ap.Wait(ctx)
	waitFor(t, 30*time.Second, "both copies of each handled", func() bool {
		return value(m.BusStored)+value(m.BusDuplicate) == 2*n
	})
	if got := countMessages(t, st); got != n {
		t.Fatalf("%d stored, want %d", got, n)
	}
	if a, z := value(m.BusReceived.WithLabelValues(src.Endpoint())), value(m.BusReceived.WithLabelValues(zp.Addr())); a != n || z < n {
		t.Errorf("received per source: amqp %v, zeromq %v", a, z)
	}
	stopSrc()
	<-done
}

// A stop while a broker accepts the connection and then says nothing (the
// AMQP handshake hangs) is not held up by the 15 s handshake deadline.
func TestAMQPStopDuringHandshake(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		if c, err := ln.Accept(); err == nil {
			accepted <- c // held open, silent
		}
	}()
	src := &AMQPSource{URL: "amqp://u:p@" + ln.Addr().String() + "/", Queue: "q", Metrics: metrics.New(), Log: quiet}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); src.Run(ctx, make(chan Received)) }()
	c := <-accepted
	defer c.Close()
	cancel()
	stopped := time.Now()
	defer func() { t.Logf("stopped %v after the cancel", time.Since(stopped)) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Run still waiting for the handshake 5 s after the stop")
	}
}
