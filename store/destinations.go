package store

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"time"

	"github.com/jackc/pgx/v5"

	"fmn"
	"fmn/apperr"
)

// ConfirmTTL is how long a confirmation link stays valid: long enough to
// find the mail the next morning, short enough that an old mailbox leak is
// useless.
const ConfirmTTL = 48 * time.Hour

const destinationCols = `id, user_id, kind, address, enabled, delivery, muted_until,
	confirmed_at IS NOT NULL, coalesce(failing_reason, ''), created_at`

func scanDestination(row pgx.Row) (fmn.Destination, error) {
	var d fmn.Destination
	err := row.Scan(&d.ID, &d.UserID, &d.Kind, &d.Address, &d.Enabled, &d.Delivery,
		&d.MutedUntil, &d.Confirmed, &d.FailingReason, &d.CreatedAt)
	return d, err
}

// CreateDestination inserts an unconfirmed destination inside tx, so that the
// caller can commit it together with the job that sends its confirmation.
func CreateDestination(ctx context.Context, tx pgx.Tx, userID int64, kind fmn.Kind, address string) (fmn.Destination, error) {
	d, err := scanDestination(tx.QueryRow(ctx, `
		INSERT INTO destinations (user_id, kind, address) VALUES ($1, $2, $3)
		RETURNING `+destinationCols, userID, kind, address))
	return d, translate(err, "create destination")
}

// CheckDestinationQuota refuses, in tx, a new destination for a user who
// has max already (FMN_MAX_DESTINATIONS_PER_USER; 0: no limit); the caller
// then creates it in the same transaction.
func CheckDestinationQuota(ctx context.Context, tx pgx.Tx, userID int64, max int) error {
	return checkQuota(ctx, tx, userID, "destinations", max)
}

// ListDestinations returns a user's destinations, oldest first.
func (s *Store) ListDestinations(ctx context.Context, userID int64) ([]fmn.Destination, error) {
	rows, err := s.Pool.Query(ctx, `SELECT `+destinationCols+` FROM destinations WHERE user_id = $1 ORDER BY id`, userID)
	if err != nil {
		return nil, translate(err, "list destinations")
	}
	ds, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (fmn.Destination, error) { return scanDestination(r) })
	return ds, translate(err, "list destinations")
}

// GetDestination returns one of a user's destinations; another user's is
// ErrNotFound.
func (s *Store) GetDestination(ctx context.Context, userID, id int64) (fmn.Destination, error) {
	d, err := scanDestination(s.Pool.QueryRow(ctx, `SELECT `+destinationCols+` FROM destinations WHERE id = $1 AND user_id = $2`, id, userID))
	return d, translate(err, "get destination")
}

// DestinationByID returns a destination whoever owns it, for workers.
func (s *Store) DestinationByID(ctx context.Context, id int64) (fmn.Destination, error) {
	d, err := scanDestination(s.Pool.QueryRow(ctx, `SELECT `+destinationCols+` FROM destinations WHERE id = $1`, id))
	return d, translate(err, "get destination")
}

// NewConfirmCode makes a fresh confirmation code for an unconfirmed
// destination and stores its hash; any earlier code stops working. It returns
// ErrNotFound when the destination is gone or already confirmed.
func (s *Store) NewConfirmCode(ctx context.Context, id int64) (string, error) {
	code, _, err := s.NewConfirmation(ctx, id)
	return code, err
}

// NewConfirmation is NewConfirmCode that also returns the owner's name, which
// every confirmation message shows, in the same statement.
func (s *Store) NewConfirmation(ctx context.Context, id int64) (code, owner string, err error) {
	code, hash := NewSecret("")
	err = s.Pool.QueryRow(ctx, `
		UPDATE destinations d SET confirm_hash = $2, confirm_expires_at = now() + $3::interval
		FROM users u WHERE d.id = $1 AND d.confirmed_at IS NULL AND u.id = d.user_id
		RETURNING u.name`, id, hash, ConfirmTTL.String()).Scan(&owner)
	if err != nil {
		return "", "", translate(err, "store confirmation code")
	}
	return code, owner, nil
}

// DestinationByCode returns the unconfirmed destination a live code was
// issued for, changing nothing (the page a confirmation link opens shows
// it); anything else is ErrNotFound.
func (s *Store) DestinationByCode(ctx context.Context, code string) (fmn.Destination, error) {
	d, err := scanDestination(s.Pool.QueryRow(ctx, `SELECT `+destinationCols+` FROM destinations
		WHERE confirm_hash = $1 AND confirm_expires_at > now() AND confirmed_at IS NULL`, HashSecret(code)))
	return d, translate(err, "find destination by code")
}

// ConfirmByCode confirms the destination a code was issued for (the mailed
// link). A code works once and only until it expires.
func (s *Store) ConfirmByCode(ctx context.Context, code string) (fmn.Destination, error) {
	d, err := scanDestination(s.Pool.QueryRow(ctx, `
		UPDATE destinations SET confirmed_at = now(), confirm_hash = NULL, confirm_expires_at = NULL
		WHERE confirm_hash = $1 AND confirm_expires_at > now() AND confirmed_at IS NULL
		RETURNING `+destinationCols, HashSecret(code)))
	return d, translate(err, "confirm destination")
}

