package delivery

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/riverqueue/river"

	"fmn"
	"fmn/apperr"
)

// TestArgs is the job behind "Send a test" on the destinations page: one
// fixed message through the destination's channel, so its owner can check
// it works without waiting for the bus. It runs on the channel's own queue
// (IRC's is worked only by the process holding the bot's connection).
type TestArgs struct {
	DestinationID int64 `json:"destination_id"`
}

// Kind implements river.JobArgs.
func (TestArgs) Kind() string { return "test_send" }

// testAttempts: a test is looked at now, or not at all; a few quick tries.
const testAttempts = 3

// Test queues a test message to d, on its channel's queue; what Testable
// refuses is refused (apperr.Invalid, field destination) and queues
// nothing.
func (q Queue) Test(ctx context.Context, d fmn.Destination) error {
	if ok, reason := Testable(d); !ok {
		return apperr.Invalid("destination", "%s", reason)
	}
	_, err := q.Client.Insert(ctx, TestArgs{DestinationID: d.ID},
		&river.InsertOpts{Queue: string(d.Kind), MaxAttempts: testAttempts})
	if err != nil {
		return fmt.Errorf("queue test message: %w", err)
	}
	return nil
}

// Testable says whether d may be sent a test: what Reachable asks of every
// send (confirmed, on, not failing), and nothing more. A mute and the
// owner's quiet hours do not hold a test back: they keep unasked news
// away, while a test is asked for by the owner, this minute, and is how
// they check a muted destination still works; a digest policy is about
// notifications, and a test collected into a digest would say nothing.
func Testable(d fmn.Destination) (bool, string) {
	dec, reason := Reachable(d)
	return dec == Send, reason
}

// TestNote is the test message of the job's attempt: its key is the job's,
// so a retry is recognised where the channel can (a Matrix transaction id)
// and a second press is a second test.
func TestNote(jobID int64) Note {
	return Note{Key: "test." + strconv.FormatInt(jobID, 10), Title: "fmn test message",
		Text: "This is a test message from fmn. Notifications for this destination arrive like this one."}
}

// test sends a destination its test message, if it may still receive one.
func (dl *Deliverer) test(ctx context.Context, job *river.Job[TestArgs]) error {
	id := job.Args.DestinationID
	d, err := dl.Store.DestinationByID(ctx, id)
	if err != nil {
		return gone(err, "destination", id)
	}
	if ok, reason := Testable(d); !ok {
		return river.JobCancel(errors.New(reason))
	}
	r := dl.routes[d.Kind]
	if r == nil {
		return river.JobCancel(fmt.Errorf("no %s channel is set up here", d.Kind))
	}
	if err := r.Channel.Tell(ctx, d, TestNote(job.ID)); err != nil {
		return dl.Failed(ctx, job.JobRow, d, err, func(fmn.Status, string) error { return nil })
	}
	return nil
}

// TestWorker is the River worker of TestArgs, for every channel.
type TestWorker struct {
	river.WorkerDefaults[TestArgs]
	*Deliverer
}

// Work implements river.Worker.
func (w TestWorker) Work(ctx context.Context, job *river.Job[TestArgs]) error {
	return w.test(ctx, job)
}

// Timeout implements river.Worker: the route's (an IRC line waits its
// turn in the bot's queues).
func (w TestWorker) Timeout(job *river.Job[TestArgs]) time.Duration {
	return w.route(job.Queue).Timeout
}
