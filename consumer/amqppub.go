package consumer

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"fmn/rules/meta"
)

// AMQPPublisher publishes in fedora-messaging's format, with publisher
// confirms: Wait returns once the broker has taken (and, for a durable
// queue, written) everything published. It backs `fmn publish -amqp`, the
// tests and the benchmarks.
type AMQPPublisher struct {
	// Severity, when set, is the severity of every message PublishEnvelope
	// sends, instead of the one the metadata tables derive.
	Severity string

	conn     *amqp.Connection
	ch       *amqp.Channel
	exchange string
	window   []*amqp.DeferredConfirmation
}

// maxUnconfirmed bounds the messages in flight before Publish waits for the
// oldest confirm.
const maxUnconfirmed = 2000

// NewAMQPPublisher connects to the broker; messages go to exchange.
func NewAMQPPublisher(ctx context.Context, rawURL string, tlsConf *tls.Config, external bool, exchange string) (*AMQPPublisher, error) {
	conn, err := DialAMQP(ctx, rawURL, tlsConf, external, "fmn publish")
	if err != nil {
		return nil, err
	}
	ch, err := conn.Channel()
	if err == nil {
		err = ch.Confirm(false)
	}
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("open publishing channel: %w", err)
	}
	return &AMQPPublisher{conn: conn, ch: ch, exchange: exchange}, nil
}

// Channel is the publisher's channel, for declaring queues before
// publishing (only from the goroutine that publishes).
func (p *AMQPPublisher) Channel() *amqp.Channel { return p.ch }

// PublishRaw publishes msg as given (tests use it for malformed messages).
func (p *AMQPPublisher) PublishRaw(ctx context.Context, routingKey string, msg amqp.Publishing) error {
	if len(p.window) >= maxUnconfirmed {
		if err := p.confirmed(ctx, p.window[:maxUnconfirmed/2]); err != nil {
			return err
		}
		p.window = append(p.window[:0], p.window[maxUnconfirmed/2:]...)
	}
	dc, err := p.ch.PublishWithDeferredConfirmWithContext(ctx, p.exchange, routingKey, false, false, msg)
	if err != nil {
		return fmt.Errorf("publish on %s: %w", routingKey, err)
	}
	p.window = append(p.window, dc)
	return nil
}

// Publish publishes body on topic as fedora-messaging does, with md's
// object sets and severity in the headers; it returns the message_id
// (msgID, or a new UUID when empty).
func (p *AMQPPublisher) Publish(ctx context.Context, topic, msgID string, body map[string]any, md meta.Metadata) (string, error) {
	pub, err := FMPublishing(msgID, md, body, time.Now())
	if err != nil {
		return "", err
	}
	return pub.MessageId, p.PublishRaw(ctx, topic, pub)
}

// PublishEnvelope publishes a fedmsg envelope's body as a fresh
// fedora-messaging message, with the headers a schema would compute: the
// object sets and severity fmn's metadata tables derive from it.
func (p *AMQPPublisher) PublishEnvelope(ctx context.Context, env map[string]any) (string, error) {
	topic, _ := env["topic"].(string)
	username, _ := env["username"].(string)
	body, ok := env["msg"].(map[string]any)
	if !ok {
		return "", fmt.Errorf("envelope on %s: msg is not a JSON object, which fedora-messaging requires", topic)
	}
	md := meta.Extract(topic, body, username)
	md.Severity = fmSeverityWord(md.Severity)
	if p.Severity != "" {
		md.Severity = p.Severity
	}
	return p.Publish(ctx, topic, "", body, md)
}

// fmSeverityWord maps a metadata severity onto fedora-messaging's four
// levels: critical is its error, anything unknown info.
func fmSeverityWord(s string) string {
	switch s {
	case "debug", "info", "warning", "error":
		return s
	case "critical":
		return "error"
	}
	return "info"
}

// Replay publishes envs at rate messages a second (0: as fast as the
// broker confirms), each as a fresh message.
func (p *AMQPPublisher) Replay(ctx context.Context, envs []map[string]any, rate float64) error {
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
		}
		if _, err := p.PublishEnvelope(ctx, env); err != nil {
			return err
		}
	}
	return nil
}

// Wait waits until the broker has confirmed everything published.
func (p *AMQPPublisher) Wait(ctx context.Context) error {
	err := p.confirmed(ctx, p.window)
	p.window = p.window[:0]
	return err
}

func (p *AMQPPublisher) confirmed(ctx context.Context, dcs []*amqp.DeferredConfirmation) error {
	nacked := 0
	for _, dc := range dcs {
		ok, err := dc.WaitContext(ctx)
		if err != nil {
			return err
		}
		if !ok {
			nacked++
		}
	}
	if nacked > 0 {
		return fmt.Errorf("the broker refused %d of %d messages", nacked, len(dcs))
	}
	return nil
}

// Close waits for outstanding confirms (up to 10 s) and disconnects.
func (p *AMQPPublisher) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := p.Wait(ctx)
	return errors.Join(err, p.conn.Close())
}
