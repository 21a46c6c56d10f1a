package store

import (
	"context"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"

	"fmn"
)

// atAddress is the SQL condition "destination of kind at address $N" for
// the chat channels, whose users talk back: an IRC nick compares folded
// (the expression index of migration 0005 is on exactly this), a Matrix
// user ID as it is.
func atAddress(kind fmn.Kind, n int) (string, func(string) string) {
	p := "$" + strconv.Itoa(n)
	if kind == fmn.KindIRC {
		return `kind = 'irc' AND lower(translate(address, '[]\~', '{}|^')) = ` + p, fmn.FoldNick
	}
	return `kind = '` + string(kind) + `' AND address = ` + p, func(a string) string { return a }
}

// DestinationsAt returns every destination of kind at address, whoever
// owns it (several users may send to one nick or Matrix user), oldest
// first.
func (s *Store) DestinationsAt(ctx context.Context, kind fmn.Kind, address string) ([]fmn.Destination, error) {
	cond, key := atAddress(kind, 1)
	rows, err := s.Pool.Query(ctx, `SELECT `+destinationCols+` FROM destinations WHERE `+cond+` ORDER BY id`, key(address))
	if err != nil {
		return nil, translate(err, "find destinations at an address")
	}
	ds, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (fmn.Destination, error) { return scanDestination(r) })
	return ds, translate(err, "find destinations at an address")
}

// ConfirmAt confirms the destination of kind at address a code was issued
// for, when the code comes back from that very address ("confirm CODE"
// said to the bot).
func (s *Store) ConfirmAt(ctx context.Context, kind fmn.Kind, address, code string) (fmn.Destination, error) {
	cond, key := atAddress(kind, 2)
	d, err := scanDestination(s.Pool.QueryRow(ctx, `
		UPDATE destinations SET confirmed_at = now(), confirm_hash = NULL, confirm_expires_at = NULL
		WHERE confirm_hash = $1 AND confirm_expires_at > now() AND confirmed_at IS NULL AND `+cond+`
		RETURNING `+destinationCols, HashSecret(code), key(address)))
	return d, translate(err, "confirm destination by its address")
}

// MuteAt sets (or with nil clears) the mute of every destination of kind
// at address and returns how many there are.
func (s *Store) MuteAt(ctx context.Context, kind fmn.Kind, address string, until *time.Time) (int64, error) {
	cond, key := atAddress(kind, 1)
	tag, err := s.Pool.Exec(ctx, `UPDATE destinations SET muted_until = $2 WHERE `+cond, key(address), until)
	if err != nil {
		return 0, translate(err, "mute destinations")
	}
	return tag.RowsAffected(), nil
}

// StopAt disables every destination of kind at address (its user said
// "stop") and returns how many were enabled.
func (s *Store) StopAt(ctx context.Context, kind fmn.Kind, address, reason string) (int64, error) {
	cond, key := atAddress(kind, 1)
	tag, err := s.Pool.Exec(ctx, `UPDATE destinations SET enabled = false, failing_reason = $2
		WHERE enabled AND `+cond, key(address), reason)
	if err != nil {
		return 0, translate(err, "stop destinations")
	}
	return tag.RowsAffected(), nil
}

// ConfirmNow confirms a destination inside tx: for a push subscription made
// by a signed-in browser, where the browser itself is the proof.
func ConfirmNow(ctx context.Context, tx pgx.Tx, id int64) (fmn.Destination, error) {
	d, err := scanDestination(tx.QueryRow(ctx, `UPDATE destinations SET confirmed_at = now(),
		confirm_hash = NULL, confirm_expires_at = NULL WHERE id = $1 RETURNING `+destinationCols, id))
	return d, translate(err, "confirm destination")
}

// VAPIDKeys returns the stored VAPID key pair, storing the one gen makes
// when there is none yet. Two processes starting together agree on one pair.
func (s *Store) VAPIDKeys(ctx context.Context, gen func() (public, private string, err error)) (public, private string, err error) {
	err = s.Pool.QueryRow(ctx, `SELECT public_key, private_key FROM push_vapid_keys`).Scan(&public, &private)
	if err == nil {
		return public, private, nil
	}
	if err != pgx.ErrNoRows {
		return "", "", translate(err, "read VAPID keys")
	}
	pub, priv, err := gen()
	if err != nil {
		return "", "", err
	}
	if _, err := s.Pool.Exec(ctx, `INSERT INTO push_vapid_keys (public_key, private_key) VALUES ($1, $2)
		ON CONFLICT DO NOTHING`, pub, priv); err != nil {
		return "", "", translate(err, "store VAPID keys")
	}
	err = s.Pool.QueryRow(ctx, `SELECT public_key, private_key FROM push_vapid_keys`).Scan(&public, &private)
	return public, private, translate(err, "read VAPID keys")
}
