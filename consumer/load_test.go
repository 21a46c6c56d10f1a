package consumer

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"

	"fmn/config"
	"fmn/consumer/amqptest"
	"fmn/rules"
	"fmn/rules/meta"
	"fmn/store"
	"fmn/store/storetest"
)

// TestIngestLoad is the consumer's load generator, run by `make bench`
// (FMN_BENCH=1): the real path from a ZeroMQ PUB socket over loopback,
// through a Subscriber and an Ingester with a few hundred rules, into a
// real PostgreSQL. It prints
//
//	bench: ingest_msgs_per_s N msgs/s  (20,000 messages published as fast as possible)
//	bench: ingest_p99_ms N ms          (publish → committed, at a steady 1,000 msg/s)
//
// and fails if a single message is lost.
func TestIngestLoad(t *testing.T) {
	if os.Getenv("FMN_BENCH") == "" {
		t.Skip("a load generator: set FMN_BENCH=1 (make bench does)")
	}
	corpus, err := ReadCorpus("../testdata/fedmsg-meta.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	t.Run("throughput", func(t *testing.T) {
		const n = 20000
		r := startLoad(t, corpus)
		start := time.Now()
		r.publish(t, n, 0)
		r.wait(t, n, 120*time.Second)
		el := time.Since(start)
		zmqRate = float64(n) / el.Seconds()
		fmt.Printf("bench: ingest_msgs_per_s %.0f msgs/s\n", zmqRate)
		r.stop()
	})
	t.Run("latency", func(t *testing.T) {
		const n, rate = 5000, 1000
		r := startLoad(t, corpus)
		r.publish(t, n, rate)
		r.wait(t, n, 60*time.Second)
		r.mu.Lock()
		lat := slices.Clone(r.lat)
		r.mu.Unlock()
		slices.Sort(lat)
		p := func(q float64) float64 { return percentile(lat, q) }
		fmt.Printf("bench: ingest_p50_ms %.1f ms\n", p(0.5))
		zmqP99 = p(0.99)
		fmt.Printf("bench: ingest_p99_ms %.1f ms\n", zmqP99)
		r.stop()
	})
}

// The ZeroMQ figures of this run, the baseline of the AMQP ones.
var zmqRate, zmqP99 float64

// percentile returns the q-quantile of sorted latencies, in milliseconds.
func percentile(lat []time.Duration, q float64) float64 {
	return float64(lat[int(q*float64(len(lat)-1))]) / 1e6
}

