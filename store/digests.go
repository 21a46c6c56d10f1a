package store

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"

	"fmn"
	"fmn/apperr"
)

// HoldForDigest parks a pending notification until its destination's next
// digest. It reports the number of items now waiting for that destination,
// counted under a lock of the destination's row.
func (s *Store) HoldForDigest(ctx context.Context, id, destinationID int64, now time.Time) (int, error) {
	var n int
	err := s.InTx(ctx, func(tx pgx.Tx) error {
		// Holds for one destination take turns, so that the last of a
		// burst counts every item before it and sends the digest.
		if _, err := tx.Exec(ctx, `SELECT 1 FROM destinations WHERE id = $1 FOR UPDATE`, destinationID); err != nil {
			return translate(err, "lock destination")
		}
		if _, err := tx.Exec(ctx, `UPDATE notifications SET held_at = $2, status = 'pending'
			WHERE id = $1 AND status IN ('pending', 'failed') AND held_at IS NULL`, id, now); err != nil {
			return translate(err, "hold notification for digest")
		}
		return translate(tx.QueryRow(ctx, `SELECT count(*) FROM notifications
			WHERE destination_id = $1 AND held_at IS NOT NULL AND digest_id IS NULL AND status = 'pending'`,
			destinationID).Scan(&n), "count digest items")
	})
	return n, err
}

// HeldSummary describes what waits for a destination's digest.
type HeldSummary struct {
	DestinationID int64
	Count         int
	Oldest        time.Time
}

// HeldDestinations lists every destination with items waiting for a digest.
func (s *Store) HeldDestinations(ctx context.Context) ([]HeldSummary, error) {
	rows, err := s.Pool.Query(ctx, `SELECT destination_id, count(*), min(held_at) FROM notifications
		WHERE held_at IS NOT NULL AND digest_id IS NULL AND status = 'pending'
		GROUP BY destination_id ORDER BY destination_id`)
	if err != nil {
		return nil, translate(err, "list held notifications")
	}
	hs, err := pgx.CollectRows(rows, pgx.RowToStructByPos[HeldSummary])
	return hs, translate(err, "list held notifications")
}

// HeldFor summarises what waits for one destination's digest.
func (s *Store) HeldFor(ctx context.Context, destinationID int64) (HeldSummary, error) {
	h := HeldSummary{DestinationID: destinationID}
	var oldest *time.Time
	err := s.Pool.QueryRow(ctx, `SELECT count(*), min(held_at) FROM notifications
		WHERE destination_id = $1 AND held_at IS NOT NULL AND digest_id IS NULL AND status = 'pending'`,
		destinationID).Scan(&h.Count, &oldest)
	if oldest != nil {
		h.Oldest = *oldest
	}
	return h, translate(err, "summarise held notifications")
}

// Digest is a digest to send (from NextDigest), with its items newest
// first.
type Digest struct {
	ID            int64
	DestinationID int64
	Items         []fmn.Notification
}

// NextDigest reads what the destination's next digest would carry: up
// to limit of its oldest waiting items (newest first, as the mail lists
// them), under a digest id reserved for it, claiming nothing. It returns
// ErrNotFound when fewer than min items wait. The digest becomes real only
// when ClaimDigest takes its items, once the mailer holds a connection.
func (s *Store) NextDigest(ctx context.Context, destinationID int64, min, limit int) (Digest, error) {
	dg := Digest{DestinationID: destinationID}
	rows, err := s.Pool.Query(ctx, `SELECT `+notificationCols+notificationFrom+`
		WHERE n.id IN (SELECT id FROM notifications
			WHERE destination_id = $1 AND held_at IS NOT NULL AND digest_id IS NULL AND status = 'pending'
			ORDER BY id LIMIT $2)
		ORDER BY coalesce(m.sent_at, m.received_at) DESC, n.id DESC`, destinationID, limit)
	if err != nil {
		return dg, translate(err, "read digest items")
	}
	dg.Items, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (fmn.Notification, error) { return scanNotification(r) })
	if err != nil {
		return dg, translate(err, "read digest items")
	}
	if len(dg.Items) == 0 || len(dg.Items) < min {
		return dg, apperr.ErrNotFound
	}
	// A digest's Message-ID carries its id, so the id is reserved now; an
	// id whose digest is never claimed is simply skipped.
	err = s.Pool.QueryRow(ctx, `SELECT nextval(pg_get_serial_sequence('digests', 'id'))`).Scan(&dg.ID)
	return dg, translate(err, "reserve digest id")
}

