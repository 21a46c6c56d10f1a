package delivery

import (
	"context"
	"crypto/ecdh"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	webpush "github.com/SherClockHolmes/webpush-go"
	"github.com/riverqueue/river"

	"fmn/apperr"
	"fmn/metrics"
	"fmn/store"
)

// PushArgs is the job that pushes one notification to a browser.
type PushArgs struct {
	NotificationID int64 `json:"notification_id"`
}

// Kind implements river.JobArgs.
func (PushArgs) Kind() string { return "push_notification" }

// InsertOpts: push has its own queue; ten attempts (about a day with
// RetryPolicy), the same horizon as the TTL the push service is given.
func (PushArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: ChannelPush, MaxAttempts: 10}
}

// PushConfirmArgs is the job that pushes a subscription made through the API
// its confirmation link.
type PushConfirmArgs struct {
	DestinationID int64 `json:"destination_id"`
}

// Kind implements river.JobArgs.
func (PushConfirmArgs) Kind() string { return "push_confirm" }

// InsertOpts: on the push queue, a few tries.
func (PushConfirmArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: ChannelPush, MaxAttempts: 5}
}

// PushConfirmLimit: three confirmations to one subscription an hour, sixty
// a minute in all.
var PushConfirmLimit = store.ConfirmLimit{PerAddress: 3, Window: time.Hour, PerMinute: 60}

// Push TTLs: how long the push service keeps a message for a browser that is
// offline. A notification a day old is still worth a glance; a confirmation
// is worth what its code is.
const (
	pushTTL        = 24 * time.Hour
	pushConfirmTTL = store.ConfirmTTL
)

// PushPayload is what the service worker receives (templates/static/sw.js
// shows it). App is the icon hint: the bus application the message is from.
type PushPayload struct {
	Title string `json:"title"`
	Body  string `json:"body"`
	Link  string `json:"link"`
	App   string `json:"app,omitempty"`
	Icon  string `json:"icon,omitempty"`
	Tag   string `json:"tag,omitempty"`
}

// PushSettings are the parts of the configuration push needs.
type PushSettings struct {
	Subject    string // FMN_PUSH_SUBJECT: mailto: or https: contact for push services
	BaseURL    string
	PublicKey  string // VAPID, base64url
	PrivateKey string
}

// Pusher encrypts and posts one payload to a subscription (RFC 8291, with a
// VAPID header per RFC 8292, both done by webpush-go).
type Pusher struct {
	Settings PushSettings
	Client   *http.Client
}

// pushError is a push service's answer other than success.
type pushError struct {
	Status     int
	RetryAfter time.Duration
	Body       string
}

func (e *pushError) Error() string {
	if e.Body != "" {
		return fmt.Sprintf("push service answered %d: %s", e.Status, e.Body)
	}
	return fmt.Sprintf("push service answered %d", e.Status)
}

// Send posts p to the subscription address (the destination's JSON).
func (p *Pusher) Send(ctx context.Context, address string, payload PushPayload, ttl time.Duration, urgency webpush.Urgency) error {
	var sub webpush.Subscription
	if err := json.Unmarshal([]byte(address), &sub); err != nil {
		return fmt.Errorf("read subscription: %w", err)
	}
	body, err := json.Marshal(payload)
	if err != nil {
		return err
	}
	client := p.Client
	if client == nil {
		client = &http.Client{Timeout: 30 * time.Second}
	}
	resp, err := webpush.SendNotificationWithContext(ctx, body, &sub, &webpush.Options{
		HTTPClient:      client,
		Subscriber:      strings.TrimPrefix(p.Settings.Subject, "mailto:"), // webpush-go adds mailto: itself
		TTL:             int(ttl / time.Second),
		Urgency:         urgency,
		VAPIDPublicKey:  p.Settings.PublicKey,
		VAPIDPrivateKey: p.Settings.PrivateKey,
	})
	if err != nil {
		return fmt.Errorf("push: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
		return nil
	}
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 200))
	e := &pushError{Status: resp.StatusCode, Body: IRCClean(string(msg))}
	if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && s > 0 {
		e.RetryAfter = time.Duration(min(s, 86400)) * time.Second
	}
	return e
}

// handle sorts a failed push: a subscription the service says is gone (404,
// 410) disables the destination; 429 waits as asked; 5xx and network errors
// are retried with backoff; any other 4xx is permanent.
func handlePushError(ctx context.Context, st *store.Store, d store.Destination, err error) (gone bool, jobErr error) {
	var pe *pushError
	if !errors.As(err, &pe) {
		return false, err
	}
	switch {
	case pe.Status == http.StatusNotFound || pe.Status == http.StatusGone:
		_, _ = st.DisableDestination(ctx, d.ID, fmt.Sprintf("the browser's push subscription is gone (push service answered %d)", pe.Status))
		return true, river.JobCancel(err)
	case pe.Status == http.StatusTooManyRequests:
		if pe.RetryAfter > 0 {
			return false, river.JobSnooze(pe.RetryAfter)
		}
		return false, err
	case pe.Status >= 500:
		return false, err
	default:
		_ = st.SetDestinationFailing(ctx, d.ID, err.Error())
		return true, river.JobCancel(err)
	}
}

// PushWorker pushes one notification.
type PushWorker struct {
	river.WorkerDefaults[PushArgs]
	Store   *store.Store
	Pusher  *Pusher
	Metrics *metrics.Metrics
	Log     *slog.Logger
}

