package consumer

import (
	"context"
	"fmt"
	"os"
	"slices"
	"testing"
	"time"

	"fmn/metrics"
)

// The redial schedule is fedmsg's: 100 ms, doubling, at most 1 s by
// default; a connection that worked starts it over.
func TestRedialSchedule(t *testing.T) {
	t.Parallel()
	ms := time.Millisecond
	for _, c := range []struct {
		limit time.Duration
		want  []time.Duration
	}{
		{0, []time.Duration{100 * ms, 200 * ms, 400 * ms, 800 * ms, time.Second, time.Second, time.Second}},
		{250 * ms, []time.Duration{100 * ms, 200 * ms, 250 * ms, 250 * ms}},
		{10 * ms, []time.Duration{100 * ms, 100 * ms}}, // never below the first wait
	} {
		r := newRedial(minBackoff, c.limit)
		var got []time.Duration
		for range c.want {
			got = append(got, r.next())
		}
		if !slices.Equal(got, c.want) {
			t.Errorf("limit %v: %v, want %v", c.limit, got, c.want)
		}
		r.reset()
		if d := r.next(); d != minBackoff {
			t.Errorf("limit %v: after reset %v", c.limit, d)
		}
	}
}

// A publisher that went away long enough for the backoff to reach its cap,
// and then came back on the same endpoint, is heard again within about
// the cap (the old 5 s cap took over 4 s here). The bound is generous for a
// loaded machine, and still fails the old schedule.
func TestRestartedPublisherHeardAgain(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pub, err := NewPublisher(ctx, "tcp://127.0.0.1:0", false)
	if err != nil {
		t.Fatal(err)
	}
	addr := pub.Addr()
	sub := &Subscriber{Endpoints: []string{addr}, Metrics: metrics.New(), Log: quiet}
	out := make(chan Received, 1000)
	done := make(chan struct{})
	go func() { defer close(done); sub.Run(ctx, out) }()
	waitFor(t, 10*time.Second, "the first publisher heard", func() bool { return heard(pub, out) })
	pub.Close()
	// Down until the schedule has reached its cap: six failed redials
	// (100+200+400+800+1000+1000 ms).
	waitFor(t, 30*time.Second, "six redials", func() bool { return sub.Status()[0].Reconnects >= 6 })
	pub2, err := NewPublisher(ctx, addr, false)
	if err != nil {
		t.Fatal(err)
	}
	defer pub2.Close()
	restarted := time.Now()
	waitFor(t, 20*time.Second, "the restarted publisher heard", func() bool { return heard(pub2, out) })
	gap := time.Since(restarted)
	if os.Getenv("FMN_BENCH") != "" {
		fmt.Printf("bench: zmq_redial_gap_ms %.0f ms\n", float64(gap)/float64(time.Millisecond))
	}
	if gap > 2500*time.Millisecond {
		t.Errorf("heard again %v after the restart; the redial cap is 1s", gap)
	}
	cancel()
	<-done
}
