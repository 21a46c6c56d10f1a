package web

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// TestFinding11HomeEstimates: the visitors' page says about how many
// messages are stored from the planner's estimate, not count(*) over the
// whole log. Shown here by deleting rows after ANALYZE: a count would see
// the deletion, the estimate does not (yet).
func TestFinding11HomeEstimates(t *testing.T) {
	t.Parallel()
	site := newSite(t, AuthConfig{}, "")
	fillMessages(t, site.st, 20000)
	if _, err := site.st.Pool.Exec(context.Background(), `DELETE FROM messages WHERE id % 4 = 0`); err != nil {
		t.Fatal(err)
	}
	b := body(t, site.get(site.browser(), "/"))
	if strings.Contains(b, "15000 messages") || !strings.Contains(b, "About 20000 messages stored") {
		i := strings.Index(b, "messages stored")
		t.Fatalf("home: %q, want the estimate (About 20000), not a count (15000)", b[max(0, i-40):max(0, i)+15])
	}
}

// TestFinding11StreamCap: one user may hold a bounded number of live
// streams (default 10); past it the stream is refused with 429.
func TestFinding11StreamCap(t *testing.T) {
	t.Parallel()
	f := newLiveFixture(t)
	var closers []func()
	defer func() {
		for _, c := range closers {
			c()
		}
	}()
	for range 10 {
		_, stop := f.openStream(t, "")
		closers = append(closers, stop)
	}
	req, _ := http.NewRequest("GET", f.srv.URL+"/api/v1/stream", nil)
	req.Header.Set("Authorization", "Bearer "+f.token)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := http.DefaultClient.Do(req.WithContext(ctx))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("stream 11 of one user: %d, want 429", resp.StatusCode)
	}
	// Closing one makes room again.
	closers[0]()
	closers = closers[1:]
	deadline := time.Now().Add(5 * time.Second)
	for {
		resp, err := http.DefaultClient.Do(req.WithContext(ctx))
		if err != nil {
			t.Fatal(err)
		}
		code := resp.StatusCode
		if code == 200 {
			closers = append(closers, func() { resp.Body.Close() })
			break
		}
		resp.Body.Close()
		if time.Now().After(deadline) {
			t.Fatalf("after closing a stream: %d", code)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestFinding11ServerTimeouts: the server cuts a client that sends its
// body too slowly (read timeout) or idles on a keep-alive connection, and
// the live stream still outlives every timeout.
func TestFinding11ServerTimeouts(t *testing.T) {
	t.Parallel()
	short := Timeouts{ReadHeader: 500 * time.Millisecond, Read: 500 * time.Millisecond, Write: 500 * time.Millisecond, Idle: 500 * time.Millisecond}
	f := newLiveFixtureOn(t, func(srv *httptest.Server, h http.Handler) { srv.Config = NewHTTPServer(h, short) })

	// A body that never comes.
	conn, err := net.Dial("tcp", f.srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	io.WriteString(conn, "POST /login HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 100\r\n\r\nemail=")
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.ReadAll(conn); err != nil {
		t.Fatalf("a slow body was not cut: %v", err)
	}

	// The stream lives past the read, write and idle timeouts and still
	// delivers.
	events, stop := f.openStream(t, "")
	defer stop()
	time.Sleep(3 * short.Read) // the timeouts must pass for this test to mean anything
	id := f.notify(t, "after the timeouts")
	select {
	case ev, ok := <-events:
		if !ok || !strings.Contains(ev.data, "after the timeouts") {
			t.Fatalf("stream after the timeouts: %+v %v", ev, ok)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("notification %d did not arrive on a stream older than the server's timeouts", id)
	}
}
