package store

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// Lock keys for roles that one process at a time may play.
const (
	// LockIRCBot: one IRC bot connection per network, whatever the number
	// of work processes ("fmn!" + 1).
	LockIRCBot int64 = 0x666d6e21 + 1
)

// HoldLock waits until this process holds the session advisory lock key,
// trying every `every` until ctx ends, on a Dedicated connection. The lock
// lives as long as that connection: lost is closed when a check finds the
// connection gone (the lock is then free for another process), and release
// gives it up.
func (s *Store) HoldLock(ctx context.Context, key int64, every time.Duration) (lost <-chan struct{}, release func(), err error) {
	conn, err := s.Dedicated(ctx, fmt.Sprintf("lock %#x", key))
	if err != nil {
		return nil, nil, fmt.Errorf("connect for lock: %w", err)
	}
	for {
		var ok bool
		if err := conn.QueryRow(ctx, `SELECT pg_try_advisory_lock($1)`, key).Scan(&ok); err != nil {
			CloseDedicated(conn)
			return nil, nil, fmt.Errorf("take lock: %w", err)
		}
		if ok {
			break
		}
		t := time.NewTimer(every)
		select {
		case <-ctx.Done():
			t.Stop()
			CloseDedicated(conn)
			return nil, nil, ctx.Err()
		case <-t.C:
		}
	}
	lostc, done := make(chan struct{}), make(chan struct{})
	var mu sync.Mutex // one query at a time on conn
	go func() {
		tick := time.NewTicker(every)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-tick.C:
			}
			mu.Lock()
			select {
			case <-done: // released while we waited for mu: conn is gone
				mu.Unlock()
				return
			default:
			}
			cctx, cancel := context.WithTimeout(context.Background(), every)
			err := conn.Ping(cctx)
			cancel()
			mu.Unlock()
			if err != nil {
				close(lostc)
				return
			}
		}
	}()
	var once sync.Once
	release = func() {
		once.Do(func() {
			close(done)
			mu.Lock()
			defer mu.Unlock()
			// The lock dies with the session, and the connection is this
			// lock's alone.
			CloseDedicated(conn)
		})
	}
	return lostc, release, nil
}
