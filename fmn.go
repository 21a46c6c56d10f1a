// Package fmn holds the domain types that the web, the store and delivery
// all speak: a destination and its kind, a stored message, a notification
// and its status, and a destination's delivery policy. It imports nothing of
// fmn's own, so every layer can depend on it and none on another's types
// (the shape of benbjohnson/wtf: the root package is the domain, the
// subpackages are adapters).
package fmn

import (
	"encoding/json"
	"time"
)

// Kind is a destination's channel. It names the River queue and the metric
// label of that channel too.
type Kind string

// The channels.
const (
	KindEmail  Kind = "email"
	KindIRC    Kind = "irc"
	KindMatrix Kind = "matrix"
	KindPush   Kind = "push"
)

// Kinds lists every channel, in the order the pages show them.
var Kinds = []Kind{KindEmail, KindIRC, KindMatrix, KindPush}

// Destination is where a user receives notifications.
type Destination struct {
	ID            int64           `json:"id"`
	UserID        int64           `json:"-"`
	Kind          Kind            `json:"kind"`
	Address       string          `json:"address"`
	Enabled       bool            `json:"enabled"`
	Delivery      json.RawMessage `json:"delivery"`
	MutedUntil    *time.Time      `json:"muted_until"`
	Confirmed     bool            `json:"confirmed"`
	FailingReason string          `json:"failing_reason,omitempty"`
	CreatedAt     time.Time       `json:"created_at"`
}

// Message is a stored bus message as users see it.
type Message struct {
	ID         int64      `json:"id"`
	MsgID      string     `json:"msg_id"`
	Topic      string     `json:"topic"`
	App        string     `json:"app"`
	Agent      string     `json:"agent"`
	Usernames  []string   `json:"usernames"`
	Packages   []string   `json:"packages"`
	Groups     []string   `json:"groups"`
	Containers []string   `json:"containers"`
	Modules    []string   `json:"modules"`
	Flatpaks   []string   `json:"flatpaks"`
	Summary    string     `json:"summary"`
	Link       string     `json:"link"`
	Severity   string     `json:"severity,omitempty"`
	SentAt     *time.Time `json:"sent_at"`
	ReceivedAt time.Time  `json:"received_at"`
}

// Notification is one message matched to one destination (or, status
// recorded, to a user's history only).
type Notification struct {
	ID        int64      `json:"id"`
	Status    Status     `json:"status"`
	Error     string     `json:"error,omitempty"`
	CreatedAt time.Time  `json:"created_at"`
	SentAt    *time.Time `json:"sent_at"`
	// DestinationID is 0 (and left out of JSON) for a notification kept in
	// the history only (status recorded: its rule had no destination that
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

// Status is where a notification is on its way. The database refuses any
// other value (a check constraint on notifications.status).
type Status string

// The statuses. A notification starts pending; a worker claims it
// (sending) and records the outcome. failed is retried; sent, dead and
// unknown are final.
const (
	StatusPending Status = "pending"
	StatusSending Status = "sending"
	StatusSent    Status = "sent"
	StatusFailed  Status = "failed"
	// StatusDead: given up, with the reason (a permanent failure,
	// attempts exhausted, a deleted destination).
	StatusDead Status = "dead"
	// StatusUnknown: a send began and its outcome was never heard (the
	// worker was killed, or the connection broke as the server answered).
	// It may have arrived and is never sent again.
	StatusUnknown Status = "unknown"
	// StatusRecorded: kept in the history only, no destination could
	// receive it; no worker ever delivers it.
	StatusRecorded Status = "recorded"
	// StatusSkipped: deliberately not sent, by the owner's choice (matched
	// while its destination was muted or turned off, or in quiet hours on a
	// channel that cannot hold it for later): not a failure, and not shown
	// as one.
	StatusSkipped Status = "skipped"
)

// Final reports whether nothing more will happen to a notification.
func (s Status) Final() bool {
	switch s {
	case StatusSent, StatusDead, StatusUnknown, StatusRecorded, StatusSkipped:
		return true
	}
	return false
}