// ConfirmDestination confirms one of a user's destinations with its code (the
// API path). A wrong code and an unknown destination look the same.
func (s *Store) ConfirmDestination(ctx context.Context, userID, id int64, code string) (fmn.Destination, error) {
	var d fmn.Destination
	err := s.InTx(ctx, func(tx pgx.Tx) error {
		var hash []byte
		err := tx.QueryRow(ctx, `SELECT confirm_hash FROM destinations
			WHERE id = $1 AND user_id = $2 AND confirmed_at IS NULL AND confirm_expires_at > now() FOR UPDATE`,
			id, userID).Scan(&hash)
		if err != nil {
			return translate(err, "find destination to confirm")
		}
		if subtle.ConstantTimeCompare(hash, HashSecret(code)) != 1 {
			return apperr.Invalid("code", "the confirmation code is wrong or has expired")
		}
		d, err = scanDestination(tx.QueryRow(ctx, `UPDATE destinations SET confirmed_at = now(), confirm_hash = NULL,
			confirm_expires_at = NULL WHERE id = $1 RETURNING `+destinationCols, id))
		return translate(err, "confirm destination")
	})
	if err == apperr.ErrNotFound {
		// Already confirmed, expired, or not this user's: say only that the
		// code does not work.
		return d, apperr.Invalid("code", "the confirmation code is wrong or has expired")
	}
	return d, err
}

// DestinationPatch holds the settable fields of a destination; nil leaves a
// field as it is.
type DestinationPatch struct {
	Enabled    *bool
	Delivery   json.RawMessage
	MutedUntil **time.Time
}

// UpdateDestination applies a patch to one of a user's destinations.
func (s *Store) UpdateDestination(ctx context.Context, userID, id int64, p DestinationPatch) (fmn.Destination, error) {
	var muteSet bool
	var mute *time.Time
	if p.MutedUntil != nil {
		muteSet, mute = true, *p.MutedUntil
	}
	var delivery []byte
	if p.Delivery != nil {
		delivery = p.Delivery
	}
	d, err := scanDestination(s.Pool.QueryRow(ctx, `
		UPDATE destinations SET
			enabled = coalesce($3, enabled),
			-- Turning a destination on again is its owner saying the
			-- address works: forget why it was failing.
			failing_reason = CASE WHEN $3::boolean THEN NULL ELSE failing_reason END,
			delivery = coalesce($4::jsonb, delivery),
			muted_until = CASE WHEN $5 THEN $6 ELSE muted_until END
		WHERE id = $1 AND user_id = $2 RETURNING `+destinationCols,
		id, userID, p.Enabled, delivery, muteSet, mute))
	return d, translate(err, "update destination")
}

// SetDestinationFailing records why a destination stopped working (a
// permanent delivery failure), or clears it with "".
func (s *Store) SetDestinationFailing(ctx context.Context, id int64, reason string) error {
	_, err := s.Pool.Exec(ctx, `UPDATE destinations SET failing_reason = nullif($2, '') WHERE id = $1`, id, reason)
	return translate(err, "mark destination failing")
}

// DisableDestination turns a destination off and returns it. A reason (a
// push subscription the push service says is gone) is shown to its owner;
// "" (a one-click unsubscribe) leaves the shown reason as it was.
func (s *Store) DisableDestination(ctx context.Context, id int64, reason string) (fmn.Destination, error) {
	d, err := scanDestination(s.Pool.QueryRow(ctx, `UPDATE destinations SET enabled = false,
		failing_reason = coalesce(nullif($2, ''), failing_reason) WHERE id = $1
		RETURNING `+destinationCols, id, reason))
	return d, translate(err, "disable destination")
}

// DeleteDestination removes one of a user's destinations; another user's
// is ErrNotFound. Its history stays (the notifications lose their
// destination, not their place), what was still waiting to go there is
// given up with the reason, its digests go, and the rules that sent there
// no longer do (a rule left without destinations fills the history only).
// A delivery job of a waiting notification then finds it given up and
// sends nothing.
func (s *Store) DeleteDestination(ctx context.Context, userID, id int64) error {
	return s.InTx(ctx, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `UPDATE notifications SET status = 'dead', error = 'destination deleted'
			WHERE destination_id = (SELECT id FROM destinations WHERE id = $1 AND user_id = $2)
			AND status IN ('pending', 'failed')`, id, userID)
		if err != nil {
			return translate(err, "give up notifications of a deleted destination")
		}
		tag, err := tx.Exec(ctx, `DELETE FROM destinations WHERE id = $1 AND user_id = $2`, id, userID)
		if err != nil {
			return translate(err, "delete destination")
		}
		if tag.RowsAffected() == 0 {
			return apperr.ErrNotFound
		}
		return nil
	})
}
