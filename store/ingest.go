package store

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
	"sync"
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
	ids := make([]string, len(msgs))
	for i, m := range msgs {
		ids[i] = m.MsgID
	}
	// The settings and the lock in one round trip, the insert in the
	// next: separate statements, so the insert's snapshot is taken once
	// the locks are held.
	var b pgx.Batch
	b.Queue(genericPlans)
	if names != nil {
		added = names.unknown(msgs)
		b.Queue(namesStored)
	}
	b.Queue(lockMessageIDs, ids)
	if err := tx.SendBatch(ctx, &b).Close(); err != nil {
		return nil, nil, translate(err, "lock message ids")
	}
	if stored, err = insertMessages(ctx, tx, msgs); err != nil {
		return nil, nil, err
	}
	if len(added) > 0 {
		kinds, vals := make([]string, len(added)), make([]string, len(added))
		for i, a := range added {
			kinds[i], vals[i] = a.Kind, a.Name
		}
		if _, err := tx.Exec(ctx, insertNames, kinds, vals); err != nil {
			return nil, nil, translate(err, "store message names")
		}
	}
	return stored, added, nil
}

// insertMessages runs insertMessageBatch with its parameters encoded here,
// in PostgreSQL's binary format, into one buffer reused batch after batch.
// pgx encodes a text[] element by element into a buffer it drops after each
// statement, and copies it into its write buffer, dropped too: for a
// batch's megabyte or two of envelopes that was several times their size
// in garbage per batch, half of what the consumer allocated, and a tenth
// of its CPU in the encoding alone (pprof).
func insertMessages(ctx context.Context, tx pgx.Tx, msgs []NewMessage) ([]StoredMessage, error) {
	conn := tx.Conn()
	sd, err := conn.Prepare(ctx, "fmn_insert_messages", insertMessageBatch)
	if err != nil {
		return nil, translate(err, "prepare message insert")
	}
	if !slices.Equal(sd.ParamOIDs, insertParamOIDs) {
		return nil, fmt.Errorf("store messages: the insert's parameters are %v, the encoder writes %v", sd.ParamOIDs, insertParamOIDs)
	}
	buf, params := encodeInsertParams(paramBufs.get(), msgs, dedupeFloor(msgs, time.Now()))
	defer paramBufs.put(buf)
	formats := binaryFormats[:len(params)]
	rr := conn.PgConn().ExecPrepared(ctx, sd.Name, params, formats, binaryFormats[:3])
	byID := make(map[string]StoredMessage, len(msgs))
	for rr.NextRow() {
		v := rr.Values()
		if len(v) != 3 || len(v[0]) != 8 || len(v[2]) != 8 {
			rr.Close()
			return nil, errors.New("store messages: unexpected row from the insert")
		}
		byID[string(v[1])] = StoredMessage{ID: int64(binary.BigEndian.Uint64(v[0])), ReceivedAt: pgTime(v[2])}
	}
	if _, err := rr.Close(); err != nil {
		return nil, translate(err, "store messages")
	}
	out := make([]StoredMessage, len(msgs))
	for i, m := range msgs {
		out[i] = byID[m.MsgID]
	}
	return out, nil
}

// PostgreSQL's type oids, as the insert's casts declare its parameters.
const (
	oidText           = 25
	oidTimestamptz    = 1184
	oidTextArray      = 1009
	oidTimestamptzArr = 1185
)

var insertParamOIDs = []uint32{oidTextArray, oidTextArray, oidTextArray, oidTextArray, oidTextArray, oidTextArray,
	oidTextArray, oidTextArray, oidTextArray, oidTextArray, oidTextArray, oidTextArray, oidTextArray,
	oidTimestamptzArr, oidTextArray, oidTextArray, oidTimestamptz}

var binaryFormats = slices.Repeat([]int16{1}, 17)

// maxPooledParams: a buffer grown past it by an exceptional batch is let go.
const maxPooledParams = 16 << 20

// paramBufs keeps the insert's parameter buffers from one batch to the
// next. Not a sync.Pool: that one empties over two collections, and under
// a backlog the ingester's garbage brings one every batch or two, so a
// new buffer was made and grown to the batch's megabytes again and again
// (a tenth of what the ingester allocated).
var paramBufs = bufList{keep: 2}

// bufList is a free list of byte buffers.
type bufList struct {
	keep int // how many buffers it holds at most
	mu   sync.Mutex
	free [][]byte
}

func (l *bufList) get() []byte {
	l.mu.Lock()
	defer l.mu.Unlock()
	if n := len(l.free); n > 0 {
		b := l.free[n-1]
		l.free = l.free[:n-1]
		return b[:0]
	}
	return make([]byte, 0, 1<<20)
}

func (l *bufList) put(b []byte) {
	if cap(b) > maxPooledParams {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.free) < l.keep {
		l.free = append(l.free, b)
	}
}

