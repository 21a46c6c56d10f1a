package web

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"fmn"
	"fmn/store"
)

// subBuffer bounds what a live subscriber may fall behind by. A client that
// cannot keep up is dropped (it reconnects and resumes with Last-Event-ID);
// the hub never waits for one.
const subBuffer = 64

// Hub fans new notifications out to the open streams of their owners. It
// learns of new rows through Postgres NOTIFY, so it works whichever process
// created them, and reads them with a cursor, so a missed NOTIFY costs only
// latency (it also polls).
type Hub struct {
	st  *store.Store
	log *slog.Logger

	mu   sync.Mutex
	subs map[int64]map[*subscriber]struct{}
}

type subscriber struct {
	c    chan fmn.Notification
	gone chan struct{} // closed when the hub dropped it
	once sync.Once
}

func (s *subscriber) drop() { s.once.Do(func() { close(s.gone) }) }

// NewHub returns a hub; call Run to feed it.
func NewHub(st *store.Store, log *slog.Logger) *Hub {
	return &Hub{st: st, log: log, subs: map[int64]map[*subscriber]struct{}{}}
}

func (h *Hub) subscribe(userID int64) *subscriber {
	s := &subscriber{c: make(chan fmn.Notification, subBuffer), gone: make(chan struct{})}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.subs[userID] == nil {
		h.subs[userID] = map[*subscriber]struct{}{}
	}
	h.subs[userID][s] = struct{}{}
	return s
}

func (h *Hub) unsubscribe(userID int64, s *subscriber) {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.subs[userID], s)
	if len(h.subs[userID]) == 0 {
		delete(h.subs, userID)
	}
	s.drop()
}

func (h *Hub) dispatch(n store.OwnedNotification) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for s := range h.subs[n.UserID] {
		select {
		case s.c <- n.Notification:
		default:
			delete(h.subs[n.UserID], s)
			s.drop()
		}
	}
}

// pollEvery bounds the delay when a NOTIFY is lost (a reconnect, say).
const pollEvery = 5 * time.Second

// Run listens until ctx ends, reconnecting on database errors.
func (h *Hub) Run(ctx context.Context) error {
	last, err := h.st.MaxNotificationID(ctx)
	for err != nil && ctx.Err() == nil {
		h.log.Warn("live hub: database not reachable, retrying", "err", err)
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
		last, err = h.st.MaxNotificationID(ctx)
	}
	for ctx.Err() == nil {
		if err := h.listen(ctx, &last); err != nil && ctx.Err() == nil {
			h.log.Warn("live hub: listen failed, retrying", "err", err)
			select {
			case <-ctx.Done():
			case <-time.After(time.Second):
			}
		}
	}
	return nil
}

func (h *Hub) listen(ctx context.Context, last *int64) error {
	conn, err := h.st.Dedicated(ctx, "live view")
	if err != nil {
		return err
	}
	defer store.CloseDedicated(conn)
	if _, err := conn.Exec(ctx, "LISTEN fmn_notifications"); err != nil {
		return err
	}
	for {
		if err := h.catchUp(ctx, last); err != nil {
			return err
		}
		wctx, cancel := context.WithTimeout(ctx, pollEvery)
		_, err := conn.WaitForNotification(wctx)
		cancel()
		if err != nil && ctx.Err() != nil {
			return nil
		}
		if err != nil && wctx.Err() == nil {
			return err
		}
	}
}

func (h *Hub) catchUp(ctx context.Context, last *int64) error {
	for {
		ns, err := h.st.NotificationsAfter(ctx, *last, 500)
		if err != nil {
			return err
		}
		for _, n := range ns {
			h.dispatch(n)
			*last = n.ID
		}
		if len(ns) < 500 {
			return nil
		}
	}
}
