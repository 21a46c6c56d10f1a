package store

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"
)

// EndpointRate is how much one bus endpoint delivered lately.
type EndpointRate struct {
	Endpoint   string
	LastMinute int64
	LastHour   int64
	Last       *time.Time
}

// BusRates counts stored messages per endpoint over the last minute and
// hour, from the message log itself, so every process sees the same figures.
func (s *Store) BusRates(ctx context.Context) ([]EndpointRate, error) {
	rows, err := s.Pool.Query(ctx, `
		SELECT endpoint, count(*) FILTER (WHERE received_at > now() - interval '1 minute'), count(*), max(received_at)
		FROM messages WHERE received_at > now() - interval '1 hour'
		GROUP BY endpoint ORDER BY endpoint`)
	if err != nil {
		return nil, translate(err, "read bus rates")
	}
	rs, err := pgx.CollectRows(rows, pgx.RowToStructByPos[EndpointRate])
	return rs, translate(err, "read bus rates")
}

// QueueDepth is how many jobs of one queue wait in one state.
type QueueDepth struct {
	Queue string
	State string
	Count int64
}

// QueueDepths reads River's job table: the jobs not yet finished, per queue
// and state.
func (s *Store) QueueDepths(ctx context.Context) ([]QueueDepth, error) {
	rows, err := s.Pool.Query(ctx, `SELECT queue, state::text, count(*) FROM river_job
		WHERE state IN ('available', 'scheduled', 'retryable', 'running', 'pending')
		GROUP BY queue, state ORDER BY queue, state`)
	if err != nil {
		return nil, translate(err, "read queue depth")
	}
	qs, err := pgx.CollectRows(rows, pgx.RowToStructByPos[QueueDepth])
	return qs, translate(err, "read queue depth")
}

// DeadJob is a job River gave up on, with the last error it recorded.
type DeadJob struct {
	ID          int64
	Kind        string
	Queue       string
	State       string
	Attempt     int
	FinalizedAt *time.Time
	Reason      string
	Args        string
}

// DeadJobs returns the newest discarded or cancelled jobs.
func (s *Store) DeadJobs(ctx context.Context, limit int) ([]DeadJob, error) {
	rows, err := s.Pool.Query(ctx, `SELECT id, kind, queue, state::text, attempt, finalized_at,
			coalesce(errors[array_length(errors, 1)]->>'error', ''), args::text
		FROM river_job WHERE state IN ('discarded', 'cancelled')
		ORDER BY finalized_at DESC NULLS LAST, id DESC LIMIT $1`, limit)
	if err != nil {
		return nil, translate(err, "read dead jobs")
	}
	js, err := pgx.CollectRows(rows, pgx.RowToStructByPos[DeadJob])
	return js, translate(err, "read dead jobs")
}

// FailingDestination is a destination whose last delivery failed for good.
type FailingDestination struct {
	ID      int64
	Owner   string
	Kind    string
	Address string
	Reason  string
}

// FailingDestinations lists every destination marked failing.
func (s *Store) FailingDestinations(ctx context.Context, limit int) ([]FailingDestination, error) {
	rows, err := s.Pool.Query(ctx, `SELECT d.id, u.name, d.kind, d.address, d.failing_reason
		FROM destinations d JOIN users u ON u.id = d.user_id
		WHERE d.failing_reason IS NOT NULL ORDER BY d.id LIMIT $1`, limit)
	if err != nil {
		return nil, translate(err, "read failing destinations")
	}
	fs, err := pgx.CollectRows(rows, pgx.RowToStructByPos[FailingDestination])
	return fs, translate(err, "read failing destinations")
}

// TableStorage is how much room one table takes, partitions included.
type TableStorage struct {
	Table      string
	Bytes      int64 // with its indexes and TOAST
	Rows       int64 // PostgreSQL's estimate (as of the last ANALYZE), not a count
	Partitions int   // 0 for a table that is not partitioned
}

// Storage is what the admin page shows of the database's size.
type Storage struct {
	Tables        []TableStorage
	OldestMessage *time.Time // nil when the log is empty
}

// StorageStats reads the sizes of the tables that grow with the bus (the
// message log, notifications, digests, River's jobs) from the catalog, and
// the oldest message's time; nothing here counts rows.
func (s *Store) StorageStats(ctx context.Context) (Storage, error) {
	var st Storage
	rows, err := s.Pool.Query(ctx, `
		SELECT t.name, coalesce(sum(pg_total_relation_size(p.relid)), 0)::bigint,
			coalesce(sum(greatest(c.reltuples, 0)) FILTER (WHERE p.isleaf), 0)::bigint,
			(count(*) FILTER (WHERE p.level = 1))::int
		FROM unnest(ARRAY['messages', 'notifications', 'digests', 'river_job']) WITH ORDINALITY AS t(name, ord)
		JOIN pg_class r ON r.oid = to_regclass(t.name)
		JOIN LATERAL (SELECT relid, isleaf, level FROM pg_partition_tree(r.oid) WHERE r.relkind = 'p'
			UNION ALL SELECT r.oid, true, 0 WHERE r.relkind <> 'p') p ON true
		JOIN pg_class c ON c.oid = p.relid
		GROUP BY t.name, t.ord ORDER BY t.ord`)
	if err != nil {
		return st, translate(err, "read table sizes")
	}
	if st.Tables, err = pgx.CollectRows(rows, pgx.RowToStructByPos[TableStorage]); err != nil {
		return st, translate(err, "read table sizes")
	}
	err = s.Pool.QueryRow(ctx, `SELECT min(received_at) FROM messages`).Scan(&st.OldestMessage)
	return st, translate(err, "read the oldest message")
}

// JobStat is how many of one queue's jobs are in one state, and for how
// long the oldest has been in it.
type JobStat struct {
	Queue  string
	State  string
	Count  int64
	Oldest time.Duration
}

// JobStats reads River's job table for the metrics: per queue and state
// (completed jobs aside), the count and the age of the oldest, counted for
// an available job from when it was due, for a running one from when it
// started, for the others from when they were made.
func (s *Store) JobStats(ctx context.Context) ([]JobStat, error) {
	rows, err := s.Pool.Query(ctx, `SELECT queue, state::text, count(*),
			coalesce(extract(epoch FROM now() - min(CASE state
				WHEN 'available' THEN scheduled_at
				WHEN 'running' THEN attempted_at
				WHEN 'retryable' THEN created_at
				ELSE coalesce(finalized_at, created_at) END)), 0)::float8
		FROM river_job WHERE state <> 'completed' GROUP BY queue, state ORDER BY queue, state`)
	if err != nil {
		return nil, translate(err, "read job stats")
	}
	var out []JobStat
	var j JobStat
	var secs float64
	_, err = pgx.ForEachRow(rows, []any{&j.Queue, &j.State, &j.Count, &secs}, func() error {
		j.Oldest = time.Duration(max(secs, 0) * float64(time.Second))
		out = append(out, j)
		return nil
	})
	return out, translate(err, "read job stats")
}
