package consumer

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/go-zeromq/zmq4"

	"fmn/consumer/fedmsg"
	"fmn/metrics"
)

// fedmsg's replay protocol (fedmsg.replay): a publisher with a persistent
// store numbers each message with "seq_id" and answers queries on a REP
// socket. The consumer sends one JSON object, here {"seq_id_range": [a, b]}
// (both ends included, as the reference store's BETWEEN does), and gets
// back a multipart message of JSON envelopes, or a single frame starting
// "error: " (the reference answers "error: 'There was no match for the
// given query'" when it has nothing).

// replayChunk is how many seq_ids one query asks for, so that one answer
// stays well inside the guard's message limit.
const replayChunk = 100

// replayMessageLimit bounds one replay answer (a multipart of up to
// replayChunk envelopes).
const replayMessageLimit = 128 << 20

// ZMQReplayer asks publishers' replay endpoints for missed messages.
type ZMQReplayer struct {
	Endpoints map[string]string // PUB endpoint → its REP replay endpoint
	MaxBytes  int
	Verifier  *fedmsg.Verifier // when set, replayed messages are checked like live ones
	Timeout   time.Duration    // per query; 0 means 10 s
	Metrics   *metrics.Metrics
	Log       *slog.Logger
}

// CanReplay reports whether endpoint has a replay endpoint.
func (z *ZMQReplayer) CanReplay(endpoint string) bool {
	_, ok := z.Endpoints[endpoint]
	return ok
}

// Replay fetches the messages with after < seq_id < before from endpoint's
// replay endpoint, in seq_id order. It returns what it got even when a
// query fails, with the error.
func (z *ZMQReplayer) Replay(ctx context.Context, endpoint string, after, before int64) ([]Received, error) {
	rep, ok := z.Endpoints[endpoint]
	if !ok {
		return nil, fmt.Errorf("no replay endpoint for %s", endpoint)
	}
	bySeq := map[int64]Received{}
	var errs []error
	for lo := after; lo < before-1; {
		hi := min(lo+replayChunk, before)
		frames, err := z.query(ctx, rep, lo, hi)
		if err != nil {
			errs = append(errs, fmt.Errorf("seq_id %d to %d: %w", lo, hi, err))
		}
		now := time.Now()
		for _, f := range frames {
			env, err := Decode(f, z.MaxBytes)
			if err != nil {
				z.drop(endpoint, dropReason(err), err)
				continue
			}
			if env.SeqID <= after || env.SeqID >= before {
				continue // the range's ends, already seen, or not asked for
			}
			if z.Verifier != nil {
				if err := z.Verifier.Verify(env.Fields); err != nil {
					z.drop(endpoint, SignatureReason(err), fmt.Errorf("replayed msg_id %s: %w", env.MsgID, err))
					continue
				}
			}
			bySeq[env.SeqID] = Received{Endpoint: endpoint, Envelope: env, ReceivedAt: now, Replayed: true}
		}
		lo = hi
	}
	out := make([]Received, 0, len(bySeq))
	for _, r := range bySeq {
		out = append(out, r)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Envelope.SeqID < out[j].Envelope.SeqID })
	return out, errors.Join(errs...)
}

func (z *ZMQReplayer) drop(ep, reason string, err error) {
	z.Metrics.BusDropped.WithLabelValues(reason).Inc()
	z.Log.Warn("dropped replayed message", "endpoint", ep, "reason", reason, "err", err)
}

// query makes one REQ/REP exchange over a fresh socket (a REQ socket whose
// answer never came cannot be reused).
func (z *ZMQReplayer) query(ctx context.Context, rep string, lo, hi int64) ([][]byte, error) {
	timeout := z.Timeout
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	qctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	limit := uint64(z.MaxBytes)
	if limit == 0 {
		limit = 4 << 20
	}
	gctx := withGuard(qctx, GuardLimits{Frame: limit, Message: replayMessageLimit})
	req := zmq4.NewReq(gctx, zmq4.WithDialerMaxRetries(0), zmq4.WithDialerTimeout(timeout), zmq4.WithTimeout(timeout))
	defer req.Close()
	if err := req.Dial(GuardedEndpoint(rep)); err != nil {
		return nil, fmt.Errorf("connect to replay endpoint %s: %w", rep, err)
	}
	q, _ := json.Marshal(map[string]any{"seq_id_range": []int64{lo, hi}})
	if err := req.Send(zmq4.NewMsg(q)); err != nil {
		return nil, fmt.Errorf("ask replay endpoint %s: %w", rep, err)
	}
	msg, err := req.Recv()
	if err != nil {
		return nil, fmt.Errorf("read answer of replay endpoint %s: %w", rep, err)
	}
	if len(msg.Frames) == 1 && bytes.HasPrefix(msg.Frames[0], []byte("error: ")) {
		text := string(msg.Frames[0])
		if strings.Contains(text, "no match") {
			return nil, nil // nothing kept in that range: the gap stays
		}
		return nil, fmt.Errorf("replay endpoint %s: %.200s", rep, text)
	}
	return msg.Frames, nil
}

