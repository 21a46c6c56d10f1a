// Package push is fmn's Web Push channel: each notification encrypted for
// one browser subscription (RFC 8291) and posted to its push service with a
// VAPID signature (RFC 8292), both by webpush-go. Its test server is
// pushtest.
package push

import (
	"context"
	"crypto/ecdh"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	webpush "github.com/SherClockHolmes/webpush-go"

	"fmn"
	"fmn/delivery"
	"fmn/store"
)

// Push TTLs: how long the push service keeps a message for a browser that is
// offline. A notification a day old is still worth a glance; a confirmation
// is worth what its code is.
const (
	pushTTL        = 24 * time.Hour
	pushConfirmTTL = store.ConfirmTTL
	pushNoteTTL    = 10 * time.Minute
)

// Route: push has its own queue; ten attempts (about a day with its
// backoff), the same horizon as the TTL the push service is given. Twenty
// pushes at once; each claims its notification just before its request.
func (p *Pusher) Route() delivery.Route {
	return delivery.Route{Kind: fmn.KindPush, Channel: p, Attempts: 10, Timeout: time.Minute, Workers: 20,
		Backoff: 10 * time.Second, MaxBackoff: 4 * time.Hour}
}

// Payload is what the service worker receives (templates/static/sw.js
// shows it). App is the icon hint: the bus application the message is from.
type Payload struct {
	Title string `json:"title"`
	Body  string `json:"body"`
	Link  string `json:"link"`
	App   string `json:"app,omitempty"`
	Icon  string `json:"icon,omitempty"`
	Tag   string `json:"tag,omitempty"`
	// Why is the page saying why the notification was made (the service
	// worker offers it as the notification's "Why?" action).
	Why string `json:"why,omitempty"`
}

// Settings are the parts of the configuration push needs.
type Settings struct {
	Subject    string // FMN_PUSH_SUBJECT: mailto: or https: contact for push services
	BaseURL    string
	PublicKey  string // VAPID, base64url
	PrivateKey string
}

// pushTimeout bounds one push request, connection included: a push
// service answers in well under a second, and a slow one must not hold a
// worker that others' pushes need (see turns).
const pushTimeout = 10 * time.Second

// Pusher encrypts and posts one payload to a subscription (RFC 8291, with a
// VAPID header per RFC 8292, both done by webpush-go).
type Pusher struct {
	Settings Settings
	// Guard says where pushes may go (FMN_PUSH_ALLOW_PRIVATE); every
	// request goes through its client.
	Guard Guard

	clientOnce sync.Once
	client     *http.Client
	turns      turns
}

// pushError is a push service's answer other than success. What it says is
// fmn's own words for the status: the answer's body is never read into
// anything a user sees (an internal service's answer could carry secrets).
type pushError struct {
	Status     int
	RetryAfter time.Duration
}

func (e *pushError) Error() string {
	var why string
	switch {
	case e.Status == http.StatusNotFound || e.Status == http.StatusGone:
		why = "the browser's push subscription is gone"
	case e.Status >= 300 && e.Status < 400:
		why = "a redirect, which fmn does not follow"
	case e.Status == http.StatusUnauthorized || e.Status == http.StatusForbidden:
		why = "it refused fmn's VAPID signature"
	case e.Status == http.StatusRequestEntityTooLarge:
		why = "the message was too large for it"
	case e.Status == http.StatusTooManyRequests:
		why = "it asked fmn to slow down"
	case e.Status >= 500:
		why = "it failed"
	default:
		why = "it refused the request"
	}
	return fmt.Sprintf("the push service answered %d: %s", e.Status, why)
}

func (p *Pusher) httpClient() *http.Client {
	p.clientOnce.Do(func() { p.client = p.Guard.Client(pushTimeout) })
	return p.client
}

// post sends payload to the subscription address (the destination's JSON),
// claiming first when claim is set.
func (p *Pusher) post(ctx context.Context, address string, payload Payload, ttl time.Duration, urgency webpush.Urgency, claim delivery.Claim) error {
	var sub webpush.Subscription
	if err := json.Unmarshal([]byte(address), &sub); err != nil {
		return fmt.Errorf("read subscription: %w", err)
	}
	body, err := json.Marshal(payload)
	if err != nil {
		return err
	}
	u, err := url.Parse(sub.Endpoint)
	if err != nil {
		return &reachError{why: "the push endpoint is not a URL", blocked: true, err: err}
	}
	if err := p.Guard.checkURL(u); err != nil {
		return &reachError{why: err.Error(), blocked: true, err: err}
	}
	record := func(error) {}
	if claim != nil {
		if record, err = claim(ctx); record == nil {
			return err
		}
	}
	err = p.request(ctx, body, &sub, ttl, urgency)
	record(err)
	return err
}

