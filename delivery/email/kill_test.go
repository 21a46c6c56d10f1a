package email

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"

	"fmn/delivery"
	"fmn/metrics"
	"fmn/rules"
	"fmn/store"
)

// TestStrandedJobRescued: a job a killed process left 'running' is worked
// again within minutes. River rescues such a job only after
// RescueStuckJobsAfter, which unset is the job timeout plus an hour: a kill
// stranded its jobs for about 62 minutes. Here the job was attempted two
// minutes ago by a client that no longer exists; a fresh worker must send
// it at once.
func TestStrandedJobRescued(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	q := f.newInsertClient()
	id := f.notify(q, bodhiMeta(1))
	if _, err := f.st.Pool.Exec(f.ctx, `UPDATE river_job SET state = 'running', attempt = 1,
		attempted_at = now() - interval '2 minutes', attempted_by = '{killed-process}'
		WHERE (args->>'notification_id')::bigint = $1`, id); err != nil {
		t.Fatal(err)
	}
	f.sender.Now = nil
	f.startRiver(f.worker())
	f.waitStatus(id, "sent")
	if n := len(f.smtp.Messages()); n != 1 {
		t.Fatalf("%d mails, want 1", n)
	}
}

// TestKilledUnderLoad kills (SIGKILL) a real worker process while it drains
// a burst through the SMTP pool, and counts the notifications it left
// claimed ('sending': handed to the server or about to be, outcome never
// recorded). Workers claim only once they hold a pool connection and record
// the answer before they give it back, so at most the pool's size may be
// left so; before issue 12 every one of the 50 workers claimed first and
// then waited for one of the 4 connections.
func TestKilledUnderLoad(t *testing.T) {
	if os.Getenv("FMN_LOAD_WORKER_DB") != "" {
		loadWorkerChild(t)
		return
	}
	t.Parallel()
	const burst, pool = 2000, 4
	f := newFixture(t)
	q := f.newInsertClient()
	err := f.st.InTx(f.ctx, func(tx pgx.Tx) error {
		msgs := make([]store.NewMessage, burst)
		for i := range msgs {
			msgs[i] = store.NewMessage{MsgID: fmt.Sprintf("load-%d-%d", time.Now().UnixNano(), i), Meta: bodhiMeta(i), Envelope: []byte(`{}`)}
		}
		ids, err := store.InsertMessages(f.ctx, tx, msgs)
		if err != nil {
			return err
		}
		var all []store.NewNotification
		for _, id := range ids {
			ns, err := store.InsertNotifications(f.ctx, tx, id, []rules.Match{{UserID: f.userID, RuleID: f.ruleID, DestinationID: f.destID}})
			if err != nil {
				return err
			}
			all = append(all, ns...)
		}
		return q.Enqueue(f.ctx, tx, all)
	})
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestKilledUnderLoad$", "-test.count=1")
	cmd.Env = append(os.Environ(), "FMN_LOAD_WORKER_DB="+f.dbURL, "FMN_LOAD_WORKER_SMTP="+f.smtp.URL(),
		"FMN_LOAD_WORKER_POOL="+strconv.Itoa(pool))
	cmd.Stdout, cmd.Stderr = io.Discard, io.Discard
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	f.smtp.WaitFor(t, 300, time.Minute)
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	var sending, sent int
	if err := f.st.Pool.QueryRow(f.ctx, `SELECT count(*) FILTER (WHERE status = 'sending'), count(*) FILTER (WHERE status = 'sent')
		FROM notifications`).Scan(&sending, &sent); err != nil {
		t.Fatal(err)
	}
	t.Logf("killed with %d sent, %d mails at the server, %d claimed and unrecorded", sent, len(f.smtp.Messages()), sending)
	if sending > pool {
		t.Fatalf("%d notifications left claimed by the killed process, want at most the pool's %d", sending, pool)
	}
	if sent == burst {
		t.Fatal("the burst was done before the kill: nothing was tested")
	}
}

// loadWorkerChild is the worker process of TestKilledUnderLoad: `fmn work`
// for the email queue, until it is killed.
func loadWorkerChild(t *testing.T) {
	ctx := context.Background()
	st, err := store.Open(ctx, os.Getenv("FMN_LOAD_WORKER_DB"))
	if err != nil {
		t.Fatal(err)
	}
	pool, _ := strconv.Atoi(os.Getenv("FMN_LOAD_WORKER_POOL"))
	mailer, err := NewSMTPMailer(os.Getenv("FMN_LOAD_WORKER_SMTP"), pool)
	if err != nil {
		t.Fatal(err)
	}
	render, err := NewRenderer()
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	c := &Channel{Store: st, Mailer: mailer, Render: render, Settings: Settings{From: "fmn@example.org", BaseURL: testBaseURL},
		Unsubscribe: &Unsubscriber{Store: st}, Metrics: metrics.New(), Log: log}
	route := c.Route()
	dl := delivery.NewDeliverer(st, c.Metrics, log, route)
	jobs, err := delivery.NewClient(st.Pool, delivery.Jobs{Deliverer: dl, Routes: []delivery.Route{route},
		Register: []func(*river.Workers){c.Register}, Log: log}, true)
	if err != nil {
		t.Fatal(err)
	}
	if err := jobs.Start(ctx); err != nil {
		t.Fatal(err)
	}
	<-ctx.Done()
	t.Fatal(errors.New("unreachable"))
}
