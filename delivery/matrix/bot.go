package matrix

import (
	"context"
	"errors"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"fmn"
	"fmn/apperr"
	"fmn/delivery"
	"fmn/store"
)

// Bot is the sync loop: it reads what users say in their rooms and
// answers the commands, and forgets the room of a user who left it. It
// starts once its Session is signed in.
type Bot struct {
	Session  *Session
	Store    *store.Store
	Commands *delivery.Commands
	Log      *slog.Logger
	// Lock, when set, is held while syncing (store.HoldLock), so that
	// however many processes run, one loop reads and answers.
	Lock func(ctx context.Context) (lost <-chan struct{}, release func(), err error)

	// synced, when set (tests), is told after each sync is handled.
	synced func()

	client *Client
	self   string // the bot's own user ID
}

// syncWait is how long one sync waits for news.
const syncWait = 30 * time.Second

// Run syncs, once the session is signed in, until ctx ends.
func (b *Bot) Run(ctx context.Context) error {
	select {
	case <-b.Session.Ready():
	case <-ctx.Done():
		return nil
	}
	var err error
	if b.client, b.self, err = b.Session.Current(); err != nil {
		return err
	}
	for ctx.Err() == nil {
		lctx, release := ctx, func() {}
		if b.Lock != nil {
			lost, rel, err := b.Lock(ctx)
			if err != nil {
				if ctx.Err() != nil {
					return nil
				}
				b.Log.Error("Matrix bot lock failed, retrying", "err", err)
				sleep(ctx, 5*time.Second)
				continue
			}
			var cancel context.CancelFunc
			lctx, cancel = context.WithCancel(ctx)
			go func() {
				select {
				case <-lost:
					b.Log.Warn("Matrix bot lock lost: stopping the sync loop")
					cancel()
				case <-lctx.Done():
				}
			}()
			release = func() { cancel(); rel() }
			b.Log.Info("this process reads fmn's Matrix rooms")
		}
		b.loop(lctx)
		release()
	}
	return nil
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// loop syncs from the stored position, backing off on errors (1 s doubling
// to a minute), until ctx ends.
func (b *Bot) loop(ctx context.Context) {
	backoff := time.Second
	for ctx.Err() == nil {
		since := ""
		if s, err := b.Store.GetMatrixSession(ctx, b.client.BaseURL); err == nil {
			since = s.NextBatch
		} else if !errors.Is(err, apperr.ErrNotFound) {
			b.Log.Warn("read Matrix sync position", "err", err)
		}
		wait := syncWait
		if since == "" {
			wait = 0 // where "now" is; what was said before is not answered
		}
		r, err := b.client.Sync(ctx, since, wait)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			var ae *APIError
			if errors.As(err, &ae) && ae.RetryAfter > 0 {
				backoff = ae.RetryAfter
			}
			b.Log.Warn("Matrix sync failed", "err", err, "retry_in", backoff)
			sleep(ctx, backoff)
			backoff = min(backoff*2, time.Minute)
			continue
		}
		backoff = time.Second
		if since != "" {
			b.handle(ctx, r)
		}
		if err := b.Store.SaveMatrixNextBatch(ctx, b.client.BaseURL, b.self, r.NextBatch); err != nil && ctx.Err() == nil {
			b.Log.Warn("store Matrix sync position", "err", err)
		}
		if b.synced != nil {
			b.synced()
		}
	}
}

// handle answers the messages and follows the memberships of one sync.
func (b *Bot) handle(ctx context.Context, r syncResponse) {
	for room := range r.Rooms.Leave {
		b.forget(ctx, room, "the bot left or was removed")
	}
	for room, j := range r.Rooms.Join {
		for _, e := range append(j.State.Events, j.Timeline.Events...) {
			switch {
			case e.Type == "m.room.member" && e.StateKey != nil && *e.StateKey != b.self &&
				(e.Content.Membership == "leave" || e.Content.Membership == "ban"):
				b.forget(ctx, room, *e.StateKey+" left")
				_ = b.client.Leave(ctx, room)
			case e.Type == "m.room.message" && e.Sender != b.self && e.Content.MsgType == "m.text":
				b.answer(ctx, room, e)
			case e.Type == "m.room.message" && e.Sender == b.self:
				b.landed(ctx, e)
			}
		}
	}
}

// landed records as sent a notification whose message the homeserver
// shows in its room. A homeserver recognises a repeated transaction id
// only once it answered the first send: when fmn was killed while the
// homeserver was taking a message, the message may be in the room with
// nothing remembered of its transaction id, and a resend would show it
// twice (measured with Dendrite). The sync loop sees the bot's own
// messages with their transaction ids, and so tells the retry, which
// comes a rescue later (75 s), that there is nothing left to send.
func (b *Bot) landed(ctx context.Context, e event) {
	rest, ok := strings.CutPrefix(e.Unsigned.TransactionID, "fmn.n.")
	if !ok {
		return
	}
	id, err := strconv.ParseInt(rest, 10, 64)
	if err != nil {
		return
	}
	if err := b.Store.Landed(ctx, id); err != nil {
		b.Log.Warn("record a Matrix message seen in its room", "notification_id", id, "err", err)
	}
}

func (b *Bot) forget(ctx context.Context, room, why string) {
	if n, err := b.Store.ForgetMatrixRoom(ctx, room); err != nil {
		b.Log.Warn("forget Matrix room", "room", room, "err", err)
	} else if n > 0 {
		b.Log.Info("Matrix room forgotten; the next send makes a new one", "room", room, "why", why)
	}
}

// answer runs a command said in room and replies there, each reply with a
// transaction id derived from the event it answers (a sync handled twice
// answers once).
func (b *Bot) answer(ctx context.Context, room string, e event) {
	if !fmn.ValidMatrixID(e.Sender) || !b.Commands.Allow(e.Sender, time.Now()) {
		return
	}
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for i, line := range b.Commands.Reply(cctx, e.Sender, e.Content.Body) {
		if err := b.client.Send(cctx, room, "fmn.r."+e.EventID+"."+strconv.Itoa(i), Message{MsgType: "m.notice", Body: line}); err != nil {
			b.Log.Warn("Matrix reply not sent", "room", room, "err", err)
			return
		}
	}
}
