package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"flag"
	"fmt"
	"strings"

	"fmn/consumer"
	"fmn/rules"
)

// amqpFlags are the broker flags publish and tail share.
type amqpFlags struct {
	url, exchange, ca, cert, key *string
}

func addAMQPFlags(fs *flag.FlagSet) amqpFlags {
	return amqpFlags{
		url:      fs.String("amqp", "", "publish to (tail from) this fedora-messaging broker, amqp://user:password@host:port/vhost or amqps://…, instead of ZeroMQ"),
		exchange: fs.String("exchange", "amq.topic", "with -amqp: the exchange"),
		ca:       fs.String("amqp-ca", "", "with an amqps:// -amqp: CA certificate (PEM) of the broker"),
		cert:     fs.String("amqp-cert", "", "with an amqps:// -amqp: client certificate (PEM), logging in by SASL EXTERNAL; needs -amqp-key"),
		key:      fs.String("amqp-key", "", "the private key (PEM) of -amqp-cert"),
	}
}

// tls returns the TLS configuration and whether to log in by EXTERNAL.
func (f amqpFlags) tls() (*tls.Config, bool, error) {
	if (*f.cert == "") != (*f.key == "") {
		return nil, false, fmt.Errorf("-amqp-cert and -amqp-key go together")
	}
	if !strings.HasPrefix(*f.url, "amqps://") {
		if *f.cert != "" || *f.ca != "" {
			return nil, false, fmt.Errorf("-amqp-ca and -amqp-cert need an amqps:// broker")
		}
		return nil, false, nil
	}
	conf, err := consumer.AMQPTLS(*f.ca, *f.cert, *f.key)
	return conf, *f.cert != "", err
}

// publishAMQP publishes envs in fedora-messaging's format, each a fresh
// message with the header sets fmn's metadata tables derive (as a schema
// package would compute them) and severity (info unless sev says).
func (e env) publishAMQP(ctx context.Context, f amqpFlags, envs []map[string]any, rate float64, sev string) error {
	conf, external, err := f.tls()
	if err != nil {
		return fmt.Errorf("publish: %w", err)
	}
	if sev != "" && !strings.Contains(" debug info warning error ", " "+sev+" ") {
		return fmt.Errorf("publish: -severity %q: want debug, info, warning or error", sev)
	}
	pub, err := consumer.NewAMQPPublisher(ctx, *f.url, conf, external, *f.exchange)
	if err != nil {
		return fmt.Errorf("publish: %w", err)
	}
	defer pub.Close()
	pub.Severity = sev
	if err := pub.Replay(ctx, envs, rate); err != nil {
		return fmt.Errorf("publish: %w", err)
	}
	if err := pub.Wait(ctx); err != nil {
		return fmt.Errorf("publish: %w", err)
	}
	fmt.Fprintf(e.stderr, "published %d messages on %s (exchange %s), confirmed by the broker\n", len(envs),
		consumer.AMQPEndpoint(*f.url, ""), *f.exchange)
	return nil
}

// tailAMQP prints what the broker routes to keys, one envelope a line.
func (e env) tailAMQP(ctx context.Context, f amqpFlags, keys []string, glob string) error {
	conf, external, err := f.tls()
	if err != nil {
		return fmt.Errorf("tail: %w", err)
	}
	if len(keys) == 0 {
		keys = []string{"#"}
	}
	var match func(string) bool
	if glob != "" {
		match = rules.CompileGlob(glob).Match
	}
	w := bufio.NewWriter(e.stdout)
	defer w.Flush()
	err = consumer.TailAMQP(ctx, *f.url, conf, external, *f.exchange, keys, func(env consumer.Envelope) error {
		if match != nil && !match(env.Topic) {
			return nil
		}
		w.Write(env.Raw)
		w.WriteByte('\n')
		return w.Flush()
	}, func(id string, err error) {
		fmt.Fprintf(e.stderr, "fmn tail: skipped message %q: %v\n", id, err)
	})
	if err != nil {
		return fmt.Errorf("tail: %w", err)
	}
	return nil
}

// keyList collects repeated -bind flags.
type keyList []string

func (k *keyList) String() string     { return strings.Join(*k, ",") }
func (k *keyList) Set(v string) error { *k = append(*k, v); return nil }