// TestAMQPIngestLoad is the AMQP side of the load generator (FMN_BENCH=1),
// on a private RabbitMQ node, with the same corpus, rules and database as
// TestIngestLoad (which runs first and gives the baseline):
//
//	bench: amqp_ingest_msgs_per_s N msgs/s  (20,000 messages waiting in the queue → stored, notified, queued, acknowledged)
//	bench: amqp_ingest_p99_ms N ms          (publish → committed, at a steady 1,000 msg/s)
//	bench: amqp_broker_p99_ms N ms          (of which publish → read by fmn)
//
// and the ratios to the ZeroMQ figures.
func TestAMQPIngestLoad(t *testing.T) {
	if os.Getenv("FMN_BENCH") == "" {
		t.Skip("a load generator: set FMN_BENCH=1 (make bench does)")
	}
	node := amqptest.Shared(t)
	corpus, err := ReadCorpus("../testdata/fedmsg-meta.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	t.Run("throughput", func(t *testing.T) {
		// Three rounds, each on a queue and a database of its own, and
		// the median of their rates: one round's figure swings by a
		// fifth with whatever else the machine's host runs.
		const n, rounds = 20000, 3
		var rates, kbs []float64
		for round := range rounds {
			rate, kb := amqpBacklogRound(t, node, corpus, n)
			t.Logf("round %d: %.0f msgs/s, %.1f KB allocated per message", round+1, rate, kb)
			rates, kbs = append(rates, rate), append(kbs, kb)
		}
		slices.Sort(rates)
		slices.Sort(kbs)
		rate := rates[rounds/2]
		fmt.Printf("bench: amqp_ingest_msgs_per_s %.0f msgs/s\n", rate)
		if zmqRate > 0 {
			fmt.Printf("bench: amqp_ingest_vs_zmq_rate %.2f ratio\n", rate/zmqRate)
		}
		fmt.Printf("bench: amqp_ingest_alloc_kb_per_msg %.1f KB\n", kbs[rounds/2])
	})
	t.Run("latency", func(t *testing.T) {
		const n, rate = 5000, 1000
		sc := node.Scope(t)
		st := loadStore(t)
		pub := newPub(t, node, sc)
		var mu sync.Mutex
		sent := map[string]time.Time{}
		var lat, recv []time.Duration
		src := newAMQPSource(node, sc, config.DefaultAMQPPrefetch)
		ctx, cancel := context.WithCancel(ctx)
		in := newIngester(t, st, nil)
		in.Metrics = src.Metrics
		in.Committed = func(batch []Received) {
			now := time.Now()
			mu.Lock()
			defer mu.Unlock()
			for _, m := range batch {
				if at, ok := sent[m.Envelope.MsgID]; ok {
					lat = append(lat, now.Sub(at))
					recv = append(recv, m.ReceivedAt.Sub(at))
					delete(sent, m.Envelope.MsgID)
				}
			}
		}
		ch := make(chan Received, 4096)
		done := make(chan struct{})
		go func() { src.Run(ctx, ch); close(ch) }()
		go func() { defer close(done); in.Run(context.Background(), ch) }()
		waitFor(t, 30*time.Second, "connected", src.Ready)
		start := time.Now()
		for i := range n {
			if d := time.Until(start.Add(time.Duration(float64(i) / rate * float64(time.Second)))); d > 0 {
				time.Sleep(d) // pacing the load, not waiting for a result
			}
			env := corpus[i%len(corpus)]
			body, _ := env["msg"].(map[string]any)
			topic, _ := env["topic"].(string)
			md := meta.Extract(topic, body, "")
			id := newUUID()
			mu.Lock()
			sent[id] = time.Now()
			mu.Unlock()
			if _, err := pub.Publish(ctx, topic, id, body, md); err != nil {
				t.Fatal(err)
			}
		}
		waitFor(t, 60*time.Second, "every message committed", func() bool { mu.Lock(); defer mu.Unlock(); return len(lat) == n })
		cancel()
		<-done
		slices.Sort(lat)
		slices.Sort(recv)
		// How much of it is the broker's: publish → read by fmn.
		fmt.Printf("bench: amqp_broker_p99_ms %.1f ms\n", percentile(recv, 0.99))
		fmt.Printf("bench: amqp_ingest_p50_ms %.1f ms\n", percentile(lat, 0.5))
		p99 := percentile(lat, 0.99)
		fmt.Printf("bench: amqp_ingest_p99_ms %.1f ms\n", p99)
		if zmqP99 > 0 {
			fmt.Printf("bench: amqp_ingest_vs_zmq_p99 %.2f ratio\n", p99/zmqP99)
		}
	})
}

// amqpBacklogRound publishes n messages into a fresh queue, then starts a
// source and an ingester on it and times them until every message is
// stored and acknowledged. It returns the rate and how many kilobytes the
// process allocated per message meanwhile (a figure that, unlike the
// rate, the machine's load does not move).
func amqpBacklogRound(t *testing.T, node *amqptest.Node, corpus []map[string]any, n int) (rate, kbPerMsg float64) {
	ctx := context.Background()
	sc := node.Scope(t)
	st := loadStore(t)
	pub := newPub(t, node, sc)
	for i := range n {
		if _, err := pub.PublishEnvelope(ctx, corpus[i%len(corpus)]); err != nil {
			t.Fatal(err)
		}
	}
	if err := pub.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	if d := depth(t, node, sc.Queue); d != n {
		t.Fatalf("%d waiting, want %d", d, n)
	}
	src := newAMQPSource(node, sc, config.DefaultAMQPPrefetch)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	start := time.Now()
	r := runAMQP(t, st, src, nil)
	waitFor(t, 120*time.Second, "every message stored and acknowledged", func() bool { return src.Status()[0].Acked == int64(n) })
	el := time.Since(start)
	runtime.ReadMemStats(&after)
	if got := countMessages(t, st); got != int64(n) {
		t.Fatalf("%d stored, want %d", got, n)
	}
	var notes int
	st.Pool.QueryRow(ctx, `SELECT count(*) FROM notifications`).Scan(&notes)
	t.Logf("%d messages, %d notifications with their jobs, in %v", n, notes, el)
	r.stop()
	return float64(n) / el.Seconds(), float64(after.TotalAlloc-before.TotalAlloc) / float64(n) / 1024
}

func track(i int, apps []string) rules.Track {
	tr := rules.Track{Users: []string{fmt.Sprintf("user%d", i)}}
	if i%30 == 0 {
		tr.Topics = []string{"org.fedoraproject.*." + apps[(i/30)%len(apps)] + ".*"}
	}
	return tr
}

