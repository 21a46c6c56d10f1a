package email

import (
	"context"
	"encoding/json"
	"fmt"
	gomail "github.com/wneessen/go-mail"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"

	"fmn"
	"fmn/delivery"
	"fmn/delivery/email/smtptest"
	"fmn/metrics"
	"fmn/rules"
	"fmn/rules/meta"
	"fmn/store"
	"fmn/store/storetest"
)

// fakeClock is the clock digest tests move by hand.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}

// fixture is one user with one confirmed email destination and one rule,
// on a database and an SMTP server of the test's own.
type fixture struct {
	t      testing.TB
	ctx    context.Context
	st     *store.Store
	dbURL  string
	smtp   *smtptest.Server
	sender *Channel
	route  delivery.Route
	dl     *delivery.Deliverer
	clock  *fakeClock
	userID int64
	destID int64
	ruleID int64
	seq    atomic.Int64
}

const testBaseURL = "https://fmn.example.org"

func newFixture(t testing.TB) *fixture {
	t.Helper()
	ctx := context.Background()
	dbURL := storetest.URL(t)
	st, err := store.Open(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.Close)
	srv := smtptest.Start(t)
	mailer, err := NewSMTPMailer(srv.URL(), 4)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(mailer.Close)
	render, err := NewRenderer()
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{t: t, ctx: ctx, st: st, dbURL: dbURL, smtp: srv, clock: &fakeClock{t: time.Now()}}
	f.sender = &Channel{
		Store: st, Mailer: mailer, Render: render,
		Settings:    Settings{From: "fmn <fmn@example.org>", BaseURL: testBaseURL},
		Unsubscribe: &Unsubscriber{Store: st}, Metrics: metrics.New(),
		Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Now: f.clock.Now,
	}
	f.route = f.sender.Route()
	f.route.Backoff = 20 * time.Millisecond
	f.dl = delivery.NewDeliverer(st, f.sender.Metrics, f.sender.Log, f.route)
	f.dl.Now = f.clock.Now
	f.sender.Deliverer = f.dl
	u, err := st.EnsureUser(ctx, "alice", "alice@example.org")
	if err != nil {
		t.Fatal(err)
	}
	f.userID = u.ID
	var d fmn.Destination
	if err := st.InTx(ctx, func(tx pgx.Tx) error {
		d, err = store.CreateDestination(ctx, tx, u.ID, fmn.KindEmail, "alice@example.org")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	code, err := st.NewConfirmCode(ctx, d.ID)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.ConfirmByCode(ctx, code); err != nil {
		t.Fatal(err)
	}
	f.destID = d.ID
	r, err := st.SaveRule(ctx, rules.Rule{UserID: u.ID, Name: "my packages", Enabled: true,
		Track: rules.Track{Packages: []string{"kernel"}}, Destinations: []int64{d.ID}})
	if err != nil {
		t.Fatal(err)
	}
	f.ruleID = r.ID
	return f
}

// setPolicy sets the destination's delivery policy (validated as the API does).
func (f *fixture) setPolicy(policy string) {
	f.t.Helper()
	norm, err := fmn.ParsePolicy(json.RawMessage(policy))
	if err != nil {
		f.t.Fatal(err)
	}
	if _, err := f.st.UpdateDestination(f.ctx, f.userID, f.destID, store.DestinationPatch{Delivery: norm}); err != nil {
		f.t.Fatal(err)
	}
}

// notify stores a message and its notification for the fixture's
// destination in one transaction, queuing the delivery job when q is set,
// and returns the notification id.
func (f *fixture) notify(q *delivery.Queue, md meta.Metadata) int64 {
	f.t.Helper()
	n := f.seq.Add(1)
	if md.Topic == "" {
		md.Topic = "org.fedoraproject.prod.bodhi.update.comment"
	}
	if md.Usernames == nil {
		md.Usernames = []string{}
	}
	if md.Packages == nil {
		md.Packages = []string{}
	}
	var id int64
	err := f.st.InTx(f.ctx, func(tx pgx.Tx) error {
		sent := f.clock.Now().Add(time.Duration(n) * time.Second)
		ids, err := store.InsertMessages(f.ctx, tx, []store.NewMessage{{
			MsgID: fmt.Sprintf("2026-%06d-%d", n, time.Now().UnixNano()), Meta: md, SentAt: &sent, Envelope: []byte(`{}`)}})
		if err != nil {
			return err
		}
		ns, err := store.InsertNotifications(f.ctx, tx, ids[0], []rules.Match{{UserID: f.userID, RuleID: f.ruleID, DestinationID: f.destID}})
		if err != nil {
			return err
		}
		id = ns[0].ID
		if q != nil {
			return q.Enqueue(f.ctx, tx, ns)
		}
		return nil
	})
	if err != nil {
		f.t.Fatal(err)
	}
	return id
}

func bodhiMeta(i int) meta.Metadata {
	return meta.Metadata{
		Topic: "org.fedoraproject.prod.bodhi.update.comment", App: "bodhi", Agent: "bob",
		Usernames: []string{"bob", "alice"}, Packages: []string{"kernel"},
		Summary: fmt.Sprintf("bob commented on bodhi update kernel-6.%d (karma: 1)", i),
		Link:    fmt.Sprintf("https://bodhi.fedoraproject.org/updates/FEDORA-2026-%04d", i%3),
	}
}

// worker is the notification worker of the fixture's route.
func (f *fixture) worker() delivery.NotifyWorker { return delivery.NotifyWorker{Deliverer: f.dl} }

// work runs the notification worker on one notification, as River would.
func (f *fixture) work(w delivery.NotifyWorker, id int64, attempt int) error {
	return w.Work(f.ctx, &river.Job[delivery.NotifyArgs]{
		JobRow: &rivertype.JobRow{Attempt: attempt, MaxAttempts: 12, Queue: "email"}, Args: delivery.NotifyArgs{NotificationID: id}})
}

// startRiver runs real River workers for the email queue on the fixture's
// database and returns the queue to enqueue with.
func (f *fixture) startRiver(w delivery.NotifyWorker) *delivery.Queue {
	f.t.Helper()
	client, err := delivery.NewClient(f.st.Pool, delivery.Jobs{Deliverer: w.Deliverer, Routes: []delivery.Route{f.route},
		Register: []func(*river.Workers){f.sender.Register}, Periodic: []*river.PeriodicJob{f.sender.Periodic()},
		Log: f.sender.Log}, true)
	if err != nil {
		f.t.Fatal(err)
	}
	if err := client.Start(f.ctx); err != nil {
		f.t.Fatal(err)
	}
	f.t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = client.StopAndCancel(ctx)
	})
	q := delivery.NewQueue(client, []delivery.Route{f.route})
	return &q
}

