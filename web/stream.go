package web

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"time"

	"fmn"
	"fmn/apperr"
)

// heartbeat keeps proxies from closing an idle stream and lets a client
// notice a dead one.
const heartbeat = 15 * time.Second

// maxResume bounds how much history a resuming client is sent.
const maxResume = 500

// stream serves the caller's new notifications as Server-Sent Events:
// `id: N`, `event: notification`, `data: {json}`. A client that reconnects
// with Last-Event-ID first gets what it missed, from the database.
func (s *Server) stream(w http.ResponseWriter, r *http.Request) error {
	if s.Hub == nil {
		return fmt.Errorf("live stream requested but no hub runs in this process")
	}
	flusher, ok := w.(http.Flusher)
	if !ok {
		return fmt.Errorf("response writer cannot flush")
	}
	u := userFrom(r.Context())
	if !s.streams.take(u.ID, s.Limits.StreamsPerUser, s.Limits.Streams) {
		return apperr.ErrRateLimited
	}
	defer s.streams.give(u.ID)
	// The server's read and write timeouts (NewHTTPServer) are for
	// ordinary requests: a stream has no body to read and writes for as
	// long as it lives, each write given its own deadline below.
	rc := http.NewResponseController(w)
	_ = rc.SetReadDeadline(time.Time{})
	extend := func() { _ = rc.SetWriteDeadline(time.Now().Add(2 * heartbeat)) }
	extend()
	// Subscribe before reading the backlog, so nothing falls between the
	// two; ids already sent are skipped.
	sub := s.Hub.subscribe(u.ID)
	defer s.Hub.unsubscribe(u.ID, sub)

	var last int64
	if v := r.Header.Get("Last-Event-ID"); v != "" {
		last, _ = strconv.ParseInt(v, 10, 64)
	}
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	fmt.Fprintf(w, "retry: 3000\n\n")
	if last > 0 {
		backlog, err := s.Store.UserNotificationsAfter(r.Context(), u.ID, last, maxResume)
		if err != nil {
			return nil // the status line is out; the client will reconnect
		}
		for _, n := range backlog {
			if err := writeEvent(w, n); err != nil {
				return nil
			}
			last = n.ID
		}
	}
	flusher.Flush()
	tick := time.NewTicker(heartbeat)
	defer tick.Stop()
	for {
		select {
		case <-r.Context().Done():
			return nil
		case <-s.shutdown:
			return nil
		case <-sub.gone:
			return nil // too slow: dropped; the client resumes from its last id
		case n := <-sub.c:
			if n.ID <= last {
				continue
			}
			extend()
			if err := writeEvent(w, n); err != nil {
				return nil
			}
			last = n.ID
			flusher.Flush()
		case <-tick.C:
			extend()
			if _, err := fmt.Fprint(w, ": keep-alive\n\n"); err != nil {
				return nil
			}
			flusher.Flush()
		}
	}
}

func writeEvent(w http.ResponseWriter, n fmn.Notification) error {
	b, err := json.Marshal(n)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "id: %d\nevent: notification\ndata: %s\n\n", n.ID, b)
	return err
}

// streamCount counts the open streams, per user and in all.
type streamCount struct {
	mu     sync.Mutex
	total  int
	byUser map[int64]int
}

// take counts one more stream of user, or reports false (and counts
// nothing) when the user has perUser open already or everybody all.
func (c *streamCount) take(user int64, perUser, all int) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.byUser == nil {
		c.byUser = map[int64]int{}
	}
	if c.total >= all || c.byUser[user] >= perUser {
		return false
	}
	c.total++
	c.byUser[user]++
	return true
}

func (c *streamCount) give(user int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.total--
	if c.byUser[user]--; c.byUser[user] <= 0 {
		delete(c.byUser, user)
	}
}
