package store

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"fmn/rules"
)

// The bus ingester's batch statements: one INSERT for a whole batch of
// messages and one for all their notifications, instead of a statement
// per row, so that a batch costs a handful of round trips whatever its
// size.

// insertMessageBatch inserts rows from parallel arrays in their order.
// The lists (usernames, packages, groups, containers, modules, flatpaks)
// travel as one JSON array per row (a text[][] cannot be ragged).
//
// The message log is partitioned by day (migration 0011), and a unique
// index there would have to contain received_at, so msg_id is kept once by
// a check instead: lockMessageIDs first (its own statement, so that the
// insert's snapshot sees whatever a concurrent batch holding those locks
// committed), then only the rows whose msg_id no partition at or after $17
// holds. $17 is the earliest the batch's messages can have been stored
// before (see dedupeFloor): partitions older than that are not read, nor
// the days made ahead (received_at is the database's now() of the storing
// transaction, never a day ahead of this one's).
//
// The check is a subquery per row, not NOT EXISTS: that one the planner
// turns into an anti join, and a plan cached while the day's partition
// was small (a new day, a fresh database) hashes the whole partition for
// every batch, a seq scan growing with the day (measured: 50 ms for a
// batch of 18 at 1,700 rows). A subquery per row is always an index probe
// of msg_id in each partition left.
const insertMessageBatch = `
	INSERT INTO messages (msg_id, topic, app, agent, usernames, packages, groups, containers, modules, flatpaks,
		summary, link, severity, sent_at, endpoint, envelope)
	SELECT t.msg_id, t.topic, t.app, t.agent,
		ARRAY(SELECT jsonb_array_elements_text(t.usernames)), ARRAY(SELECT jsonb_array_elements_text(t.packages)),
		ARRAY(SELECT jsonb_array_elements_text(t.groups)), ARRAY(SELECT jsonb_array_elements_text(t.containers)),
		ARRAY(SELECT jsonb_array_elements_text(t.modules)), ARRAY(SELECT jsonb_array_elements_text(t.flatpaks)),
		t.summary, t.link, t.severity, t.sent_at, t.endpoint, t.envelope::jsonb
	FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::jsonb[], $6::jsonb[], $7::jsonb[], $8::jsonb[],
		$9::jsonb[], $10::jsonb[], $11::text[], $12::text[], $13::text[], $14::timestamptz[], $15::text[], $16::text[])
		WITH ORDINALITY AS t(msg_id, topic, app, agent, usernames, packages, groups, containers, modules, flatpaks,
			summary, link, severity, sent_at, endpoint, envelope, ord)
	WHERE (SELECT true FROM messages e WHERE e.msg_id = t.msg_id AND e.received_at >= $17
		AND e.received_at < now() + interval '1 day' LIMIT 1) IS NULL
	ORDER BY t.ord
	RETURNING id, msg_id, received_at`

// lockMessageIDs serialises the batches that carry the same msg_ids (a
// relay and its source read by two fmn processes) until their transactions
// end. msg_ids fall into 64 buckets, taken in order so that two batches
// never wait for each other crosswise; a batch holds at most 64 locks,
// whatever its size ("fmnM" is the first key).
const lockMessageIDs = `
	SELECT pg_advisory_xact_lock(1718447693, b)
	FROM (SELECT DISTINCT hashtext(id) & 63 AS b FROM unnest($1::text[]) AS id ORDER BY b) AS buckets`

// dedupeSlack is how far before its own timestamp a message may have been
// received: publishers' clocks run a little ahead or behind.
const dedupeSlack = 24 * time.Hour

// dedupeFloor is the earliest received_at an earlier copy of one of msgs can
// have. A message carries the time it was sent, the same in every copy (a
// relay's, a replay's, one re-sent days later), and no copy was received
// long before it was sent; so partitions older than the oldest sent time
// less dedupeSlack need not be read. A message without a plausible time
// (none, or in the future) makes the whole log the floor.
func dedupeFloor(msgs []NewMessage, now time.Time) pgtype.Timestamptz {
	var floor time.Time
	for _, m := range msgs {
		if m.SentAt == nil || m.SentAt.After(now.Add(5*time.Minute)) {
			return pgtype.Timestamptz{InfinityModifier: pgtype.NegativeInfinity, Valid: true}
		}
		if t := m.SentAt.Add(-dedupeSlack); floor.IsZero() || t.Before(floor) {
			floor = t
		}
	}
	return pgtype.Timestamptz{Time: floor, Valid: true}
}

// InsertMessageBatch stores msgs in tx, in their order, idempotently on
// msg_id (msgs must not repeat a msg_id). The returned slice holds, for
// each input, the new row's id, or 0 when that msg_id was already stored.
func InsertMessageBatch(ctx context.Context, tx pgx.Tx, msgs []NewMessage) ([]int64, error) {
	stored, err := StoreMessageBatch(ctx, tx, msgs)
	if err != nil {
		return nil, err
	}
	ids := make([]int64, len(stored))
	for i, m := range stored {
		ids[i] = m.ID
	}
	return ids, nil
}

// StoredMessage is where a new message went: its id and the received_at
// that names its partition (the notifications made from it keep both).
type StoredMessage struct {
	ID         int64
	ReceivedAt time.Time
}

