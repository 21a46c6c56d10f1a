package store

import (
	"context"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// FoldNick is an IRC nick's comparison key under the rfc1459 case mapping
// (what ngircd and most networks use): ASCII letters fold to lower case, and
// []\~ are the upper case of {}|^.
func FoldNick(nick string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r >= 'A' && r <= 'Z':
			return r + ('a' - 'A')
		case r == '[':
			return '{'
		case r == ']':
			return '}'
		case r == '\\':
			return '|'
		case r == '~':
			return '^'
		}
		return r
	}, nick)
}

// nickKey is FoldNick in SQL; the expression index of migration 0005 is on
// exactly this expression.
const nickKey = `lower(translate(address, '[]\~', '{}|^'))`

// IRCDestinations returns every IRC destination at nick, whoever owns it
// (several users may send to one nick), oldest first.
func (s *Store) IRCDestinations(ctx context.Context, nick string) ([]Destination, error) {
	rows, err := s.Pool.Query(ctx, `SELECT `+destinationCols+` FROM destinations
		WHERE kind = 'irc' AND `+nickKey+` = $1 ORDER BY id`, FoldNick(nick))
	if err != nil {
		return nil, translate(err, "find IRC destinations")
	}
	ds, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Destination, error) { return scanDestination(r) })
	return ds, translate(err, "find IRC destinations")
}

// ConfirmIRC confirms the IRC destination a code was issued for, when the
// code comes back from that very nick ("confirm CODE" sent to the bot).
func (s *Store) ConfirmIRC(ctx context.Context, nick, code string) (Destination, error) {
	d, err := scanDestination(s.Pool.QueryRow(ctx, `
		UPDATE destinations SET confirmed_at = now(), confirm_hash = NULL, confirm_expires_at = NULL
		WHERE confirm_hash = $1 AND confirm_expires_at > now() AND confirmed_at IS NULL
		  AND kind = 'irc' AND `+nickKey+` = $2
		RETURNING `+destinationCols, HashSecret(code), FoldNick(nick)))
	return d, translate(err, "confirm IRC destination")
}

// MuteIRC sets (or with nil clears) the mute of every IRC destination at
// nick and returns how many there are.
func (s *Store) MuteIRC(ctx context.Context, nick string, until *time.Time) (int64, error) {
	tag, err := s.Pool.Exec(ctx, `UPDATE destinations SET muted_until = $2
		WHERE kind = 'irc' AND `+nickKey+` = $1`, FoldNick(nick), until)
	if err != nil {
		return 0, translate(err, "mute IRC destinations")
	}
	return tag.RowsAffected(), nil
}

// StopIRC disables every IRC destination at nick (the nick said "stop") and
// returns how many were enabled.
func (s *Store) StopIRC(ctx context.Context, nick string) (int64, error) {
	tag, err := s.Pool.Exec(ctx, `UPDATE destinations SET enabled = false, failing_reason = 'stopped by the nick on IRC'
		WHERE kind = 'irc' AND enabled AND `+nickKey+` = $1`, FoldNick(nick))
	if err != nil {
		return 0, translate(err, "stop IRC destinations")
	}
	return tag.RowsAffected(), nil
}

// ConfirmLimit bounds confirmations: at most PerAddress to one address in
// Window, and at most PerMinute on the whole channel.
type ConfirmLimit struct {
	PerAddress int
	Window     time.Duration
	PerMinute  int
}

// AllowConfirm records a confirmation about to be sent to address on
// channel kind when the limit allows it; otherwise it records nothing and
// says how long to wait.
func (s *Store) AllowConfirm(ctx context.Context, kind, address string, l ConfirmLimit) (time.Duration, error) {
	var wait time.Duration
	err := s.InTx(ctx, func(tx pgx.Tx) error {
		// One sender per channel at a time: the counts below stay true
		// until the insert commits.
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtext('fmn.confirm.' || $1))`, kind); err != nil {
			return translate(err, "lock confirmation limit")
		}
		if _, err := tx.Exec(ctx, `DELETE FROM channel_confirm_sends WHERE sent_at < now() - interval '2 days'`); err != nil {
			return translate(err, "expire confirmation log")
		}
		var n int
		var oldest *time.Time
		err := tx.QueryRow(ctx, `SELECT count(*), min(sent_at) FROM channel_confirm_sends
			WHERE kind = $1 AND address = $2 AND sent_at > now() - $3::interval`,
			kind, address, l.Window.String()).Scan(&n, &oldest)
		if err != nil {
			return translate(err, "count confirmations")
		}
		if n >= l.PerAddress && oldest != nil {
			wait = max(time.Until(oldest.Add(l.Window)), time.Second)
			return nil
		}
		var oldestMinute *time.Time
		err = tx.QueryRow(ctx, `SELECT count(*), min(sent_at) FROM channel_confirm_sends
			WHERE kind = $1 AND sent_at > now() - interval '1 minute'`, kind).Scan(&n, &oldestMinute)
		if err != nil {
			return translate(err, "count confirmations")
		}
		if n >= l.PerMinute && oldestMinute != nil {
			wait = max(time.Until(oldestMinute.Add(time.Minute)), time.Second)
			return nil
		}
		_, err = tx.Exec(ctx, `INSERT INTO channel_confirm_sends (kind, address) VALUES ($1, $2)`, kind, address)
		return translate(err, "record confirmation")
	})
	return wait, err
}

// ConfirmNow confirms a destination inside tx: for a push subscription made
// by a signed-in browser, where the browser itself is the proof.
func ConfirmNow(ctx context.Context, tx pgx.Tx, id int64) (Destination, error) {
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
