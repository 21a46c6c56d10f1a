package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"fmn"
	"fmn/consumer"
	"fmn/delivery/matrix/dendritetest"
	"fmn/store"
	"fmn/store/storetest"
)

// matrixCase is a Matrix test's homeserver with the bot's account and
// alice's, and a database of its own for fmn.
func matrixCase(t *testing.T) (hs *dendritetest.Server, bot, alice *dendritetest.User, db string) {
	t.Helper()
	hs = dendritetest.Start(t)
	return hs, hs.Register(t, "fmnbot", "bot-password-1"), hs.Register(t, "alice", "alice-password-1"), storetest.URL(t)
}

// TestMatrixKilledMidStream is the Matrix acceptance with the real binary
// and a real Dendrite: a destination added through the API is confirmed by
// replying "confirm CODE" in its room, then fmn is killed with SIGKILL in
// the middle of a stream of matching messages and started again: every
// message shows exactly once in the room (a resend carries the same
// transaction id, which the homeserver recognises).
func TestMatrixKilledMidStream(t *testing.T) {
	t.Parallel()
	hs, bot, alice, db := matrixCase(t)
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
	again := launch(t, db, env...)
	if err := <-published; err != nil {
		t.Fatal(err)
	}
	st := openStore(t, db)
	// Done is: everything the restarted fmn heard stored (with its
	// notifications: they commit together), every notification final, and
	// each sent one seen in the room. Under load the ingester may still
	// hold messages when the publisher is done, and a message may show in
	// the room before fmn has recorded the homeserver's answer: both are
	// waited for, not raced.
	var sent int
	eventually(t, 5*time.Minute, "every message stored, every notification final and seen", func() bool {
		count(bodies(time.Second))
		r := again.ready()
		if len(r.Endpoints) != 1 || metric(t, again.base, "fmn_bus_messages_stored_total")+
			metric(t, again.base, "fmn_bus_messages_duplicate_total") != float64(r.Endpoints[0].Received) {
			return false
		}
		var open int
		st.Pool.QueryRow(ctx, `SELECT count(*) FILTER (WHERE status NOT IN ('sent', 'dead', 'unknown')),
			count(*) FILTER (WHERE status = 'sent') FROM notifications`).Scan(&open, &sent)
		return open == 0 && len(seen) >= sent
	})
	// A last look, for a message shown twice.
	count(bodies(2 * time.Second))
	for b, n := range seen {
		if n != 1 {
			t.Errorf("%q shows %d times", b, n)
		}
	}
	if len(seen) != sent {
		var others []string
		rows, _ := st.Pool.Query(ctx, `SELECT status || ' (' || coalesce(error, '') || ') x' || count(*) FROM notifications
			WHERE status <> 'sent' GROUP BY status, error`)
		for rows.Next() {
			var o string
			_ = rows.Scan(&o)
			others = append(others, o)
		}
		t.Errorf("%d distinct messages in the room, %d notifications sent; the others: %q", len(seen), sent, others)
	}
	t.Logf("%d notifications sent, %d distinct messages seen, none twice", sent, len(seen))
}

