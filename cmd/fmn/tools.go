package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/go-zeromq/zmq4"

	"fmn"
	"fmn/consumer"
	"fmn/consumer/fedmsg"
	"fmn/rules"
	"fmn/rules/meta"
)

func (e env) migrate(ctx context.Context, args []string) error {
	fs := e.flags("migrate")
	cfgPath := fs.String("config", "", "config file of FMN_*=value lines")
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg, err := e.loadConfig(*cfgPath)
	if err != nil {
		return err
	}
	_, closeDB, err := openMigrated(ctx, cfg, e.logger(cfg.LogLevel))
	if err != nil {
		return err
	}
	closeDB()
	fmt.Fprintln(e.stdout, "migrations applied")
	return nil
}

func (e env) tokenCreate(ctx context.Context, args []string) error {
	fs := e.flags("token create")
	cfgPath := fs.String("config", "", "config file of FMN_*=value lines")
	name := fs.String("user", "", "user name (created if needed)")
	email := fs.String("email", "", "the user's email address, for a new user")
	label := fs.String("label", "cli", "what the token is for")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *name == "" {
		return errors.New("token create: -user is required")
	}
	if *email != "" {
		if _, err := fmn.ValidateAddress(fmn.KindEmail, *email); err != nil {
			return fmt.Errorf("token create: -email: %w", err)
		}
	}
	cfg, err := e.loadConfig(*cfgPath)
	if err != nil {
		return err
	}
	st, closeDB, err := openMigrated(ctx, cfg, e.logger("warn"))
	if err != nil {
		return err
	}
	defer closeDB()
	u, err := st.EnsureUser(ctx, *name, *email)
	if err != nil {
		return fmt.Errorf("token create: %w", err)
	}
	tok, err := st.CreateToken(ctx, u.ID, *label)
	if err != nil {
		return err
	}
	fmt.Fprintln(e.stdout, tok)
	return nil
}

func (e env) publish(ctx context.Context, args []string) error {
	fs := e.flags("publish")
	endpoint := fs.String("endpoint", "tcp://127.0.0.1:9940", "ZeroMQ address to bind (or connect to, with -connect)")
	connect := fs.Bool("connect", false, "connect to the endpoint instead of binding it")
	topic := fs.String("topic", "", "topic of the single message to publish")
	msg := fs.String("msg", "", "JSON body of the single message")
	corpus := fs.String("corpus", "", "a folder (or file) of envelopes to replay, one JSON a line")
	rate := fs.Float64("rate", 0, "messages a second for -corpus (0: as fast as subscribers take them)")
	wait := fs.Duration("wait", 10*time.Second, "how long to wait for a subscriber before publishing")
	linger := fs.Duration("linger", 500*time.Millisecond, "how long to keep the socket open after the last message")
	signCert := fs.String("sign", "", "sign every message with this certificate (PEM); needs -key")
	signKey := fs.String("key", "", "the private key (PEM) of the -sign certificate")
	replay := fs.String("replay", "", "serve fedmsg replay queries on this REP endpoint (numbers messages with seq_id)")
	replayKeep := fs.Int("replay-keep", 100000, "how many recent messages the replay endpoint keeps")
	stdin := fs.Bool("stdin", false, "publish envelopes read from stdin, one JSON a line, as they come (a line #wait waits up to -wait for a subscriber); exit at end of input")
	amqpF := addAMQPFlags(fs)
	severity := fs.String("severity", "", "with -amqp: debug, info, warning or error for every message (default: what the metadata tables derive, else info)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *amqpF.url != "" && (*stdin || *signCert != "" || *replay != "" || *connect) {
		return errors.New("publish: -amqp publishes -topic/-msg or -corpus; -stdin, -sign, -replay and -connect are ZeroMQ's")
	}
	if (*signCert == "") != (*signKey == "") {
		return errors.New("publish: -sign CERT and -key KEY go together")
	}
	var envs []map[string]any
	switch {
	case *stdin && (*corpus != "" || *topic != ""):
		return errors.New("publish: -stdin excludes -corpus and -topic")
	case *stdin:
	case *corpus != "" && (*topic != "" || *msg != ""):
		return errors.New("publish: give either -corpus or -topic with -msg")
	case *corpus != "":
		var err error
		if envs, err = consumer.ReadCorpus(*corpus); err != nil {
			return err
		}
	case *topic != "":
		body, err := fedmsg.DecodeEnvelope([]byte(`{"msg":` + orNull(*msg) + `}`))
		if err != nil {
			return fmt.Errorf("publish: -msg is not valid JSON: %w", err)
		}
		envs = []map[string]any{{"topic": *topic, "msg": body["msg"]}}
	default:
		return errors.New("publish: -topic (with -msg) or -corpus is required")
	}
	if *amqpF.url != "" {
		return e.publishAMQP(ctx, amqpF, envs, *rate, *severity)
	}
	var signer *consumer.Signer
	if *signCert != "" {
		var err error
		if signer, err = consumer.LoadSigner(*signCert, *signKey); err != nil {
			return fmt.Errorf("publish: %w", err)
		}
	}
	pub, err := consumer.NewPublisher(ctx, *endpoint, *connect)
	if err != nil {
		return err
	}
	defer pub.Close()
	pub.Signer = signer
	if *replay != "" {
		pub.Store = consumer.NewReplayStore(*replayKeep)
		addr, err := consumer.ServeReplay(ctx, *replay, pub.Store, e.logger("warn"))
		if err != nil {
			return fmt.Errorf("publish: %w", err)
		}
		fmt.Fprintf(e.stderr, "fmn publish: replay endpoint on %s\n", addr)
	}
	if *stdin {
		n, err := publishStream(ctx, pub, e.stdin, *wait)
		if err != nil {
			return err
		}
		select {
		case <-ctx.Done():
		case <-time.After(*linger):
		}
		fmt.Fprintf(e.stderr, "published %d messages on %s\n", n, *endpoint)
		return nil
	}
	if !*connect && !pub.WaitSubscribers(ctx, *wait) {
		fmt.Fprintf(e.stderr, "fmn publish: no subscriber after %s; publishing anyway\n", *wait)
	}
	if err := pub.Replay(ctx, envs, *rate); err != nil {
		return err
	}
	// ZeroMQ sends asynchronously: give the last frames time to leave.
	select {
	case <-ctx.Done():
	case <-time.After(*linger):
	}
	fmt.Fprintf(e.stderr, "published %d messages on %s\n", len(envs), *endpoint)
	return nil
}

