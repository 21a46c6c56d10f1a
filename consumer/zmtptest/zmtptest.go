// Package zmtptest is a ZeroMQ publisher written byte by byte (ZMTP 3.0
// with the NULL mechanism), for tests that need a peer zmq4 would never
// be: one that declares absurd frame sizes, or sends frames it does not
// finish.
package zmtptest

import (
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"sync"
	"testing"
)

// Pub listens for subscribers and hands each accepted connection, after
// the handshake, to the next handler given to Serve (the last handler
// serves every further connection).
type Pub struct {
	ln       net.Listener
	mu       sync.Mutex
	handlers []func(*Conn)
	served   int
}

// Start listens on a free loopback port; it stops when the test ends.
func Start(t testing.TB, handlers ...func(*Conn)) *Pub {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &Pub{ln: ln, handlers: handlers}
	t.Cleanup(func() { ln.Close() })
	go p.accept()
	return p
}

// Endpoint is the tcp:// address subscribers connect to.
func (p *Pub) Endpoint() string { return "tcp://" + p.ln.Addr().String() }

// Served returns how many connections reached a handler.
func (p *Pub) Served() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.served
}

func (p *Pub) accept() {
	for {
		nc, err := p.ln.Accept()
		if err != nil {
			return
		}
		go func() {
			defer nc.Close()
			c := &Conn{Conn: nc}
			if err := c.handshake(); err != nil {
				return
			}
			p.mu.Lock()
			h := p.handlers[min(p.served, len(p.handlers)-1)]
			p.served++
			p.mu.Unlock()
			h(c)
		}()
	}
}

// Conn is one subscriber's connection.
type Conn struct{ net.Conn }

// greeting is the 64-byte ZMTP 3.0 greeting: signature, version 3.0, the
// NULL mechanism, as-server false, filler.
func greeting() []byte {
	g := make([]byte, 64)
	g[0], g[9] = 0xff, 0x7f
	g[10], g[11] = 3, 0
	copy(g[12:32], "NULL")
	return g
}

func (c *Conn) handshake() error {
	if _, err := c.Write(greeting()); err != nil {
		return err
	}
	peer := make([]byte, 64)
	if _, err := io.ReadFull(c, peer); err != nil {
		return err
	}
	// READY with Socket-Type PUB.
	var body []byte
	body = append(body, 5)
	body = append(body, "READY"...)
	body = append(body, byte(len("Socket-Type")))
	body = append(body, "Socket-Type"...)
	body = binary.BigEndian.AppendUint32(body, 3)
	body = append(body, "PUB"...)
	if err := c.frame(0x04, body); err != nil {
		return err
	}
	// The peer's READY command.
	if _, _, err := c.readFrame(); err != nil {
		return err
	}
	return nil
}

// ReadSubscription reads the subscriber's next frame (its SUBSCRIBE
// message) so that what is sent next is not dropped by its filter.
func (c *Conn) ReadSubscription() ([]byte, error) {
	_, b, err := c.readFrame()
	return b, err
}

func (c *Conn) readFrame() (byte, []byte, error) {
	var hdr [9]byte
	if _, err := io.ReadFull(c, hdr[:2]); err != nil {
		return 0, nil, err
	}
	size := uint64(hdr[1])
	if hdr[0]&0x02 != 0 {
		if _, err := io.ReadFull(c, hdr[2:9]); err != nil {
			return 0, nil, err
		}
		size = binary.BigEndian.Uint64(hdr[1:9])
	}
	if size > 1<<20 {
		return 0, nil, fmt.Errorf("zmtptest: peer frame of %d bytes", size)
	}
	b := make([]byte, size)
	_, err := io.ReadFull(c, b)
	return hdr[0], b, err
}

func (c *Conn) frame(flags byte, body []byte) error {
	if _, err := c.Write(Header(flags, uint64(len(body)))); err != nil {
		return err
	}
	_, err := c.Write(body)
	return err
}

// Header encodes a frame header declaring size bytes (long form when the
// size needs it).
func Header(flags byte, size uint64) []byte {
	if size > 255 {
		h := []byte{flags | 0x02, 0, 0, 0, 0, 0, 0, 0, 0}
		binary.BigEndian.PutUint64(h[1:], size)
		return h
	}
	return []byte{flags, byte(size)}
}

// Send sends a message of the given frames.
func (c *Conn) Send(frames ...[]byte) error {
	for i, f := range frames {
		var flags byte
		if i < len(frames)-1 {
			flags = 0x01
		}
		if err := c.frame(flags, f); err != nil {
			return err
		}
	}
	return nil
}
