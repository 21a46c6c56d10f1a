package store

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
)

// The message log is partitioned by UTC day on received_at (migration
// 0011): messages_pYYYYMMDD holds the messages received that day. Keeping
// FMN_RETENTION of it is dropping whole partitions, with the notifications
// made from their messages and the digests that carried those: the
// database never deletes the log row by row.

const (
	partitionPrefix = "messages_p"
	partitionLayout = "20060102"
	// PartitionsAhead is how many days ahead partitions are made: a week
	// of an ingester with no work process running the job.
	PartitionsAhead = 7
	// partitionLock serialises the making of partitions ("fmnP").
	partitionLock = 0x666d6e50
)

func partitionName(day time.Time) string { return partitionPrefix + day.UTC().Format(partitionLayout) }

// dayOf returns the UTC midnight starting t's day.
func dayOf(t time.Time) time.Time {
	y, m, d := t.UTC().Date()
	return time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
}

// Partition is one day of the message log.
type Partition struct {
	Name string
	Day  time.Time // its first instant (UTC midnight); it ends a day later
}

// Partitions lists the message log's partitions, oldest first.
func (s *Store) Partitions(ctx context.Context) ([]Partition, error) {
	return listPartitions(ctx, s.Pool)
}

type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

func listPartitions(ctx context.Context, q querier) ([]Partition, error) {
	rows, err := q.Query(ctx, `SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
		WHERE i.inhparent = 'messages'::regclass ORDER BY c.relname`)
	if err != nil {
		return nil, translate(err, "list message partitions")
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, translate(err, "list message partitions")
	}
	var ps []Partition
	for _, n := range names {
		day, err := time.Parse(partitionLayout, strings.TrimPrefix(n, partitionPrefix))
		if err != nil || !strings.HasPrefix(n, partitionPrefix) {
			continue // not one of fmn's: left alone
		}
		ps = append(ps, Partition{Name: n, Day: day})
	}
	return ps, nil
}

// EnsurePartitions makes sure the message log has a partition for every
// day from the one before now to PartitionsAhead days after. The retention
// job calls it every hour; the ingester before each batch, when its last
// check is older than a few hours, so that a message always has somewhere
// to go even where no work process runs the job. Any number of processes
// may call it at once.
func (s *Store) EnsurePartitions(ctx context.Context, now time.Time) error {
	if until := s.partitionsChecked.Load(); until != 0 && now.Unix() < until {
		return nil
	}
	if err := s.MakePartitions(ctx, now.AddDate(0, 0, -1), now.AddDate(0, 0, PartitionsAhead)); err != nil {
		return err
	}
	// Checked again in a few hours: the next day's partition was made a
	// week ahead.
	s.partitionsChecked.Store(now.Add(6 * time.Hour).Unix())
	return nil
}

// MakePartitions makes sure the message log has a partition for every day
// from from's to to's (tests storing messages received in the past need
// them; the service needs only EnsurePartitions).
func (s *Store) MakePartitions(ctx context.Context, from, to time.Time) error {
	have, err := s.Partitions(ctx)
	if err != nil {
		return err
	}
	exists := map[string]bool{}
	for _, p := range have {
		exists[p.Name] = true
	}
	for d := dayOf(from); !d.After(dayOf(to)); d = d.AddDate(0, 0, 1) {
		if exists[partitionName(d)] {
			continue
		}
		if err := s.createPartition(ctx, d); err != nil {
			return err
		}
	}
	return nil
}

// createPartition makes day's partition as an empty table attached to the
// log. Attaching (unlike CREATE TABLE … PARTITION OF) takes only a SHARE
// UPDATE EXCLUSIVE lock on the log, so readers and the ingester go on
// meanwhile; the new table's indexes are made by the attach, the log's own.
func (s *Store) createPartition(ctx context.Context, day time.Time) error {
	name := pgx.Identifier{partitionName(day)}.Sanitize()
	return s.InTx(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, partitionLock); err != nil {
			return translate(err, "lock message partitions")
		}
		var there bool
		if err := tx.QueryRow(ctx, `SELECT to_regclass($1) IS NOT NULL`, partitionName(day)).Scan(&there); err != nil {
			return translate(err, "look up message partition")
		}
		if there {
			return nil
		}
		if _, err := tx.Exec(ctx, `SET LOCAL lock_timeout = '10s'`); err != nil {
			return translate(err, "make message partition")
		}
		if _, err := tx.Exec(ctx, `CREATE TABLE `+name+` (LIKE messages INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING STORAGE INCLUDING COMPRESSION)`); err != nil {
			return translate(err, "make message partition")
		}
		_, err := tx.Exec(ctx, fmt.Sprintf(`ALTER TABLE messages ATTACH PARTITION %s FOR VALUES FROM ('%s') TO ('%s')`,
			name, day.Format(time.RFC3339), day.AddDate(0, 0, 1).Format(time.RFC3339)))
		return translate(err, "attach message partition")
	})
}