// afterSend wraps a mailer: fn runs after the server accepted a mail and
// before its outcome is recorded; a panic or an exit from it stands for
// the worker dying right there.
type afterSend struct {
	Mailer
	fn func() error
}

func (a afterSend) Send(ctx context.Context, m *gomail.Msg, claim delivery.Claim) error {
	if claim == nil {
		return a.Mailer.Send(ctx, m, nil)
	}
	return a.Mailer.Send(ctx, m, func(ctx context.Context) (func(error), error) {
		record, err := claim(ctx)
		if record == nil {
			return nil, err
		}
		return func(sendErr error) {
			if sendErr == nil {
				if err := a.fn(); err != nil {
					sendErr = err
				}
			}
			record(sendErr)
		}, nil
	})
}

// status reads a notification's status, error and send attempts.
func (f *fixture) status(id int64) (status, reason string, attempts int) {
	f.t.Helper()
	err := f.st.Pool.QueryRow(f.ctx, `SELECT status, coalesce(error, ''), send_attempts FROM notifications WHERE id = $1`, id).
		Scan(&status, &reason, &attempts)
	if err != nil {
		f.t.Fatal(err)
	}
	return
}

// waitStatus polls until the notification reaches want.
func (f *fixture) waitStatus(id int64, want string) (reason string, attempts int) {
	f.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		s, r, a := f.status(id)
		if s == want {
			return r, a
		}
		if time.Now().After(deadline) {
			f.t.Fatalf("notification %d: status %q (%s), want %q", id, s, r, want)
		}
		time.Sleep(20 * time.Millisecond) // polling with a deadline
	}
}
