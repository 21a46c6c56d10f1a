// Package matrix is fmn's Matrix channel: each destination (a user ID,
// @jane:example.org) gets one direct room made by fmn's bot, remembered in
// the database; notifications are m.text messages with a plain body and an
// HTML formatted_body, sent with a transaction id derived from the
// notification, so that a retry after a crash never shows twice. One sync
// loop (the process holding an advisory lock) reads what users say to the
// bot: the commands of delivery.Commands, and "confirm CODE".
//
// It speaks the client-server API with net/http: the six endpoints it
// needs (login, whoami, createRoom, send, sync, leave) are a small file,
// where mautrix would bring a large module and its own dependencies.
// Its tests run against a real homeserver (dendritetest).
package matrix

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// Client calls a homeserver's client-server API with one access token.
type Client struct {
	BaseURL string
	Token   string
	HTTP    *http.Client // nil: one with a 90 s timeout (a sync waits 30 s)
}

// APIError is a homeserver's answer other than success.
type APIError struct {
	Status     int
	Code       string // errcode, e.g. M_FORBIDDEN, M_LIMIT_EXCEEDED
	Message    string
	RetryAfter time.Duration // from retry_after_ms (or Retry-After) on 429
}

func (e *APIError) Error() string {
	return fmt.Sprintf("Matrix homeserver answered %d %s: %s", e.Status, e.Code, e.Message)
}

func (c *Client) do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.BaseURL+path, body)
	if err != nil {
		return err
	}
	if c.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	hc := c.HTTP
	if hc == nil {
		hc = &http.Client{Timeout: 90 * time.Second}
	}
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("matrix %s: %w", path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return fmt.Errorf("matrix %s: %w", path, err)
	}
	if resp.StatusCode != http.StatusOK {
		var e struct {
			Code         string `json:"errcode"`
			Message      string `json:"error"`
			RetryAfterMS int64  `json:"retry_after_ms"`
		}
		_ = json.Unmarshal(raw, &e)
		ae := &APIError{Status: resp.StatusCode, Code: e.Code, Message: e.Message,
			RetryAfter: time.Duration(e.RetryAfterMS) * time.Millisecond}
		if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && ae.RetryAfter == 0 {
			ae.RetryAfter = time.Duration(s) * time.Second
		}
		ae.RetryAfter = min(ae.RetryAfter, time.Hour)
		return ae
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			return fmt.Errorf("matrix %s: %w", path, err)
		}
	}
	return nil
}

// Login signs in with a password and returns the user ID and the access
// token.
func (c *Client) Login(ctx context.Context, user, password string) (userID, token string, err error) {
	var out struct {
		UserID      string `json:"user_id"`
		AccessToken string `json:"access_token"`
	}
	err = c.do(ctx, "POST", "/_matrix/client/v3/login", map[string]any{
		"type":                        "m.login.password",
		"identifier":                  map[string]string{"type": "m.id.user", "user": user},
		"password":                    password,
		"initial_device_display_name": "fmn",
	}, &out)
	return out.UserID, out.AccessToken, err
}

// WhoAmI returns the user ID of the token.
func (c *Client) WhoAmI(ctx context.Context) (string, error) {
	var out struct {
		UserID string `json:"user_id"`
	}
	err := c.do(ctx, "GET", "/_matrix/client/v3/account/whoami", nil, &out)
	return out.UserID, err
}

// CreateDM makes a private room marked direct and invites user to it.
func (c *Client) CreateDM(ctx context.Context, user string) (string, error) {
	var out struct {
		RoomID string `json:"room_id"`
	}
	err := c.do(ctx, "POST", "/_matrix/client/v3/createRoom", map[string]any{
		"preset": "trusted_private_chat", "is_direct": true, "invite": []string{user},
		"name": "fmn notifications",
	}, &out)
	return out.RoomID, err
}

// Message is an m.room.message of type m.text with an HTML form.
type Message struct {
	MsgType       string `json:"msgtype"`
	Body          string `json:"body"`
	Format        string `json:"format,omitempty"`
	FormattedBody string `json:"formatted_body,omitempty"`
}

// Send sends msg to room under the transaction id txn: the homeserver
// applies a repeated transaction id (of one access token) once.
func (c *Client) Send(ctx context.Context, room, txn string, msg Message) error {
	return c.do(ctx, "PUT", "/_matrix/client/v3/rooms/"+url.PathEscape(room)+"/send/m.room.message/"+url.PathEscape(txn), msg, nil)
}

// Leave leaves room.
func (c *Client) Leave(ctx context.Context, room string) error {
	return c.do(ctx, "POST", "/_matrix/client/v3/rooms/"+url.PathEscape(room)+"/leave", map[string]any{}, nil)
}

// event is a room event as sync gives it.
type event struct {
	Type     string  `json:"type"`
	Sender   string  `json:"sender"`
	EventID  string  `json:"event_id"`
	StateKey *string `json:"state_key"`
	Unsigned struct {
		// TransactionID is shown to the sending device only: the bot's own
		// sends, by the transaction id it gave them.
		TransactionID string `json:"transaction_id"`
	} `json:"unsigned"`
	Content struct {
		Body       string `json:"body"`
		MsgType    string `json:"msgtype"`
		Membership string `json:"membership"`
	} `json:"content"`
}

// syncResponse is the part of /sync the bot reads.
type syncResponse struct {
	NextBatch string `json:"next_batch"`
	Rooms     struct {
		Join map[string]struct {
			State    struct{ Events []event } `json:"state"`
			Timeline struct{ Events []event } `json:"timeline"`
		} `json:"join"`
		Leave map[string]json.RawMessage `json:"leave"`
	} `json:"rooms"`
}

// Sync waits up to timeout for what happened since since ("" for the
// current state only).
func (c *Client) Sync(ctx context.Context, since string, timeout time.Duration) (syncResponse, error) {
	q := url.Values{"timeout": {strconv.FormatInt(timeout.Milliseconds(), 10)}}
	if since != "" {
		q.Set("since", since)
	} else {
		// A first sync only needs where "now" is.
		q.Set("filter", `{"room":{"timeline":{"limit":0}}}`)
	}
	var out syncResponse
	err := c.do(ctx, "GET", "/_matrix/client/v3/sync?"+q.Encode(), nil, &out)
	return out, err
}

// isForbidden: the bot may not send there (it is no longer in the room).
func isForbidden(err error) bool {
	var ae *APIError
	return errors.As(err, &ae) && ae.Code == "M_FORBIDDEN"
}
