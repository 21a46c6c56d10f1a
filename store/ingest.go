package store

import (
	"context"
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
// travel as one array literal per row (pgTextArray; a text[][] cannot be
// ragged), each read with one cast: the JSON arrays they were before cost
// a jsonb parse and a subquery per list and row, a tenth of the insert.
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
	SELECT t.msg_id, t.topic, t.app, t.agent, t.usernames::text[], t.packages::text[],
		t.groups::text[], t.containers::text[], t.modules::text[], t.flatpaks::text[],
		t.summary, t.link, t.severity, t.sent_at, t.endpoint, t.envelope::jsonb
	FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[],
		$9::text[], $10::text[], $11::text[], $12::text[], $13::text[], $14::timestamptz[], $15::text[], $16::text[])
		WITH ORDINALITY AS t(msg_id, topic, app, agent, usernames, packages, groups, containers, modules, flatpaks,
			summary, link, severity, sent_at, endpoint, envelope, ord)
	WHERE (SELECT true FROM messages e WHERE e.msg_id = t.msg_id AND e.received_at >= $17
		AND e.received_at < now() + interval '1 day' LIMIT 1) IS NULL
	ORDER BY t.ord
	RETURNING id, msg_id, received_at`

// genericPlans makes the rest of the storing transaction run its prepared
// statements on generic plans, made once per connection. PostgreSQL's
// default judges a generic plan of a statement reading the partitioned log
// by the cost of every partition (the pruning at execution start it does
// not count), so it planned the message insert, and the notifications'
// insert beside it, afresh for every batch: a quarter of the batch's
// database time (perf on the backend). The plans differ in nothing else
// (TestDedupeProbesTheIndex checks the insert's generic plan).
const genericPlans = `SET LOCAL plan_cache_mode = force_generic_plan`

// namesStored tells the trigger of message_names (migration 0015) that
// the statements of this transaction fill it themselves (insertNames).
const namesStored = `SET LOCAL fmn.names_stored = 'on'`

// insertNames adds the names a batch brought that message_names may not
// hold yet, in key order like the trigger (two ingesters adding the same
// new names never wait for each other crosswise).
const insertNames = `
	INSERT INTO message_names (kind, name)
	SELECT k, n FROM unnest($1::text[], $2::text[]) AS t(k, n) ORDER BY k, n
	ON CONFLICT DO NOTHING`

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
	stored, _, err := StoreMessageBatch(ctx, tx, msgs, nil)
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
// With names, message_names is filled here with the names names does not
// know yet (instead of by its trigger, which costs a tenth of the batch):
// the caller calls names.Learn(added) once tx has committed. Either way,
// the rest of tx runs on generic plans (genericPlans).
func StoreMessageBatch(ctx context.Context, tx pgx.Tx, msgs []NewMessage, names *KnownNames) (stored []StoredMessage, added []Name, err error) {
	if len(msgs) == 0 {
		return nil, nil, nil
	}
	n := len(msgs)
	ids, topics, apps, agents := make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	users, pkgs := make([]string, n), make([]string, n)
	groups, ctrs, mods, flats := make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	summaries, links, sevs := make([]string, n), make([]string, n), make([]string, n)
	sent := make([]*time.Time, n)
	eps, envs := make([]string, n), make([]string, n)
	var buf []byte
	list := func(l []string) string {
		buf = appendTextArray(buf[:0], l)
		return string(buf)
	}
	for i, m := range msgs {
		md := m.Meta
		ids[i], topics[i], apps[i], agents[i] = m.MsgID, md.Topic, md.App, md.Agent
		users[i], pkgs[i] = list(md.Usernames), list(md.Packages)
		groups[i], ctrs[i], mods[i], flats[i] = list(md.Groups), list(md.Containers), list(md.Modules), list(md.Flatpaks)
		summaries[i], links[i], sevs[i] = md.Summary, md.Link, md.Severity
		sent[i], eps[i], envs[i] = m.SentAt, m.Endpoint, string(m.Envelope)
	}
	// One round trip (a pipeline): the settings, the lock, the insert and
	// the new names, still separate statements, so the insert's snapshot
	// is taken once the locks are held.
	var b pgx.Batch
	b.Queue(genericPlans)
	if names != nil {
		added = names.unknown(msgs)
		b.Queue(namesStored)
	}
	b.Queue(lockMessageIDs, ids)
	b.Queue(insertMessageBatch, ids, topics, apps, agents, users, pkgs, groups, ctrs, mods, flats,
		summaries, links, sevs, sent, eps, envs, dedupeFloor(msgs, time.Now()))
	if len(added) > 0 {
		kinds, vals := make([]string, len(added)), make([]string, len(added))
		for i, a := range added {
			kinds[i], vals[i] = a.Kind, a.Name
		}
		b.Queue(insertNames, kinds, vals)
	}
	br := tx.SendBatch(ctx, &b)
	defer br.Close()
	if _, err := br.Exec(); err != nil {
		return nil, nil, translate(err, "set plan cache mode")
	}
	if names != nil {
		if _, err := br.Exec(); err != nil {
			return nil, nil, translate(err, "set names_stored")
		}
	}
	if _, err := br.Exec(); err != nil {
		return nil, nil, translate(err, "lock message ids")
	}
	rows, err := br.Query()
	if err != nil {
		return nil, nil, translate(err, "store messages")
	}
	byID := make(map[string]StoredMessage, n)
	var sm StoredMessage
	var msgID string
	if _, err := pgx.ForEachRow(rows, []any{&sm.ID, &msgID, &sm.ReceivedAt}, func() error { byID[msgID] = sm; return nil }); err != nil {
		return nil, nil, translate(err, "store messages")
	}
	if len(added) > 0 {
		if _, err := br.Exec(); err != nil {
			return nil, nil, translate(err, "store message names")
		}
	}
	if err := br.Close(); err != nil {
		return nil, nil, translate(err, "store messages")
	}
	stored = make([]StoredMessage, n)
	for i, m := range msgs {
		stored[i] = byID[m.MsgID]
	}
	return stored, added, nil
}

// appendTextArray appends l as a PostgreSQL array literal of text, every
// element quoted (so that no name reads as NULL, and spaces, commas and
// braces stay in it), a backslash before each quote and backslash.
func appendTextArray(b []byte, l []string) []byte {
	b = append(b, '{')
	for i, s := range l {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, '"')
		for j := 0; j < len(s); j++ {
			if c := s[j]; c == '"' || c == '\\' {
				b = append(b, '\\')
			}
			b = append(b, s[j])
		}
		b = append(b, '"')
	}
	return append(b, '}')
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
