package delivery_test

import (
	"context"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"

	"fmn/delivery"
	"fmn/metrics"
	"fmn/rules"
	"fmn/rules/meta"
	"fmn/store"
	"fmn/store/storetest"
)

// harness is a store on its own database with River working the given
// channels' queues, as `fmn work` does.
type harness struct {
	t       testing.TB
	st      *store.Store
	jobs    *river.Client[pgx.Tx]
	metrics *metrics.Metrics
	log     *slog.Logger
	seq     int
}

func newHarness(t testing.TB) *harness {
	t.Helper()
	return &harness{t: t, st: storetest.New(t), metrics: metrics.New(),
		log: slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))}
}

// start starts the workers; they stop at the test's end.
func (h *harness) start(w delivery.Workers) {
	h.t.Helper()
	jobs, err := delivery.NewClient(h.st.Pool, w, true, h.log)
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
	h.jobs = jobs
}

func (h *harness) user(name string) int64 {
	h.t.Helper()
	u, err := h.st.EnsureUser(context.Background(), name, "")
	if err != nil {
		h.t.Fatal(err)
	}
	return u.ID
}

// addDestination does what POST /api/v1/destinations does from a token:
// validate, store unconfirmed, queue the confirmation, in one transaction.
func (h *harness) addDestination(userID int64, kind, address string) store.Destination {
	h.t.Helper()
	addr, err := delivery.ValidateAddress(kind, address)
	if err != nil {
		h.t.Fatal(err)
	}
	var d store.Destination
	err = h.st.InTx(context.Background(), func(tx pgx.Tx) error {
		var err error
		if d, err = store.CreateDestination(context.Background(), tx, userID, kind, addr); err != nil {
			return err
		}
		_, err = h.jobs.InsertTx(context.Background(), tx, delivery.ConfirmJob(kind, d.ID), nil)
		return err
	})
	if err != nil {
		h.t.Fatal(err)
	}
	return d
}

// confirmedDestination stores a destination confirmed already.
func (h *harness) confirmedDestination(userID int64, kind, address string) store.Destination {
	h.t.Helper()
	addr, err := delivery.ValidateAddress(kind, address)
	if err != nil {
		h.t.Fatal(err)
	}
	var d store.Destination
	err = h.st.InTx(context.Background(), func(tx pgx.Tx) error {
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

// notify stores one message matched to the destinations and queues its
// delivery jobs in one transaction, as the consumer does; it returns the
// notification ids in destination order.
func (h *harness) notify(md meta.Metadata, ds ...store.Destination) []int64 {
	h.t.Helper()
	ctx := context.Background()
	h.seq++
	var ids []int64
	err := h.st.InTx(ctx, func(tx pgx.Tx) error {
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
		return delivery.Queue{Client: h.jobs}.Enqueue(ctx, tx, ns)
	})
	if err != nil {
		h.t.Fatal(err)
	}
	return ids
}

func bodhi(summary string) meta.Metadata {
	return meta.Metadata{Topic: "org.fedoraproject.prod.bodhi.update.comment", App: "bodhi", Agent: "bob",
		Usernames: []string{"alice"}, Packages: []string{"kernel"}, Summary: summary,
		Link: "https://bodhi.fedoraproject.org/updates/FEDORA-2026-1"}
}

// waitStatus polls a notification until it has one of the statuses.
func (h *harness) waitStatus(id int64, within time.Duration, want ...string) store.Notification {
	h.t.Helper()
	deadline := time.Now().Add(within)
	for {
		n, err := h.st.GetNotification(context.Background(), id)
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

func (h *harness) destination(id int64) store.Destination {
	h.t.Helper()
	d, err := h.st.DestinationByID(context.Background(), id)
	if err != nil {
		h.t.Fatal(err)
	}
	return d
}