// Dropped is what DropExpired removed.
type Dropped struct {
	Partitions    []string
	Messages      int64
	Notifications int64
	Digests       int64
}

// DropExpired drops every partition of the message log whose day ended
// before before, each in a transaction of its own with the notifications
// made from its messages, then deletes the digests made before before (all
// their items are older still). The notifications go by the index on
// notifications (message_id, …), within the partition's id range and
// checked against its rows, so the work is proportional to what goes,
// never a scan of the whole table. A partition whose lock is not had in a
// few seconds (a long preview reading it) is left for the next run.
func (s *Store) DropExpired(ctx context.Context, before time.Time, log *slog.Logger) (Dropped, error) {
	var out Dropped
	ps, err := s.Partitions(ctx)
	if err != nil {
		return out, err
	}
	for _, p := range ps {
		if p.Day.AddDate(0, 0, 1).After(before) {
			break
		}
		name := pgx.Identifier{p.Name}.Sanitize()
		var msgs, notes int64
		err := s.InTx(ctx, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, `SET LOCAL lock_timeout = '5s'`); err != nil {
				return translate(err, "drop message partition")
			}
			var lo, hi *int64
			if err := tx.QueryRow(ctx, `SELECT min(id), max(id), count(*) FROM `+name).Scan(&lo, &hi, &msgs); err != nil {
				return translate(err, "read message partition")
			}
			if lo != nil {
				tag, err := tx.Exec(ctx, `DELETE FROM notifications WHERE message_id BETWEEN $1 AND $2
					AND message_id IN (SELECT id FROM `+name+`)`, *lo, *hi)
				if err != nil {
					return translate(err, "delete expired notifications")
				}
				notes = tag.RowsAffected()
			}
			_, err := tx.Exec(ctx, `DROP TABLE `+name)
			return translate(err, "drop message partition")
		})
		if err != nil {
			return out, err
		}
		log.Info("retention: dropped a day of the message log", "partition", p.Name, "messages", msgs, "notifications", notes)
		out.Partitions = append(out.Partitions, p.Name)
		out.Messages += msgs
		out.Notifications += notes
	}
	tag, err := s.Pool.Exec(ctx, `DELETE FROM digests WHERE created_at < $1`, before)
	if err != nil {
		return out, translate(err, "delete expired digests")
	}
	out.Digests = tag.RowsAffected()
	return out, nil
}

// RetentionArgs is the periodic job that keeps the message log within
// FMN_RETENTION.
type RetentionArgs struct{}

// Kind implements river.JobArgs.
func (RetentionArgs) Kind() string { return "retention" }

// RetentionEvery: partitions are made a week ahead and a day is the unit
// dropped, so hourly is plenty; a run finding nothing to do costs two
// catalog reads.
const RetentionEvery = time.Hour

// RetentionWorker makes partitions ahead and drops expired ones.
type RetentionWorker struct {
	river.WorkerDefaults[RetentionArgs]
	Store *Store
	Keep  time.Duration // FMN_RETENTION
	Log   *slog.Logger
}

// Work implements river.Worker.
func (w *RetentionWorker) Work(ctx context.Context, _ *river.Job[RetentionArgs]) error {
	if w.Keep < 24*time.Hour {
		// A Config built in code without FMN_RETENTION: dropping "older
		// than nothing" would empty the log.
		return river.JobCancel(fmt.Errorf("retention of %v: want a day or more", w.Keep))
	}
	now := time.Now()
	w.Store.partitionsChecked.Store(0)
	if err := w.Store.EnsurePartitions(ctx, now); err != nil {
		return err
	}
	_, err := w.Store.DropExpired(ctx, now.Add(-w.Keep), w.Log)
	return err
}
