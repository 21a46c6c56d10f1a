package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"fmn/consumer"
	"fmn/consumer/amqptest"
	"fmn/delivery/email"
	"fmn/delivery/email/smtptest"
	"fmn/rules"
	"fmn/rules/meta"
	"fmn/store"
	"fmn/store/storetest"
)

// Issue 10's acceptance: fmn on fedora-messaging's bus (AMQP on RabbitMQ),
// against private RabbitMQ nodes (consumer/amqptest).

// amqpEnv is the configuration that consumes sc's queue on node.
func amqpEnv(node *amqptest.Node, sc amqptest.Scope, extra ...string) []string {
	return append([]string{"FMN_AMQP_URL=" + node.URL(), "FMN_AMQP_QUEUE=" + sc.Queue, "FMN_AMQP_BINDINGS=" + sc.Binding()}, extra...)
}

// amqpReady is /readyz saying ready with the broker connected.
func (p *proc) amqpReady() bool {
	r := p.ready()
	if r.Status != "ready" {
		return false
	}
	for _, e := range r.Endpoints {
		if strings.HasPrefix(e.Endpoint, "amqp://") && e.Connected {
			return true
		}
	}
	return false
}

// amqpReceived is the process's count of messages read from the broker.
func (p *proc) amqpReceived(node *amqptest.Node, sc amqptest.Scope) float64 {
	ep := consumer.AMQPEndpoint(node.URL(), sc.Queue)
	return metric(p.t, p.base, `fmn_bus_messages_received_total{endpoint="`+ep+`"}`)
}

// kill ends the process at once, as a crash would.
func (p *proc) kill() {
	p.cmd.Process.Kill()
	<-p.done
}