// TestMatrixHomeserverDownAtStart: a homeserver that refuses the bot's
// sign-in (a wrong token, a wrong password) fails the start with a message
// naming the setting; one that is not there yet (a host rebooting) does
// not: fmn starts, email and the web go on, /readyz says Matrix is signing
// in, and once the homeserver is up the bot signs in in the background and
// a notification queued meanwhile is delivered, once.
func TestMatrixHomeserverDownAtStart(t *testing.T) {
	t.Parallel()
	hs, bot, alice, db := matrixCase(t)

	// Refusals fail the start, naming the setting.
	for _, c := range []struct{ env, setting string }{
		{"FMN_MATRIX_TOKEN=not-a-token", "FMN_MATRIX_TOKEN"},
		{"FMN_MATRIX_USER=" + bot.ID + "\nFMN_MATRIX_PASSWORD=wrong-password", "FMN_MATRIX_USER and FMN_MATRIX_PASSWORD"},
	} {
		env := append(os.Environ(), "FMN_DATABASE_URL="+db, "FMN_DATA_DIR="+t.TempDir(), "FMN_LISTEN=127.0.0.1:0", "FMN_MATRIX_URL="+hs.URL)
		env = append(env, strings.Split(c.env, "\n")...)
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		cmd := exec.CommandContext(ctx, fmnBin, "serve")
		cmd.Env = env
		out, err := cmd.CombinedOutput()
		timedOut := ctx.Err() != nil
		cancel()
		if err == nil || timedOut || !strings.Contains(string(out), c.setting+": the Matrix homeserver") {
			t.Fatalf("start with a refused sign-in (%s): %v\n%s", c.setting, err, out)
		}
	}

	// The homeserver goes down; fmn starts all the same.
	hs.Stop()
	ctx := context.Background()
	pub, err := consumer.NewPublisher(ctx, fmt.Sprintf("tcp://127.0.0.1:%d", freePort(t)), false)
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	p := launch(t, db, "FMN_BUS_ENDPOINTS="+pub.Addr(), "FMN_MATRIX_URL="+hs.URL,
		"FMN_MATRIX_USER="+bot.ID, "FMN_MATRIX_PASSWORD=bot-password-1")
	matrixState := func() string {
		var r struct{ Channels map[string]string }
		resp, err := http.Get(p.base + "/readyz")
		if err != nil {
			return ""
		}
		defer resp.Body.Close()
		json.NewDecoder(resp.Body).Decode(&r)
		return r.Channels["matrix"]
	}
	if st := matrixState(); !strings.HasPrefix(st, "signing in") {
		t.Fatalf("/readyz says matrix %q while the homeserver is down", st)
	}
	st := openStore(t, db)
	s := &service{t: t, base: p.base, env: append(os.Environ(), "FMN_DATABASE_URL="+db)}
	s.token = strings.TrimSpace(s.run("token", "create", "-user", "alice", "-email", "alice@example.org"))
	me, err := st.EnsureUser(ctx, "alice", "")
	if err != nil {
		t.Fatal(err)
	}
	var dMail, dMatrix fmn.Destination
	if err := st.InTx(ctx, func(tx pgx.Tx) error {
		for _, d := range []struct {
			kind fmn.Kind
			addr string
			into *fmn.Destination
		}{{fmn.KindEmail, "alice@example.org", &dMail}, {fmn.KindMatrix, alice.ID, &dMatrix}} {
			made, err := store.CreateDestination(ctx, tx, me.ID, d.kind, d.addr)
			if err == nil {
				*d.into, err = store.ConfirmNow(ctx, tx, made.ID)
			}
			if err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if code := s.call("POST", "/api/v1/rules", map[string]any{"name": "all", "track": map[string]any{"topics": []string{"org.fedoraproject.*"}},
		"destinations": []int64{dMail.ID, dMatrix.ID}}, nil); code != 201 {
		t.Fatalf("add rule: %d", code)
	}
	eventually(t, 30*time.Second, "fmn hears the publisher", func() bool {
		pub.SendFrames([]byte("warm-up"))
		r := p.ready()
		return len(r.Endpoints) == 1 && r.Endpoints[0].Received > 0
	})
	if err := pub.Publish(map[string]any{"topic": "org.fedoraproject.prod.test.while-down",
		"msg": map[string]any{"k": 1}, "msg_id": "2026-matrix-down-1"}, false); err != nil {
		t.Fatal(err)
	}
	status := func(destID int64) string {
		var s string
		st.Pool.QueryRow(ctx, `SELECT status FROM notifications WHERE destination_id = $1`, destID).Scan(&s)
		return s
	}
	// Email goes on while Matrix waits.
	eventually(t, 60*time.Second, "the mail sent while the homeserver is down", func() bool { return status(dMail.ID) == "sent" })
	if got := status(dMatrix.ID); got != "pending" {
		t.Fatalf("the Matrix notification is %q while the homeserver is down, want pending", got)
	}

	// The homeserver comes back: the bot signs in, the notification goes.
	hs.Run(t)
	eventually(t, 2*time.Minute, "the Matrix notification sent", func() bool { return status(dMatrix.ID) == "sent" })
	if got := matrixState(); got != "connected" {
		t.Fatalf("/readyz says matrix %q once signed in", got)
	}
	var bodies []string
	eventually(t, 60*time.Second, "the message in alice's room", func() bool {
		for _, e := range alice.Sync(t, time.Second) {
			if e.Sender == bot.ID && strings.Contains(e.Body, "while-down") {
				bodies = append(bodies, e.Body)
			}
		}
		return len(bodies) > 0
	})
	for _, e := range alice.Sync(t, 2*time.Second) {
		if e.Sender == bot.ID && strings.Contains(e.Body, "while-down") {
			bodies = append(bodies, e.Body)
		}
	}
	if len(bodies) != 1 {
		t.Fatalf("the notification shows %d times: %q", len(bodies), bodies)
	}
}
