package push

import (
	"context"
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
//
// A push that finds its turn taken waits for it here, in line behind the
// owner's earlier pushes, and is handed the turn the moment the push
// ahead has recorded its answer: a burst to a push service that answers
// quickly drains at the speed of its answers. It waits at most turnWait,
// and only behind a push that started less than quickAnswer ago; behind a
// slow one (a tarpit) it does not wait at all. A push that cannot wait is
// not a failure: its job is put off by busyWait (busyError), holding no
// worker meanwhile. So a slow endpoint holds at most its owner's perOwner
// workers for long, and others' waiting workers for at most turnWait.
const (
	perOwner    = 2
	slowPause   = time.Minute
	busyWait    = 2 * time.Second
	turnWait    = 2 * time.Second
	quickAnswer = time.Second
)

type turns struct {
	mu     sync.Mutex
	owners map[int64]*owner   // user → their pushes in flight and in line
	busy   map[int64]struct{} // destinations with a push in flight
	slowTo map[int64]time.Time
}

// owner is one user's pushes: those in flight (destination → start) and
// those waiting for a turn, first come first served.
type owner struct {
	flying map[int64]time.Time
	line   []*waiter
}

// waiter is a push in line; ready is signalled (once) when it was given
// its turn (err nil) or told to go (err set).
type waiter struct {
	d     fmn.Destination
	ready chan struct{}
	done  bool
	err   error
}

// busyError says a push must wait for its turn; the job is put off.
type busyError struct {
	why  string
	wait time.Duration
}

func (e *busyError) Error() string { return e.why }

// take waits for d's turn, at most turnWait (or until ctx ends), and
// returns release, to call once the push's outcome is recorded: slow
// reports that it timed out, pausing the destination. When the turn does
// not come it returns a busyError saying how long to put the job off.
func (t *turns) take(ctx context.Context, d fmn.Destination) (release func(slow bool), err error) {
	t.mu.Lock()
	if t.owners == nil {
		t.owners, t.busy, t.slowTo = map[int64]*owner{}, map[int64]struct{}{}, map[int64]time.Time{}
	}
	now := time.Now()
	if err := t.paused(d.ID, now); err != nil {
		t.mu.Unlock()
		return nil, err
	}
	o := t.owners[d.UserID]
	if o == nil {
		o = &owner{flying: map[int64]time.Time{}}
		t.owners[d.UserID] = o
	}
	release = func(slow bool) { t.release(d, slow) }
	if t.free(d.ID, o) {
		t.start(d.ID, o, now)
		t.mu.Unlock()
		return release, nil
	}
	if err := t.tooSlow(d.ID, o, now); err != nil {
		t.forget(d.UserID, o)
		t.mu.Unlock()
		return nil, err
	}
	w := &waiter{d: d, ready: make(chan struct{}, 1)}
	o.line = append(o.line, w)
	t.mu.Unlock()

	timer := time.NewTimer(turnWait)
	defer timer.Stop()
	select {
	case <-w.ready:
	case <-timer.C:
	case <-ctx.Done():
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	switch {
	case w.done && w.err == nil:
		return release, nil
	case w.done:
		return nil, w.err
	}
	o.line = remove(o.line, w)
	t.forget(d.UserID, o)
	return nil, &busyError{why: "waiting for this destination's turn: earlier pushes are still being answered", wait: busyWait}
}

// free says whether a push to destination id may start now: none of its
// own in flight, and fewer than perOwner of its owner's. (Whoever waits in
// line is started by release the moment a turn frees, so a newcomer
// finding a free turn overtakes nobody.)
func (t *turns) free(id int64, o *owner) bool {
	_, busy := t.busy[id]
	return !busy && len(o.flying) < perOwner
}

// tooSlow refuses to wait behind a push that has already taken longer
// than a quick answer: the one to this destination in flight, or else (the
// owner's share is what is taken) the owner's youngest.
func (t *turns) tooSlow(id int64, o *owner, now time.Time) error {
	if start, ok := o.flying[id]; ok {
		if now.Sub(start) >= quickAnswer {
			return &busyError{why: "waiting for this destination's previous push, which the push service is slow to answer", wait: busyWait}
		}
		return nil
	}
	for _, start := range o.flying {
		if now.Sub(start) < quickAnswer {
			return nil
		}
	}
	return &busyError{why: fmt.Sprintf("waiting: %d pushes of this user are in flight, slow to be answered", len(o.flying)), wait: busyWait}
}

// paused says how long a destination whose push timed out still waits.
func (t *turns) paused(id int64, now time.Time) error {
	until, ok := t.slowTo[id]
	if !ok {
		return nil
	}
	if now.Before(until) {
		return &busyError{why: "waiting: the push service was too slow to answer", wait: until.Sub(now)}
	}
	delete(t.slowTo, id)
	return nil
}

func (t *turns) start(id int64, o *owner, now time.Time) {
	t.busy[id] = struct{}{}
	o.flying[id] = now
}

// release ends d's push and hands the turns it frees to the first in line
// who can use them.
func (t *turns) release(d fmn.Destination, slow bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	o := t.owners[d.UserID]
	delete(t.busy, d.ID)
	delete(o.flying, d.ID)
	if slow {
		t.slowTo[d.ID] = time.Now().Add(slowPause)
	}
	now := time.Now()
	for i := 0; i < len(o.line) && len(o.flying) < perOwner; {
		w := o.line[i]
		if err := t.paused(w.d.ID, now); err != nil {
			w.err = err
		} else if _, ok := t.busy[w.d.ID]; ok {
			i++
			continue
		} else {
			t.start(w.d.ID, o, now)
		}
		w.done = true
		w.ready <- struct{}{}
		o.line = append(o.line[:i], o.line[i+1:]...)
	}
	t.forget(d.UserID, o)
}

// forget drops an owner with nothing in flight or in line.
func (t *turns) forget(user int64, o *owner) {
	if len(o.flying) == 0 && len(o.line) == 0 {
		delete(t.owners, user)
	}
}

func remove(line []*waiter, w *waiter) []*waiter {
	for i, x := range line {
		if x == w {
			return append(line[:i], line[i+1:]...)
		}
	}
	return line
}
