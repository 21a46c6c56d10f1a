package consumer

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"

	amqp "github.com/rabbitmq/amqp091-go"
)

// TailAMQP reads what the broker routes from exchange with keys, through a
// queue of its own that the broker names, that only this connection may
// use and that goes when it does: it steals nothing from the service's
// queue. Each message is decoded as the source decodes it and passed to
// show (a message that does not decode goes to bad); it returns when ctx
// ends or the connection fails.
func TailAMQP(ctx context.Context, rawURL string, tlsConf *tls.Config, external bool, exchange string, keys []string,
	show func(Envelope) error, bad func(msgID string, err error)) error {
	conn, err := DialAMQP(ctx, rawURL, tlsConf, external, "fmn tail")
	if err != nil {
		return err
	}
	defer conn.Close()
	closed := conn.NotifyClose(make(chan *amqp.Error, 1))
	ch, err := conn.Channel()
	if err != nil {
		return fmt.Errorf("open channel: %w", err)
	}
	q, err := ch.QueueDeclare("", false, true, true, false, nil)
	if err != nil {
		return fmt.Errorf("declare a private queue: %w", err)
	}
	for _, k := range keys {
		if err := ch.QueueBind(q.Name, k, exchange, false, nil); err != nil {
			return fmt.Errorf("bind to %s with %q: %w", exchange, k, err)
		}
	}
	// The queue is this connection's alone, so the broker may forget each
	// message as it is sent.
	deliveries, err := ch.Consume(q.Name, "", true, true, false, false, nil)
	if err != nil {
		return fmt.Errorf("consume: %w", err)
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case e := <-closed:
			if e == nil {
				return errors.New("connection closed")
			}
			return e
		case d, ok := <-deliveries:
			if !ok {
				return errors.New("the broker ended the delivery stream")
			}
			env, _, err := DecodeDelivery(&d, 0)
			if err != nil {
				bad(d.MessageId, err)
				continue
			}
			if err := show(env); err != nil {
				return err
			}
		}
	}
}
