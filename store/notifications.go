package store

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"

	"fmn"
	"fmn/rules"
)

// NewNotification is a notification row just created, with what the caller
// needs to queue its delivery job.
type NewNotification struct {
	ID            int64
	DestinationID int64
	Kind          fmn.Kind
}

// InsertNotifications records the matches of one stored message in tx
// (see InsertNotificationBatch).
func InsertNotifications(ctx context.Context, tx pgx.Tx, messageID int64, ms []rules.Match) ([]NewNotification, error) {
	return InsertNotificationBatch(ctx, tx, []MessageMatches{{MessageID: messageID, Matches: ms}})
}

const notificationCols = `n.id, n.status, coalesce(n.error, ''), n.created_at, n.sent_at, coalesce(n.destination_id, 0), n.rule_id,
	coalesce(r.name, ''),
	CASE WHEN n.hit_field IS NOT NULL THEN json_strip_nulls(json_build_object('field', n.hit_field, 'entry', n.hit_entry)) END,
	` + messageCols

// notificationFrom joins a notification to its message by the message's
// id and its partition key, so that only the message's day of the log is
// read (TestHistoryReadsOneDayPerMessage).
const notificationFrom = ` FROM notifications n JOIN messages m ON m.id = n.message_id AND m.received_at = n.message_received_at
	LEFT JOIN rules r ON r.id = n.rule_id `

// notificationDests lists the scan targets for notificationCols.
func notificationDests(n *fmn.Notification) []any {
	m := &n.Message
	return []any{&n.ID, &n.Status, &n.Error, &n.CreatedAt, &n.SentAt, &n.DestinationID, &n.RuleID, &n.RuleName,
		&n.Hit, &m.ID, &m.MsgID, &m.Topic, &m.App, &m.Agent, &m.Usernames, &m.Packages, &m.Groups, &m.Containers, &m.Modules, &m.Flatpaks, &m.Summary, &m.Link, &m.Severity, &m.SentAt, &m.ReceivedAt}
}

func scanNotification(row pgx.Row) (fmn.Notification, error) {
	var n fmn.Notification
	err := row.Scan(notificationDests(&n)...)
	return n, err
}

// ListNotifications returns a user's newest notifications first.
func (s *Store) ListNotifications(ctx context.Context, userID int64, limit int, beforeID int64) ([]fmn.Notification, error) {
	rows, err := s.Pool.Query(ctx, `SELECT `+notificationCols+notificationFrom+`
		WHERE n.user_id = $1 AND ($3 = 0 OR n.id < $3) ORDER BY n.id DESC LIMIT $2`, userID, limit, beforeID)
	if err != nil {
		return nil, translate(err, "list notifications")
	}
	ns, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (fmn.Notification, error) { return scanNotification(r) })
	return ns, translate(err, "list notifications")
}

// UserNotification returns one of a user's notifications; another user's
// is ErrNotFound.
func (s *Store) UserNotification(ctx context.Context, userID, id int64) (fmn.Notification, error) {
	n, err := scanNotification(s.Pool.QueryRow(ctx, `SELECT `+notificationCols+notificationFrom+` WHERE n.id = $1 AND n.user_id = $2`, id, userID))
	return n, translate(err, "get notification")
}

// GetNotification returns a notification whoever owns it, for workers.
func (s *Store) GetNotification(ctx context.Context, id int64) (fmn.Notification, error) {
	n, err := scanNotification(s.Pool.QueryRow(ctx, `SELECT `+notificationCols+notificationFrom+` WHERE n.id = $1`, id))
	return n, translate(err, "get notification")
}

// Claim outcomes of ClaimNotification.
const (
	ClaimOK          = "ok"          // the caller sends now
	ClaimDone        = "done"        // sent, held for a digest, or given up already: nothing to do
	ClaimInterrupted = "interrupted" // an earlier send began and never recorded its outcome: now unknown
)

// ClaimNotification marks a pending (or failed, to be retried)
// notification as being sent, counting the attempt, and commits that
// before the caller contacts the server. A notification found still
// 'sending' was handed over by a worker that stopped before recording the
// answer: with again false (a channel that cannot tell a repeat, like
// email or IRC) it becomes 'unknown' and is never sent again, so a crash
// loses at most the sends in flight but never doubles one; with again true
// (a channel whose server drops a repeat, like Matrix with its transaction
// ids) it is simply claimed again.
func (s *Store) ClaimNotification(ctx context.Context, id int64, now time.Time, again bool) (string, error) {
	var status string
	err := s.Pool.QueryRow(ctx, `
		WITH cur AS (SELECT status FROM notifications WHERE id = $1 FOR UPDATE),
		upd AS (
			UPDATE notifications n SET
				status = CASE WHEN cur.status = 'sending' AND NOT $3 THEN 'unknown' ELSE 'sending' END,
				send_attempts = n.send_attempts + CASE WHEN cur.status = 'sending' AND NOT $3 THEN 0 ELSE 1 END,
				sending_at = CASE WHEN cur.status = 'sending' AND NOT $3 THEN n.sending_at ELSE $2 END,
				error = CASE WHEN cur.status = 'sending' AND NOT $3
					THEN 'a worker stopped while sending this; it may have arrived, and is not sent again so that it never arrives twice'
					ELSE n.error END
			FROM cur WHERE n.id = $1 AND cur.status IN ('pending', 'failed', 'sending') AND n.held_at IS NULL
			RETURNING cur.status AS before)
		SELECT coalesce((SELECT before FROM upd), (SELECT status FROM cur) || ':unchanged', 'missing')`, id, now, again).Scan(&status)
	if err != nil {
		return "", translate(err, "claim notification for sending")
	}
	switch {
	case status == "pending" || status == "failed" || status == "sending" && again:
		return ClaimOK, nil
	case status == "sending":
		return ClaimInterrupted, nil
	}
	return ClaimDone, nil
}

