package consumer_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"

	"fmn"
	"fmn/consumer"
	"fmn/delivery"
	"fmn/metrics"
	"fmn/rules"
	"fmn/store"
	"fmn/store/storetest"
)

// TestRuleEditsWhileMessagesFlow edits rules while two ingesters store
// messages, and checks every message against the only two answers a whole
// index can give. Rule A flips between "topics org.test.prod.demo.*, to d1"
// and "apps demo, to d2": both track every message, so a message matched
// against a half-applied edit would reach neither (old entry gone, new one
// not yet there) or both. Rules B and C are swapped by one transaction of
// two statements (two version bumps): exactly one of d3 and d4 must hear
// of each message.
func TestRuleEditsWhileMessagesFlow(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := storetest.New(t)
	u, err := st.EnsureUser(ctx, "alice", "alice@example.org")
	if err != nil {
		t.Fatal(err)
	}
	d1 := storetest.ConfirmedDestination(t, st, u.ID, "a1@example.org")
	d2 := storetest.ConfirmedDestination(t, st, u.ID, "a2@example.org")
	d3 := storetest.ConfirmedDestination(t, st, u.ID, "a3@example.org")
	d4 := storetest.ConfirmedDestination(t, st, u.ID, "a4@example.org")
	shapeX := rules.Rule{UserID: u.ID, Name: "A", Enabled: true, Track: rules.Track{Topics: []string{"org.test.prod.demo.*"}}, Destinations: []int64{d1}}
	shapeY := rules.Rule{UserID: u.ID, Name: "A", Enabled: true, Track: rules.Track{Apps: []string{"demo"}}, Destinations: []int64{d2}}
	a, err := st.SaveRule(ctx, shapeX)
	if err != nil {
		t.Fatal(err)
	}
	b, err := st.SaveRule(ctx, rules.Rule{UserID: u.ID, Name: "B", Enabled: true, Track: rules.Track{Apps: []string{"demo"}}, Destinations: []int64{d3}})
	if err != nil {
		t.Fatal(err)
	}
	c, err := st.SaveRule(ctx, rules.Rule{UserID: u.ID, Name: "C", Enabled: false, Track: rules.Track{Topics: []string{"*"}}, Destinations: []int64{d4}})
	if err != nil {
		t.Fatal(err)
	}

	jobs, err := delivery.NewClient(st.Pool, delivery.Jobs{Log: slog.New(slog.NewTextHandler(io.Discard, nil))}, false)
	if err != nil {
		t.Fatal(err)
	}
	// The ingesters share one Live, as the ingesters of several sources
	// would; each is used by its own goroutine only (an Ingester is not
	// for concurrent use).
	live := rules.NewLive(store.RuleSource{})
	newIngester := func() *consumer.Ingester {
		return &consumer.Ingester{Store: st, Rules: live, Queue: delivery.NewQueue(jobs, []delivery.Route{{Kind: fmn.KindEmail, Attempts: 12}}),
			Metrics: metrics.New(), Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	}

	const edits, ingesters = 20, 2
	stop := make(chan struct{})
	// The editor waits for a few batches between edits, so that messages
	// meet every state (and every transition) of the rules.
	progress := make(chan struct{}, 1)
	editErr := make(chan error, 1)
	go func() {
		defer close(editErr)
		defer close(stop)
		for i := range edits {
			for range 3 {
				<-progress
			}
			shape := shapeX
			if i%2 == 0 {
				shape = shapeY
			}
			shape.ID = a.ID
			if _, err := st.SaveRule(ctx, shape); err != nil {
				editErr <- err
				return
			}
			err := st.InTx(ctx, func(tx pgx.Tx) error {
				if _, err := tx.Exec(ctx, `UPDATE rules SET enabled = NOT enabled WHERE id = $1`, b.ID); err != nil {
					return err
				}
				_, err := tx.Exec(ctx, `UPDATE rules SET enabled = NOT enabled WHERE id = $1`, c.ID)
				return err
			})
			if err != nil {
				editErr <- err
				return
			}
		}
	}()
	var wg sync.WaitGroup
	ingErr := make(chan error, ingesters)
	for g := range ingesters {
		wg.Add(1)
		ing := newIngester()
		go func() {
			defer wg.Done()
			for n := 0; ; n++ {
				select {
				case <-stop:
					return
				default:
				}
				batch := make([]consumer.Received, 5)
				for i := range batch {
					id := fmt.Sprintf("m-%d-%d-%d", g, n, i)
					raw, _ := json.Marshal(map[string]any{"topic": "org.test.prod.demo.thing", "msg_id": id, "msg": map[string]any{"n": n}})
					batch[i] = consumer.Received{Endpoint: "test", Envelope: consumer.Envelope{
						Topic: "org.test.prod.demo.thing", MsgID: id, Body: map[string]any{"n": float64(n)}, Raw: raw}}
				}
				if err := ing.Ingest(ctx, batch); err != nil {
					ingErr <- err
					return
				}
				select {
				case progress <- struct{}{}:
				default:
				}
			}
		}()
	}
	wg.Wait()
	if err := <-editErr; err != nil {
		t.Fatalf("edit: %v", err)
	}
	close(ingErr)
	if err := <-ingErr; err != nil {
		t.Fatalf("ingest: %v", err)
	}

	rows, err := st.Pool.Query(ctx, `SELECT m.msg_id, coalesce(array_agg(n.destination_id ORDER BY n.destination_id) FILTER (WHERE n.id IS NOT NULL), '{}')
		FROM messages m LEFT JOIN notifications n ON n.message_id = m.id GROUP BY m.msg_id`)
	if err != nil {
		t.Fatal(err)
	}
	got, err := pgx.CollectRows(rows, pgx.RowToStructByPos[struct {
		MsgID string
		Dests []int64
	}])
	if err != nil {
		t.Fatal(err)
	}
	var stored int
	if err := st.Pool.QueryRow(ctx, `SELECT count(*) FROM messages`).Scan(&stored); err != nil || stored != len(got) {
		t.Fatalf("%d messages stored, %d with notifications (err %v)", stored, len(got), err)
	}
	seen := map[int64]int{}
	for _, m := range got {
		if len(m.Dests) != 2 || (m.Dests[0] != d1 && m.Dests[0] != d2) || (m.Dests[1] != d3 && m.Dests[1] != d4) {
			t.Fatalf("message %s went to %v: want one of d1=%d/d2=%d and one of d3=%d/d4=%d", m.MsgID, m.Dests, d1, d2, d3, d4)
		}
		seen[m.Dests[0]]++
		seen[m.Dests[1]]++
	}
	if live.Loads.Load() != 1 {
		t.Errorf("%d full loads: edits should have been applied incrementally", live.Loads.Load())
	}
	if seen[d1] == 0 || seen[d2] == 0 || seen[d3] == 0 || seen[d4] == 0 || live.Updates.Load() < 5 {
		t.Errorf("the edits and the messages did not interleave: destinations hit %v, %d updates", seen, live.Updates.Load())
	}
	t.Logf("destinations hit %v; %d incremental updates", seen, live.Updates.Load())
}
