package push

import (
	"context"
	"errors"
	"testing"
	"time"

	"fmn"
)

// TestTurnPassesToTheNextInLine: a push that finds its destination's turn
// taken waits for it and is handed it as soon as the push ahead is done,
// instead of being put off (which made a burst to one destination drain at
// River's snooze pace, ~2 pushes every 2 s). Others of the same owner wait
// in the order they came.
func TestTurnPassesToTheNextInLine(t *testing.T) {
	t.Parallel()
	var tu turns
	ctx := context.Background()
	d := fmn.Destination{ID: 1, UserID: 7}
	first, err := tu.take(ctx, d)
	if err != nil {
		t.Fatalf("first push: %v", err)
	}
	got := make(chan error, 3)
	order := make(chan int, 3)
	for i := range 3 {
		go func() {
			release, err := tu.take(ctx, d)
			if err == nil {
				order <- i
				release(false)
			}
			got <- err
		}()
		// Each is in line before the next comes (the line is first come,
		// first served).
		deadline := time.Now().Add(time.Second)
		for tu.inLine(d.UserID) != i+1 {
			if time.Now().After(deadline) {
				t.Fatalf("push %d never got in line", i)
			}
			time.Sleep(time.Millisecond) // polling a counter with a deadline
		}
	}
	first(false)
	for range 3 {
		if err := <-got; err != nil {
			t.Fatalf("a push in line was put off instead of handed the turn: %v", err)
		}
	}
	for want := range 3 {
		if i := <-order; i != want {
			t.Fatalf("push %d had its turn before push %d", i, want)
		}
	}
}

// TestTurnNotWaitedBehindSlowPush: behind a push that has gone unanswered
// for quickAnswer (a tarpit) nobody waits: the job is put off at once, so
// a slow endpoint's notifications hold no worker; a destination whose
// push timed out is put off until its pause ends.
func TestTurnNotWaitedBehindSlowPush(t *testing.T) {
	t.Parallel()
	var tu turns
	ctx := context.Background()
	d := fmn.Destination{ID: 1, UserID: 7}
	release, err := tu.take(ctx, d)
	if err != nil {
		t.Fatal(err)
	}
	tu.mu.Lock()
	tu.owners[7].flying[1] = time.Now().Add(-quickAnswer)
	tu.mu.Unlock()
	start := time.Now()
	var busy *busyError
	if _, err := tu.take(ctx, d); !errors.As(err, &busy) || time.Since(start) > turnWait/2 {
		t.Fatalf("behind a slow push: %v after %s, want busyError at once", err, time.Since(start))
	}
	// The owner's share: another destination of the same user, both turns
	// held by slow pushes.
	other := fmn.Destination{ID: 2, UserID: 7}
	r2, err := tu.take(ctx, other)
	if err != nil {
		t.Fatal(err)
	}
	tu.mu.Lock()
	tu.owners[7].flying[2] = time.Now().Add(-quickAnswer)
	tu.mu.Unlock()
	if _, err := tu.take(ctx, fmn.Destination{ID: 3, UserID: 7}); !errors.As(err, &busy) {
		t.Fatalf("third destination behind two slow pushes: %v", err)
	}
	// Another user is not held up at all.
	if r, err := tu.take(ctx, fmn.Destination{ID: 4, UserID: 8}); err != nil {
		t.Fatalf("another user's push: %v", err)
	} else {
		r(false)
	}
	release(true) // timed out: the destination pauses
	r2(false)
	if _, err := tu.take(ctx, d); !errors.As(err, &busy) || busy.wait < slowPause-time.Second {
		t.Fatalf("after a timeout: %v, want a pause of about %s", err, slowPause)
	}
}

// inLine is how many of the user's pushes wait in line (for tests).
func (t *turns) inLine(user int64) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	if o := t.owners[user]; o != nil {
		return len(o.line)
	}
	return 0
}