type loadRig struct {
	pub    *Publisher
	in     *Ingester
	st     *store.Store
	cancel context.CancelFunc
	done   chan struct{}
	corpus []map[string]any

	mu   sync.Mutex
	seen int
	lat  []time.Duration
	sent map[string]time.Time
}

// loadStore is the load generators' database: 300 users, each with a
// confirmed address and a rule following themselves, and one in thirty
// also following one of the corpus's applications.
func loadStore(t *testing.T) *store.Store {
	ctx := context.Background()
	st := storetest.New(t)
	// 300 users, each with a confirmed address and a rule following
	// themselves, and one in thirty also following one of the corpus's
	// applications: most messages notify one or two people, as on
	// Fedora's bus, so matching and fan-out do real work.
	apps := []string{"bodhi", "buildsys", "git", "pagure", "copr", "fas", "anitya", "compose", "ci", "github"}
	for i := range 300 {
		u, err := st.EnsureUser(ctx, fmt.Sprintf("user%d", i), "")
		if err != nil {
			t.Fatal(err)
		}
		var dest int64
		if err := st.Pool.QueryRow(ctx, `INSERT INTO destinations (user_id, kind, address, confirmed_at)
			VALUES ($1, 'email', $2, now()) RETURNING id`, u.ID, fmt.Sprintf("user%d@example.org", i)).Scan(&dest); err != nil {
			t.Fatal(err)
		}
		if _, err := st.SaveRule(ctx, rules.Rule{UserID: u.ID, Name: "r", Enabled: true,
			Track:        track(i, apps),
			Destinations: []int64{dest}}); err != nil {
			t.Fatal(err)
		}
	}
	return st
}

func startLoad(t *testing.T, corpus []map[string]any) *loadRig {
	ctx, cancel := context.WithCancel(context.Background())
	st := loadStore(t)
	pub, err := NewPublisher(ctx, "tcp://127.0.0.1:0", false)
	if err != nil {
		t.Fatal(err)
	}
	r := &loadRig{pub: pub, st: st, cancel: cancel, done: make(chan struct{}), corpus: corpus, sent: map[string]time.Time{}}
	r.in = newIngester(t, st, nil)
	r.in.Committed = func(batch []Received) {
		now := time.Now()
		r.mu.Lock()
		defer r.mu.Unlock()
		for _, m := range batch {
			if at, ok := r.sent[m.Envelope.MsgID]; ok {
				r.lat = append(r.lat, now.Sub(at))
				delete(r.sent, m.Envelope.MsgID)
				r.seen++
			}
		}
	}
	sub := &Subscriber{Endpoints: []string{pub.Addr()}, MaxBytes: 4 << 20, Metrics: r.in.Metrics, Log: quiet}
	ch := make(chan Received, 4096)
	subDone := make(chan struct{})
	go func() { defer close(subDone); sub.Run(ctx, ch) }()
	go func() { <-subDone; close(ch) }()
	go func() { defer close(r.done); r.in.Run(context.WithoutCancel(ctx), ch) }()
	if !pub.WaitSubscribers(ctx, 10*time.Second) {
		t.Fatal("no subscriber")
	}
	return r
}

// publish sends n corpus envelopes as new messages, at rate a second (0:
// as fast as the socket takes them).
func (r *loadRig) publish(t *testing.T, n int, rate float64) {
	start := time.Now()
	for i := range n {
		if rate > 0 {
			if d := time.Until(start.Add(time.Duration(float64(i) / rate * float64(time.Second)))); d > 0 {
				time.Sleep(d) // pacing the load, not waiting for a result
			}
		}
		env := map[string]any{}
		for k, v := range r.corpus[i%len(r.corpus)] {
			env[k] = v
		}
		id := fmt.Sprintf("load-%d-%d", start.UnixNano(), i)
		env["msg_id"] = id
		r.mu.Lock()
		r.sent[id] = time.Now()
		r.mu.Unlock()
		if err := r.pub.Publish(env, false); err != nil {
			t.Fatal(err)
		}
	}
}

// wait waits until n messages were committed; any loss fails the run.
func (r *loadRig) wait(t *testing.T, n int, timeout time.Duration) {
	deadline := time.Now().Add(timeout)
	for {
		r.mu.Lock()
		seen := r.seen
		r.mu.Unlock()
		if seen == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("only %d of %d messages stored after %s: lost %d (dropped: %v)", seen, n, timeout, n-seen,
				value(r.in.Metrics.BusDropped.WithLabelValues("backlog")))
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (r *loadRig) stop() {
	r.cancel()
	<-r.done
	r.pub.Close()
}
