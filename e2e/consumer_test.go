package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"fmn/consumer"
	"fmn/consumer/zmtptest"
	"fmn/metrics"
	"fmn/store"
	"fmn/store/storetest"
)

// proc is an `fmn serve` on a database the test chooses, which the test
// may stop and start again.
type proc struct {
	t    *testing.T
	cmd  *exec.Cmd
	base string
	env  []string // the service's environment, for tools run beside it
	log  *syncBuffer
	done chan error
}

func launch(t *testing.T, dbURL string, extraEnv ...string) *proc {
	t.Helper()
	return launchEnv(t, append([]string{"FMN_DATABASE_URL=" + dbURL, "FMN_DATA_DIR=" + t.TempDir()}, extraEnv...)...)
}

// launchEnv starts `fmn serve` on a free port with the test's environment
// plus env (which names the database, or leaves it out for the private
// cluster).
func launchEnv(t *testing.T, env ...string) *proc {
	t.Helper()
	port := freePort(t)
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	full := append(os.Environ(),
		fmt.Sprintf("FMN_LISTEN=127.0.0.1:%d", port),
		"FMN_BASE_URL="+base,
	)
	p := &proc{t: t, base: base, env: append(full, env...), log: &syncBuffer{}, done: make(chan error, 1)}
	p.cmd = exec.Command(fmnBin, "serve")
	p.cmd.Env = p.env
	p.cmd.Stdout, p.cmd.Stderr = p.log, p.log
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.done <- p.cmd.Wait() }()
	t.Cleanup(func() {
		p.stop()
		if t.Failed() {
			t.Logf("fmn serve log:\n%s", p.log.String())
		}
	})
	eventually(t, 60*time.Second, "service healthy", func() bool {
		resp, err := http.Get(base + "/healthz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
	return p
}

// syncBuffer is a bytes.Buffer that a running process may write while the
// test reads it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// stop interrupts the service and waits for it (once).
func (p *proc) stop() {
	if p.cmd.ProcessState != nil {
		return
	}
	p.cmd.Process.Signal(os.Interrupt)
	select {
	case err := <-p.done:
		if err != nil {
			p.t.Errorf("fmn serve exited with %v", err)
		}
	case <-time.After(20 * time.Second):
		p.cmd.Process.Kill()
		<-p.done
		p.t.Errorf("fmn serve did not stop within 20s of SIGINT")
	}
}

type readyState struct {
	Status    string
	Database  string
	Endpoints []consumer.EndpointStatus
}

func (p *proc) ready() readyState {
	var r readyState
	resp, err := http.Get(p.base + "/readyz")
	if err != nil {
		return r
	}
	defer resp.Body.Close()
	json.NewDecoder(resp.Body).Decode(&r)
	return r
}

func openStore(t *testing.T, url string) *store.Store {
	st, err := store.Open(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.Close)
	return st
}

// TestSignedVectorsLive is issue 3's acceptance for signatures: the built
// binary, validating, fed every vector's exact wire frame over a real PUB
// socket, stores exactly the ones the reference fedmsg judged valid and
// counts the others as dropped.
func TestSignedVectorsLive(t *testing.T) {
	t.Parallel()
	dir := "../testdata/fedmsg-signed/"
	fh, err := os.Open(dir + "vectors.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	type vector struct {
		Kind     string
		Valid    bool
		Envelope map[string]any
		Wire     string
	}
	var vs []vector
	sc := bufio.NewScanner(fh)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var v vector
		if err := json.Unmarshal(sc.Bytes(), &v); err != nil {
			t.Fatal(err)
		}
		vs = append(vs, v)
	}
	wantTopic := map[string]string{} // msg_id → topic of the valid vector
	for _, v := range vs {
		if v.Valid {
			wantTopic[v.Envelope["msg_id"].(string)] = v.Envelope["topic"].(string)
		}
	}
	if len(vs) != 122 || len(wantTopic) != 65 {
		t.Fatalf("%d vectors, %d valid: not the corpus this test was written for", len(vs), len(wantTopic))
	}

	pub, err := consumer.NewPublisher(context.Background(), fmt.Sprintf("tcp://127.0.0.1:%d", freePort(t)), false)
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	cliEP := fmt.Sprintf("tcp://127.0.0.1:%d", freePort(t))
	db := storetest.URL(t)
	p := launch(t, db, "FMN_BUS_ENDPOINTS="+pub.Addr()+","+cliEP, "FMN_VALIDATE_SIGNATURES=true",
		"FMN_CA_CERT="+dir+"ca.crt", "FMN_CRL="+dir+"crl.pem", "FMN_ROUTING_POLICY="+dir+"routing_policy.json")
	if !pub.WaitSubscribers(context.Background(), 30*time.Second) {
		t.Fatal("fmn never subscribed")
	}
	for _, v := range vs {
		if err := pub.Send(v.Envelope["topic"].(string), []byte(v.Wire)); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, 30*time.Second, "every vector received", func() bool {
		return metric(t, p.base, `fmn_bus_messages_received_total{endpoint="`+pub.Addr()+`"}`) == 122
	})
	st := openStore(t, db)
	eventually(t, 30*time.Second, "the valid vectors stored", func() bool {
		n, _ := st.CountMessages(context.Background())
		return n >= 65
	})
	ms, err := st.RecentMessages(context.Background(), 1000, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) != 65 {
		t.Fatalf("stored %d messages, want the 65 valid ones", len(ms))
	}
	for _, m := range ms {
		if wantTopic[m.MsgID] != m.Topic {
			t.Fatalf("stored %s on %s: not a valid vector", m.MsgID, m.Topic)
		}
	}
	dropped := 0.0
	for _, reason := range []string{"unsigned", "signature_malformed", "certificate_untrusted", "certificate_revoked", "routing_policy", "bad_signature"} {
		dropped += metric(t, p.base, `fmn_bus_messages_dropped_total{reason="`+reason+`"}`)
	}
	if dropped != 122-65 {
		t.Fatalf("%v messages counted as dropped for their signatures, want %d", dropped, 122-65)
	}

	// fmn publish -sign stands in for a signing publisher: bodhi's
	// certificate on a bodhi topic passes; koji's on it breaks the routing
	// policy and is dropped.
	publish := func(name string) {
		out, err := exec.Command(fmnBin, "publish", "-endpoint", cliEP, "-wait", "30s",
			"-topic", "org.fedoraproject.prod.bodhi.update.comment", "-msg", `{"comment": {"text": "signed by fmn"}}`,
			"-sign", dir+"ssl/"+name+".crt", "-key", dir+"ssl/"+name+".key").CombinedOutput()
		if err != nil {
			t.Fatalf("fmn publish -sign %s: %v\n%s", name, err, out)
		}
	}
	publish("bodhi.app01")
	eventually(t, 30*time.Second, "the message signed by fmn stored", func() bool {
		n, _ := st.CountMessages(context.Background())
		return n == 66
	})
	publish("koji.hub01")
	eventually(t, 30*time.Second, "the misrouted one dropped", func() bool {
		return metric(t, p.base, `fmn_bus_messages_dropped_total{reason="routing_policy"}`) == 8
	})
	if n, _ := st.CountMessages(context.Background()); n != 66 {
		t.Fatalf("%d messages stored, want 66", n)
	}
}

// TestGapReplayAcceptance is issue 3's acceptance for gaps, with fmn's own
// tools: `fmn publish -replay` publishes and keeps a replay endpoint; fmn
// stores the first message, is stopped while 100 more are published, is
// started again, and one more is published: the 101 published since the
// stop are all stored, once, the 100 fetched from the replay endpoint.
func TestGapReplayAcceptance(t *testing.T) {
	t.Parallel()
	pubEP := fmt.Sprintf("tcp://127.0.0.1:%d", freePort(t))
	repEP := fmt.Sprintf("tcp://127.0.0.1:%d", freePort(t))
	pubCmd := exec.Command(fmnBin, "publish", "-endpoint", pubEP, "-replay", repEP, "-stdin", "-wait", "30s")
	stdin, err := pubCmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	var pubLog bytes.Buffer
	pubCmd.Stdout, pubCmd.Stderr = &pubLog, &pubLog
	if err := pubCmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		stdin.Close()
		if err := pubCmd.Wait(); err != nil {
			t.Errorf("fmn publish: %v\n%s", err, pubLog.String())
		}
	}()
	line := func(k int) string {
		return fmt.Sprintf(`{"topic":"org.fedoraproject.prod.test.gap","msg":{"k":%d}}`+"\n", k)
	}
	db := storetest.URL(t)
	st := openStore(t, db)
	count := func() int64 { n, _ := st.CountMessages(context.Background()); return n }
	env := []string{"FMN_BUS_ENDPOINTS=" + pubEP, "FMN_BUS_REPLAY=" + pubEP + "=" + repEP}

	p := launch(t, db, env...)
	io.WriteString(stdin, "#wait\n"+line(0))
	eventually(t, 30*time.Second, "the first message stored", func() bool { return count() == 1 })
	p.stop()

	for k := 1; k <= 100; k++ {
		io.WriteString(stdin, line(k))
	}
	// All 100 are published once the replay endpoint knows the last.
	rp := &consumer.ZMQReplayer{Endpoints: map[string]string{pubEP: repEP}, Timeout: 5 * time.Second,
		Metrics: metrics.New(), Log: slog.New(slog.DiscardHandler)}
	eventually(t, 30*time.Second, "the 100 published", func() bool {
		got, _ := rp.Replay(context.Background(), pubEP, 100, 102)
		return len(got) == 1
	})
	if n := count(); n != 1 {
		t.Fatalf("%d messages stored while fmn was stopped", n)
	}

	p = launch(t, db, env...)
	eventually(t, 30*time.Second, "fmn connected again", func() bool { return p.ready().Status == "ready" })
	io.WriteString(stdin, "#wait\n"+line(101))
	eventually(t, 30*time.Second, "all 102 stored", func() bool { return count() >= 102 })
	var ks []int
	rows, err := st.Pool.Query(context.Background(), `SELECT (envelope->'msg'->>'k')::int FROM messages ORDER BY id`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var k int
		rows.Scan(&k)
		ks = append(ks, k)
	}
	rows.Close()
	if len(ks) != 102 {
		t.Fatalf("stored %d messages, want 102", len(ks))
	}
	for i, k := range ks {
		if k != i {
			t.Fatalf("stored in the order %v, want 0..101", ks)
		}
	}
	if v := metric(t, p.base, `fmn_bus_messages_replayed_total{endpoint="`+pubEP+`"}`); v != 100 {
		t.Fatalf("fmn_bus_messages_replayed_total = %v, want 100", v)
	}
	gaps, err := st.RecentBusGaps(context.Background(), 10)
	if err != nil || len(gaps) != 1 || gaps[0].Recovered != 100 || gaps[0].Missed != 0 {
		t.Fatalf("gaps recorded: %+v %v", gaps, err)
	}
}

