package consumer

import (
	"context"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"fmn"
	"fmn/delivery"
	"fmn/metrics"
	"fmn/rules"
	"fmn/store"
	"fmn/store/storetest"
)

var quiet = slog.New(slog.DiscardHandler)

func newIngester(t *testing.T, st *store.Store, rp Replayer) *Ingester {
	t.Helper()
	jobs, err := delivery.NewClient(st.Pool, delivery.Jobs{Log: quiet}, false)
	if err != nil {
		t.Fatal(err)
	}
	return &Ingester{Store: st, Rules: rules.NewLive(store.RuleSource{}), Queue: delivery.NewQueue(jobs, []delivery.Route{{Kind: fmn.KindEmail, Attempts: 12}}),
		Replay: rp, Metrics: metrics.New(), Log: quiet}
}

// envelope encodes a test envelope; seq 0 leaves seq_id out.
func envelope(t testing.TB, msgID string, seq int64) []byte {
	t.Helper()
	env := map[string]any{"topic": "org.fedoraproject.prod.test.seq", "msg": map[string]any{"n": seq}, "msg_id": msgID}
	if seq > 0 {
		env["seq_id"] = seq
	}
	raw, err := EncodeEnvelope(env)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

func received(t testing.TB, ep, msgID string, seq int64) Received {
	t.Helper()
	env, err := Decode(envelope(t, msgID, seq), 0)
	if err != nil {
		t.Fatal(err)
	}
	return Received{Endpoint: ep, Envelope: env, ReceivedAt: time.Now()}
}

// storedSeqs returns the seq_ids of the stored messages in storing order.
func storedSeqs(t *testing.T, st *store.Store) []int64 {
	t.Helper()
	rows, err := st.Pool.Query(context.Background(), `SELECT coalesce((envelope->>'seq_id')::bigint, 0) FROM messages ORDER BY id`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []int64
	for rows.Next() {
		var s int64
		rows.Scan(&s)
		out = append(out, s)
	}
	return out
}

// TestGapReplayed: a gap in an endpoint's seq_id stream is filled from its
// replay endpoint (a real REP socket), in order, before the message that
// revealed it; the position survives a restart, so a gap across restarts
// is noticed too, and without a replay endpoint it is recorded.
func TestGapReplayed(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := storetest.New(t)
	const ep = "tcp://publisher.example:9940"
	rs := NewReplayStore(100)
	for seq := int64(1); seq <= 30; seq++ {
		rs.Add(seq, fmt.Sprintf("m%d", seq), envelope(t, fmt.Sprintf("m%d", seq), seq))
	}
	sctx, stop := context.WithCancel(ctx)
	defer stop()
	repAddr, err := ServeReplay(sctx, "tcp://127.0.0.1:0", rs, quiet)
	if err != nil {
		t.Fatal(err)
	}
	rp := &ZMQReplayer{Endpoints: map[string]string{ep: repAddr}, Metrics: metrics.New(), Log: quiet}
	in := newIngester(t, st, rp)
	if err := in.Ingest(ctx, []Received{received(t, ep, "m1", 1)}); err != nil {
		t.Fatal(err)
	}
	// m2..m9 were lost on the wire; m3 also arrives live later (late or
	// doubled), which must not store it twice.
	if err := in.Ingest(ctx, []Received{received(t, ep, "m10", 10), received(t, ep, "m11", 11)}); err != nil {
		t.Fatal(err)
	}
	want := []int64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11}
	if got := storedSeqs(t, st); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("stored seq_ids %v, want %v", got, want)
	}
	if err := in.Ingest(ctx, []Received{received(t, ep, "m3", 3)}); err != nil {
		t.Fatal(err)
	}
	if n, _ := st.CountMessages(ctx); n != 11 {
		t.Fatalf("%d messages stored after a duplicate, want 11", n)
	}
	if v := value(in.Metrics.BusGaps.WithLabelValues(ep)); v != 1 {
		t.Fatalf("gaps counted %v, want 1", v)
	}
	if v := value(in.Metrics.BusReplayed.WithLabelValues(ep)); v != 8 {
		t.Fatalf("replayed %v, want 8", v)
	}

	// A restarted ingester knows where the stream stood (3, the restart
	// seen last) and fills 4..19 when 20 arrives.
	in2 := newIngester(t, st, rp)
	if err := in2.Ingest(ctx, []Received{received(t, ep, "m20", 20)}); err != nil {
		t.Fatal(err)
	}
	if n, _ := st.CountMessages(ctx); n != 20 {
		t.Fatalf("%d messages stored after the restart, want 20", n)
	}

	// Without a replay endpoint the gap is recorded, never hidden.
	in3 := newIngester(t, st, nil)
	if err := in3.Ingest(ctx, []Received{received(t, ep, "m25", 25)}); err != nil {
		t.Fatal(err)
	}
	gaps, err := st.RecentBusGaps(ctx, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(gaps) != 3 {
		t.Fatalf("gaps recorded: %+v", gaps)
	}
	g := gaps[0]
	if g.AfterSeq != 20 || g.BeforeSeq != 25 || g.Missed != 4 || g.Recovered != 0 || g.Error != "no replay endpoint" {
		t.Fatalf("gap without replay: %+v", g)
	}
	if v := value(in3.Metrics.BusMissed.WithLabelValues(ep)); v != 4 {
		t.Fatalf("missed %v, want 4", v)
	}
	if g := gaps[2]; g.AfterSeq != 1 || g.BeforeSeq != 10 || g.Recovered != 8 || g.Missed != 0 {
		t.Fatalf("first gap: %+v", g)
	}

	// A replay endpoint that does not answer costs a timeout, and the gap
	// is recorded as missed; the message itself is stored.
	dead := &ZMQReplayer{Endpoints: map[string]string{ep: "tcp://127.0.0.1:1"}, Timeout: time.Second, Metrics: metrics.New(), Log: quiet}
	in4 := newIngester(t, st, dead)
	if err := in4.Ingest(ctx, []Received{received(t, ep, "m28", 28)}); err != nil {
		t.Fatal(err)
	}
	gaps, _ = st.RecentBusGaps(ctx, 1)
	if gaps[0].Missed != 2 || gaps[0].Error == "" {
		t.Fatalf("gap with a dead replay endpoint: %+v", gaps[0])
	}
	if n, _ := st.CountMessages(ctx); n != 22 {
		t.Fatalf("%d messages stored, want 22", n)
	}
}

func TestReplayStoreAnswers(t *testing.T) {
	t.Parallel()
	rs := NewReplayStore(3)
	for seq := int64(1); seq <= 5; seq++ {
		rs.Add(seq, fmt.Sprintf("m%d", seq), []byte(fmt.Sprint(seq)))
	}
	for q, want := range map[string]string{
		`{"seq_id_range": [1, 4]}`: "[[51] [52]]", // 1 and 2 fell out of the last 3
		`{"seq_id": 5}`:            "[[53]]",
		`{"msg_id": "m4"}`:         "[[52]]",
		`{"seq_id_range": [9, 9]}`: "error: 'There was no match for the given query'",
		`{"bogus": 1}`:             `error: 'Unsupported field: "bogus"'`,
		`{"seq_id_range": 3}`:      `error: 'Ill-formed "seq_id_range" field'`,
		`not json`:                 "error: 'Invalid query",
	} {
		got := rs.Answer([]byte(q))
		s := fmt.Sprint(got)
		if len(got) == 1 && len(got[0]) > 0 && got[0][0] == 'e' {
			s = string(got[0])
		}
		if len(s) < len(want) || s[:len(want)] != want {
			t.Errorf("Answer(%s) = %s, want %s", q, s, want)
		}
	}
}

// TestNULStored: JSON allows "\u0000", PostgreSQL's text and jsonb do not;
// such a message (one of the signed vectors has one) is stored with U+FFFD
// instead of stalling its batch.
func TestNULStored(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := storetest.New(t)
	in := newIngester(t, st, nil)
	env, err := Decode([]byte(`{"topic":"org.fedoraproject.prod.test.nul","msg":{"agent":"\u0000ctl","x\u0000":["a\u0000"]},"msg_id":"nul\u0000id","username":"\u0000"}`), 0)
	if err != nil {
		t.Fatal(err)
	}
	ok := received(t, "ep", "fine", 0)
	if err := in.Ingest(ctx, []Received{{Endpoint: "ep", Envelope: env}, ok}); err != nil {
		t.Fatal(err)
	}
	var agent string
	if err := st.Pool.QueryRow(ctx, `SELECT envelope->'msg'->>'agent' FROM messages WHERE msg_id = $1`, "nul\uFFFDid").Scan(&agent); err != nil {
		t.Fatal(err)
	}
	if agent != "\uFFFDctl" {
		t.Fatalf("stored agent %q", agent)
	}
	if n, _ := st.CountMessages(ctx); n != 2 {
		t.Fatalf("%d messages stored, want 2", n)
	}
}

// TestReplayChunks: a gap larger than one query is fetched in several,
// each answer a multipart message through the size guard, all in order.
func TestReplayChunks(t *testing.T) {
	t.Parallel()
	rs := NewReplayStore(1000)
	for seq := int64(1); seq <= 300; seq++ {
		rs.Add(seq, fmt.Sprintf("c%d", seq), envelope(t, fmt.Sprintf("c%d", seq), seq))
	}
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	addr, err := ServeReplay(ctx, "tcp://127.0.0.1:0", rs, quiet)
	if err != nil {
		t.Fatal(err)
	}
	rp := &ZMQReplayer{Endpoints: map[string]string{"pub": addr}, Metrics: metrics.New(), Log: quiet}
	got, err := rp.Replay(ctx, "pub", 10, 290)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 279 || got[0].Envelope.SeqID != 11 || got[278].Envelope.SeqID != 289 {
		t.Fatalf("replayed %d messages, from %d", len(got), got[0].Envelope.SeqID)
	}
	for i, r := range got {
		if r.Envelope.SeqID != int64(11+i) || !r.Replayed || r.Endpoint != "pub" {
			t.Fatalf("message %d: %+v", i, r)
		}
	}
}
