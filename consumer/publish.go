package consumer

import (
	"bytes"
	"context"
	"crypto/rsa"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"time"

	"github.com/go-zeromq/zmq4"

	"fmn/consumer/fedmsg"
)

// Publisher is a fedmsg publisher: a PUB socket that binds (as fedmsg's
// publishers do, and consumers connect) or connects (to a relay's SUB side).
type Publisher struct {
	sock     zmq4.Socket
	seq      int64
	hostname string

	// Signer, when set, signs every fresh message as fedmsg's x509
	// signer does.
	Signer *Signer
	// Store, when set, numbers every fresh message with "seq_id" and keeps
	// it for a replay endpoint (see ServeReplay), as a fedmsg publisher with
	// a persistent store does.
	Store *ReplayStore
}

// Signer is a signing certificate and its key.
type Signer struct {
	CertPEM []byte
	Key     *rsa.PrivateKey
}

// LoadSigner reads a PEM certificate and its PEM private key.
func LoadSigner(certPath, keyPath string) (*Signer, error) {
	cert, err := os.ReadFile(certPath)
	if err != nil {
		return nil, fmt.Errorf("read signing certificate: %w", err)
	}
	keyPEM, err := os.ReadFile(keyPath)
	if err != nil {
		return nil, fmt.Errorf("read signing key: %w", err)
	}
	key, err := fedmsg.ParsePrivateKeyPEM(keyPEM)
	if err != nil {
		return nil, fmt.Errorf("signing key %s: %w", keyPath, err)
	}
	// Sign checks that the key matches the certificate; find out now.
	if _, err := fedmsg.Sign(map[string]any{}, cert, key); err != nil {
		return nil, err
	}
	return &Signer{CertPEM: cert, Key: key}, nil
}

// NewPublisher binds (or, with connect, dials) endpoint.
func NewPublisher(ctx context.Context, endpoint string, connect bool) (*Publisher, error) {
	sock := zmq4.NewPub(ctx, zmq4.WithTimeout(30*time.Second))
	var err error
	if connect {
		err = sock.Dial(endpoint)
	} else {
		err = sock.Listen(endpoint)
	}
	if err != nil {
		sock.Close()
		return nil, fmt.Errorf("open PUB socket on %s: %w", endpoint, err)
	}
	host, _ := os.Hostname()
	return &Publisher{sock: sock, hostname: host}, nil
}

// Addr is the bound address (useful with port 0).
func (p *Publisher) Addr() string {
	if a := p.sock.Addr(); a != nil {
		return "tcp://" + a.String()
	}
	return ""
}

// WaitSubscribers waits until at least one subscriber has subscribed, or the
// timeout passes. ZeroMQ drops what a PUB sends before a SUB has joined (the
// "slow joiner"), so a one-shot publish waits for its audience.
func (p *Publisher) WaitSubscribers(ctx context.Context, timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	topics, ok := p.sock.(zmq4.Topics)
	if !ok {
		return false
	}
	for time.Now().Before(deadline) && ctx.Err() == nil {
		if len(topics.Topics()) > 0 {
			return true
		}
		time.Sleep(20 * time.Millisecond)
	}
	return false
}

// Publish sends an envelope. With fresh, it is stamped as fedmsg's publisher
// stamps a new message: a new msg_id, the next "i", and a timestamp and
// username where missing; with a replay store also the next "seq_id"; and
// then it is signed when the publisher has a Signer. The input map is not
// changed.
//
// fedmsg's own publisher adds seq_id after signing, so the reference
// validator rejects its replayable messages; fmn numbers first and signs
// after, so what it publishes verifies everywhere.
func (p *Publisher) Publish(env map[string]any, fresh bool) error {
	env = maps.Clone(env)
	if fresh {
		now := time.Now()
		p.seq++
		env["msg_id"] = NewMsgID(now)
		env["i"] = p.seq
		if _, ok := env["timestamp"]; !ok {
			env["timestamp"] = json.Number(fmt.Sprintf("%.6f", float64(now.UnixMicro())/1e6))
		}
		if _, ok := env["username"]; !ok {
			env["username"] = "fmn"
		}
		delete(env, "seq_id")
		if p.Store != nil {
			env["seq_id"] = p.Store.NextSeq()
		}
		if p.Signer != nil {
			var err error
			if env, err = fedmsg.Sign(env, p.Signer.CertPEM, p.Signer.Key); err != nil {
				return err
			}
		}
	}
	topic, _ := env["topic"].(string)
	raw, err := EncodeEnvelope(env)
	if err != nil {
		return err
	}
	if fresh && p.Store != nil {
		id, _ := env["msg_id"].(string)
		p.Store.Add(env["seq_id"].(int64), id, raw)
	}
	return p.Send(topic, raw)
}

// Send sends the two frames as they are, for tests that need malformed input.
func (p *Publisher) Send(topic string, raw []byte) error {
	if err := p.sock.Send(zmq4.NewMsgFrom([]byte(topic), raw)); err != nil {
		return fmt.Errorf("publish on %s: %w", topic, err)
	}
	return nil
}

// SendFrames sends arbitrary frames.
func (p *Publisher) SendFrames(frames ...[]byte) error {
	return p.sock.Send(zmq4.NewMsgFrom(frames...))
}

// Close closes the socket.
func (p *Publisher) Close() error { return p.sock.Close() }

// EncodeEnvelope encodes an envelope as one compact JSON document, without
// HTML escaping (bus consumers are not browsers).
func EncodeEnvelope(env map[string]any) ([]byte, error) {
	if b, ok := appendJSON(nil, env); ok {
		return b, nil
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(env); err != nil {
		return nil, fmt.Errorf("encode envelope: %w", err)
	}
	return bytes.TrimRight(buf.Bytes(), "\n"), nil
}

// Replay publishes envs in order at rate messages a second (0: as fast as
// the subscribers take them), stamping each as a fresh message; it returns
// when all are sent or ctx ends.
func (p *Publisher) Replay(ctx context.Context, envs []map[string]any, rate float64) error {
	var tick *time.Ticker
	if rate > 0 {
		tick = time.NewTicker(time.Duration(float64(time.Second) / rate))
		defer tick.Stop()
	}
	for _, env := range envs {
		if tick != nil {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-tick.C:
			}
		} else if ctx.Err() != nil {
			return ctx.Err()
		}
		if err := p.Publish(env, true); err != nil {
			return err
		}
	}
	return nil
}
