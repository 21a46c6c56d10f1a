package store_test

import (
	"context"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"fmn/rules"
	"fmn/rules/meta"
	"fmn/store"
	"fmn/store/storetest"
)

// storeAt stores a message received at t (its partition made first) with
// a notification for dest, and returns the message id.
func storeAt(t *testing.T, st *store.Store, msgID string, at time.Time, userID, dest int64) int64 {
	t.Helper()
	ctx := context.Background()
	if err := st.MakePartitions(ctx, at, at); err != nil {
		t.Fatal(err)
	}
	sent := at
	var id int64
	err := st.InTx(ctx, func(tx pgx.Tx) error {
		ids, err := store.InsertMessageBatch(ctx, tx, []store.NewMessage{{MsgID: msgID, SentAt: &sent,
			Meta:     meta.Metadata{Topic: "org.fedoraproject.prod.bodhi.update.comment", App: "bodhi", Usernames: []string{"alice"}, Packages: []string{"kernel"}},
			Envelope: []byte(`{}`)}})
		if err != nil {
			return err
		}
		if id = ids[0]; id == 0 {
			return fmt.Errorf("%s already stored", msgID)
		}
		if _, err := tx.Exec(ctx, `UPDATE messages SET received_at = $2 WHERE id = $1`, id, at); err != nil {
			return err
		}
		_, err = store.InsertNotifications(ctx, tx, id, []rules.Match{{UserID: userID, DestinationID: dest}})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func partitionNames(t *testing.T, st *store.Store) []string {
	t.Helper()
	ps, err := st.Partitions(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, p := range ps {
		out = append(out, p.Name)
	}
	return out
}

// TestRetentionJobDropsExpiredDays is issue 14's tenth finding: nothing was
// ever pruned. The retention job drops each day of the message log older
// than the retention, with its notifications and old digests, and makes
// the coming week's partitions; what is younger stays, and the preview and
// the history still answer.
func TestRetentionJobDropsExpiredDays(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := storetest.New(t)
	u, _ := st.EnsureUser(ctx, "alice", "alice@example.org")
	dest := storetest.ConfirmedDestination(t, st, u.ID, "alice@example.org")
	now := time.Now()
	old := storeAt(t, st, "2026-old", now.AddDate(0, 0, -100), u.ID, dest)
	edge := storeAt(t, st, "2026-edge", now.AddDate(0, 0, -89), u.ID, dest)
	recent := storeAt(t, st, "2026-recent", now.Add(-time.Hour), u.ID, dest)
	if _, err := st.Pool.Exec(ctx, `INSERT INTO digests (destination_id, items, status, created_at) VALUES
		($1, 1, 'sent', now() - interval '100 days'), ($1, 1, 'sent', now() - interval '1 day')`, dest); err != nil {
		t.Fatal(err)
	}
	oldDay := "messages_p" + now.AddDate(0, 0, -100).UTC().Format("20060102")
	if names := partitionNames(t, st); !contains(names, oldDay) {
		t.Fatalf("no partition %s among %v", oldDay, names)
	}

	w := &store.RetentionWorker{Store: st, Keep: 90 * 24 * time.Hour, Log: slog.New(slog.DiscardHandler)}
	if err := w.Work(ctx, nil); err != nil {
		t.Fatal(err)
	}
	names := partitionNames(t, st)
	if contains(names, oldDay) {
		t.Fatalf("the partition of 100 days ago survived: %v", names)
	}
	ahead := "messages_p" + now.AddDate(0, 0, store.PartitionsAhead).UTC().Format("20060102")
	if !contains(names, ahead) || !contains(names, "messages_p"+now.AddDate(0, 0, -89).UTC().Format("20060102")) {
		t.Fatalf("partitions after the job: %v; want the day of 89 days ago and up to %s", names, ahead)
	}
	var ids []int64
	rows, _ := st.Pool.Query(ctx, `SELECT id FROM messages ORDER BY id`)
	ids, _ = pgx.CollectRows(rows, pgx.RowTo[int64])
	if len(ids) != 2 || ids[0] != edge || ids[1] != recent {
		t.Fatalf("messages left %v; want %d and %d (not %d)", ids, edge, recent, old)
	}
	var notes, digests int
	st.Pool.QueryRow(ctx, `SELECT count(*) FROM notifications`).Scan(&notes)
	st.Pool.QueryRow(ctx, `SELECT count(*) FROM digests`).Scan(&digests)
	if notes != 2 || digests != 1 {
		t.Fatalf("%d notifications and %d digests left, want 2 and 1", notes, digests)
	}

	// The preview reads the last 7 days; the history pages back.
	p, err := st.PreviewRule(ctx, rules.Rule{Track: rules.Track{Packages: []string{"kernel"}}}, "alice", 7, 20)
	if err != nil || p.Count != 1 || p.Messages[0].MsgID != "2026-recent" {
		t.Fatalf("preview after the job: %+v %v", p, err)
	}
	ns, err := st.ListNotifications(ctx, u.ID, 50, 0)
	if err != nil || len(ns) != 2 || ns[0].Message.MsgID != "2026-recent" || ns[1].Message.MsgID != "2026-edge" {
		t.Fatalf("history after the job: %+v %v", ns, err)
	}

	// A second run finds nothing to do.
	if err := w.Work(ctx, nil); err != nil {
		t.Fatal(err)
	}
	if again := partitionNames(t, st); len(again) != len(names) {
		t.Fatalf("second run changed the partitions: %v → %v", names, again)
	}
}

func contains(l []string, s string) bool {
	for _, x := range l {
		if x == s {
			return true
		}
	}
	return false
}

// TestRedeliveredAcrossDaysStoredOnce: msg_id is no longer a unique index
// (the log is partitioned by day), yet a message re-sent days later, or
// arriving again just after midnight, is still stored once, including when
// two transactions store it at the same moment.
func TestRedeliveredAcrossDaysStoredOnce(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := storetest.New(t)
	insert := func(msgID string, sent *time.Time) int64 {
		t.Helper()
		var id int64
		err := st.InTx(ctx, func(tx pgx.Tx) error {
			ids, err := store.InsertMessageBatch(ctx, tx, []store.NewMessage{{MsgID: msgID, SentAt: sent,
				Meta: meta.Metadata{Topic: "t"}, Envelope: []byte(`{}`)}})
			if err == nil {
				id = ids[0]
			}
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		return id
	}
	now := time.Now()
	for _, c := range []struct {
		name     string
		received time.Time  // when the first copy was stored
		sent     *time.Time // the envelope's own time, the same in every copy
	}{
		{"re-sent five days later", now.AddDate(0, 0, -5), at(now.AddDate(0, 0, -5))},
		{"again after midnight", dayStart(now).Add(-time.Second), at(dayStart(now).Add(-2 * time.Second))},
		{"no timestamp, a month later", now.AddDate(0, 0, -30), nil},
		{"a clock a day ahead", now.AddDate(0, 0, -2), at(now.AddDate(0, 0, -1))},
	} {
		msgID := "2026-" + strings.ReplaceAll(c.name, " ", "-")
		if err := st.MakePartitions(ctx, c.received, c.received); err != nil {
			t.Fatal(err)
		}
		id := insert(msgID, c.sent)
		if _, err := st.Pool.Exec(ctx, `UPDATE messages SET received_at = $2 WHERE id = $1`, id, c.received); err != nil {
			t.Fatal(err)
		}
		if again := insert(msgID, c.sent); again != 0 {
			t.Errorf("%s: stored a second time (id %d)", c.name, again)
		}
	}

	// Two transactions with the same msg_ids at once: the second waits for
	// the first and then finds them.
	const n = 8
	var wg sync.WaitGroup
	got := make([][]int64, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var msgs []store.NewMessage
			for k := range 50 {
				sent := now
				msgs = append(msgs, store.NewMessage{MsgID: fmt.Sprintf("2026-race-%d", k), SentAt: &sent, Meta: meta.Metadata{Topic: "t"}, Envelope: []byte(`{}`)})
			}
			err := st.InTx(ctx, func(tx pgx.Tx) error {
				var err error
				got[i], err = store.InsertMessageBatch(ctx, tx, msgs)
				return err
			})
			if err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	stored := 0
	for _, ids := range got {
		for _, id := range ids {
			if id != 0 {
				stored++
			}
		}
	}
	var rows int
	st.Pool.QueryRow(ctx, `SELECT count(*) FROM messages WHERE msg_id LIKE '2026-race-%'`).Scan(&rows)
	if stored != 50 || rows != 50 {
		t.Fatalf("%d transactions storing the same 50 messages stored %d (%d rows), want 50", n, stored, rows)
	}
}

func at(t time.Time) *time.Time { return &t }

func dayStart(t time.Time) time.Time {
	y, m, d := t.UTC().Date()
	return time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
}

// TestEveryPartitionHasTheIndexes: the preview's GIN indexes
// (and the others) exist on every day of the log, those the migration made
// and those made later by the job, and each compresses envelopes as the
// log says (lz4, migration 0014).
func TestEveryPartitionHasTheIndexes(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := storetest.New(t)
	if err := st.MakePartitions(ctx, time.Now().AddDate(0, 0, -40), time.Now()); err != nil {
		t.Fatal(err)
	}
	parent := indexDefs(t, st, "messages")
	for _, want := range []string{"gin (usernames) WHERE (usernames <> '{}'::text[])", "gin (flatpaks) WHERE (flatpaks <> '{}'::text[])", "btree (topic text_pattern_ops)", "btree (msg_id)"} {
		if !contains(parent, want) {
			t.Fatalf("the log has no index %q: %v", want, parent)
		}
	}
	names := partitionNames(t, st)
	if len(names) < 40 {
		t.Fatalf("only %d partitions", len(names))
	}
	compression := func(table string) string {
		var c string
		if err := st.Pool.QueryRow(ctx, `SELECT attcompression::text FROM pg_attribute WHERE attrelid = $1::regclass AND attname = 'envelope'`,
			table).Scan(&c); err != nil {
			t.Fatal(err)
		}
		return c
	}
	want := compression("messages")
	for _, p := range names {
		if got := indexDefs(t, st, p); strings.Join(got, "\n") != strings.Join(parent, "\n") {
			t.Fatalf("partition %s has indexes\n%s\nwant\n%s", p, strings.Join(got, "\n"), strings.Join(parent, "\n"))
		}
		if got := compression(p); got != want {
			t.Fatalf("partition %s compresses envelopes with %q, the log with %q", p, got, want)
		}
	}
}

// indexDefs lists a table's index definitions without names.
func indexDefs(t *testing.T, st *store.Store, table string) []string {
	t.Helper()
	rows, err := st.Pool.Query(context.Background(), `SELECT substring(pg_get_indexdef(indexrelid) from ' USING (.*)$')
		FROM pg_index WHERE indrelid = $1::regclass`, table)
	if err != nil {
		t.Fatal(err)
	}
	defs, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(defs)
	return defs
}

// TestDedupeProbesTheIndex: the plan the ingester's insert is cached with
// (a generic one, made whatever the partitions hold then) looks each msg_id
// up in the msg_id index of the days that can hold it, never reads a whole
// day: a plan hashing the day's partition was cached on fresh days and
// grew with them (50 ms for a batch of 18 after 1,700 messages).
func TestDedupeProbesTheIndex(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := storetest.New(t)
	conn, err := st.Pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, `PREPARE ins AS `+store.InsertMessageBatchSQL); err != nil {
		t.Fatal(err)
	}
	defer conn.Exec(ctx, `DEALLOCATE ins`)
	if _, err := conn.Exec(ctx, `SET plan_cache_mode = force_generic_plan`); err != nil {
		t.Fatal(err)
	}
	defer conn.Exec(ctx, `RESET plan_cache_mode`)
	rows, err := conn.Query(ctx, `EXPLAIN (COSTS OFF) EXECUTE ins(`+strings.Repeat("NULL, ", 16)+`now() - interval '1 day')`)
	if err != nil {
		t.Fatal(err)
	}
	lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	plan := strings.Join(lines, "\n")
	if strings.Contains(plan, "Seq Scan on messages_p") || strings.Contains(plan, "Hash") || !strings.Contains(plan, "msg_id_idx") {
		t.Fatalf("the insert's generic plan reads whole days or not by msg_id:\n%s", plan)
	}
}
