package consumer

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"fmn/rules"
	"fmn/store"
	"fmn/store/storetest"
)

// instance is one fmn's consumer: a subscriber on every endpoint and an
// ingester, sharing the database with any other instance.
type instance struct {
	sub  *Subscriber
	in   *Ingester
	done chan struct{}
}

func startInstance(t *testing.T, ctx context.Context, st *store.Store, eps []string) *instance {
	in := newIngester(t, st, nil)
	sub := &Subscriber{Endpoints: eps, MaxBytes: 1 << 20, Metrics: in.Metrics, Log: quiet}
	ch := make(chan Received, 64)
	i := &instance{sub: sub, in: in, done: make(chan struct{})}
	subDone := make(chan struct{})
	go func() { defer close(subDone); sub.Run(ctx, ch) }()
	go func() { <-subDone; close(ch) }()
	go func() { defer close(i.done); in.Run(context.WithoutCancel(ctx), ch) }()
	return i
}

func (i *instance) handled() float64 {
	return value(i.in.Metrics.BusStored) + value(i.in.Metrics.BusDuplicate)
}

func waitFor(t *testing.T, timeout time.Duration, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestDedupe: the same envelopes arrive through two endpoints (a relay and
// its source) at two fmn instances sharing one database: each is stored
// once and notified once.
func TestDedupe(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	st := storetest.New(t)
	u, err := st.EnsureUser(ctx, "alice", "alice@example.org")
	if err != nil {
		t.Fatal(err)
	}
	var dest int64
	if err := st.Pool.QueryRow(ctx, `INSERT INTO destinations (user_id, kind, address, confirmed_at)
		VALUES ($1, 'email', 'alice@example.org', now()) RETURNING id`, u.ID).Scan(&dest); err != nil {
		t.Fatal(err)
	}
	if _, err := st.SaveRule(ctx, rules.Rule{UserID: u.ID, Name: "all", Enabled: true,
		Track: rules.Track{Topics: []string{"org.fedoraproject.*"}}, Destinations: []int64{dest}}); err != nil {
		t.Fatal(err)
	}

	var pubs []*Publisher
	var eps []string
	for range 2 {
		p, err := NewPublisher(ctx, "tcp://127.0.0.1:0", false)
		if err != nil {
			t.Fatal(err)
		}
		defer p.Close()
		pubs = append(pubs, p)
		eps = append(eps, p.Addr())
	}
	a := startInstance(t, ctx, st, eps)
	b := startInstance(t, ctx, st, eps)

	// Both instances hear both publishers before the real messages go:
	// warm-up frames (dropped as malformed) until every endpoint of every
	// instance has received one.
	waitFor(t, 20*time.Second, "every subscription in place", func() bool {
		for _, p := range pubs {
			p.SendFrames([]byte("warm-up"))
		}
		for _, i := range []*instance{a, b} {
			for _, s := range i.sub.Status() {
				if s.Received == 0 {
					return false
				}
			}
		}
		return true
	})

	const n = 200
	var wg sync.WaitGroup
	for _, p := range pubs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := range n {
				env := map[string]any{"topic": "org.fedoraproject.prod.test.dup", "msg": map[string]any{"k": k}, "msg_id": fmt.Sprintf("dup-%d", k)}
				if err := p.Publish(env, false); err != nil {
					t.Error(err)
				}
			}
		}()
	}
	wg.Wait()
	waitFor(t, 60*time.Second, "every copy handled", func() bool {
		return a.handled()+b.handled() == 4*n
	})
	if s := value(a.in.Metrics.BusStored) + value(b.in.Metrics.BusStored); s != n {
		t.Fatalf("instances stored %v messages in all, want %d", s, n)
	}
	var msgs, notes int64
	st.Pool.QueryRow(ctx, `SELECT count(*) FROM messages`).Scan(&msgs)
	st.Pool.QueryRow(ctx, `SELECT count(*) FROM notifications`).Scan(&notes)
	if msgs != n || notes != n {
		t.Fatalf("%d messages and %d notifications, want %d of each", msgs, notes, n)
	}
	var jobs int64
	st.Pool.QueryRow(ctx, `SELECT count(*) FROM river_job WHERE kind = 'notify' AND queue = 'email'`).Scan(&jobs)
	if jobs != n {
		t.Fatalf("%d delivery jobs, want %d", jobs, n)
	}
	cancel()
	<-a.done
	<-b.done
}