func amqpPublisher(t *testing.T, node *amqptest.Node, sc amqptest.Scope) *consumer.AMQPPublisher {
	t.Helper()
	p, err := consumer.NewAMQPPublisher(context.Background(), node.URL(), nil, false, sc.Exchange)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

// publishMany publishes n messages, confirmed, every tenth naming alice in
// its headers; it returns their ids.
func publishMany(t *testing.T, p *consumer.AMQPPublisher, n int, tag string) []string {
	t.Helper()
	ctx := context.Background()
	ids := make([]string, n)
	for i := range n {
		md := meta.Metadata{Usernames: []string{fmt.Sprintf("u%d", i%50)}, Packages: []string{"pkg-" + tag}}
		if i%10 == 0 {
			md.Usernames = append(md.Usernames, "alice")
		}
		id, err := p.Publish(ctx, "org.fedoraproject.prod.e2e."+tag, "", map[string]any{"i": i, "tag": tag}, md)
		if err != nil {
			t.Fatal(err)
		}
		ids[i] = id
	}
	if err := p.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	return ids
}

// amqpCase gives a test its corner of node, a database and alice, who
// follows herself.
func amqpCase(t *testing.T, node *amqptest.Node) (amqptest.Scope, string, *store.Store) {
	t.Helper()
	sc := node.Scope(t)
	db := storetest.URL(t)
	st := openStore(t, db)
	storetest.Follower(t, st, "alice", rules.Track{Mine: true})
	return sc, db, st
}

// notifiedOnce checks that want notifications exist, one per message.
func notifiedOnce(t *testing.T, st *store.Store, want int) {
	t.Helper()
	got := count(t, st, `SELECT count(*) FROM notifications`)
	distinct := count(t, st, `SELECT count(DISTINCT message_id) FROM notifications`)
	if got != want || distinct != want {
		t.Fatalf("%d notifications for %d messages, want %d", got, distinct, want)
	}
}

func count(t *testing.T, st *store.Store, query string, args ...any) int {
	t.Helper()
	var n int
	if err := st.Pool.QueryRow(context.Background(), query, args...).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// storedOnce checks that exactly ids are stored, once each.
func storedOnce(t *testing.T, st *store.Store, ids []string) {
	t.Helper()
	rows, err := st.Pool.Query(context.Background(), `SELECT msg_id FROM messages`)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for rows.Next() {
		var id string
		rows.Scan(&id)
		got = append(got, id)
	}
	want := slices.Clone(ids)
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("stored %d messages, want the %d published once each", len(got), len(want))
	}
}

// TestFedoraMessagingAcceptance: messages published as fedora-messaging
// publishes them are stored once each, with msg_id the message_id, the
// users and packages exactly the header sets and the severity from the
// header; `fmn publish -amqp -corpus` publishes the whole corpus, which
// `fmn tail -amqp` sees without taking anything from fmn's queue; poison
// (not JSON, a JSON array, 5 MB) is dropped and counted, the queue drains
// and the service stays ready.
func TestFedoraMessagingAcceptance(t *testing.T) {
	t.Parallel()
	node := amqptest.Shared(t)
	sc := node.Scope(t)
	db := storetest.URL(t)
	st := openStore(t, db)
	p := launch(t, db, amqpEnv(node, sc)...)
	eventually(t, 60*time.Second, "ready with the broker connected", p.amqpReady)

	// A tail beside the service, on a queue of its own.
	tail := exec.Command(fmnBin, "tail", "-amqp", node.URL(), "-exchange", sc.Exchange, "-bind", "#")
	tailOut, _ := tail.StdoutPipe()
	if err := tail.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { tail.Process.Kill(); tail.Wait() }()
	lines := make(chan string, 1000)
	go func() {
		r := bufio.NewScanner(tailOut)
		r.Buffer(nil, 16<<20)
		for r.Scan() {
			lines <- r.Text()
		}
		close(lines)
	}()
	pub := amqpPublisher(t, node, sc)
	ctx := context.Background()
	warm := 0
	eventually(t, 30*time.Second, "the tail listening", func() bool {
		if _, err := pub.Publish(ctx, "org.fedoraproject.prod.e2e.warmup", "", map[string]any{}, meta.Metadata{}); err != nil {
			t.Fatal(err)
		}
		warm++
		select {
		case <-lines:
			return true
		default:
			return false
		}
	})

	// One message exactly as fedora-messaging's Message class builds it
	// (_build_properties, _filter_headers), whose headers disagree with
	// what the body suggests: the headers win.
	fm := amqp.Publishing{
		ContentType: "application/json", ContentEncoding: "utf-8", DeliveryMode: 2, Priority: 0,
		MessageId: "5b4d0a3c-2f1e-4a8b-9c7d-6e5f4a3b2c1d",
		Headers: amqp.Table{
			"fedora_messaging_schema": "bodhi.update.comment.v1", "sent-at": "2026-03-04T05:06:07+00:00",
			"fedora_messaging_severity": int32(40), "priority": int32(0),
			"fedora_messaging_user_alice": true, "fedora_messaging_user_bob": true,
			"fedora_messaging_rpm_kernel": true, "fedora_messaging_rpm_glibc": true,
			"fedora_messaging_group_kernel-maint": true,
		},
		Body: []byte(`{"agent":"ralph","comment":{"user":{"name":"ralph"},"text":"karma","update_title":"python-requests-2.0-1.fc44"}}`),
	}
	if err := pub.PublishRaw(ctx, "org.fedoraproject.prod.bodhi.update.comment", fm); err != nil {
		t.Fatal(err)
	}
	pub.Wait(ctx)

	// The whole corpus, by the tool.
	p.runTool("publish", "-amqp", node.URL(), "-exchange", sc.Exchange, "-corpus", "../testdata/fedmsg-meta.jsonl")
	const corpus = 327
	want := warm + 1 + corpus
	eventually(t, 60*time.Second, "everything stored", func() bool {
		return count(t, st, `SELECT count(*) FROM messages`) == want
	})

	var users, pkgs, groups []string
	var sev, agent, link string
	var sentAt time.Time
	if err := st.Pool.QueryRow(ctx, `SELECT usernames, packages, groups, severity, agent, link, sent_at FROM messages WHERE msg_id = $1`, fm.MessageId).
		Scan(&users, &pkgs, &groups, &sev, &agent, &link, &sentAt); err != nil {
		t.Fatalf("the fedora-messaging message under its message_id: %v", err)
	}
	if !slices.Equal(users, []string{"alice", "bob"}) || !slices.Equal(pkgs, []string{"glibc", "kernel"}) ||
		!slices.Equal(groups, []string{"kernel-maint"}) || sev != "error" || agent != "ralph" ||
		!sentAt.Equal(time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)) || !strings.Contains(link, "python-requests-2.0-1.fc44") {
		t.Errorf("stored users %q packages %q groups %q severity %q agent %q link %q sent_at %v", users, pkgs, groups, sev, agent, link, sentAt)
	}

	// Every message the tail printed (it may have missed the first
	// warm-ups, published before its queue was bound) is stored under its
	// message_id with exactly its headers' users and packages.
	seen := 0
	deadline := time.After(30 * time.Second)
	for seen < corpus+1 {
		var line string
		select {
		case line = <-lines:
		case <-deadline:
			t.Fatalf("the tail printed %d of the %d messages after the warm-up", seen, corpus+1)
		}
		var env struct {
			MsgID   string         `json:"msg_id"`
			Topic   string         `json:"topic"`
			Headers map[string]any `json:"headers"`
		}
		if err := json.Unmarshal([]byte(line), &env); err != nil {
			t.Fatalf("tail line %q: %v", line, err)
		}
		if !strings.HasSuffix(env.Topic, ".warmup") {
			seen++
		}
		var hu, hp []string
		for k := range env.Headers {
			if u, ok := strings.CutPrefix(k, "fedora_messaging_user_"); ok {
				hu = append(hu, u)
			}
			if p, ok := strings.CutPrefix(k, "fedora_messaging_rpm_"); ok {
				hp = append(hp, p)
			}
		}
		slices.Sort(hu)
		slices.Sort(hp)
		var su, sp []string
		if err := st.Pool.QueryRow(ctx, `SELECT usernames, packages FROM messages WHERE msg_id = $1`, env.MsgID).Scan(&su, &sp); err != nil {
			t.Fatalf("tail's %s not stored: %v", env.MsgID, err)
		}
		if !slices.Equal(su, hu) || !slices.Equal(sp, hp) {
			t.Errorf("%s: stored users %q packages %q, headers %q %q", env.MsgID, su, sp, hu, hp)
		}
	}
	if n := count(t, st, `SELECT count(*) FROM messages WHERE cardinality(usernames) > 0`); n < corpus/2 {
		t.Errorf("only %d messages name a user: the tool's header sets look empty", n)
	}

	// Poison.
	for _, body := range [][]byte{[]byte("not JSON at all"), []byte(`["a", "JSON", "array"]`),
		[]byte(`{"big":"` + strings.Repeat("x", 5<<20) + `"}`)} {
		if err := pub.PublishRaw(ctx, "org.fedoraproject.prod.e2e.poison", amqp.Publishing{
			ContentType: "application/json", ContentEncoding: "utf-8", DeliveryMode: 2, MessageId: fmt.Sprint(len(body)), Body: body}); err != nil {
			t.Fatal(err)
		}
	}
	pub.Wait(ctx)
	dropped := func(reason string) float64 {
		return metric(t, p.base, `fmn_bus_messages_dropped_total{reason="`+reason+`"}`)
	}
	eventually(t, 30*time.Second, "the three dropped and counted", func() bool {
		return dropped("json") == 1 && dropped("not_object") == 1 && dropped("oversized") == 1
	})
	eventually(t, 10*time.Second, "the queue drained", func() bool {
		d, err := node.QueueDepth(sc.Queue)
		return err == nil && d == 0
	})
	if !p.amqpReady() {
		t.Errorf("not ready after the poison: %+v", p.ready())
	}
	if n := count(t, st, `SELECT count(*) FROM messages`); n != want {
		t.Errorf("%d messages stored after the poison, want %d", n, want)
	}
}

