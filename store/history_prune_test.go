package store_test

import (
	"context"
	"fmt"
	"regexp"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"fmn/rules"
	"fmn/store"
	"fmn/store/storetest"
)

// TestHistoryReadsOneDayPerMessage: a user's history joins each
// notification to its message in that message's day of the log only (the
// join names the partition key, migration 0014), not in every day kept.
func TestHistoryReadsOneDayPerMessage(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := storetest.New(t)
	now := time.Now()
	if err := st.MakePartitions(ctx, now.AddDate(0, 0, -30), now); err != nil {
		t.Fatal(err)
	}
	var uid int64
	if err := st.Pool.QueryRow(ctx, `INSERT INTO users (name) VALUES ('alice') RETURNING id`).Scan(&uid); err != nil {
		t.Fatal(err)
	}
	// Three messages, two days apart, each with a recorded notification.
	for i, days := range []int{0, 2, 4} {
		err := st.InTx(ctx, func(tx pgx.Tx) error {
			var id int64
			if err := tx.QueryRow(ctx, `INSERT INTO messages (msg_id, topic, received_at, envelope)
				VALUES ($1, 't', now() - make_interval(days => $2), '{}') RETURNING id`, fmt.Sprint("h", i), days).Scan(&id); err != nil {
				return err
			}
			_, err := store.InsertNotifications(ctx, tx, id, []rules.Match{{UserID: uid}})
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	ns, err := st.ListNotifications(ctx, uid, 50, 0)
	if err != nil || len(ns) != 3 || ns[2].Message.MsgID != "h0" {
		t.Fatalf("history: %d notifications, %v", len(ns), err)
	}
	var plan string
	rows, err := st.Pool.Query(ctx, `EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) `+store.NotificationQuery+
		` WHERE n.user_id = $1 ORDER BY n.id DESC LIMIT 50`, uid)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var line string
		rows.Scan(&line)
		plan += line + "\n"
	}
	if rows.Err() != nil {
		t.Fatal(rows.Err())
	}
	// Each of the three notifications reads its message's partition once;
	// with the message id alone every one of the 38 days would be read
	// three times.
	read := 0
	for _, m := range regexp.MustCompile(`on messages_p\d+ m_\d+ \(actual rows=\d+ loops=(\d+)\)`).FindAllStringSubmatch(plan, -1) {
		var loops int
		fmt.Sscan(m[1], &loops)
		read += loops
	}
	if read != 3 {
		t.Fatalf("the history read message partitions %d times, want 3 (one per notification):\n%s", read, plan)
	}
}
