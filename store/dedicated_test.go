package store_test

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"fmn/rules"
	"fmn/store"
	"fmn/store/storetest"
)

// TestHoldersStayOutOfThePool: the rule follower and the bots' locks hold
// their connections for good, on connections of their own, so the whole
// pool is still there for short work. Before, each took one of the pool's
// for good, and the pool had to be oversized to leave the rest enough.
func TestHoldersStayOutOfThePool(t *testing.T) {
	t.Parallel()
	st := storetest.New(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	live := rules.NewLive(store.RuleSource{})
	followed := make(chan error, 1)
	go func() { followed <- st.FollowRules(ctx, live, slog.New(slog.DiscardHandler)) }()
	for _, key := range []int64{store.LockIRCBot, store.LockMatrixBot} {
		_, release, err := st.HoldLock(ctx, key, 50*time.Millisecond)
		if err != nil {
			t.Fatal(err)
		}
		defer release()
	}
	// The follower listens before its first load.
	deadline := time.Now().Add(10 * time.Second)
	for live.Peek() == nil {
		if time.Now().After(deadline) {
			t.Fatal("the follower did not load the rules")
		}
		time.Sleep(10 * time.Millisecond)
	}

	// Every connection of the pool can be had at once.
	max := int(st.Pool.Stat().MaxConns())
	actx, acancel := context.WithTimeout(ctx, 5*time.Second)
	defer acancel()
	var held []*pgxpool.Conn
	defer func() {
		for _, c := range held {
			c.Release()
		}
	}()
	for range max {
		c, err := st.Pool.Acquire(actx)
		if err != nil {
			t.Fatalf("acquired %d of the pool's %d connections: %v", len(held), max, err)
		}
		held = append(held, c)
	}
	cancel()
	if err := <-followed; err != nil {
		t.Fatalf("follower: %v", err)
	}
}
