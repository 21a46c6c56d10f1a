package email

import (
	"context"
	"errors"
	"fmt"

	"github.com/riverqueue/river"

	"fmn"
	"fmn/apperr"
)

// TestSendArgs is the job behind the destinations page's "Send a test"
// button: one fixed message, so a user can check a destination works
// without waiting for the bus.
type TestSendArgs struct {
	DestinationID int64 `json:"destination_id"`
}

// Kind implements river.JobArgs.
func (TestSendArgs) Kind() string { return "test_send" }

// InsertOpts: a test is looked for now; a few quick tries.
func (TestSendArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: string(fmn.KindEmail), MaxAttempts: 3}
}

// TestSendWorker sends test messages. Only email has a sender so far; other
// channels' senders add their case here.
type TestSendWorker struct {
	river.WorkerDefaults[TestSendArgs]
	Channel *Channel
}

// Work sends the test, to confirmed and enabled destinations only: a test
// must not become a way to mail an address that never agreed.
func (w *TestSendWorker) Work(ctx context.Context, job *river.Job[TestSendArgs]) error {
	d, err := w.Channel.Store.DestinationByID(ctx, job.Args.DestinationID)
	if errors.Is(err, apperr.ErrNotFound) {
		return river.JobCancel(errors.New("destination is gone"))
	}
	if err != nil {
		return err
	}
	if !d.Confirmed {
		return river.JobCancel(errors.New("destination is not confirmed"))
	}
	if d.Kind != fmn.KindEmail {
		return river.JobCancel(fmt.Errorf("no test sender for %s destinations", d.Kind))
	}
	err = sendServiceMail(ctx, w.Channel.Mailer, w.Channel.Settings, fmt.Sprintf("test.%d", d.ID), d.Address, "fmn test message",
		"This is a test message from fmn. Notifications for this destination arrive like this one.\n\n-- \nfmn, "+w.Channel.Settings.BaseURL+"\n")
	if IsPermanent(err) {
		_ = w.Channel.Store.SetDestinationFailing(ctx, d.ID, err.Error())
	}
	return err
}