// FinishNotification records the outcome of a send: sent, failed (will be
// retried) or dead or unknown (given up), with the reason for the last three.
func (s *Store) FinishNotification(ctx context.Context, id int64, status fmn.Status, reason string) error {
	_, err := s.Pool.Exec(ctx, `UPDATE notifications SET status = $2, error = nullif($3, ''),
		sent_at = CASE WHEN $2 = 'sent' THEN now() ELSE sent_at END WHERE id = $1`, id, string(status), reason)
	return translate(err, "record notification outcome")
}

// OwnedNotification is a notification with its owner, for fan-out.
type OwnedNotification struct {
	UserID int64
	fmn.Notification
}

// NotificationsAfter returns every user's notifications with id > afterID,
// oldest first, for the live hub.
func (s *Store) NotificationsAfter(ctx context.Context, afterID int64, limit int) ([]OwnedNotification, error) {
	rows, err := s.Pool.Query(ctx, `SELECT n.user_id, `+notificationCols+notificationFrom+`
		WHERE n.id > $1 ORDER BY n.id LIMIT $2`, afterID, limit)
	if err != nil {
		return nil, translate(err, "list new notifications")
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (OwnedNotification, error) {
		var o OwnedNotification
		err := r.Scan(append([]any{&o.UserID}, notificationDests(&o.Notification)...)...)
		return o, err
	})
	return out, translate(err, "list new notifications")
}

// UserNotificationsAfter returns one user's notifications with id >
// afterID, oldest first (an SSE client resuming with Last-Event-ID).
func (s *Store) UserNotificationsAfter(ctx context.Context, userID, afterID int64, limit int) ([]fmn.Notification, error) {
	rows, err := s.Pool.Query(ctx, `SELECT `+notificationCols+notificationFrom+`
		WHERE n.user_id = $1 AND n.id > $2 ORDER BY n.id LIMIT $3`, userID, afterID, limit)
	if err != nil {
		return nil, translate(err, "list notifications to resume")
	}
	ns, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (fmn.Notification, error) { return scanNotification(r) })
	return ns, translate(err, "list notifications to resume")
}

// MaxNotificationID is where a live hub starts.
func (s *Store) MaxNotificationID(ctx context.Context) (int64, error) {
	var id int64
	err := s.Pool.QueryRow(ctx, `SELECT coalesce(max(id), 0) FROM notifications`).Scan(&id)
	return id, translate(err, "read newest notification id")
}

// ToDeliver is what a delivery worker needs about one notification: the
// notification, its destination, and the destination's owner's quiet
// hours, read in one query.
type ToDeliver struct {
	Notification fmn.Notification
	Destination  fmn.Destination
	Quiet        fmn.Quiet
}

// GetToDeliver reads a notification with its destination and the owner's
// quiet hours; ErrNotFound when either is gone (a notification kept in the
// history only has no destination).
func (s *Store) GetToDeliver(ctx context.Context, id int64) (ToDeliver, error) {
	var t ToDeliver
	d := &t.Destination
	var tz string
	var qs, qe *string
	err := s.Pool.QueryRow(ctx, `SELECT `+notificationCols+`,
		d.id, d.user_id, d.kind, d.address, d.enabled, d.delivery, d.muted_until, d.confirmed_at IS NOT NULL,
		coalesce(d.failing_reason, ''), d.created_at,
		u.timezone, to_char(u.quiet_start, 'HH24:MI'), to_char(u.quiet_end, 'HH24:MI')`+notificationFrom+`
		JOIN destinations d ON d.id = n.destination_id JOIN users u ON u.id = d.user_id WHERE n.id = $1`, id).
		Scan(append(notificationDests(&t.Notification), &d.ID, &d.UserID, &d.Kind, &d.Address, &d.Enabled, &d.Delivery,
			&d.MutedUntil, &d.Confirmed, &d.FailingReason, &d.CreatedAt, &tz, &qs, &qe)...)
	if err != nil {
		return t, translate(err, "get notification to deliver")
	}
	t.Quiet = fmn.QuietOf(tz, qs, qe)
	return t, nil
}
