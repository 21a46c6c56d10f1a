package store

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"

	"fmn"
	"fmn/rules/meta"
)

// NewMessage is a bus message ready to be stored.
type NewMessage struct {
	MsgID    string
	Meta     meta.Metadata
	SentAt   *time.Time
	Endpoint string
	Envelope []byte // the envelope JSON as received
}

const messageCols = `m.id, m.msg_id, m.topic, m.app, m.agent, m.usernames, m.packages, m.groups, m.containers, m.modules, m.flatpaks, m.summary, m.link, m.severity, m.sent_at, m.received_at`

func scanMessage(row pgx.Row) (fmn.Message, error) {
	var m fmn.Message
	err := row.Scan(&m.ID, &m.MsgID, &m.Topic, &m.App, &m.Agent, &m.Usernames, &m.Packages, &m.Groups, &m.Containers, &m.Modules, &m.Flatpaks,
		&m.Summary, &m.Link, &m.Severity, &m.SentAt, &m.ReceivedAt)
	return m, err
}

// InsertMessages stores msgs in tx, idempotently on msg_id, like
// InsertMessageBatch but accepting a msg_id more than once: for each input
// it returns the new row's id, or 0 when that msg_id was stored before (by
// an earlier batch, another endpoint, another fmn, or earlier in msgs).
func InsertMessages(ctx context.Context, tx pgx.Tx, msgs []NewMessage) ([]int64, error) {
	first := map[string]int{} // msg_id → index in unique
	var unique []NewMessage
	for _, m := range msgs {
		if _, seen := first[m.MsgID]; !seen {
			first[m.MsgID] = len(unique)
			unique = append(unique, m)
		}
	}
	uids, err := InsertMessageBatch(ctx, tx, unique)
	if err != nil {
		return nil, err
	}
	ids := make([]int64, len(msgs))
	used := map[string]bool{}
	for i, m := range msgs {
		if !used[m.MsgID] {
			used[m.MsgID] = true
			ids[i] = uids[first[m.MsgID]]
		}
	}
	return ids, nil
}

// RecentMessages returns the newest stored messages, newest first; beforeID
// > 0 pages back from there.
func (s *Store) RecentMessages(ctx context.Context, limit int, beforeID int64) ([]fmn.Message, error) {
	rows, err := s.Pool.Query(ctx, `SELECT `+messageCols+` FROM messages m
		WHERE $2 = 0 OR m.id < $2 ORDER BY m.id DESC LIMIT $1`, limit, beforeID)
	if err != nil {
		return nil, translate(err, "list messages")
	}
	ms, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (fmn.Message, error) { return scanMessage(r) })
	return ms, translate(err, "list messages")
}

// exactUpTo is how far EstimateMessages counts rows; beyond, it reads the
// planner's estimate.
const exactUpTo = 10000

// EstimateMessages says about how many messages are stored, cheaply enough
// for a public page: an exact count up to exactUpTo (a bounded scan), and
// beyond that the planner's row estimate (pg_class.reltuples, summed over
// the table and, when it is partitioned, every partition, found through
// pg_inherits; a partitioned parent's own figure, the sum of its
// partitions', is left out), never a count(*) over the whole log. exact
// reports which.
func (s *Store) EstimateMessages(ctx context.Context) (n int64, exact bool, err error) {
	var counted, estimate int64
	err = s.Pool.QueryRow(ctx, `
		WITH RECURSIVE parts(oid) AS (
			SELECT 'messages'::regclass::oid
			UNION ALL SELECT i.inhrelid FROM pg_inherits i JOIN parts p ON i.inhparent = p.oid)
		SELECT (SELECT count(*) FROM (SELECT 1 FROM messages LIMIT $1) x),
			(SELECT coalesce(sum(greatest(c.reltuples, 0)), 0)::bigint FROM pg_class c JOIN parts p ON c.oid = p.oid
			 WHERE c.relkind <> 'p')`,
		exactUpTo+1).Scan(&counted, &estimate)
	if err != nil {
		return 0, false, translate(err, "estimate messages")
	}
	if counted <= exactUpTo {
		return counted, true, nil
	}
	return max(counted, estimate), false, nil
}

// CountMessages returns how many messages are stored.
func (s *Store) CountMessages(ctx context.Context) (int64, error) {
	var n int64
	err := s.Pool.QueryRow(ctx, `SELECT count(*) FROM messages`).Scan(&n)
	return n, translate(err, "count messages")
}
