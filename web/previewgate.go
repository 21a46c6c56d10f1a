package web

import (
	"context"
	"sync"
	"time"

	"fmn/apperr"
	"fmn/store"
)

// Preview budget, per process. A preview is the one request whose cost a
// user chooses (a rule of 200 exclude patterns over a quarter's messages),
// so previews get a budget of their own and can never take what other
// requests need: at most previewSlots run at once in this process, on a
// pool of their own (store.Previews); one user runs at most one at a time
// and starts at most previewBurst in a row, then one per previewEvery.
const (
	previewSlots = store.PreviewConns
	previewBurst = 20
	previewEvery = time.Second
	// previewWait is how long a preview waits for its turn (the user's
	// previous preview, or a free slot) before it is answered 429.
	previewWait = 3 * time.Second
)

type previewGate struct {
	slots chan struct{}

	mu        sync.Mutex
	users     map[int64]*previewUser
	lastSweep time.Time
}

type previewUser struct {
	turn   chan struct{} // holds a token while one of the user's previews runs
	tokens float64
	last   time.Time
}

func newPreviewGate() *previewGate {
	return &previewGate{slots: make(chan struct{}, previewSlots), users: map[int64]*previewUser{}}
}

// acquire waits for the user's turn and a free slot, charging the user's
// rate; release must be called when the preview is done. Past the rate, or
// after waiting previewWait, it returns apperr.ErrRateLimited.
func (g *previewGate) acquire(ctx context.Context, userID int64) (release func(), err error) {
	u, ok := g.charge(userID, time.Now())
	if !ok {
		return nil, apperr.ErrRateLimited
	}
	timer := time.NewTimer(previewWait)
	defer timer.Stop()
	select {
	case u.turn <- struct{}{}:
	case <-timer.C:
		return nil, apperr.ErrRateLimited
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	select {
	case g.slots <- struct{}{}:
	case <-timer.C:
		<-u.turn
		return nil, apperr.ErrRateLimited
	case <-ctx.Done():
		<-u.turn
		return nil, ctx.Err()
	}
	return func() { <-g.slots; <-u.turn }, nil
}

// charge takes one token from the user's bucket (previewBurst deep,
// refilled one per previewEvery).
func (g *previewGate) charge(userID int64, now time.Time) (*previewUser, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if now.Sub(g.lastSweep) > time.Minute {
		g.sweep(now)
	}
	u := g.users[userID]
	if u == nil {
		u = &previewUser{turn: make(chan struct{}, 1), tokens: previewBurst, last: now}
		g.users[userID] = u
	}
	u.tokens = min(previewBurst, u.tokens+now.Sub(u.last).Seconds()/previewEvery.Seconds())
	u.last = now
	if u.tokens < 1 {
		return u, false
	}
	u.tokens--
	return u, true
}

// sweep forgets users whose bucket is full again and who run nothing, so
// the map holds only recent previewers.
func (g *previewGate) sweep(now time.Time) {
	g.lastSweep = now
	for id, u := range g.users {
		full := u.tokens+now.Sub(u.last).Seconds()/previewEvery.Seconds() >= previewBurst
		if full && len(u.turn) == 0 {
			delete(g.users, id)
		}
	}
}
