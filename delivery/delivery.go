// Package delivery is the one path every notification takes to its
// destination, whatever the channel: the River jobs (a notification job,
// a confirmation job and a test job, on a queue per channel), the decision whether a
// destination may receive now, the claim that keeps a send from happening
// twice, and what a failure means. The channels themselves live in the
// subpackages email, irc, matrix and push; each is a Channel.
package delivery

import (
	"context"
	"errors"
	"time"

	"fmn"
)

// Channel is one way of reaching a destination.
type Channel interface {
	// Send delivers n to d. It calls claim once, when it holds what the
	// send needs (a connection, a slot, its turn), just before anything
	// leaves, and then the record claim returned with the send's outcome,
	// before it lets go of what it holds; when claim returns no record
	// (sent or given up meanwhile) it sends nothing and returns that
	// error (nil).
	Send(ctx context.Context, d fmn.Destination, n fmn.Notification, claim Claim) error
	// Confirm sends d its confirmation: the code, and the link
	// {base URL}/confirm/{code}, on behalf of the user named owner.
	Confirm(ctx context.Context, d fmn.Destination, owner, code string) error
	// Tell sends d a short message of fmn's own (a test its owner asked
	// for), in the channel's everyday form: a mail, an IRC line, a Matrix
	// message, a push. Nothing is claimed: there is no notification.
	Tell(ctx context.Context, d fmn.Destination, n Note) error
	// Classify says what an error of Send, Confirm or Tell means.
	Classify(err error) Verdict
}

// Note is a short message of fmn's own, for Channel.Tell.
type Note struct {
	// Key is the same on every attempt of one request and new for the
	// next request: a Matrix transaction id is made from it (a retry shows
	// once, a second test shows again), a mail's Message-ID, a push's tag.
	Key string
	// Title is a mail's subject, a push's title, the head of a chat line.
	Title string
	// Text is one line (the channels cut it to their size).
	Text string
}

// Line is the note as one clean line of chat: "Title: Text".
func (n Note) Line() string { return Clean(n.Title + ": " + n.Text) }

// Claim marks the notification being sent (committed before the send). It
// returns record to call with the outcome (nil: delivered), or nil when
// the notification is not to be sent. Recording before the connection or
// slot is given back bounds the notifications 'sending' at any moment —
// all that a crash can leave unknown — by the channel's connections.
type Claim func(ctx context.Context) (record func(error), err error)

// Outcome is what a failed send means for what comes next.
type Outcome int

// The outcomes.
const (
	// Temporary: retried with the route's backoff, and given up (dead)
	// when its attempts are spent.
	Temporary Outcome = iota
	// Permanent: the address does not work (a 5xx answer, a push
	// subscription gone). The notification is dead and the destination
	// marked failing, so nothing more is sent to it until its owner turns
	// it on again.
	Permanent
	// RateLimited: the server (or the channel: an IRC bot offline) asked
	// to wait RetryAfter; the job waits that long without spending an
	// attempt.
	RateLimited
	// Unknown: the send may have arrived (the connection broke while the
	// server answered). It is recorded as unknown and never retried.
	Unknown
	// Wait: nothing was tried, the channel's turn for this destination has
	// not come (push: one in flight per destination); the job waits
	// RetryAfter without spending an attempt, and it is no failure.
	Wait
)

// Verdict is a channel's reading of a failure.
type Verdict struct {
	Outcome    Outcome
	RetryAfter time.Duration
}

// Digester is a channel that can collect notifications into digests
// (email). Channels without it send a digest policy's notifications at once
// and drop those of quiet hours, like a mute: chat lines and desktop pushes
// are news of the moment.
type Digester interface {
	// Hold parks n until d's next digest; it may send that digest at once
	// when the policy's count is reached.
	Hold(ctx context.Context, d fmn.Destination, n fmn.Notification, pol fmn.Policy, quiet fmn.Quiet) error
}

// Route is a channel with the settings of its queue.
type Route struct {
	Kind    fmn.Kind
	Channel Channel
	// Attempts a notification job gets before it is dead.
	Attempts int
	// Timeout of one attempt, the wait for a connection or a turn
	// included. A job left running by a killed process is rescued this
	// long after it started (see Rescue).
	Timeout time.Duration
	// Workers is how many jobs of the queue run at once in one process.
	Workers int
	// Backoff is the first retry's delay, doubling up to MaxBackoff.
	Backoff, MaxBackoff time.Duration
	// Again: the channel's server recognises a repeated send (Matrix
	// transaction ids), so a notification found 'sending' after a crash is
	// simply sent again. Otherwise it becomes unknown and is not resent.
	Again bool
	// Stale: a notification older than this is dropped rather than sent
	// late (0: never). IRC lines are news of the moment.
	Stale time.Duration
	// Later: the queue is not worked from the start; whoever holds the
	// channel's one connection adds it (see IRC's bot lock).
	Later bool
}

// errGone is why a job whose notification or destination was deleted
// stops.
var errGone = errors.New("gone")
