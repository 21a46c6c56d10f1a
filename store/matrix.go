package store

import (
	"context"

	"github.com/jackc/pgx/v5"

	"fmn"
)

// LockMatrixBot: one Matrix sync loop for all processes ("fmn!" + 2).
const LockMatrixBot int64 = 0x666d6e21 + 2

// MatrixRoom returns the direct room made for a Matrix destination, or ""
// when there is none (yet, or any more).
func (s *Store) MatrixRoom(ctx context.Context, destinationID int64) (string, error) {
	var room string
	err := s.Pool.QueryRow(ctx, `SELECT room_id FROM matrix_rooms WHERE destination_id = $1`, destinationID).Scan(&room)
	if err == pgx.ErrNoRows {
		return "", nil
	}
	return room, translate(err, "read Matrix room")
}

// SetMatrixRoom remembers the direct room of a Matrix destination.
func (s *Store) SetMatrixRoom(ctx context.Context, destinationID int64, room string) error {
	_, err := s.Pool.Exec(ctx, `INSERT INTO matrix_rooms (destination_id, room_id) VALUES ($1, $2)
		ON CONFLICT (destination_id) DO UPDATE SET room_id = excluded.room_id, created_at = now()`, destinationID, room)
	return translate(err, "store Matrix room")
}

// ForgetMatrixRoom forgets a room (its user left it): the next send to
// its destination makes a new one. It returns how many destinations used
// it.
func (s *Store) ForgetMatrixRoom(ctx context.Context, room string) (int64, error) {
	tag, err := s.Pool.Exec(ctx, `DELETE FROM matrix_rooms WHERE room_id = $1`, room)
	return tag.RowsAffected(), translate(err, "forget Matrix room")
}

// MatrixRoomDestinations returns the destinations whose direct room this
// is.
func (s *Store) MatrixRoomDestinations(ctx context.Context, room string) ([]fmn.Destination, error) {
	rows, err := s.Pool.Query(ctx, `SELECT `+destinationCols+` FROM destinations
		WHERE id IN (SELECT destination_id FROM matrix_rooms WHERE room_id = $1) ORDER BY id`, room)
	if err != nil {
		return nil, translate(err, "find Matrix room destinations")
	}
	ds, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (fmn.Destination, error) { return scanDestination(r) })
	return ds, translate(err, "find Matrix room destinations")
}

// MatrixSession is the bot's stored login on a homeserver.
type MatrixSession struct {
	UserID, AccessToken, NextBatch string
}

// GetMatrixSession returns the stored session of homeserver, ErrNotFound
// when there is none.
func (s *Store) GetMatrixSession(ctx context.Context, homeserver string) (MatrixSession, error) {
	var m MatrixSession
	err := s.Pool.QueryRow(ctx, `SELECT user_id, access_token, next_batch FROM matrix_session WHERE homeserver = $1`,
		homeserver).Scan(&m.UserID, &m.AccessToken, &m.NextBatch)
	return m, translate(err, "read Matrix session")
}

// SaveMatrixSession stores the bot's login on homeserver (a new login
// starts its sync afresh).
func (s *Store) SaveMatrixSession(ctx context.Context, homeserver, userID, token string) error {
	_, err := s.Pool.Exec(ctx, `INSERT INTO matrix_session (homeserver, user_id, access_token) VALUES ($1, $2, $3)
		ON CONFLICT (homeserver) DO UPDATE SET user_id = excluded.user_id, access_token = excluded.access_token,
			next_batch = CASE WHEN matrix_session.user_id = excluded.user_id THEN matrix_session.next_batch ELSE '' END,
			updated_at = now()`, homeserver, userID, token)
	return translate(err, "store Matrix session")
}

// SaveMatrixNextBatch records where the sync loop resumes.
func (s *Store) SaveMatrixNextBatch(ctx context.Context, homeserver, userID, next string) error {
	_, err := s.Pool.Exec(ctx, `INSERT INTO matrix_session (homeserver, user_id, access_token, next_batch) VALUES ($1, $2, '', $3)
		ON CONFLICT (homeserver) DO UPDATE SET next_batch = excluded.next_batch, updated_at = now()`, homeserver, userID, next)
	return translate(err, "store Matrix sync position")
}

// Landed records as sent a notification whose message was seen where it
// was sent, if its send is still unrecorded ('sending', or 'failed' after
// a send whose answer was lost).
func (s *Store) Landed(ctx context.Context, notificationID int64) error {
	_, err := s.Pool.Exec(ctx, `UPDATE notifications SET status = 'sent', sent_at = coalesce(sent_at, now()), error = NULL
		WHERE id = $1 AND status IN ('sending', 'failed')`, notificationID)
	return translate(err, "record a message seen sent")
}