// publishStream publishes each envelope line of r as a fresh message as
// soon as it is read, so that a test (or a shell pipe) decides when each
// message goes out. A line "#wait" waits (up to wait) until a subscriber
// is there, since a PUB socket drops what it sends before anyone listens.
func publishStream(ctx context.Context, pub *consumer.Publisher, r io.Reader, wait time.Duration) (int, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 64<<20)
	n := 0
	for line := 1; sc.Scan(); line++ {
		if ctx.Err() != nil {
			return n, nil
		}
		text := bytes.TrimSpace(sc.Bytes())
		if len(text) == 0 {
			continue
		}
		if string(text) == "#wait" {
			pub.WaitSubscribers(ctx, wait)
			continue
		}
		envs, err := consumer.ReadEnvelopes(bytes.NewReader(sc.Bytes()))
		if err != nil {
			return n, fmt.Errorf("publish: stdin line %d: %w", line, err)
		}
		for _, env := range envs {
			if err := pub.Publish(env, true); err != nil {
				return n, err
			}
			n++
		}
	}
	return n, sc.Err()
}

func orNull(s string) string {
	if s == "" {
		return "{}"
	}
	return s
}

// tail prints the firehose as it arrives, one envelope a line.
func (e env) tail(ctx context.Context, args []string) error {
	fs := e.flags("tail")
	endpoint := fs.String("endpoint", "tcp://127.0.0.1:9940", "ZeroMQ address to connect to")
	prefix := fs.String("topic", "", "topic prefix to subscribe to (empty: everything)")
	glob := fs.String("glob", "", "print only topics matching this glob (* matches anything, dots included)")
	validate := fs.Bool("validate", false, "print each message's signature verdict instead of the envelope (needs -ca)")
	ca := fs.String("ca", "", "CA certificate (PEM), for -validate")
	crl := fs.String("crl", "", "certificate revocation list (PEM), for -validate")
	policy := fs.String("routing-policy", "", "routing policy JSON, for -validate")
	nitpicky := fs.Bool("nitpicky", false, "with -validate: refuse topics the routing policy does not list")
	amqpF := addAMQPFlags(fs)
	var binds keyList
	fs.Var(&binds, "bind", "with -amqp: a routing key to bind the private queue with (repeatable; default #, everything)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *amqpF.url != "" {
		if *validate || *prefix != "" {
			return errors.New("tail: -validate and -topic are ZeroMQ's; with -amqp use -bind and -glob")
		}
		return e.tailAMQP(ctx, amqpF, binds, *glob)
	}
	var v *fedmsg.Verifier
	if *validate {
		if *ca == "" {
			return errors.New("tail: -validate needs -ca")
		}
		var err error
		if v, err = fedmsg.LoadVerifierFiles(*ca, *crl, *policy, *nitpicky); err != nil {
			return fmt.Errorf("tail: %w", err)
		}
	}
	var match func(string) bool
	if *glob != "" {
		match = rules.CompileGlob(*glob).Match
	}
	sub := zmq4.NewSub(ctx, zmq4.WithAutomaticReconnect(true), zmq4.WithDialerMaxRetries(-1))
	defer sub.Close()
	if err := sub.Dial(*endpoint); err != nil {
		return fmt.Errorf("tail: connect to %s: %w", *endpoint, err)
	}
	if err := sub.SetOption(zmq4.OptionSubscribe, *prefix); err != nil {
		return fmt.Errorf("tail: subscribe: %w", err)
	}
	go func() { <-ctx.Done(); sub.Close() }()
	w := bufio.NewWriter(e.stdout)
	defer w.Flush()
	for {
		m, err := sub.Recv()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("tail: %w", err)
		}
		env, err := consumer.DecodeFrames(m.Frames, 0)
		if err != nil {
			fmt.Fprintf(e.stderr, "fmn tail: skipped a bad message: %v\n", err)
			continue
		}
		if match != nil && !match(env.Topic) {
			continue
		}
		if v != nil {
			out := verdict{MsgID: env.MsgID, Valid: true, Reason: "ok"}
			if err := v.Verify(env.Fields); err != nil {
				out.Valid, out.Reason = false, err.Error()
			}
			b, _ := json.Marshal(struct {
				Topic string `json:"topic"`
				verdict
			}{env.Topic, out})
			w.Write(b)
			w.WriteByte('\n')
			w.Flush()
			continue
		}
		w.Write(env.Raw)
		w.WriteByte('\n')
		w.Flush()
	}
}

