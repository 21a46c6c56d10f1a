package e2e

import (
	"context"
	"fmt"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"fmn/consumer"
	"fmn/delivery/matrix/dendritetest"
	"fmn/store/storetest"
)

// TestMatrixKilledMidStream is the Matrix acceptance with the real binary
// and a real Dendrite: a destination added through the API is confirmed by
// replying "confirm CODE" in its room, then fmn is killed with SIGKILL in
// the middle of a stream of matching messages and started again: every
// message shows exactly once in the room (a resend carries the same
// transaction id, which the homeserver recognises).
func TestMatrixKilledMidStream(t *testing.T) {
	t.Parallel()
	hs := dendritetest.Start(t)
	bot := hs.Register(t, "fmnbot", "bot-password-1")
	alice := hs.Register(t, "alice", "alice-password-1")
	db := storetest.URL(t)
	ctx := context.Background()
	pub, err := consumer.NewPublisher(ctx, fmt.Sprintf("tcp://127.0.0.1:%d", freePort(t)), false)
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	env := []string{"FMN_BUS_ENDPOINTS=" + pub.Addr(), "FMN_MATRIX_URL=" + hs.URL, "FMN_MATRIX_TOKEN=" + bot.Token, "FMN_LOG_LEVEL=warn"}
	p := launch(t, db, env...)
	s := &service{t: t, base: p.base, env: append(os.Environ(), "FMN_DATABASE_URL="+db)}
	s.token = strings.TrimSpace(s.run("token", "create", "-user", "alice"))
	var d struct {
		ID int64 `json:"id"`
	}
	if st := s.call("POST", "/api/v1/destinations", map[string]string{"kind": "matrix", "address": alice.ID}, &d); st != 201 {
		t.Fatalf("add matrix destination: %d", st)
	}
	if st := s.call("POST", "/api/v1/rules", map[string]any{"name": "all", "track": map[string]any{"topics": []string{"org.fedoraproject.*"}},
		"destinations": []int64{d.ID}}, nil); st != 201 {
		t.Fatalf("add rule: %d", st)
	}
	seen := map[string]int{}
	var room string
	var code string
	codeRE := regexp.MustCompile(`reply: confirm ([A-Za-z0-9_-]{16,})`)
	eventually(t, 60*time.Second, "the confirmation in a direct room", func() bool {
		for _, e := range alice.Sync(t, time.Second) {
			if m := codeRE.FindStringSubmatch(e.Body); m != nil {
				room, code = e.Room, m[1]
			}
		}
		return code != ""
	})
	confirmed := func() bool {
		var ok bool
		st := openStore(t, db)
		st.Pool.QueryRow(ctx, `SELECT confirmed_at IS NOT NULL FROM destinations WHERE id = $1`, d.ID).Scan(&ok)
		return ok
	}
	eventually(t, 60*time.Second, "confirm CODE in the room confirms", func() bool {
		alice.Say(t, room, "confirm "+code)
		for range 20 {
			if confirmed() {
				return true
			}
			alice.Sync(t, 100*time.Millisecond)
		}
		return false
	})
	eventually(t, 30*time.Second, "fmn hears the publisher", func() bool {
		pub.SendFrames([]byte("warm-up"))
		r := p.ready()
		return len(r.Endpoints) == 1 && r.Endpoints[0].Received > 0
	})

	const total = 200
	published := make(chan error, 1)
	go func() {
		for k := range total {
			if err := pub.Publish(map[string]any{"topic": fmt.Sprintf("org.fedoraproject.prod.test.m%d", k),
				"msg": map[string]any{"k": k}, "msg_id": fmt.Sprintf("2026-matrix-%d", k)}, false); err != nil {
				published <- err
				return
			}
			time.Sleep(20 * time.Millisecond) // the publisher's pace: 50 messages a second
		}
		published <- nil
	}()
	count := func(evs []string) {
		for _, b := range evs {
			seen[b]++
		}
	}
	bodies := func(timeout time.Duration) []string {
		var out []string
		for _, e := range alice.Sync(t, timeout) {
			if e.Sender == bot.ID && strings.Contains(e.Body, "[test] test m") {
				out = append(out, e.Body)
			}
		}
		return out
	}
	eventually(t, 60*time.Second, "messages arriving before the kill", func() bool {
		count(bodies(time.Second))
		return len(seen) >= 20
	})
	if err := p.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-p.done
	t.Logf("killed after %d distinct messages", len(seen))
	// The publisher goes on while fmn is down: started again, it hears
	// only what comes after; what it stored before is delivered.
	launch(t, db, env...)
	if err := <-published; err != nil {
		t.Fatal(err)
	}
	st := openStore(t, db)
	eventually(t, 5*time.Minute, "every stored notification final", func() bool {
		count(bodies(time.Second))
		var open int
		st.Pool.QueryRow(ctx, `SELECT count(*) FROM notifications WHERE status NOT IN ('sent', 'dead', 'unknown')`).Scan(&open)
		return open == 0
	})
	count(bodies(2 * time.Second))
	var sent int
	st.Pool.QueryRow(ctx, `SELECT count(*) FROM notifications WHERE status = 'sent'`).Scan(&sent)
	for b, n := range seen {
		if n != 1 {
			t.Errorf("%q shows %d times", b, n)
		}
	}
	if len(seen) != sent {
		t.Errorf("%d distinct messages in the room, %d notifications sent", len(seen), sent)
	}
	t.Logf("%d notifications sent, %d distinct messages seen, none twice", sent, len(seen))
}
