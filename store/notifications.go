package store

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"

	"fmn/rules"
)

// NewNotification is a notification row just created, with what the caller
// needs to queue its delivery job.
type NewNotification struct {
	ID            int64
	DestinationID int64
	Kind          string
}

// InsertNotifications records the matches of one stored message in tx
// (see InsertNotificationBatch).
func InsertNotifications(ctx context.Context, tx pgx.Tx, messageID int64, ms []rules.Match) ([]NewNotification, error) {
	return InsertNotificationBatch(ctx, tx, []MessageMatches{{MessageID: messageID, Matches: ms}})
}

// Notification is a notification as its owner sees it in the history.
type Notification struct {
	ID        int64      `json:"id"`
	Status    string     `json:"status"`
	Error     string     `json:"error,omitempty"`
	CreatedAt time.Time  `json:"created_at"`
	SentAt    *time.Time `json:"sent_at"`
	// DestinationID is 0 (and left out of JSON) for a notification kept in
	// the history only (status "recorded": its rule had no destination that
	// could receive) or whose destination was deleted since.
	DestinationID int64   `json:"destination_id,omitempty"`
	RuleID        *int64  `json:"rule_id"`
	RuleName      string  `json:"rule_name,omitempty"`
	Hit           *Hit    `json:"matched,omitempty"`
	Message       Message `json:"message"`
}

// Hit is the rule entry that made a notification (rules.Hit), as the API
// shows it: {"field": "packages", "entry": "python-*"}.
type Hit struct {
	Field string `json:"field"`
	Entry string `json:"entry,omitempty"`
}

const notificationCols = `n.id, n.status, coalesce(n.error, ''), n.created_at, n.sent_at, coalesce(n.destination_id, 0), n.rule_id,
	coalesce(r.name, ''),
	CASE WHEN n.hit_field IS NOT NULL THEN json_strip_nulls(json_build_object('field', n.hit_field, 'entry', n.hit_entry)) END,
	` + messageCols

const notificationFrom = ` FROM notifications n JOIN messages m ON m.id = n.message_id LEFT JOIN rules r ON r.id = n.rule_id `

// notificationDests lists the scan targets for notificationCols.
func notificationDests(n *Notification) []any {
	m := &n.Message
	return []any{&n.ID, &n.Status, &n.Error, &n.CreatedAt, &n.SentAt, &n.DestinationID, &n.RuleID, &n.RuleName,
		&n.Hit, &m.ID, &m.MsgID, &m.Topic, &m.App, &m.Agent, &m.Usernames, &m.Packages, &m.Groups, &m.Containers, &m.Modules, &m.Flatpaks, &m.Summary, &m.Link, &m.Severity, &m.SentAt, &m.ReceivedAt}
}

func scanNotification(row pgx.Row) (Notification, error) {
	var n Notification
	err := row.Scan(notificationDests(&n)...)
	return n, err
}

// ListNotifications returns a user's newest notifications first.
func (s *Store) ListNotifications(ctx context.Context, userID int64, limit int, beforeID int64) ([]Notification, error) {
	rows, err := s.Pool.Query(ctx, `SELECT `+notificationCols+notificationFrom+`
		WHERE n.user_id = $1 AND ($3 = 0 OR n.id < $3) ORDER BY n.id DESC LIMIT $2`, userID, limit, beforeID)
	if err != nil {
		return nil, translate(err, "list notifications")
	}
	ns, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Notification, error) { return scanNotification(r) })
	return ns, translate(err, "list notifications")
}

// UserNotification returns one of a user's notifications; another user's
// is ErrNotFound.
func (s *Store) UserNotification(ctx context.Context, userID, id int64) (Notification, error) {
	n, err := scanNotification(s.Pool.QueryRow(ctx, `SELECT `+notificationCols+notificationFrom+` WHERE n.id = $1 AND n.user_id = $2`, id, userID))
	return n, translate(err, "get notification")
}

// GetNotification returns a notification whoever owns it, for workers.
func (s *Store) GetNotification(ctx context.Context, id int64) (Notification, error) {
	n, err := scanNotification(s.Pool.QueryRow(ctx, `SELECT `+notificationCols+notificationFrom+` WHERE n.id = $1`, id))
	return n, translate(err, "get notification")
}

// ClaimNotification moves a pending (or interrupted) notification to
// "sending" and reports whether the caller should send it. A notification
// already sent is never claimed again: that is what keeps a retried job from
// sending twice.
func (s *Store) ClaimNotification(ctx context.Context, id int64) (bool, error) {
	tag, err := s.Pool.Exec(ctx, `UPDATE notifications SET status = 'sending'
		WHERE id = $1 AND status IN ('pending', 'sending', 'failed')`, id)
	if err != nil {
		return false, translate(err, "claim notification")
	}
	return tag.RowsAffected() == 1, nil
}

// FinishNotification records the outcome of a send: "sent", "failed" (will
// be retried) or "dead" (given up), with the reason for the last two.
func (s *Store) FinishNotification(ctx context.Context, id int64, status, reason string) error {
	_, err := s.Pool.Exec(ctx, `UPDATE notifications SET status = $2, error = nullif($3, ''),
		sent_at = CASE WHEN $2 = 'sent' THEN now() ELSE sent_at END WHERE id = $1`, id, status, reason)
	return translate(err, "record notification outcome")
}

// OwnedNotification is a notification with its owner, for fan-out.
type OwnedNotification struct {
	UserID int64
	Notification
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
func (s *Store) UserNotificationsAfter(ctx context.Context, userID, afterID int64, limit int) ([]Notification, error) {
	rows, err := s.Pool.Query(ctx, `SELECT `+notificationCols+notificationFrom+`
		WHERE n.user_id = $1 AND n.id > $2 ORDER BY n.id LIMIT $3`, userID, afterID, limit)
	if err != nil {
		return nil, translate(err, "list notifications to resume")
	}
	ns, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Notification, error) { return scanNotification(r) })
	return ns, translate(err, "list notifications to resume")
}

// MaxNotificationID is where a live hub starts.
func (s *Store) MaxNotificationID(ctx context.Context) (int64, error) {
	var id int64
	err := s.Pool.QueryRow(ctx, `SELECT coalesce(max(id), 0) FROM notifications`).Scan(&id)
	return id, translate(err, "read newest notification id")
}