// inspected is what the rules see of a message, with its msg_id first.
type inspected struct {
	MsgID string `json:"msg_id"`
	meta.Metadata
}

func (e env) inspect(ctx context.Context, args []string) error {
	if err := e.flags("inspect").Parse(args); err != nil {
		return err
	}
	envs, err := consumer.ReadEnvelopes(e.stdin)
	if err != nil {
		return fmt.Errorf("inspect: %w", err)
	}
	enc := json.NewEncoder(e.stdout)
	enc.SetEscapeHTML(false)
	for _, fields := range envs {
		raw, err := consumer.EncodeEnvelope(fields)
		if err != nil {
			return err
		}
		env, err := consumer.Decode(raw, 0)
		if err != nil {
			return fmt.Errorf("inspect: %w", err)
		}
		md := meta.Extract(env.Topic, env.Body, env.Username)
		if err := enc.Encode(inspected{MsgID: env.MsgID, Metadata: md}); err != nil {
			return err
		}
	}
	return nil
}

type verdict struct {
	MsgID  string `json:"msg_id"`
	Valid  bool   `json:"valid"`
	Reason string `json:"reason"`
}

// verify judges signed envelopes, one JSON a line, as the reference fedmsg
// validator does. A line that is not JSON gets a verdict too, never a crash.
func (e env) verify(ctx context.Context, args []string) error {
	fs := e.flags("verify")
	ca := fs.String("ca", "", "CA certificate (PEM)")
	crl := fs.String("crl", "", "certificate revocation list (PEM)")
	policy := fs.String("routing-policy", "", "JSON file: topic → allowed certificate CNs")
	nitpicky := fs.Bool("nitpicky", false, "refuse topics the routing policy does not list")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *ca == "" {
		return errors.New("verify: -ca is required")
	}
	v, err := fedmsg.LoadVerifierFiles(*ca, *crl, *policy, *nitpicky)
	if err != nil {
		return fmt.Errorf("verify: %w", err)
	}
	sc := bufio.NewScanner(e.stdin)
	sc.Buffer(make([]byte, 64<<10), 64<<20)
	enc := json.NewEncoder(e.stdout)
	for sc.Scan() {
		line := sc.Bytes()
		if len(line) == 0 {
			continue
		}
		env, err := fedmsg.DecodeEnvelope(line)
		if err != nil {
			enc.Encode(verdict{Reason: "malformed envelope: " + err.Error()})
			continue
		}
		id, _ := env["msg_id"].(string)
		out := verdict{MsgID: id, Valid: true, Reason: "ok"}
		if err := v.Verify(env); err != nil {
			out.Valid, out.Reason = false, err.Error()
		}
		if err := enc.Encode(out); err != nil {
			return err
		}
	}
	return sc.Err()
}
