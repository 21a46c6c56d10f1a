package email

import (
	"context"
	"fmn/delivery"
	"fmt"
	"github.com/riverqueue/river"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"fmn/rules"
	"fmn/store"
)

// BenchmarkEmailDelivery queues a burst of notifications in a real
// database, then measures River's email workers draining them through the
// SMTP pool (DefaultSMTPConns connections) into the in-process SMTP
// server: claim, render, send and record, as in production. It prints
// `bench: email_msgs_per_s`.
func BenchmarkEmailDelivery(b *testing.B) {
	const burst = 3000
	f := newFixture(b)
	mailer, err := NewSMTPMailer(f.smtp.URL(), DefaultSMTPConns)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(mailer.Close)
	f.sender.Mailer = mailer
	f.sender.Now = nil
	ctx := context.Background()
	total, elapsed := 0, time.Duration(0)
	for b.Loop() {
		b.StopTimer()
		client := f.newInsertClient()
		err := f.st.InTx(ctx, func(tx pgx.Tx) error {
			msgs := make([]store.NewMessage, burst)
			for i := range msgs {
				md := bodhiMeta(i)
				sent := time.Now()
				msgs[i] = store.NewMessage{MsgID: fmt.Sprintf("bench-%d-%d", time.Now().UnixNano(), i), Meta: md, SentAt: &sent, Envelope: []byte(`{}`)}
			}
			ids, err := store.InsertMessages(ctx, tx, msgs)
			if err != nil {
				return err
			}
			var all []store.NewNotification
			for _, id := range ids {
				ns, err := store.InsertNotifications(ctx, tx, id, []rules.Match{{UserID: f.userID, RuleID: f.ruleID, DestinationID: f.destID}})
				if err != nil {
					return err
				}
				all = append(all, ns...)
			}
			return client.Enqueue(ctx, tx, all)
		})
		if err != nil {
			b.Fatal(err)
		}
		before := len(f.smtp.Messages())
		b.StartTimer()
		start := time.Now()
		q := f.startRiver(f.worker())
		f.smtp.WaitFor(b, before+burst, 5*time.Minute)
		elapsed += time.Since(start)
		total += burst
		b.StopTimer()
		stopCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
		_ = q.Client.Stop(stopCtx)
		cancel()
		b.StartTimer()
	}
	rate := float64(total) / elapsed.Seconds()
	b.ReportMetric(rate, "msgs/s")
	fmt.Printf("bench: email_msgs_per_s %.0f msgs/s (%d mails, %d SMTP connections)\n", rate, total, f.smtp.Connections())
}

// newInsertClient is a River client that only inserts jobs.
func (f *fixture) newInsertClient() *delivery.Queue {
	f.t.Helper()
	c, err := delivery.NewClient(f.st.Pool, delivery.Jobs{Register: []func(*river.Workers){f.sender.Register}, Log: f.sender.Log}, false)
	if err != nil {
		f.t.Fatal(err)
	}
	q := delivery.NewQueue(c, []delivery.Route{f.route})
	return &q
}
