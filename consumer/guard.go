package consumer

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"

	"github.com/go-zeromq/zmq4"
	"github.com/go-zeromq/zmq4/transport"
)

// zmq4 reads a frame header and then allocates the size it declares before
// reading the body, in a goroutine of its own: one header declaring 4 GB
// from anything fmn connects to panics the whole process, and a few hundred
// MB per frame exhausts memory. zmq4 has no maximum message size, so the
// guard sits below it: fmn dials its endpoints through transports of its
// own whose connections follow the ZMTP 3 framing as bytes go by and close
// the connection when a frame (or a whole multipart message) declares more
// than the limit, before zmq4 has seen the whole header.
//
// The transports are registered once under the names below; the limit and
// what to do when it is hit travel in the dialing socket's context (zmq4
// hands each socket's context to its transport's Dial).
const (
	guardedTCP = "fmntcp"
	guardedIPC = "fmnipc"
)

// ZMTP 3 framing, as much of it as the guard needs (rfc.zeromq.org/spec/23):
// a 64-byte greeting, then frames of a flags byte (bit 0 MORE, bit 1 LONG,
// bit 2 COMMAND), a size (1 byte, or 8 bytes big-endian when LONG) and the
// body. Commands (READY, SUBSCRIBE) are framed the same way.
const (
	zmtpGreetingLen = 64
	zmtpMore        = 0x01
	zmtpLong        = 0x02
	zmtpCommand     = 0x04
	// frameOverhead is what a frame costs zmq4 beyond its body (a slice
	// header and bookkeeping); counting it bounds messages made of very many
	// empty frames.
	frameOverhead = 64
)

// ErrOversized is returned (wrapped) by a guarded connection whose peer
// declared a frame or message larger than the limit.
var ErrOversized = errors.New("peer declared an oversized ZMTP frame")

// GuardLimits are the limits of a guarded connection.
type GuardLimits struct {
	Frame   uint64 // largest frame body accepted
	Message uint64 // largest multipart message, bodies plus frameOverhead each
	// OnViolation is called once when the connection is closed for
	// exceeding a limit (the subscriber counts the drop here).
	OnViolation func(err error)
}

type guardKey struct{}

// withGuard returns ctx carrying limits for the guarded transports.
func withGuard(ctx context.Context, l GuardLimits) context.Context {
	return context.WithValue(ctx, guardKey{}, l)
}

var registerOnce sync.Once

// registerGuard registers the guarded transports with zmq4 (once per
// process: zmq4's registry is global and refuses a name twice).
func registerGuard() {
	registerOnce.Do(func() {
		for name, network := range map[string]string{guardedTCP: "tcp", guardedIPC: "unix"} {
			if err := zmq4.RegisterTransport(name, guardTransport{network: network, base: transport.New(network)}); err != nil {
				panic(fmt.Sprintf("register zmq4 transport %s: %v", name, err))
			}
		}
	})
}

// GuardedEndpoint rewrites tcp:// and ipc:// endpoints to the guarded
// transports; any other endpoint is returned as it is.
func GuardedEndpoint(ep string) string {
	registerGuard()
	switch {
	case strings.HasPrefix(ep, "tcp://"):
		return guardedTCP + "://" + strings.TrimPrefix(ep, "tcp://")
	case strings.HasPrefix(ep, "ipc://"):
		return guardedIPC + "://" + strings.TrimPrefix(ep, "ipc://")
	}
	return ep
}

type guardTransport struct {
	network string
	base    transport.Transport
}

func (g guardTransport) Dial(ctx context.Context, d transport.Dialer, addr string) (net.Conn, error) {
	conn, err := d.DialContext(ctx, g.network, addr)
	if err != nil {
		return nil, err
	}
	l, ok := ctx.Value(guardKey{}).(GuardLimits)
	if !ok {
		// A socket dialing without limits still gets the default ones:
		// the guard exists to make a crash impossible, not optional.
		l = GuardLimits{Frame: 4 << 20, Message: 8 << 20}
	}
	return &guardConn{Conn: conn, scan: frameScanner{limits: l, greeting: zmtpGreetingLen}, onViolation: l.OnViolation}, nil
}

func (g guardTransport) Listen(ctx context.Context, addr string) (net.Listener, error) {
	return g.base.Listen(ctx, addr)
}

func (g guardTransport) Addr(ep string) (string, error) { return g.base.Addr(ep) }

// guardConn passes bytes through to zmq4 while scanning their framing.
type guardConn struct {
	net.Conn
	scan        frameScanner
	onViolation func(error)
	failed      error
}

func (c *guardConn) Read(p []byte) (int, error) {
	if c.failed != nil {
		return 0, c.failed
	}
	n, err := c.Conn.Read(p)
	ok, verr := c.scan.feed(p[:n])
	if verr != nil {
		c.failed = verr
		c.Conn.Close()
		if c.onViolation != nil {
			c.onViolation(verr)
		}
		// Hand over what came before the offending header (whole earlier
		// frames, and at most part of the header itself, so zmq4 never
		// learns the size); the next Read reports the failure.
		if ok > 0 {
			return ok, nil
		}
		return 0, verr
	}
	return n, err
}

// frameScanner follows ZMTP framing over a byte stream.
type frameScanner struct {
	limits   GuardLimits
	greeting int    // greeting bytes still to pass
	body     uint64 // body bytes of the current frame still to pass
	hdr      [9]byte
	hdrN     int
	msgBytes uint64 // the current multipart message so far
}

// feed scans p; it returns how many leading bytes may be handed to zmq4
// and, when a limit is exceeded, an error wrapping ErrOversized. The byte
// that completes an offending header is never among those handed over.
func (s *frameScanner) feed(p []byte) (int, error) {
	i := 0
	for i < len(p) {
		switch {
		case s.greeting > 0:
			n := min(s.greeting, len(p)-i)
			s.greeting -= n
			i += n
		case s.body > 0:
			n := uint64(len(p) - i)
			if n > s.body {
				n = s.body
			}
			s.body -= n
			i += int(n)
		default:
			s.hdr[s.hdrN] = p[i]
			s.hdrN++
			want := 2
			if s.hdr[0]&zmtpLong != 0 {
				want = 9
			}
			if s.hdrN < want {
				i++
				continue
			}
			flags := s.hdr[0]
			size := uint64(s.hdr[1])
			if want == 9 {
				size = binary.BigEndian.Uint64(s.hdr[1:9])
			}
			s.hdrN = 0
			if size > s.limits.Frame {
				return i, fmt.Errorf("%w: %d bytes declared, the limit is %d", ErrOversized, size, s.limits.Frame)
			}
			if flags&zmtpCommand == 0 {
				s.msgBytes += size + frameOverhead
				if s.msgBytes > s.limits.Message {
					return i, fmt.Errorf("%w: multipart message over %d bytes", ErrOversized, s.limits.Message)
				}
				if flags&zmtpMore == 0 {
					s.msgBytes = 0
				}
			}
			s.body = size
			i++
		}
	}
	return i, nil
}
