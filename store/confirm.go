package store

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"

	"fmn"
	"fmn/apperr"
)

// ConfirmLimit bounds the confirmations of one channel: at most PerAddress
// to one address in Window, at most PerUser asked by one user an hour, and
// at most PerMinute on the whole channel (0: no such bound). A
// confirmation is the one thing fmn sends to an address nobody vouched
// for: these keep it from being a way to spam strangers.
type ConfirmLimit struct {
	PerAddress int
	Window     time.Duration
	PerUser    int
	PerMinute  int
}

// RecordConfirmSend counts a confirmation about to be queued in tx for the
// user to the address key (fmn.AddressKey) on channel kind, or returns
// ErrRateLimited, counting nothing, when the limit is reached. An advisory
// lock per channel makes concurrent requests count one after the other.
// Every channel's confirmations go through here, once, when they are asked
// for.
func RecordConfirmSend(ctx context.Context, tx pgx.Tx, userID int64, kind fmn.Kind, key string, l ConfirmLimit, now time.Time) error {
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtextextended('fmn.confirm.' || $1, 0))`, string(kind)); err != nil {
		return translate(err, "lock confirmation limit")
	}
	var perAddr, perUser, perMinute int
	err := tx.QueryRow(ctx, `SELECT
		(SELECT count(*) FROM confirm_sends WHERE kind = $1 AND address = $2 AND created_at > $4),
		(SELECT count(*) FROM confirm_sends WHERE user_id = $3 AND created_at > $5),
		(SELECT count(*) FROM confirm_sends WHERE kind = $1 AND created_at > $6)`,
		string(kind), key, userID, now.Add(-l.Window), now.Add(-time.Hour), now.Add(-time.Minute)).Scan(&perAddr, &perUser, &perMinute)
	if err != nil {
		return translate(err, "count confirmations")
	}
	if perAddr >= l.PerAddress || perUser >= l.PerUser || l.PerMinute > 0 && perMinute >= l.PerMinute {
		return apperr.ErrRateLimited
	}
	_, err = tx.Exec(ctx, `INSERT INTO confirm_sends (user_id, kind, address, created_at) VALUES ($1, $2, $3, $4)`,
		userID, string(kind), key, now)
	return translate(err, "record confirmation")
}
