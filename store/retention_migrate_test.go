package store

import (
	"context"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// TestRetentionMigrationConvertsData: a database made before migration
// 0011 (every other migration applied, as on a `make run` data folder
// that saw the later ones first) holds messages of three days and their
// notifications; after Migrate they are all there, each in its day's
// partition, the id sequence goes on, dedupe still knows them, and the
// history joins them.
func TestRetentionMigrationConvertsData(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	admin := os.Getenv("FMN_TEST_DATABASE_URL") // storetest's server (storetest imports this package)
	if admin == "" {
		t.Fatal("FMN_TEST_DATABASE_URL is not set: run `make test`")
	}
	name := fmt.Sprintf("fmn_test_convert_%d", time.Now().UnixNano())
	ac, err := pgx.Connect(ctx, admin)
	if err != nil {
		t.Fatal(err)
	}
	defer ac.Close(ctx)
	if _, err := ac.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ac.Exec(context.Background(), "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)") })
	u, _ := url.Parse(admin)
	u.Path = "/" + name
	st, err := Open(ctx, u.String())
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()

	ms, err := loadMigrations()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Pool.Exec(ctx, `CREATE TABLE schema_migrations (
		version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())`); err != nil {
		t.Fatal(err)
	}
	for _, m := range ms {
		// 0014 and later were written with 0011 on main: no database
		// applies them before it (0014's trigger on messages is one that
		// 0011 would refuse to move).
		if m.version == 11 || m.version == 12 || m.version >= 14 {
			continue
		}
		if _, err := st.Pool.Exec(ctx, m.sql); err != nil {
			t.Fatalf("apply %s: %v", m.name, err)
		}
		st.Pool.Exec(ctx, `INSERT INTO schema_migrations VALUES ($1, $2)`, m.version, m.name)
	}
	var uid, dest int64
	if err := st.Pool.QueryRow(ctx, `INSERT INTO users (name) VALUES ('alice') RETURNING id`).Scan(&uid); err != nil {
		t.Fatal(err)
	}
	if err := st.Pool.QueryRow(ctx, `INSERT INTO destinations (user_id, kind, address, confirmed_at)
		VALUES ($1, 'email', 'alice@example.org', now()) RETURNING id`, uid).Scan(&dest); err != nil {
		t.Fatal(err)
	}
	for day := range 3 {
		for k := range 4 {
			if _, err := st.Pool.Exec(ctx, `WITH m AS (
					INSERT INTO messages (msg_id, topic, usernames, packages, received_at, envelope)
					VALUES ($1, 'org.fedoraproject.prod.bodhi.update.comment', '{alice}', '{kernel}', now() - make_interval(days => $2), '{}')
					RETURNING id)
				INSERT INTO notifications (message_id, user_id, destination_id, status) SELECT id, $3, $4, 'sent' FROM m`,
				fmt.Sprintf("2026-old-%d-%d", day, k), day, uid, dest); err != nil {
				t.Fatal(err)
			}
		}
	}
	var maxID int64
	st.Pool.QueryRow(ctx, `SELECT max(id) FROM messages`).Scan(&maxID)

	if err := Migrate(ctx, st.Pool, slog.New(slog.DiscardHandler)); err != nil {
		t.Fatal(err)
	}
	var msgs, notes, parts int
	st.Pool.QueryRow(ctx, `SELECT count(*) FROM messages`).Scan(&msgs)
	st.Pool.QueryRow(ctx, `SELECT count(*) FROM notifications n JOIN messages m ON m.id = n.message_id`).Scan(&notes)
	st.Pool.QueryRow(ctx, `SELECT count(*) FROM pg_inherits WHERE inhparent = 'messages'::regclass`).Scan(&parts)
	if msgs != 12 || notes != 12 {
		t.Fatalf("after the migration: %d messages, %d notifications joined to them; want 12 and 12", msgs, notes)
	}
	if parts < 2+PartitionsAhead+1 { // the day before yesterday's, and yesterday to a week ahead
		t.Fatalf("%d partitions", parts)
	}
	var where string
	if err := st.Pool.QueryRow(ctx, `SELECT tableoid::regclass::text FROM messages WHERE msg_id = '2026-old-2-0'`).Scan(&where); err != nil ||
		where != partitionName(time.Now().AddDate(0, 0, -2)) {
		t.Fatalf("a message of two days ago is in %q (%v)", where, err)
	}
	ns, err := st.ListNotifications(ctx, uid, 50, 0)
	if err != nil || len(ns) != 12 || ns[0].Message.Topic == "" {
		t.Fatalf("history after the migration: %d %v", len(ns), err)
	}
	err = st.InTx(ctx, func(tx pgx.Tx) error {
		ids, err := InsertMessageBatch(ctx, tx, []NewMessage{
			{MsgID: "2026-old-2-0", Envelope: []byte(`{}`)},
			{MsgID: "2026-new", Envelope: []byte(`{}`)},
		})
		if err == nil && (ids[0] != 0 || ids[1] <= maxID) {
			err = fmt.Errorf("ids %v: want 0 for the old message and a new id above %d", ids, maxID)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}