// TestHostilePeerService: a configured endpoint speaking raw ZMTP declares
// a 4 GB frame, then sends a 64 MiB one. The service stays up and ready,
// its memory bounded, both are counted, and the next good message is stored.
func TestHostilePeerService(t *testing.T) {
	t.Parallel()
	topic := []byte("org.fedoraproject.prod.test.hostile")
	good := []byte(`{"topic":"org.fedoraproject.prod.test.hostile","msg":{},"msg_id":"2026-after-the-attack"}`)
	hostile := zmtptest.Start(t,
		func(c *zmtptest.Conn) {
			c.ReadSubscription()
			c.Write(zmtptest.Header(0, 4<<30))
			io.Copy(io.Discard, c)
		},
		func(c *zmtptest.Conn) {
			c.ReadSubscription()
			c.Send(topic, make([]byte, 64<<20))
			io.Copy(io.Discard, c)
		},
		func(c *zmtptest.Conn) {
			c.ReadSubscription()
			c.Send(topic, good)
			io.Copy(io.Discard, c)
		},
	)
	db := storetest.URL(t)
	p := launch(t, db, "FMN_BUS_ENDPOINTS="+hostile.Endpoint())
	st := openStore(t, db)
	eventually(t, 60*time.Second, "the good message stored", func() bool {
		n, _ := st.CountMessages(context.Background())
		return n == 1
	})
	if v := metric(t, p.base, `fmn_bus_messages_dropped_total{reason="oversized"}`); v != 2 {
		t.Fatalf("oversized drops = %v, want 2", v)
	}
	eventually(t, 10*time.Second, "ready", func() bool { return p.ready().Status == "ready" })
	rss := metric(t, p.base, "process_resident_memory_bytes")
	if rss == 0 || rss > 150<<20 {
		t.Fatalf("resident memory %v bytes after the attack, want under 150 MiB", rss)
	}
	t.Logf("resident memory after a 4 GB and a 64 MiB frame: %.1f MiB", rss/(1<<20))
	if !strings.Contains(p.log.String(), "oversized") {
		t.Fatalf("the drop was not logged")
	}
}

