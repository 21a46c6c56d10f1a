// Package deliverytest runs the delivery path on a database of a test's
// own, as `fmn work` does, for the channel packages' tests: store a
// destination, store a matched message, wait for its notification.
package deliverytest

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/riverqueue/river"

	"fmn"
	"fmn/delivery"
	"fmn/metrics"
	"fmn/rules"
	"fmn/rules/meta"
	"fmn/store"
	"fmn/store/storetest"
)

// Harness is a store on its own database with River working the given
// routes' queues.
type Harness struct {
	t       testing.TB
	St      *store.Store
	Jobs    *river.Client[pgx.Tx]
	Queue   delivery.Queue
	Metrics *metrics.Metrics
	Log     *slog.Logger
	// BeforeCommit, when set, runs in Notify's transaction after the
	// notifications are stored and before their jobs are queued (a test
	// leaves them as a killed worker would).
	BeforeCommit func(ctx context.Context, tx pgx.Tx, ids []int64) error
	seq          int
}

// New makes a harness on a database of the test's own.
func New(t testing.TB) *Harness {
	t.Helper()
	return &Harness{t: t, St: storetest.New(t), Metrics: metrics.New(),
		Log: slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))}
}

// Start works the routes' queues until the test's end.
func (h *Harness) Start(routes ...delivery.Route) {
	h.t.Helper()
	dl := delivery.NewDeliverer(h.St, h.Metrics, h.Log, routes...)
	for i := range routes {
		routes[i].Later = false
	}
	jobs, err := delivery.NewClient(h.St.Pool, delivery.Jobs{Deliverer: dl, Routes: routes, Log: h.Log}, true)
	if err != nil {
		h.t.Fatal(err)
	}
	if err := jobs.Start(context.Background()); err != nil {
		h.t.Fatal(err)
	}
	h.t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = jobs.StopAndCancel(ctx)
	})
	h.Jobs, h.Queue = jobs, delivery.NewQueue(jobs, routes)
}

// User makes a user.
func (h *Harness) User(name string) int64 {
	h.t.Helper()
	u, err := h.St.EnsureUser(context.Background(), name, "")
	if err != nil {
		h.t.Fatal(err)
	}
	return u.ID
}

// AddDestination does what POST /api/v1/destinations does from a token:
// validate, store unconfirmed, queue the confirmation, in one transaction.
func (h *Harness) AddDestination(userID int64, kind fmn.Kind, address string) fmn.Destination {
	h.t.Helper()
	addr, err := fmn.ValidateAddress(kind, address)
	if err != nil {
		h.t.Fatal(err)
	}
	var d fmn.Destination
	err = h.St.InTx(context.Background(), func(tx pgx.Tx) error {
		var err error
		if d, err = store.CreateDestination(context.Background(), tx, userID, kind, addr); err != nil {
			return err
		}
		return h.Queue.Confirm(context.Background(), tx, d)
	})
	if err != nil {
		h.t.Fatal(err)
	}
	return d
}

// ConfirmedDestination stores a destination confirmed already.
func (h *Harness) ConfirmedDestination(userID int64, kind fmn.Kind, address string) fmn.Destination {
	h.t.Helper()
	addr, err := fmn.ValidateAddress(kind, address)
	if err != nil {
		h.t.Fatal(err)
	}
	var d fmn.Destination
	err = h.St.InTx(context.Background(), func(tx pgx.Tx) error {
		var err error
		if d, err = store.CreateDestination(context.Background(), tx, userID, kind, addr); err != nil {
			return err
		}
		d, err = store.ConfirmNow(context.Background(), tx, d.ID)
		return err
	})
	if err != nil {
		h.t.Fatal(err)
	}
	return d
}

