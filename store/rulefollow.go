package store

import (
	"context"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"

	"fmn/rules"
)

// FollowRules loads live's rules now and applies each change as soon as the
// triggers announce it on the fmn_rules channel, so that neither the first
// message nor the first one after an edit waits for the work. Correctness
// does not depend on it: the ingester still checks the version inside its
// own transaction. It returns when ctx ends; a lost connection is retried.
func (s *Store) FollowRules(ctx context.Context, live *rules.Live, log *slog.Logger) error {
	refresh := func() error {
		return s.InTx(ctx, func(tx pgx.Tx) error {
			_, err := live.Current(ctx, tx)
			return err
		})
	}
	backoff := time.Second
	for ctx.Err() == nil {
		err := s.followOnce(ctx, refresh)
		if ctx.Err() != nil {
			break
		}
		log.Warn("following rule changes failed, retrying", "err", err, "backoff", backoff)
		select {
		case <-ctx.Done():
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, time.Minute)
	}
	return nil
}

func (s *Store) followOnce(ctx context.Context, refresh func() error) error {
	conn, err := s.Dedicated(ctx, "rule follower")
	if err != nil {
		return err
	}
	defer CloseDedicated(conn)
	if _, err := conn.Exec(ctx, "LISTEN fmn_rules"); err != nil {
		return translate(err, "listen for rule changes")
	}
	// Load after LISTEN: a change committed in between is then either in
	// this load or announced.
	if err := refresh(); err != nil {
		return err
	}
	for {
		if _, err := conn.WaitForNotification(ctx); err != nil {
			return translate(err, "wait for rule changes")
		}
		if err := refresh(); err != nil {
			return err
		}
	}
}
