package email

import (
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"fmn"
	"fmn/delivery"
	"fmn/rules"
	"fmn/store"
)

// TestDeletedDestinationSendsNothing (issue 14, finding 5): delivery jobs
// queued for a destination deleted before they run end cleanly and send
// nothing; the job of the user's other destination, queued with them, is
// mailed (so the workers did run). Real River workers, a real SMTP server.
func TestDeletedDestinationSendsNothing(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	var kept fmn.Destination
	err := f.st.InTx(f.ctx, func(tx pgx.Tx) error {
		var err error
		if kept, err = store.CreateDestination(f.ctx, tx, f.userID, fmn.KindEmail, "alice.new@example.org"); err != nil {
			return err
		}
		kept, err = store.ConfirmNow(f.ctx, tx, kept.ID)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	insertOnly, err := delivery.NewClient(f.st.Pool, delivery.Jobs{Routes: []delivery.Route{f.route}, Log: f.sender.Log}, false)
	if err != nil {
		t.Fatal(err)
	}
	q := delivery.NewQueue(insertOnly, []delivery.Route{f.route})
	err = f.st.InTx(f.ctx, func(tx pgx.Tx) error {
		ids, err := store.InsertMessages(f.ctx, tx, []store.NewMessage{{MsgID: "deleted-1", Meta: bodhiMeta(1), Envelope: []byte(`{}`)}})
		if err != nil {
			return err
		}
		ns, err := store.InsertNotifications(f.ctx, tx, ids[0], []rules.Match{
			{UserID: f.userID, RuleID: f.ruleID, DestinationID: f.destID}, {UserID: f.userID, RuleID: f.ruleID, DestinationID: kept.ID}})
		if err != nil {
			return err
		}
		return q.Enqueue(f.ctx, tx, ns)
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := f.st.DeleteDestination(f.ctx, f.userID, f.destID); err != nil {
		t.Fatal(err)
	}
	f.startRiver(f.worker())
	deadline := time.Now().Add(30 * time.Second)
	for {
		var open int
		if err := f.st.Pool.QueryRow(f.ctx, `SELECT count(*) FROM river_job WHERE queue = 'email' AND finalized_at IS NULL`).Scan(&open); err != nil {
			t.Fatal(err)
		}
		if open == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d delivery jobs still open", open)
		}
		time.Sleep(20 * time.Millisecond) // polling with a deadline
	}
	ms := f.smtp.WaitFor(t, 1, 10*time.Second)
	if len(ms) != 1 || strings.Join(ms[0].To, ",") != "alice.new@example.org" {
		t.Fatalf("mails sent: %d, to %v", len(ms), ms[0].To)
	}
	var bad, given int
	f.st.Pool.QueryRow(f.ctx, `SELECT count(*) FROM river_job WHERE queue = 'email' AND state NOT IN ('completed', 'cancelled')`).Scan(&bad)
	f.st.Pool.QueryRow(f.ctx, `SELECT count(*) FROM notifications WHERE destination_id IS NULL AND status = 'dead' AND error = 'destination deleted'`).Scan(&given)
	if bad != 0 || given != 1 {
		t.Fatalf("%d jobs neither completed nor cancelled; %d notifications given up, want 1", bad, given)
	}
}