// ReplayStore keeps a publisher's recent messages in memory for its replay
// endpoint: fmn publish's stand-in for fedmsg's persistent store.
type ReplayStore struct {
	mu    sync.Mutex
	keep  int
	next  int64
	items []storedMsg // oldest first
}

type storedMsg struct {
	seq   int64
	msgID string
	raw   []byte
}

// NewReplayStore keeps the last keep messages.
func NewReplayStore(keep int) *ReplayStore { return &ReplayStore{keep: keep} }

// NextSeq hands out the next seq_id (1, 2, 3…).
func (s *ReplayStore) NextSeq() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.next++
	return s.next
}

// Add keeps an encoded envelope under its seq_id.
func (s *ReplayStore) Add(seq int64, msgID string, raw []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.items = append(s.items, storedMsg{seq: seq, msgID: msgID, raw: raw})
	if len(s.items) > s.keep {
		s.items = append(s.items[:0:0], s.items[len(s.items)-s.keep:]...)
	}
}

// Answer answers one replay query the way fedmsg's replay endpoint does.
func (s *ReplayStore) Answer(query []byte) [][]byte {
	fail := func(format string, args ...any) [][]byte {
		return [][]byte{[]byte("error: '" + fmt.Sprintf(format, args...) + "'")}
	}
	q, err := fedmsg.DecodeEnvelope(query)
	if err != nil {
		return fail("Invalid query: %v", err)
	}
	var match []func(storedMsg) bool
	for key, val := range q {
		switch key {
		case "seq_id_range":
			r, ok := val.([]any)
			var a, b int64
			if ok && len(r) == 2 {
				a, err = intOf(r[0])
				if err == nil {
					b, err = intOf(r[1])
				}
			}
			if !ok || len(r) != 2 || err != nil {
				return fail(`Ill-formed "seq_id_range" field`)
			}
			match = append(match, func(m storedMsg) bool { return m.seq >= a && m.seq <= b })
		case "seq_id":
			n, err := intOf(val)
			if err != nil {
				return fail(`Ill-formed "seq_id" field`)
			}
			match = append(match, func(m storedMsg) bool { return m.seq == n })
		case "msg_id":
			id, _ := val.(string)
			match = append(match, func(m storedMsg) bool { return m.msgID == id })
		default:
			return fail("Unsupported field: %q", key)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var out [][]byte
	for _, m := range s.items {
		for _, f := range match {
			if f(m) {
				out = append(out, m.raw)
				break
			}
		}
	}
	if len(out) == 0 {
		return fail("There was no match for the given query")
	}
	return out
}

func intOf(v any) (int64, error) {
	n, ok := v.(json.Number)
	if !ok {
		return 0, errors.New("not a number")
	}
	return n.Int64()
}

// ServeReplay answers replay queries on a REP socket bound to endpoint
// until ctx ends. It returns once the socket is bound.
func ServeReplay(ctx context.Context, endpoint string, st *ReplayStore, log *slog.Logger) (string, error) {
	rep := zmq4.NewRep(ctx, zmq4.WithTimeout(10*time.Second))
	if err := rep.Listen(endpoint); err != nil {
		rep.Close()
		return "", fmt.Errorf("open replay endpoint %s: %w", endpoint, err)
	}
	addr := endpoint
	if a := rep.Addr(); a != nil && strings.HasPrefix(endpoint, "tcp://") {
		addr = "tcp://" + a.String()
	}
	go func() {
		defer rep.Close()
		go func() { <-ctx.Done(); rep.Close() }()
		for {
			msg, err := rep.Recv()
			if err != nil {
				if ctx.Err() != nil {
					return
				}
				log.Warn("replay endpoint: bad request", "err", err)
				time.Sleep(10 * time.Millisecond) // not a busy loop if the socket keeps failing
				continue
			}
			var q []byte
			if len(msg.Frames) > 0 {
				q = msg.Frames[len(msg.Frames)-1]
			}
			if err := rep.Send(zmq4.NewMsgFrom(st.Answer(q)...)); err != nil && ctx.Err() == nil {
				log.Warn("replay endpoint: answer failed", "err", err)
			}
		}
	}()
	return addr, nil
}