// Notify stores one message matched to the destinations and queues its
// delivery jobs in one transaction, as the consumer does; it returns the
// notification ids in destination order.
func (h *Harness) Notify(md meta.Metadata, ds ...fmn.Destination) []int64 {
	h.t.Helper()
	ctx := context.Background()
	h.seq++
	var ids []int64
	err := h.St.InTx(ctx, func(tx pgx.Tx) error {
		mids, err := store.InsertMessages(ctx, tx, []store.NewMessage{{
			MsgID: fmt.Sprintf("test-%d-%d", time.Now().UnixNano(), h.seq), Meta: md, Envelope: []byte(`{}`)}})
		if err != nil {
			return err
		}
		var ms []rules.Match
		for _, d := range ds {
			var ruleID int64
			if err := tx.QueryRow(ctx, `INSERT INTO rules (user_id, name) VALUES ($1, 'test') RETURNING id`, d.UserID).Scan(&ruleID); err != nil {
				return err
			}
			ms = append(ms, rules.Match{UserID: d.UserID, RuleID: ruleID, DestinationID: d.ID})
		}
		ns, err := store.InsertNotifications(ctx, tx, mids[0], ms)
		if err != nil {
			return err
		}
		byDest := map[int64]int64{}
		for _, n := range ns {
			byDest[n.DestinationID] = n.ID
		}
		for _, d := range ds {
			ids = append(ids, byDest[d.ID])
		}
		if h.BeforeCommit != nil {
			if err := h.BeforeCommit(ctx, tx, ids); err != nil {
				return err
			}
		}
		return h.Queue.Enqueue(ctx, tx, ns)
	})
	if err != nil {
		h.t.Fatal(err)
	}
	return ids
}

// Bodhi is a bodhi message with the summary.
func Bodhi(summary string) meta.Metadata {
	return meta.Metadata{Topic: "org.fedoraproject.prod.bodhi.update.comment", App: "bodhi", Agent: "bob",
		Usernames: []string{"alice"}, Packages: []string{"kernel"}, Summary: summary,
		Link: "https://bodhi.fedoraproject.org/updates/FEDORA-2026-1"}
}

// WaitStatus polls a notification until it has one of the statuses.
func (h *Harness) WaitStatus(id int64, within time.Duration, want ...fmn.Status) fmn.Notification {
	h.t.Helper()
	deadline := time.Now().Add(within)
	for {
		n, err := h.St.GetNotification(context.Background(), id)
		if err != nil {
			h.t.Fatal(err)
		}
		for _, w := range want {
			if n.Status == w {
				return n
			}
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("notification %d is %q (%s) after %s, want %v", id, n.Status, n.Error, within, want)
		}
		time.Sleep(20 * time.Millisecond) // polling the database with a deadline
	}
}

// Destination reads a destination.
func (h *Harness) Destination(id int64) fmn.Destination {
	h.t.Helper()
	d, err := h.St.DestinationByID(context.Background(), id)
	if err != nil {
		h.t.Fatal(err)
	}
	return d
}

// AsInterrupted is a BeforeCommit that leaves the notifications 'sending',
// claimed with one attempt, as a worker killed during the send leaves them.
func AsInterrupted(ctx context.Context, tx pgx.Tx, ids []int64) error {
	_, err := tx.Exec(ctx, `UPDATE notifications SET status = 'sending', send_attempts = 1, sending_at = now()
		WHERE id = ANY($1)`, ids)
	return err
}

// Bench runs a package's tests and benchmarks and then prints lines, one
// figure each, in name order: the testing package runs a benchmark several
// times to find its b.N, so a benchmark stores its last measurement in
// lines and only that is printed, once.
func Bench(m *testing.M, lines map[string]string) {
	code := m.Run()
	for _, k := range slices.Sorted(maps.Keys(lines)) {
		fmt.Println(lines[k])
	}
	os.Exit(code)
}

// Count reads one counter of a vector, e.g.
// h.Count(h.Metrics.Failures, "push").
func (h *Harness) Count(vec *prometheus.CounterVec, labels ...string) float64 {
	h.t.Helper()
	var m dto.Metric
	if err := vec.WithLabelValues(labels...).Write(&m); err != nil {
		h.t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}