// TestTwoInstancesTwoEndpoints: two `fmn serve` on one database, each
// subscribed to a relay and its source carrying the same envelopes: every
// message is stored once and notified once.
func TestTwoInstancesTwoEndpoints(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := storetest.URL(t)
	st := openStore(t, db)
	u, err := st.EnsureUser(ctx, "alice", "alice@example.org")
	if err != nil {
		t.Fatal(err)
	}
	var dest int64
	if err := st.Pool.QueryRow(ctx, `INSERT INTO destinations (user_id, kind, address, confirmed_at)
		VALUES ($1, 'email', 'alice@example.org', now()) RETURNING id`, u.ID).Scan(&dest); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Pool.Exec(ctx, `WITH r AS (INSERT INTO rules (user_id, name, track) VALUES ($1, 'all', '{"topics": ["org.fedoraproject.*"]}') RETURNING id)
		INSERT INTO rule_destinations SELECT r.id, $2 FROM r`, u.ID, dest); err != nil {
		t.Fatal(err)
	}
	var pubs []*consumer.Publisher
	var eps []string
	for range 2 {
		p, err := consumer.NewPublisher(ctx, fmt.Sprintf("tcp://127.0.0.1:%d", freePort(t)), false)
		if err != nil {
			t.Fatal(err)
		}
		defer p.Close()
		pubs, eps = append(pubs, p), append(eps, p.Addr())
	}
	// Mail goes to each instance's folder: the question here is what is
	// stored and queued.
	a := launch(t, db, "FMN_BUS_ENDPOINTS="+strings.Join(eps, ","))
	b := launch(t, db, "FMN_BUS_ENDPOINTS="+strings.Join(eps, ","))
	eventually(t, 30*time.Second, "both instances hear both publishers", func() bool {
		for _, p := range pubs {
			p.SendFrames([]byte("warm-up"))
		}
		for _, s := range []*proc{a, b} {
			r := s.ready()
			if len(r.Endpoints) != 2 {
				return false
			}
			for _, e := range r.Endpoints {
				if e.Received == 0 {
					return false
				}
			}
		}
		return true
	})
	const n = 100
	for k := range n {
		env := map[string]any{"topic": "org.fedoraproject.prod.test.twice", "msg": map[string]any{"k": k}, "msg_id": fmt.Sprintf("2026-twice-%d", k)}
		for _, p := range pubs {
			if err := p.Publish(env, false); err != nil {
				t.Fatal(err)
			}
		}
	}
	handled := func(s *proc) float64 {
		return metric(t, s.base, "fmn_bus_messages_stored_total") + metric(t, s.base, "fmn_bus_messages_duplicate_total")
	}
	eventually(t, 60*time.Second, "every copy handled", func() bool { return handled(a)+handled(b) == 4*n })
	if s := metric(t, a.base, "fmn_bus_messages_stored_total") + metric(t, b.base, "fmn_bus_messages_stored_total"); s != n {
		t.Fatalf("the instances stored %v messages in all, want %d", s, n)
	}
	var msgs, notes int64
	st.Pool.QueryRow(ctx, `SELECT count(*) FROM messages`).Scan(&msgs)
	st.Pool.QueryRow(ctx, `SELECT count(*) FROM notifications`).Scan(&notes)
	if msgs != n || notes != n {
		t.Fatalf("%d messages and %d notifications, want %d of each", msgs, notes, n)
	}
}
