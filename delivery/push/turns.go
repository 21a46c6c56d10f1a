package push

import (
	"fmt"
	"sync"
	"time"

	"fmn"
)

// Push turns, per process. A push service that answers slowly (or a
// tarpit a user points a subscription at) would otherwise hold a worker
// for each of its notifications: twenty such destinations took every push
// worker and other users' pushes stopped. So a destination has one push
// in flight at a time and a user perOwner, each bounded by pushTimeout; a
// destination that timed out waits slowPause before it is tried again.
// A push that cannot have its turn now is not waited for: the job is
// snoozed (busyError), so it holds no worker meanwhile.
const (
	perOwner  = 2
	slowPause = time.Minute
	busyWait  = 2 * time.Second
)

type turns struct {
	mu     sync.Mutex
	dest   map[int64]bool
	owner  map[int64]int
	slowTo map[int64]time.Time
}

// busyError says a push must wait for its turn; the job snoozes.
type busyError struct {
	why  string
	wait time.Duration
}

func (e *busyError) Error() string { return e.why }

// take claims d's turn, or says how long to wait. done releases it; slow
// reports that the push timed out, pausing the destination.
func (t *turns) take(d fmn.Destination, now time.Time) (done func(slow bool), err error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.dest == nil {
		t.dest, t.owner, t.slowTo = map[int64]bool{}, map[int64]int{}, map[int64]time.Time{}
	}
	if until, ok := t.slowTo[d.ID]; ok {
		if now.Before(until) {
			return nil, &busyError{why: "waiting: the push service was too slow to answer", wait: until.Sub(now)}
		}
		delete(t.slowTo, d.ID)
	}
	if t.dest[d.ID] {
		return nil, &busyError{why: "waiting for the destination's previous push", wait: busyWait}
	}
	if t.owner[d.UserID] >= perOwner {
		return nil, &busyError{why: fmt.Sprintf("waiting: %d pushes of this user are in flight", perOwner), wait: busyWait}
	}
	t.dest[d.ID] = true
	t.owner[d.UserID]++
	return func(slow bool) {
		t.mu.Lock()
		defer t.mu.Unlock()
		delete(t.dest, d.ID)
		if t.owner[d.UserID]--; t.owner[d.UserID] <= 0 {
			delete(t.owner, d.UserID)
		}
		if slow {
			t.slowTo[d.ID] = time.Now().Add(slowPause)
		}
	}, nil
}
