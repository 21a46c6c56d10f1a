package consumer

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"

	"fmn"
	"fmn/rules"
	"fmn/store"
	"fmn/store/storetest"
)

// TestRuleWithoutDestinationFillsHistory (issue 14, finding 4): a rule made
// before any destination is not dead. Its matches are recorded in the
// owner's history ("recorded", no destination, no delivery job), once per
// message even when replayed, naming the entry that hit; once the rule has
// a confirmed destination its matches are delivered instead.
func TestRuleWithoutDestinationFillsHistory(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := storetest.New(t)
	u, err := st.EnsureUser(ctx, "alice", "alice@example.org")
	if err != nil {
		t.Fatal(err)
	}
	rule, err := st.SaveRule(ctx, rules.Rule{UserID: u.ID, Name: "tests", Enabled: true,
		Track: rules.Track{Topics: []string{"org.fedoraproject.*.test.*"}}, Destinations: []int64{}})
	if err != nil {
		t.Fatal(err)
	}
	in := newIngester(t, st, nil)
	if err := in.Ingest(ctx, []Received{received(t, "", "m1", 0)}); err != nil {
		t.Fatal(err)
	}
	// A second ingester (another instance, or a restart) meets it again.
	if err := newIngester(t, st, nil).Ingest(ctx, []Received{received(t, "", "m1", 0)}); err != nil {
		t.Fatal(err)
	}
	ns, err := st.ListNotifications(ctx, u.ID, 10, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(ns) != 1 {
		t.Fatalf("history has %d notifications, want 1: %+v", len(ns), ns)
	}
	n := ns[0]
	if n.Status != "recorded" || n.DestinationID != 0 || n.RuleID == nil || *n.RuleID != rule.ID || n.RuleName != "tests" {
		t.Fatalf("history-only notification: %+v", n)
	}
	if n.Hit == nil || *n.Hit != (fmn.Hit{Field: "topics", Entry: "org.fedoraproject.*.test.*"}) {
		t.Fatalf("hit %+v, want the topic entry", n.Hit)
	}
	var jobs int
	if err := st.Pool.QueryRow(ctx, `SELECT count(*) FROM river_job WHERE kind <> 'confirm'`).Scan(&jobs); err != nil {
		t.Fatal(err)
	}
	if jobs != 0 {
		t.Fatalf("%d delivery jobs queued for a rule without destination", jobs)
	}

	// An unconfirmed destination cannot receive yet: still history only.
	var dest fmn.Destination
	err = st.InTx(ctx, func(tx pgx.Tx) error {
		var err error
		dest, err = store.CreateDestination(ctx, tx, u.ID, "email", "alice@example.org")
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	rule.Destinations = []int64{dest.ID}
	if _, err := st.SaveRule(ctx, rule); err != nil {
		t.Fatal(err)
	}
	if err := in.Ingest(ctx, []Received{received(t, "", "m2", 0)}); err != nil {
		t.Fatal(err)
	}
	// Confirmed, it receives.
	code, err := st.NewConfirmCode(ctx, dest.ID)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.ConfirmDestination(ctx, u.ID, dest.ID, code); err != nil {
		t.Fatal(err)
	}
	if err := in.Ingest(ctx, []Received{received(t, "", "m3", 0)}); err != nil {
		t.Fatal(err)
	}
	ns, err = st.ListNotifications(ctx, u.ID, 10, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(ns) != 3 || ns[1].Status != "recorded" || ns[0].Status != "pending" || ns[0].DestinationID != dest.ID {
		t.Fatalf("after a destination was attached and confirmed: %+v", ns)
	}
	if err := st.Pool.QueryRow(ctx, `SELECT count(*) FROM river_job WHERE kind = 'notify'`).Scan(&jobs); err != nil {
		t.Fatal(err)
	}
	if jobs != 1 {
		t.Fatalf("%d delivery jobs, want 1", jobs)
	}
}