// ClaimDigest makes dg (from NextDigest) a digest in state 'sending' with
// its items 'sending' too, committed before the mail is sent: the digest's
// claim. The destination row is locked meanwhile, so two workers claiming
// digests for one destination take turns; it claims all of dg's items or
// none, and reports false when any of them was taken or given up since
// NextDigest read them (nothing is claimed then: read the next digest
// again).
func (s *Store) ClaimDigest(ctx context.Context, dg Digest) (bool, error) {
	ids := make([]int64, len(dg.Items))
	for i, n := range dg.Items {
		ids[i] = n.ID
	}
	claimed := false
	err := s.InTx(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT 1 FROM destinations WHERE id = $1 FOR UPDATE`, dg.DestinationID); err != nil {
			return translate(err, "lock destination")
		}
		if _, err := tx.Exec(ctx, `INSERT INTO digests (id, destination_id, items) VALUES ($1, $2, $3)`,
			dg.ID, dg.DestinationID, len(ids)); err != nil {
			return translate(err, "create digest")
		}
		tag, err := tx.Exec(ctx, `UPDATE notifications SET digest_id = $1, status = 'sending',
			send_attempts = send_attempts + 1, sending_at = now()
			WHERE id = ANY($2) AND destination_id = $3 AND held_at IS NOT NULL AND digest_id IS NULL AND status = 'pending'`,
			dg.ID, ids, dg.DestinationID)
		if err != nil {
			return translate(err, "attach digest items")
		}
		if tag.RowsAffected() != int64(len(ids)) {
			return errDigestTaken
		}
		claimed = true
		return nil
	})
	if errors.Is(err, errDigestTaken) {
		return false, nil
	}
	return claimed, err
}

// errDigestTaken rolls back a claim that found some items gone.
var errDigestTaken = errors.New("digest items taken meanwhile")

// FinishDigest records a digest's outcome. "sent" marks its items sent;
// "failed" puts them back to wait for the next try (the digest is formed
// anew then); "dead" gives them up with the reason.
func (s *Store) FinishDigest(ctx context.Context, id int64, status fmn.Status, reason string) error {
	return s.InTx(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `UPDATE digests SET status = $2, error = nullif($3, ''),
			sent_at = CASE WHEN $2 = 'sent' THEN now() END WHERE id = $1`, id, string(status), reason); err != nil {
			return translate(err, "record digest outcome")
		}
		var err error
		switch status {
		case fmn.StatusSent:
			_, err = tx.Exec(ctx, `UPDATE notifications SET status = 'sent', sent_at = now(), error = NULL WHERE digest_id = $1`, id)
		case fmn.StatusFailed:
			_, err = tx.Exec(ctx, `UPDATE notifications SET status = 'pending', digest_id = NULL, error = $2 WHERE digest_id = $1`, id, reason)
		default:
			_, err = tx.Exec(ctx, `UPDATE notifications SET status = $2, error = nullif($3, '') WHERE digest_id = $1`, id, string(status), reason)
		}
		return translate(err, "record digest items' outcome")
	})
}

// AbandonStaleDigests marks digests that stayed 'sending' longer than
// after as 'unknown', with their items: a worker stopped while sending
// them, and they may have arrived. They are not sent again.
func (s *Store) AbandonStaleDigests(ctx context.Context, now time.Time, after time.Duration) (int, error) {
	var n int
	err := s.InTx(ctx, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `UPDATE digests SET status = 'unknown',
			error = 'a worker stopped while sending this digest; it may have arrived, and is not sent again'
			WHERE status = 'sending' AND created_at < $1 RETURNING id`, now.Add(-after))
		if err != nil {
			return translate(err, "abandon stale digests")
		}
		ids, err := pgx.CollectRows(rows, pgx.RowTo[int64])
		if err != nil {
			return translate(err, "abandon stale digests")
		}
		n = len(ids)
		_, err = tx.Exec(ctx, `UPDATE notifications SET status = 'unknown',
			error = 'sent in a digest whose outcome is unknown' WHERE digest_id = ANY($1)`, ids)
		return translate(err, "abandon stale digests")
	})
	return n, err
}

// DigestRecord is a digest as tests and the history see it.
type DigestRecord struct {
	ID     int64
	Status string
	Items  int
	Error  string
}

// ListDigests returns a destination's digests, oldest first.
func (s *Store) ListDigests(ctx context.Context, destinationID int64) ([]DigestRecord, error) {
	rows, err := s.Pool.Query(ctx, `SELECT id, status, items, coalesce(error, '') FROM digests
		WHERE destination_id = $1 ORDER BY id`, destinationID)
	if err != nil {
		return nil, translate(err, "list digests")
	}
	ds, err := pgx.CollectRows(rows, pgx.RowToStructByPos[DigestRecord])
	return ds, translate(err, "list digests")
}

// DropHeld gives up the items waiting for a destination's digest (the
// destination was turned off or is failing), with the reason.
func (s *Store) DropHeld(ctx context.Context, destinationID int64, reason string) (int64, error) {
	tag, err := s.Pool.Exec(ctx, `UPDATE notifications SET status = 'dead', error = $2
		WHERE destination_id = $1 AND held_at IS NOT NULL AND digest_id IS NULL AND status = 'pending'`,
		destinationID, reason)
	return tag.RowsAffected(), translate(err, "drop held notifications")
}
