package consumer

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"log/slog"
	"testing"
	"time"

	"fmn/consumer/zmtptest"
	"fmn/metrics"
)

func TestFrameScanner(t *testing.T) {
	t.Parallel()
	greet := make([]byte, 64)
	join := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	small := func(flags byte, n int) []byte { return append(zmtptest.Header(flags, uint64(n)), make([]byte, n)...) }
	cases := []struct {
		name   string
		stream []byte
		bad    bool // the stream must fail
		passed int  // bytes handed over before the failure
	}{
		{"greeting and small frames", join(greet, small(0x04, 30), small(0x01, 10), small(0, 300)), false, 0},
		{"empty frames", join(greet, small(0x01, 0), small(0, 0)), false, 0},
		{"frame at the limit", join(greet, small(0, 1000)), false, 0},
		{"frame over the limit, long header", join(greet, small(0x01, 5), zmtptest.Header(0, 4<<30)), true, 64 + 7 + 8},
		{"frame over the limit", join(greet, zmtptest.Header(0, 1001)), true, 64 + 8},
		{"message over the limit in parts", join(greet, small(0x01, 900), small(0x01, 900), small(0, 900)), true, 64 + 909 + 909 + 8},
		{"command over the limit", join(greet, zmtptest.Header(0x04, 5000)), true, 64 + 8},
	}
	for _, c := range cases {
		for _, chunk := range []int{1, 3, 64, 1 << 20} {
			s := frameScanner{limits: GuardLimits{Frame: 1000, Message: 2000}, greeting: zmtpGreetingLen}
			passed, failed := 0, false
			for off := 0; off < len(c.stream) && !failed; off += chunk {
				p := c.stream[off:min(off+chunk, len(c.stream))]
				n, err := s.feed(p)
				passed += n
				if err != nil {
					if !errors.Is(err, ErrOversized) {
						t.Fatalf("%s: error %v is not ErrOversized", c.name, err)
					}
					failed = true
				} else if n != len(p) {
					t.Fatalf("%s: passed %d of %d bytes without an error", c.name, n, len(p))
				}
			}
			if failed != c.bad {
				t.Fatalf("%s (chunks of %d): failed=%v, want %v", c.name, chunk, failed, c.bad)
			}
			if c.bad && passed != c.passed {
				t.Fatalf("%s (chunks of %d): handed over %d bytes, want %d (never the whole offending header)", c.name, chunk, passed, c.passed)
			}
		}
	}
}

// TestHostilePeer: a "publisher" speaking raw ZMTP declares a 4 GB frame,
// then (on the next connection) sends a 64 MiB one; each connection is
// closed by the guard before zmq4 allocates, counted, and the message sent
// on the connection after that is delivered.
func TestHostilePeer(t *testing.T) {
	t.Parallel()
	topic := []byte("org.fedoraproject.prod.test.good")
	good := []byte(`{"topic":"org.fedoraproject.prod.test.good","msg":{},"msg_id":"2026-good"}`)
	pub := zmtptest.Start(t,
		func(c *zmtptest.Conn) {
			c.ReadSubscription()
			c.Write(zmtptest.Header(0x01, uint64(len(topic))))
			c.Write(topic)
			c.Write(zmtptest.Header(0, 4<<30))
			io.Copy(io.Discard, c) // until the guard hangs up
		},
		func(c *zmtptest.Conn) {
			c.ReadSubscription()
			c.Send(topic, make([]byte, 64<<20)) // fails when the guard hangs up
			io.Copy(io.Discard, c)
		},
		func(c *zmtptest.Conn) {
			c.ReadSubscription()
			c.Send(topic, good)
			io.Copy(io.Discard, c)
		},
	)
	m := metrics.New()
	sub := &Subscriber{Endpoints: []string{pub.Endpoint()}, MaxBytes: 1 << 20, Metrics: m, Log: slog.New(slog.DiscardHandler)}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	out := make(chan Received, 10)
	done := make(chan struct{})
	go func() { defer close(done); sub.Run(ctx, out) }()
	select {
	case r := <-out:
		if r.Envelope.MsgID != "2026-good" {
			t.Fatalf("got %q", r.Envelope.MsgID)
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("the good message never came (connections served: %d)", pub.Served())
	}
	if n := value(m.BusDropped.WithLabelValues("oversized")); n != 2 {
		t.Fatalf("oversized drops = %v, want 2", n)
	}
	cancel()
	<-done
}

// FuzzFrameScanner: whatever the stream and however it is cut into reads,
// the guard hands over the same bytes, and they never hold a complete
// header declaring more than the limit.
func FuzzFrameScanner(f *testing.F) {
	greet := make([]byte, 64)
	f.Add(append(append(greet[:64:64], zmtptest.Header(0x01, 3)...), 'a', 'b', 'c', 0, 0), 7)
	f.Add(append(greet[:64:64], zmtptest.Header(0, 4<<30)...), 3)
	f.Fuzz(func(t *testing.T, stream []byte, chunk int) {
		if chunk <= 0 || chunk > 1<<16 {
			chunk = 1
		}
		limits := GuardLimits{Frame: 100, Message: 300}
		whole := frameScanner{limits: limits, greeting: zmtpGreetingLen}
		n1, err1 := whole.feed(stream)
		cut := frameScanner{limits: limits, greeting: zmtpGreetingLen}
		n2, failed := 0, false
		for off := 0; off < len(stream) && !failed; off += chunk {
			n, err := cut.feed(stream[off:min(off+chunk, len(stream))])
			n2 += n
			failed = err != nil
		}
		if n1 != n2 || (err1 != nil) != failed {
			t.Fatalf("whole: %d %v; in chunks of %d: %d %v", n1, err1, chunk, n2, failed)
		}
		// Re-read what was handed over: no complete header over the limit.
		p := stream[:n1]
		if len(p) <= 64 {
			return
		}
		p = p[64:]
		for len(p) > 0 {
			hl := 2
			if p[0]&zmtpLong != 0 {
				hl = 9
			}
			if len(p) < hl {
				return
			}
			size := uint64(p[1])
			if hl == 9 {
				size = binary.BigEndian.Uint64(p[1:9])
			}
			if size > limits.Frame {
				t.Fatalf("handed over a header declaring %d bytes", size)
			}
			if uint64(len(p)-hl) < size {
				return
			}
			p = p[hl+int(size):]
		}
	})
}