// runTool runs an fmn command in the service's environment.
func (p *proc) runTool(args ...string) string {
	p.t.Helper()
	cmd := exec.Command(fmnBin, args...)
	cmd.Env = p.env
	out, err := cmd.CombinedOutput()
	if err != nil {
		p.t.Fatalf("fmn %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// TestAMQPBacklogWhileStopped: with fmn stopped, 20,000 messages wait in
// its durable queue; started, it stores all of them, once each.
func TestAMQPBacklogWhileStopped(t *testing.T) {
	t.Parallel()
	node := amqptest.Shared(t)
	sc, db, st := amqpCase(t, node)
	env := amqpEnv(node, sc)
	first := launch(t, db, env...) // declares and binds the queue
	eventually(t, 60*time.Second, "ready", first.amqpReady)
	first.stop()

	const n = 20000
	ids := publishMany(t, amqpPublisher(t, node, sc), n, "backlog")
	if d, err := node.QueueDepth(sc.Queue); err != nil || d != n {
		t.Fatalf("%d messages wait in the queue (%v), want %d", d, err, n)
	}
	start := time.Now()
	second := launch(t, db, env...)
	eventually(t, 180*time.Second, "all stored", func() bool { return count(t, st, `SELECT count(*) FROM messages`) == n })
	t.Logf("20,000 waiting messages stored in %v", time.Since(start).Round(time.Millisecond))
	storedOnce(t, st, ids)
	notifiedOnce(t, st, n/10)
	eventually(t, 10*time.Second, "the queue empty", func() bool { d, _ := node.QueueDepth(sc.Queue); return d == 0 })
	second.stop()
	if d, _ := node.QueueDepth(sc.Queue); d != 0 {
		t.Errorf("%d messages back in the queue after a clean stop: not acknowledged", d)
	}
}

// TestAMQPKill9: fmn killed mid-stream loses nothing and, restarted,
// notifies nobody twice: notification rows and the mails received are one
// per matching message.
func TestAMQPKill9(t *testing.T) {
	t.Parallel()
	node := amqptest.Shared(t)
	sc, db, st := amqpCase(t, node)
	mail := smtptest.Start(t)
	env := amqpEnv(node, sc, "FMN_SMTP_URL="+mail.URL(), "FMN_MAIL_FROM=fmn@example.org", "FMN_AMQP_PREFETCH=100")
	first := launch(t, db, env...)
	eventually(t, 60*time.Second, "ready", first.amqpReady)
	first.stop()
	const n = 4000
	ids := publishMany(t, amqpPublisher(t, node, sc), n, "kill")

	p := launch(t, db, env...)
	eventually(t, 60*time.Second, "storing under way", func() bool { return count(t, st, `SELECT count(*) FROM messages`) > n/4 })
	p.kill()
	stored := count(t, st, `SELECT count(*) FROM messages`)
	if stored == n {
		t.Fatal("everything was stored before the kill: not mid-stream")
	}
	t.Logf("killed with %d of %d stored", stored, n)
	again := launch(t, db, env...)
	eventually(t, 120*time.Second, "all stored after the restart", func() bool { return count(t, st, `SELECT count(*) FROM messages`) == n })
	storedOnce(t, st, ids)
	notifiedOnce(t, st, n/10)
	// Every notification is sent, except any whose delivery job the
	// killed process held: River gives those back only after
	// RescueStuckJobsAfter, and the retry then records the few the killed
	// process had claimed while holding an SMTP connection as 'unknown'
	// (they may have arrived) rather than send them twice. At most the
	// pool's connections can be caught like that.
	stuck := func() int {
		return count(t, st, `SELECT count(*) FROM river_job WHERE state = 'running' AND kind = 'email_notification'`)
	}
	t.Cleanup(func() {
		if t.Failed() {
			rows, _ := st.Pool.Query(context.Background(), `SELECT kind || ' ' || state || ' ' || count(*) FROM river_job GROUP BY kind, state
				UNION ALL SELECT 'notification ' || status || ' ' || count(*) FROM notifications GROUP BY status`)
			for rows.Next() {
				var l string
				rows.Scan(&l)
				t.Log(l)
			}
		}
	})
	eventually(t, 240*time.Second, "every notification sent, or unknown after the kill", func() bool {
		return count(t, st, `SELECT count(*) FROM notifications WHERE status IN ('sent', 'unknown')`) == n/10
	})
	if unknown := count(t, st, `SELECT count(*) FROM notifications WHERE status = 'unknown'`); unknown > email.DefaultSMTPConns {
		t.Errorf("%d notifications unknown after one kill; at most the SMTP pool's %d may be", unknown, email.DefaultSMTPConns)
	}
	sent := count(t, st, `SELECT count(*) FROM notifications WHERE status = 'sent'`)
	eventually(t, 30*time.Second, "the mails of the sent notifications", func() bool { return len(mail.Messages()) >= sent })
	byID := map[string]int{}
	for _, m := range mail.Messages() {
		pm, err := m.Parsed()
		if err != nil {
			t.Fatal(err)
		}
		byID[pm.Header.Get("Message-Id")]++
	}
	for id, k := range byID {
		if k > 1 {
			t.Errorf("mail %s received %d times", id, k)
		}
	}
	if got := len(mail.Messages()); got > n/10 {
		t.Errorf("%d mails for %d notifications", got, n/10)
	}
	t.Logf("%d mails, %d notifications sent, %d held by the killed process's jobs", len(mail.Messages()), sent, stuck())
	again.stop()
}

// TestAMQPBrokerRestart: the broker restarted while messages flow; fmn
// reconnects by itself and nothing the broker confirmed is lost.
func TestAMQPBrokerRestart(t *testing.T) {
	t.Parallel()
	node := amqptest.Own(t, amqptest.Options{})
	sc := node.Scope(t)
	db := storetest.URL(t)
	st := openStore(t, db)
	p := launch(t, db, amqpEnv(node, sc, "FMN_AMQP_PREFETCH=50")...)
	eventually(t, 60*time.Second, "ready", p.amqpReady)

	// A publisher that keeps going through the restart, reconnecting, and
	// keeps the ids the broker confirmed: those must all be stored.
	ctx, stopPub := context.WithCancel(context.Background())
	var mu sync.Mutex
	var confirmed []string
	pubDone := make(chan struct{})
	go func() {
		defer close(pubDone)
		i := 0
		for ctx.Err() == nil {
			pub, err := consumer.NewAMQPPublisher(ctx, node.URL(), nil, false, sc.Exchange)
			if err != nil {
				time.Sleep(100 * time.Millisecond) // the broker is down: try again soon
				continue
			}
			for ctx.Err() == nil {
				var batch []string
				failed := false
				for range 20 {
					id, err := pub.Publish(ctx, "org.fedoraproject.prod.e2e.restart", "", map[string]any{"i": i}, meta.Metadata{})
					i++
					if err != nil {
						failed = true
						break
					}
					batch = append(batch, id)
				}
				if failed || pub.Wait(ctx) != nil {
					break
				}
				mu.Lock()
				confirmed = append(confirmed, batch...)
				mu.Unlock()
				time.Sleep(10 * time.Millisecond) // a steady flow, not a flood
			}
			pub.Close()
		}
	}()
	nConfirmed := func() int { mu.Lock(); defer mu.Unlock(); return len(confirmed) }
	eventually(t, 60*time.Second, "messages flowing", func() bool {
		return nConfirmed() > 500 && count(t, st, `SELECT count(*) FROM messages`) > 200
	})
	if err := node.Restart(); err != nil {
		t.Fatal(err)
	}
	before := nConfirmed()
	eventually(t, 60*time.Second, "publishing again after the restart", func() bool { return nConfirmed() > before+500 })
	stopPub()
	<-pubDone
	mu.Lock()
	ids := slices.Clone(confirmed)
	mu.Unlock()
	eventually(t, 60*time.Second, "every confirmed message stored", func() bool {
		return count(t, st, `SELECT count(*) FROM messages WHERE msg_id = ANY($1)`, ids) == len(ids)
	})
	r := p.ready()
	var reconnects int64
	for _, e := range r.Endpoints {
		reconnects += e.Reconnects
	}
	if reconnects < 1 || !p.amqpReady() {
		t.Errorf("after the broker restart: %+v", r)
	}
	t.Logf("%d confirmed messages stored across the restart, %d reconnects", len(ids), reconnects)
}

// TestAMQPTwoProcesses: two fmn processes on one queue and one database
// share the work; each message is stored and notified once.
func TestAMQPTwoProcesses(t *testing.T) {
	t.Parallel()
	node := amqptest.Shared(t)
	sc, db, st := amqpCase(t, node)
	env := amqpEnv(node, sc, "FMN_AMQP_PREFETCH=20")
	a := launch(t, db, env...)
	b := launch(t, db, env...)
	eventually(t, 60*time.Second, "both ready", func() bool { return a.amqpReady() && b.amqpReady() })
	const n = 6000
	ids := publishMany(t, amqpPublisher(t, node, sc), n, "two")
	eventually(t, 120*time.Second, "all stored", func() bool { return count(t, st, `SELECT count(*) FROM messages`) == n })
	storedOnce(t, st, ids)
	notifiedOnce(t, st, n/10)
	ra, rb := a.amqpReceived(node, sc), b.amqpReceived(node, sc)
	sa := metric(t, a.base, "fmn_bus_messages_stored_total")
	sb := metric(t, b.base, "fmn_bus_messages_stored_total")
	t.Logf("process a received %v and stored %v, process b received %v and stored %v", ra, sa, rb, sb)
	if ra < n/10 || rb < n/10 || sa+sb != n {
		t.Fatalf("the work was not shared: a received %v, b %v; stored %v + %v", ra, rb, sa, sb)
	}
}