// Work pushes the notification unless it was pushed already or the
// destination is unconfirmed, disabled or muted by now.
func (w *PushWorker) Work(ctx context.Context, job *river.Job[PushArgs]) error {
	n, d, err := notificationAndDestination(ctx, w.Store, job.Args.NotificationID)
	if err != nil {
		return err
	}
	if reason := undeliverable(d); reason != "" {
		_ = w.Store.FinishNotification(ctx, n.ID, "dead", reason)
		return nil
	}
	ok, err := w.Store.ClaimNotification(ctx, n.ID)
	if err != nil || !ok {
		return err
	}
	err = w.Pusher.Send(ctx, d.Address, NotificationPayload(n, w.Pusher.Settings.BaseURL), pushTTL, webpush.UrgencyNormal)
	if err != nil {
		w.Metrics.Failures.WithLabelValues(ChannelPush).Inc()
		gone, jobErr := handlePushError(ctx, w.Store, d, err)
		status := "failed"
		if gone || job.Attempt >= job.MaxAttempts {
			status = "dead"
		}
		_ = w.Store.FinishNotification(context.WithoutCancel(ctx), n.ID, status, err.Error())
		return jobErr
	}
	if err := w.Store.FinishNotification(ctx, n.ID, "sent", ""); err != nil {
		return err
	}
	w.Metrics.Sent.WithLabelValues(ChannelPush).Inc()
	return nil
}

// NotificationPayload is the push payload of a notification: the app as
// title, the summary as body, the message's link (or fmn's history).
func NotificationPayload(n store.Notification, baseURL string) PushPayload {
	body := n.Message.Summary
	if body == "" {
		body = n.Message.Topic
	}
	title := "fmn"
	if n.Message.App != "" {
		title = n.Message.App
	}
	link := n.Message.Link
	if !strings.HasPrefix(link, "https://") && !strings.HasPrefix(link, "http://") {
		link = baseURL + "/"
	}
	return PushPayload{
		Title: CutAtWord(IRCClean(title), 100),
		Body:  CutAtWord(IRCClean(body), 400),
		Link:  link,
		App:   n.Message.App,
		Icon:  baseURL + "/static/favicon.svg",
		Tag:   "fmn-" + strconv.FormatInt(n.ID, 10),
	}
}

// PushConfirmWorker pushes a subscription its confirmation link: the first
// and, until it is opened, only thing pushed to it.
type PushConfirmWorker struct {
	river.WorkerDefaults[PushConfirmArgs]
	Store  *store.Store
	Pusher *Pusher
	Log    *slog.Logger
}

// Work makes a fresh code and pushes its link, within the rate limit.
func (w *PushConfirmWorker) Work(ctx context.Context, job *river.Job[PushConfirmArgs]) error {
	d, err := w.Store.DestinationByID(ctx, job.Args.DestinationID)
	if errors.Is(err, apperr.ErrNotFound) {
		return river.JobCancel(errors.New("destination is gone"))
	}
	if err != nil {
		return err
	}
	if d.Confirmed || !d.Enabled {
		return nil
	}
	var sub Subscription
	if err := json.Unmarshal([]byte(d.Address), &sub); err != nil {
		return river.JobCancel(fmt.Errorf("read subscription: %w", err))
	}
	wait, err := w.Store.AllowConfirm(ctx, ChannelPush, sub.Endpoint, PushConfirmLimit)
	if err != nil {
		return err
	}
	if wait > 0 {
		return river.JobSnooze(wait)
	}
	code, owner, err := w.Store.NewConfirmation(ctx, d.ID)
	if errors.Is(err, apperr.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	base := w.Pusher.Settings.BaseURL
	payload := PushPayload{
		Title: "Confirm fmn notifications",
		Body:  CutAtWord(IRCClean(owner)+" asked to send notifications to this browser. Click to confirm.", 400),
		Link:  base + "/confirm/" + code,
		Icon:  base + "/static/favicon.svg",
		Tag:   "fmn-confirm",
	}
	if err := w.Pusher.Send(ctx, d.Address, payload, pushConfirmTTL, webpush.UrgencyHigh); err != nil {
		_, jobErr := handlePushError(ctx, w.Store, d, err)
		return jobErr
	}
	return nil
}

// VAPIDKeys returns the key pair to sign with: the configured one, checked,
// or the one kept in the database (made on first start).
func VAPIDKeys(ctx context.Context, st *store.Store, public, private string) (string, string, error) {
	if public != "" || private != "" {
		if err := checkVAPID(public, private); err != nil {
			return "", "", err
		}
		return public, private, nil
	}
	return st.VAPIDKeys(ctx, func() (string, string, error) {
		priv, pub, err := webpush.GenerateVAPIDKeys()
		return pub, priv, err
	})
}

// checkVAPID makes sure the two keys are a P-256 pair in base64url.
func checkVAPID(public, private string) error {
	pub, err1 := decodeKey(public)
	priv, err2 := decodeKey(private)
	if err1 != nil || err2 != nil {
		return errors.New("FMN_VAPID_PUBLIC_KEY and FMN_VAPID_PRIVATE_KEY must both be base64url keys")
	}
	k, err := ecdh.P256().NewPrivateKey(priv)
	if err != nil {
		return errors.New("FMN_VAPID_PRIVATE_KEY is not a P-256 private key (32 bytes, base64url)")
	}
	if base64.RawURLEncoding.EncodeToString(k.PublicKey().Bytes()) != base64.RawURLEncoding.EncodeToString(pub) {
		return errors.New("FMN_VAPID_PUBLIC_KEY is not the public key of FMN_VAPID_PRIVATE_KEY")
	}
	return nil
}