// pgEpochMicros is PostgreSQL's epoch (2000-01-01 UTC) in Unix microseconds.
const pgEpochMicros = 946684800000000

func pgTime(b []byte) time.Time {
	return time.UnixMicro(int64(binary.BigEndian.Uint64(b)) + pgEpochMicros)
}

func appendPgTime(b []byte, t pgtype.Timestamptz) []byte {
	switch t.InfinityModifier {
	case pgtype.NegativeInfinity:
		return binary.BigEndian.AppendUint64(b, 1<<63) // math.MinInt64
	case pgtype.Infinity:
		return binary.BigEndian.AppendUint64(b, math.MaxInt64)
	}
	return binary.BigEndian.AppendUint64(b, uint64(t.Time.UnixMicro()-pgEpochMicros))
}

// encodeInsertParams appends the insert's parameters to buf, one after the
// other, and returns them as slices of it.
func encodeInsertParams(buf []byte, msgs []NewMessage, floor pgtype.Timestamptz) ([]byte, [][]byte) {
	var ends [17]int
	text := func(f func(m *NewMessage) string) {
		buf = appendArrayHeader(buf, len(msgs), oidText, false)
		for i := range msgs {
			s := f(&msgs[i])
			buf = binary.BigEndian.AppendUint32(buf, uint32(len(s)))
			buf = append(buf, s...)
		}
	}
	list := func(f func(m *NewMessage) []string) {
		buf = appendArrayHeader(buf, len(msgs), oidText, false)
		for i := range msgs {
			at := len(buf)
			buf = append(buf, 0, 0, 0, 0)
			buf = appendTextArray(buf, f(&msgs[i]))
			binary.BigEndian.PutUint32(buf[at:], uint32(len(buf)-at-4))
		}
	}
	cols := []func(){
		func() { text(func(m *NewMessage) string { return m.MsgID }) },
		func() { text(func(m *NewMessage) string { return m.Meta.Topic }) },
		func() { text(func(m *NewMessage) string { return m.Meta.App }) },
		func() { text(func(m *NewMessage) string { return m.Meta.Agent }) },
		func() { list(func(m *NewMessage) []string { return m.Meta.Usernames }) },
		func() { list(func(m *NewMessage) []string { return m.Meta.Packages }) },
		func() { list(func(m *NewMessage) []string { return m.Meta.Groups }) },
		func() { list(func(m *NewMessage) []string { return m.Meta.Containers }) },
		func() { list(func(m *NewMessage) []string { return m.Meta.Modules }) },
		func() { list(func(m *NewMessage) []string { return m.Meta.Flatpaks }) },
		func() { text(func(m *NewMessage) string { return m.Meta.Summary }) },
		func() { text(func(m *NewMessage) string { return m.Meta.Link }) },
		func() { text(func(m *NewMessage) string { return m.Meta.Severity }) },
		func() {
			hasNull := slices.ContainsFunc(msgs, func(m NewMessage) bool { return m.SentAt == nil })
			buf = appendArrayHeader(buf, len(msgs), oidTimestamptz, hasNull)
			for _, m := range msgs {
				if m.SentAt == nil {
					buf = binary.BigEndian.AppendUint32(buf, math.MaxUint32) // -1: NULL
					continue
				}
				buf = binary.BigEndian.AppendUint32(buf, 8)
				buf = appendPgTime(buf, pgtype.Timestamptz{Time: *m.SentAt, Valid: true})
			}
		},
		func() { text(func(m *NewMessage) string { return m.Endpoint }) },
		func() {
			buf = appendArrayHeader(buf, len(msgs), oidText, false)
			for _, m := range msgs {
				buf = binary.BigEndian.AppendUint32(buf, uint32(len(m.Envelope)))
				buf = append(buf, m.Envelope...)
			}
		},
		func() { buf = appendPgTime(buf, floor) },
	}
	for i, col := range cols {
		col()
		ends[i] = len(buf)
	}
	params := make([][]byte, len(cols))
	start := 0
	for i, end := range ends {
		params[i] = buf[start:end:end]
		start = end
	}
	return buf, params
}

// appendArrayHeader appends the header of a one-dimensional array of n
// elements (n > 0) in PostgreSQL's binary format.
func appendArrayHeader(b []byte, n int, elem uint32, hasNull bool) []byte {
	flags := uint32(0)
	if hasNull {
		flags = 1
	}
	b = binary.BigEndian.AppendUint32(b, 1) // dimensions
	b = binary.BigEndian.AppendUint32(b, flags)
	b = binary.BigEndian.AppendUint32(b, elem)
	b = binary.BigEndian.AppendUint32(b, uint32(n))
	return binary.BigEndian.AppendUint32(b, 1) // lower bound
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
