package email

import (
	"context"
	"encoding/json"
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

	"fmn"
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
	sending, sent := f.killWorkerMidway(t, pool, 300, "notifications")
	t.Logf("killed with %d sent, %d mails at the server, %d claimed and unrecorded", sent, len(f.smtp.Messages()), sending)
	if sending > pool {
		t.Fatalf("%d notifications left claimed by the killed process, want at most the pool's %d", sending, pool)
	}
	if sent == burst {
		t.Fatal("the burst was done before the kill: nothing was tested")
	}
}

// TestDigestsKilledUnderLoad is TestKilledUnderLoad for digests: a real
// worker process sends the due digests of many destinations through the
// SMTP pool and is killed (SIGKILL) midway. A digest is claimed (formed,
// its items 'sending') only once its worker holds a pool connection, and
// its outcome is recorded before the connection goes back, so at most the
// pool's size of digests may be left 'sending' (to become unknown);
// before, each of the 50 workers formed its digest first and then waited
// for one of the 4 connections.
func TestDigestsKilledUnderLoad(t *testing.T) {
	if os.Getenv("FMN_LOAD_WORKER_DB") != "" {
		loadWorkerChild(t)
		return
	}
	t.Parallel()
	const dests, perDigest, pool = 400, 2, 4
	f := newFixture(t)
	q := f.newInsertClient()
	policy, err := fmn.ParsePolicy(json.RawMessage(`{"mode":"digest","every":"1h"}`))
	if err != nil {
		t.Fatal(err)
	}
	var jobs []river.InsertManyParams
	err = f.st.InTx(f.ctx, func(tx pgx.Tx) error {
		msgs := make([]store.NewMessage, dests*perDigest)
		for i := range msgs {
			msgs[i] = store.NewMessage{MsgID: fmt.Sprintf("digest-load-%d-%d", time.Now().UnixNano(), i), Meta: bodhiMeta(i), Envelope: []byte(`{}`)}
		}
		mids, err := store.InsertMessages(f.ctx, tx, msgs)
		if err != nil {
			return err
		}
		for i := range dests {
			d, err := store.CreateDestination(f.ctx, tx, f.userID, fmn.KindEmail, fmt.Sprintf("alice+%d@example.org", i))
			if err != nil {
				return err
			}
			if _, err := store.ConfirmNow(f.ctx, tx, d.ID); err != nil {
				return err
			}
			if _, err := tx.Exec(f.ctx, `UPDATE destinations SET delivery = $2 WHERE id = $1`, d.ID, []byte(policy)); err != nil {
				return err
			}
			for j := range perDigest {
				ns, err := store.InsertNotifications(f.ctx, tx, mids[i*perDigest+j], []rules.Match{{UserID: f.userID, RuleID: f.ruleID, DestinationID: d.ID}})
				if err != nil {
					return err
				}
				// Held two hours ago: the digest is due.
				if _, err := tx.Exec(f.ctx, `UPDATE notifications SET held_at = now() - interval '2 hours' WHERE id = $1`, ns[0].ID); err != nil {
					return err
				}
			}
			jobs = append(jobs, river.InsertManyParams{Args: DigestArgs{DestinationID: d.ID}})
		}
		_, err = q.Client.InsertManyTx(f.ctx, tx, jobs)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	sending, sent := f.killWorkerMidway(t, pool, 60, "digests")
	t.Logf("killed with %d digests sent, %d mails at the server, %d digests claimed and unrecorded", sent, len(f.smtp.Messages()), sending)
	if sending > pool {
		t.Fatalf("%d digests left claimed by the killed process, want at most the pool's %d", sending, pool)
	}
	if sent == dests {
		t.Fatal("every digest was sent before the kill: nothing was tested")
	}
	if got := len(f.smtp.Messages()); got > sent+sending {
		t.Fatalf("%d mails arrived but only %d digests are recorded sent or sending", got, sent+sending)
	}
}

// killWorkerMidway runs the calling test again as a worker process
// (loadWorkerChild) with an SMTP pool of pool connections, kills it
// (SIGKILL) once the server has received mails, and counts the rows of
// table ('notifications' or 'digests') left 'sending' and recorded 'sent'.
func (f *fixture) killWorkerMidway(t *testing.T, pool, mails int, table string) (sending, sent int) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^"+t.Name()+"$", "-test.count=1")
	cmd.Env = append(os.Environ(), "FMN_LOAD_WORKER_DB="+f.dbURL, "FMN_LOAD_WORKER_SMTP="+f.smtp.URL(),
		"FMN_LOAD_WORKER_POOL="+strconv.Itoa(pool))
	cmd.Stdout, cmd.Stderr = io.Discard, io.Discard
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	f.smtp.WaitFor(t, mails, time.Minute)
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	if err := f.st.Pool.QueryRow(f.ctx, `SELECT count(*) FILTER (WHERE status = 'sending'), count(*) FILTER (WHERE status = 'sent')
		FROM `+table).Scan(&sending, &sent); err != nil {
		t.Fatal(err)
	}
	return sending, sent
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
