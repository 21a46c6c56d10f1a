package matrix

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"html"
	"net/http"
	"strconv"
	"strings"
	"time"

	"fmn"
	"fmn/delivery"
	"fmn/store"
)

// Channel sends to Matrix users; it is a delivery.Channel.
type Channel struct {
	Session *Session
	Store   *store.Store
	BaseURL string
}

// While the bot is not signed in (the homeserver was down when fmn
// started), jobs wait without spending attempts, looking again every
// signedOutRecheck.
const signedOutRecheck = 10 * time.Second

// Route: Matrix has its own queue. Its sends are recognised by their
// transaction id, so a notification found 'sending' after a crash is
// simply sent again (Again); a rate limit (429) waits as asked.
func (c *Channel) Route() delivery.Route {
	return delivery.Route{Kind: fmn.KindMatrix, Channel: c, Attempts: 10, Timeout: time.Minute, Workers: 20,
		Backoff: 10 * time.Second, MaxBackoff: time.Hour, Again: true}
}

// room returns d's direct room, making it (and inviting d's user) when
// there is none.
func (c *Channel) room(ctx context.Context, client *Client, d fmn.Destination) (string, error) {
	room, err := c.Store.MatrixRoom(ctx, d.ID)
	if err != nil || room != "" {
		return room, err
	}
	if room, err = client.CreateDM(ctx, d.Address); err != nil {
		return "", fmt.Errorf("make a direct room with %s: %w", d.Address, err)
	}
	return room, c.Store.SetMatrixRoom(ctx, d.ID, room)
}

// send sends msg to d's room; when the bot is no longer in it the room is
// forgotten, so the retry makes a new one.
func (c *Channel) send(ctx context.Context, d fmn.Destination, txn string, msg Message, claim delivery.Claim) error {
	client, _, err := c.Session.Current()
	if err != nil {
		return err
	}
	room, err := c.room(ctx, client, d)
	if err != nil {
		return err
	}
	record := func(error) {}
	if claim != nil {
		if record, err = claim(ctx); record == nil {
			return err
		}
	}
	err = client.Send(ctx, room, txn, msg)
	defer func() { record(err) }()
	if isForbidden(err) {
		_, _ = c.Store.ForgetMatrixRoom(context.WithoutCancel(ctx), room)
		err = fmt.Errorf("the bot is no longer in %s's room; a new one is made on the retry: %w", d.Address, err)
	}
	return err
}

// Send implements delivery.Channel: "[app] summary — link" as the plain
// body, the same with the link as a link in HTML; the transaction id is
// the notification's.
func (c *Channel) Send(ctx context.Context, d fmn.Destination, n fmn.Notification, claim delivery.Claim) error {
	return c.send(ctx, d, "fmn.n."+strconv.FormatInt(n.ID, 10), NotificationMessage(n, c.BaseURL), claim)
}

// NotificationMessage is the m.text of a notification.
func NotificationMessage(n fmn.Notification, baseURL string) Message {
	app, summary, link := delivery.Headline(n.Message)
	summary = delivery.CutAtWord(summary, 1000)
	plain, rich := summary, html.EscapeString(summary)
	if app != "" {
		plain, rich = "["+app+"] "+plain, "<b>["+html.EscapeString(app)+"]</b> "+rich
	}
	if !strings.HasPrefix(link, "https://") && !strings.HasPrefix(link, "http://") {
		link = ""
	}
	if link != "" {
		plain += " — " + link
		rich += ` — <a href="` + html.EscapeString(link) + `">` + html.EscapeString(link) + `</a>`
	}
	why := delivery.WhyURL(baseURL, n.ID)
	plain += " (why: " + why + ")"
	rich += ` <small>(<a href="` + html.EscapeString(why) + `">why?</a>)</small>`
	return Message{MsgType: "m.text", Body: plain, Format: "org.matrix.custom.html", FormattedBody: rich}
}

// Confirm implements delivery.Channel: the link, and the reply to give,
// in the destination's room. The transaction id is the code's, so a retry
// of this confirmation is shown once.
func (c *Channel) Confirm(ctx context.Context, d fmn.Destination, owner, code string) error {
	link := c.BaseURL + "/confirm/" + code
	who := delivery.Clean(owner)
	plain := fmt.Sprintf("fmn: %s asked to send notifications to this Matrix account. To accept, open %s or reply: confirm %s — not you? Leave this room.", who, link, code)
	rich := fmt.Sprintf(`fmn: %s asked to send notifications to this Matrix account. To accept, open <a href="%s">%s</a> or reply: <code>confirm %s</code> — not you? Leave this room.`,
		html.EscapeString(who), html.EscapeString(link), html.EscapeString(link), html.EscapeString(code))
	h := sha256.Sum256([]byte(code))
	return c.send(ctx, d, "fmn.c."+strconv.FormatInt(d.ID, 10)+"."+hex.EncodeToString(h[:6]),
		Message{MsgType: "m.text", Body: plain, Format: "org.matrix.custom.html", FormattedBody: rich}, nil)
}

// Tell implements delivery.Channel: one plain m.text, under a transaction
// id made from the note's key (a retry shows once).
func (c *Channel) Tell(ctx context.Context, d fmn.Destination, n delivery.Note) error {
	return c.send(ctx, d, "fmn."+n.Key, Message{MsgType: "m.text", Body: delivery.CutAtWord(n.Line(), 1000)}, nil)
}

// Classify implements delivery.Channel: the bot not signed in yet waits;
// 429 waits retry_after_ms; a user that does not exist (or a server
// refusing the invite) is permanent; anything else is retried.
func (c *Channel) Classify(err error) delivery.Verdict {
	var ae *APIError
	if errors.Is(err, ErrSignedOut) {
		return delivery.Verdict{Outcome: delivery.RateLimited, RetryAfter: signedOutRecheck}
	}
	if !errors.As(err, &ae) {
		return delivery.Verdict{Outcome: delivery.Temporary}
	}
	switch {
	case ae.Status == http.StatusTooManyRequests:
		return delivery.Verdict{Outcome: delivery.RateLimited, RetryAfter: max(ae.RetryAfter, time.Second)}
	case ae.Code == "M_NOT_FOUND" || ae.Code == "M_INVALID_PARAM" || ae.Code == "M_UNKNOWN" && ae.Status == http.StatusBadRequest:
		return delivery.Verdict{Outcome: delivery.Permanent}
	}
	return delivery.Verdict{Outcome: delivery.Temporary}
}
