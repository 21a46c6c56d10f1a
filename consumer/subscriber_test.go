package consumer

import (
	"context"
	"fmt"
	"testing"
	"time"

	"fmn/metrics"
)

// TestBacklog: put never blocks, keeps order, and refuses (for the caller
// to count) what exceeds the budget while the consumer is stalled.
func TestBacklog(t *testing.T) {
	t.Parallel()
	r := received(t, "ep", "x", 1)
	q := newBacklog(cost(r) * 10)
	for k := range 10 {
		rr := r
		rr.Envelope.MsgID = fmt.Sprint(k)
		if !q.put(rr) {
			t.Fatalf("put %d refused within the budget", k)
		}
	}
	if q.put(r) {
		t.Fatal("put beyond the budget accepted")
	}
	out := make(chan Received) // unbuffered: the pump waits for us
	go q.pump(context.Background(), out)
	for k := range 10 {
		if got := (<-out).Envelope.MsgID; got != fmt.Sprint(k) {
			t.Fatalf("message %d came out as %s", k, got)
		}
	}
	if !q.put(r) {
		t.Fatal("put refused after the queue drained")
	}
	q.close()
	<-out
}

// TestSilenceWatchdog: an endpoint that says nothing for longer than the
// silence limit is redialed, and what it says afterwards arrives.
func TestSilenceWatchdog(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pub, err := NewPublisher(ctx, "tcp://127.0.0.1:0", false)
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	sub := &Subscriber{Endpoints: []string{pub.Addr()}, Silence: 200 * time.Millisecond, Metrics: metrics.New(), Log: quiet}
	out := make(chan Received, 100)
	done := make(chan struct{})
	go func() { defer close(done); sub.Run(ctx, out) }()
	waitFor(t, 10*time.Second, "two silent reconnects", func() bool { return sub.Status()[0].Reconnects >= 2 })
	waitFor(t, 10*time.Second, "a message after the reconnects", func() bool { return heard(pub, out) })
	cancel()
	<-done
}

// heard publishes a message and reports whether one has arrived on out.
func heard(p *Publisher, out <-chan Received) bool {
	p.Publish(map[string]any{"topic": "t.x", "msg": map[string]any{}}, true)
	select {
	case <-out:
		return true
	default:
		return false
	}
}