// StoreMessageBatch is InsertMessageBatch returning the received_at of
// each new row as well (a zero StoredMessage for a msg_id already stored).
func StoreMessageBatch(ctx context.Context, tx pgx.Tx, msgs []NewMessage) ([]StoredMessage, error) {
	if len(msgs) == 0 {
		return nil, nil
	}
	n := len(msgs)
	ids, topics, apps, agents := make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	users, pkgs := make([]string, n), make([]string, n)
	groups, ctrs, mods, flats := make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	summaries, links, sevs := make([]string, n), make([]string, n), make([]string, n)
	sent := make([]*time.Time, n)
	eps, envs := make([]string, n), make([]string, n)
	for i, m := range msgs {
		md := m.Meta
		ids[i], topics[i], apps[i], agents[i] = m.MsgID, md.Topic, md.App, md.Agent
		users[i], pkgs[i] = jsonList(md.Usernames), jsonList(md.Packages)
		groups[i], ctrs[i], mods[i], flats[i] = jsonList(md.Groups), jsonList(md.Containers), jsonList(md.Modules), jsonList(md.Flatpaks)
		summaries[i], links[i], sevs[i] = md.Summary, md.Link, md.Severity
		sent[i], eps[i], envs[i] = m.SentAt, m.Endpoint, string(m.Envelope)
	}
	// The lock and the insert go in one round trip (a pipeline): still two
	// statements, so the insert's snapshot is taken once the locks are held.
	var b pgx.Batch
	b.Queue(lockMessageIDs, ids)
	b.Queue(insertMessageBatch, ids, topics, apps, agents, users, pkgs, groups, ctrs, mods, flats,
		summaries, links, sevs, sent, eps, envs, dedupeFloor(msgs, time.Now()))
	br := tx.SendBatch(ctx, &b)
	defer br.Close()
	if _, err := br.Exec(); err != nil {
		return nil, translate(err, "lock message ids")
	}
	rows, err := br.Query()
	if err != nil {
		return nil, translate(err, "store messages")
	}
	byID := make(map[string]StoredMessage, n)
	var sm StoredMessage
	var msgID string
	if _, err := pgx.ForEachRow(rows, []any{&sm.ID, &msgID, &sm.ReceivedAt}, func() error { byID[msgID] = sm; return nil }); err != nil {
		return nil, translate(err, "store messages")
	}
	if err := br.Close(); err != nil {
		return nil, translate(err, "store messages")
	}
	out := make([]StoredMessage, n)
	for i, m := range msgs {
		out[i] = byID[m.MsgID]
	}
	return out, nil
}

func jsonList(l []string) string {
	if len(l) == 0 {
		return "[]"
	}
	b, err := json.Marshal(l)
	if err != nil {
		panic(fmt.Sprintf("encode string list: %v", err)) // cannot fail for strings
	}
	return string(b)
}

// MessageMatches are the rule matches of one stored message.
type MessageMatches struct {
	MessageID int64
	// ReceivedAt is the message's received_at; when zero it is read from
	// the log (by id, which probes every partition: the ingester knows it).
	ReceivedAt time.Time
	Matches    []rules.Match
}

// InsertNotificationBatch records the matches of many stored messages in
// tx with one statement. A (message, destination) pair that already exists
// is skipped, so a replay never notifies twice. A match without a
// destination becomes a 'recorded' notification, kept in the history and
// never delivered (once per message and user); only the delivered ones are
// returned, for their jobs.
func InsertNotificationBatch(ctx context.Context, tx pgx.Tx, mms []MessageMatches) ([]NewNotification, error) {
	var msgIDs, users, ruleIDs, dests []int64
	var fields, entries []string
	var received []pgtype.Timestamptz
	for _, mm := range mms {
		at := pgtype.Timestamptz{Time: mm.ReceivedAt, Valid: !mm.ReceivedAt.IsZero()}
		for _, m := range mm.Matches {
			msgIDs = append(msgIDs, mm.MessageID)
			received = append(received, at)
			users = append(users, m.UserID)
			ruleIDs = append(ruleIDs, m.RuleID)
			dests = append(dests, m.DestinationID)
			fields = append(fields, m.Hit.Field)
			entries = append(entries, m.Hit.Entry)
		}
	}
	if len(msgIDs) == 0 {
		return nil, nil
	}
	rows, err := tx.Query(ctx, `
		WITH ins AS (
			INSERT INTO notifications (message_id, message_received_at, user_id, rule_id, destination_id, status, hit_field, hit_entry)
			SELECT m, coalesce(at, (SELECT received_at FROM messages WHERE id = m)),
				u, nullif(r, 0), nullif(d, 0), CASE WHEN d = 0 THEN 'recorded' ELSE 'pending' END,
				nullif(f, ''), nullif(e, '')
			FROM unnest($1::bigint[], $2::bigint[], $3::bigint[], $4::bigint[], $5::text[], $6::text[], $7::timestamptz[])
				AS t(m, u, r, d, f, e, at)
			ON CONFLICT DO NOTHING
			RETURNING id, destination_id)
		SELECT ins.id, ins.destination_id, d.kind FROM ins JOIN destinations d ON d.id = ins.destination_id`,
		msgIDs, users, ruleIDs, dests, fields, entries, received)
	if err != nil {
		return nil, translate(err, "insert notifications")
	}
	ns, err := pgx.CollectRows(rows, pgx.RowToStructByPos[NewNotification])
	return ns, translate(err, "insert notifications")
}