// request makes the push request, through the guard's client, and reads
// its answer: the status, and Retry-After; the body is drained, never kept.
func (p *Pusher) request(ctx context.Context, body []byte, sub *webpush.Subscription, ttl time.Duration, urgency webpush.Urgency) error {
	resp, err := webpush.SendNotificationWithContext(ctx, body, sub, &webpush.Options{
		HTTPClient:      p.httpClient(),
		Subscriber:      strings.TrimPrefix(p.Settings.Subject, "mailto:"), // webpush-go adds mailto: itself
		TTL:             int(ttl / time.Second),
		Urgency:         urgency,
		VAPIDPublicKey:  p.Settings.PublicKey,
		VAPIDPrivateKey: p.Settings.PrivateKey,
	})
	if err != nil {
		return reachFailure(err)
	}
	defer resp.Body.Close()
	// Drained (a little) so the connection can be reused; never kept.
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return nil
	}
	e := &pushError{Status: resp.StatusCode}
	if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && s > 0 {
		e.RetryAfter = time.Duration(min(s, 86400)) * time.Second
	}
	return e
}

// Send implements delivery.Channel, in the destination's turn (see turns).
func (p *Pusher) Send(ctx context.Context, d fmn.Destination, n fmn.Notification, claim delivery.Claim) error {
	return p.inTurn(ctx, d, func() error {
		return p.post(ctx, d.Address, NotificationPayload(n, p.Settings.BaseURL), pushTTL, webpush.UrgencyNormal, claim)
	})
}

// inTurn pushes in d's turn (see turns), waiting a moment for it.
func (p *Pusher) inTurn(ctx context.Context, d fmn.Destination, push func() error) error {
	release, err := p.turns.take(ctx, d)
	if err != nil {
		return err
	}
	err = push()
	var re *reachError
	release(errors.As(err, &re) && re.timeout)
	return err
}

// Classify implements delivery.Channel: a subscription the service says is
// gone (404, 410), any other 4xx, a redirect, or an endpoint the guard
// refuses is permanent (the destination is marked failing and nothing more
// is pushed to it); 429 waits as asked; a push that did not get its turn
// (see turns) waits too, and is no failure; 5xx and network errors are
// retried with backoff.
func (p *Pusher) Classify(err error) delivery.Verdict {
	var pe *pushError
	var re *reachError
	var busy *busyError
	switch {
	case errors.As(err, &busy):
		return delivery.Verdict{Outcome: delivery.Wait, RetryAfter: busy.wait}
	case errors.As(err, &re):
		if re.blocked {
			return delivery.Verdict{Outcome: delivery.Permanent}
		}
		return delivery.Verdict{Outcome: delivery.Temporary}
	case !errors.As(err, &pe) || pe.Status >= 500:
		return delivery.Verdict{Outcome: delivery.Temporary}
	case pe.Status == http.StatusTooManyRequests && pe.RetryAfter > 0:
		return delivery.Verdict{Outcome: delivery.RateLimited, RetryAfter: pe.RetryAfter}
	case pe.Status == http.StatusTooManyRequests:
		return delivery.Verdict{Outcome: delivery.Temporary}
	}
	return delivery.Verdict{Outcome: delivery.Permanent}
}

// NotificationPayload is the push payload of a notification: the app as
// title, the summary as body, the message's link (or fmn's history).
func NotificationPayload(n fmn.Notification, baseURL string) Payload {
	app, body, link := delivery.Headline(n.Message)
	title := "fmn"
	if app != "" {
		title = app
	}
	if !strings.HasPrefix(link, "https://") && !strings.HasPrefix(link, "http://") {
		link = baseURL + "/"
	}
	return Payload{
		Title: delivery.CutAtWord(title, 100),
		Body:  delivery.CutAtWord(body, 400),
		Link:  link,
		App:   n.Message.App,
		Icon:  baseURL + "/static/favicon.svg",
		Tag:   "fmn-" + strconv.FormatInt(n.ID, 10),
		Why:   delivery.WhyURL(baseURL, n.ID),
	}
}

// Confirm implements delivery.Channel: the link, pushed; the first and,
// until it is opened, only thing pushed to the subscription.
func (p *Pusher) Confirm(ctx context.Context, d fmn.Destination, owner, code string) error {
	base := p.Settings.BaseURL
	payload := Payload{
		Title: "Confirm fmn notifications",
		Body:  delivery.CutAtWord(delivery.Clean(owner)+" asked to send notifications to this browser. Click to confirm.", 400),
		Link:  base + "/confirm/" + code,
		Icon:  base + "/static/favicon.svg",
		Tag:   "fmn-confirm",
	}
	return p.inTurn(ctx, d, func() error { return p.post(ctx, d.Address, payload, pushConfirmTTL, webpush.UrgencyHigh, nil) })
}

// Tell implements delivery.Channel: the note pushed, opening the
// destinations page; kept by the push service a few minutes only (a test
// is looked for now).
func (p *Pusher) Tell(ctx context.Context, d fmn.Destination, n delivery.Note) error {
	base := p.Settings.BaseURL
	payload := Payload{Title: delivery.CutAtWord(delivery.Clean(n.Title), 100), Body: delivery.CutAtWord(delivery.Clean(n.Text), 400),
		Link: base + "/destinations", Icon: base + "/static/favicon.svg", Tag: "fmn-" + n.Key}
	return p.inTurn(ctx, d, func() error { return p.post(ctx, d.Address, payload, pushNoteTTL, webpush.UrgencyNormal, nil) })
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
	pub, err1 := fmn.DecodeKey(public)
	priv, err2 := fmn.DecodeKey(private)
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
