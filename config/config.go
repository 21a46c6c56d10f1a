// Package config holds fmn's settings as one explicit, validated value.
//
// Every setting is an environment variable FMN_*; the same names may be given
// in a config file (KEY=VALUE lines) passed with -config. The environment wins
// over the file so that a deployment can override one value without editing
// the file. Nothing here is global: Load returns a value that main passes down.
package config

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"net/mail"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"fmn"
)

// Defaults, with the reason beside each.
const (
	// DefaultListen keeps a fresh install private to the machine.
	DefaultListen = "127.0.0.1:8080"
	// DefaultDataDir holds the embedded Postgres cluster and the mail folder
	// when no external database or SMTP server is configured.
	DefaultDataDir = "data"
	// DefaultMailFrom is only a placeholder; real deployments set FMN_MAIL_FROM.
	DefaultMailFrom = "fmn@localhost"
	// DefaultIRCNick is the nick the bot asks for.
	DefaultIRCNick = "fmn-bot"
	// DefaultDemoRate is a few messages a second: enough to watch the UI move,
	// slow enough to read.
	DefaultDemoRate = 3.0
	// DefaultMaxMessageBytes bounds a bus frame. Real fedmsg envelopes are a
	// few kilobytes; the largest seen (big composes) stay under 1 MiB.
	DefaultMaxMessageBytes = 4 << 20
	// DefaultBusSilence is how long an endpoint may stay quiet before fmn
	// redials it. Fedora's relays carry several messages a minute, so five
	// quiet minutes there mean a dead or half-open connection (TCP
	// keepalive alone takes longer to notice, and not at all when the
	// relay lost its own upstream); a quiet single-service endpoint pays one
	// cheap redial every five minutes.
	DefaultBusSilence = 5 * time.Minute
	// DefaultBusBufferBytes bounds the memory holding messages read from
	// the bus but not yet stored (each charged what it holds decoded):
	// at Fedora's rates that is hours of a stalled database.
	DefaultBusBufferBytes = 256 << 20
	// DefaultBusReconnectMax caps the wait between redials of a bus source
	// (ZeroMQ endpoints and the AMQP broker), which starts at 100 ms and
	// doubles: fedmsg's own consumers redial at most every second, so a
	// restarted publisher is heard again within about a second.
	DefaultBusReconnectMax = time.Second
	// DefaultAMQPQueue is the durable queue fmn consumes from; the broker
	// keeps its messages while fmn is down.
	DefaultAMQPQueue = "fmn"
	// DefaultAMQPBindings binds the queue to everything published on the
	// topic exchange fedora-messaging uses.
	DefaultAMQPBindings = "amq.topic:#"
	// DefaultAMQPPrefetch is how many unacknowledged messages the broker
	// may hand fmn at once: two of the ingester's batches (1,000 each), so
	// one is received while the other is being stored. It also bounds the
	// memory the AMQP source holds (RabbitMQ ignores a byte limit).
	DefaultAMQPPrefetch = 2000

	// DefaultOIDCUsernameClaim is the standard claim for a login name;
	// Fedora's accounts put the FAS name there too.
	DefaultOIDCUsernameClaim = "preferred_username"

	// DefaultOIDCGroupsClaim is the claim most providers (Fedora's
	// included) list a user's groups in.
	DefaultOIDCGroupsClaim = "groups"
	// DefaultDistgitURL is Fedora's dist-git, the Pagure instance that
	// knows who maintains which package.
	DefaultDistgitURL = "https://src.fedoraproject.org"
	// DefaultDistgitRefresh: the bus reports most ownership changes within
	// seconds; the daily full reading catches what it missed (fmn down, a
	// message lost) without weighing on dist-git.
	DefaultDistgitRefresh = 24 * time.Hour
)

// Config is every setting of fmn. Field comments name the variable.
type Config struct {
	DatabaseURL string // FMN_DATABASE_URL; empty = private cluster in DataDir
	DataDir     string // FMN_DATA_DIR
	Listen      string // FMN_LISTEN
	BaseURL     string // FMN_BASE_URL; links in mail point here

	BusEndpoints    []string      // FMN_BUS_ENDPOINTS, comma-separated ZeroMQ addresses
	BusTopicPrefix  string        // FMN_BUS_TOPIC_PREFIX; empty = whole firehose
	MaxMessageBytes int           // FMN_MAX_MESSAGE_BYTES
	BusSilence      time.Duration // FMN_BUS_SILENCE; 0 = never redial a quiet endpoint
	BusBufferBytes  int64         // FMN_BUS_BUFFER_BYTES
	BusReconnectMax time.Duration // FMN_BUS_RECONNECT_MAX

	// fedora-messaging: one AMQP broker, beside (or instead of) ZeroMQ.
	AMQPURL      string        // FMN_AMQP_URL; empty = no AMQP source
	AMQPQueue    string        // FMN_AMQP_QUEUE
	AMQPBindings []AMQPBinding // FMN_AMQP_BINDINGS, exchange:routing-key pairs
	AMQPPrefetch int           // FMN_AMQP_PREFETCH
	AMQPCACert   string        // FMN_AMQP_CA_CERT (path); empty = the system's roots
	AMQPCert     string        // FMN_AMQP_CERT (path): client certificate, SASL EXTERNAL
	AMQPKey      string        // FMN_AMQP_KEY (path)

	ValidateSignatures bool              // FMN_VALIDATE_SIGNATURES
	CACert             string            // FMN_CA_CERT (path)
	CRL                string            // FMN_CRL (path)
	RoutingPolicy      string            // FMN_ROUTING_POLICY (path)
	RoutingNitpicky    bool              // FMN_ROUTING_NITPICKY
	BusReplay          map[string]string // FMN_BUS_REPLAY, PUB=REPLAY pairs

	SMTPURL  string // FMN_SMTP_URL; empty = write mail to DataDir/mail
	MailFrom string // FMN_MAIL_FROM
	IRCURL   string // FMN_IRC_URL
	IRCNick  string // FMN_IRC_NICK

	VAPIDPublicKey  string // FMN_VAPID_PUBLIC_KEY; empty = a pair kept in the database
	VAPIDPrivateKey string // FMN_VAPID_PRIVATE_KEY
	PushSubject     string // FMN_PUSH_SUBJECT: mailto: or https: contact for push services

	// Matrix (issue 12): the homeserver and the bot's account, by access
	// token or by user and password.
	MatrixURL      string // FMN_MATRIX_URL: the homeserver's client-server API base
	MatrixToken    string // FMN_MATRIX_TOKEN
	MatrixUser     string // FMN_MATRIX_USER: @bot:server, with FMN_MATRIX_PASSWORD
	MatrixPassword string // FMN_MATRIX_PASSWORD

	Demo       bool    // FMN_DEMO: run a built-in bus replaying DemoCorpus
	DemoCorpus string  // FMN_DEMO_CORPUS: a file or folder of envelopes
	DemoRate   float64 // FMN_DEMO_RATE: messages per second

	Admins   []string // FMN_ADMINS: verified email addresses or OIDC issuer#subject values with access to /admin
	LogLevel string   // FMN_LOG_LEVEL: debug, info, warn, error

	OIDCIssuer        string // FMN_OIDC_ISSUER: sign in with this OpenID provider
	OIDCClientID      string // FMN_OIDC_CLIENT_ID
	OIDCClientSecret  string // FMN_OIDC_CLIENT_SECRET
	OIDCUsernameClaim string // FMN_OIDC_USERNAME_CLAIM: the claim holding the bus username

	// Safety against hostile users and networks (issue 13).
	TrustedProxies         []netip.Prefix // FMN_TRUSTED_PROXIES: CIDRs whose X-Forwarded-For is believed
	MaxRulesPerUser        int            // FMN_MAX_RULES_PER_USER
	MaxPatternsPerRule     int            // FMN_MAX_PATTERNS_PER_RULE: entries of all a rule's lists together
	MaxDestinationsPerUser int            // FMN_MAX_DESTINATIONS_PER_USER
	PushAllowPrivate       bool           // FMN_PUSH_ALLOW_PRIVATE: push endpoints may be http, any port, loopback and private addresses
	SMTPTLS                string         // FMN_SMTP_TLS: required, opportunistic or none (smtp:// only)
	MaxStreamsPerUser      int            // FMN_MAX_STREAMS_PER_USER: open live streams of one user, per web process
	MaxStreams             int            // FMN_MAX_STREAMS: open live streams of everybody, per web process

	// Ownership ("my packages") and group membership.
	OIDCGroupsClaim string        // FMN_OIDC_GROUPS_CLAIM: the claim listing the user's groups
	OIDCScopes      []string      // FMN_OIDC_SCOPES: scopes asked for besides openid, profile and email
	DistgitURL      string        // FMN_DISTGIT_URL: the Pagure instance of dist-git
	DistgitRefresh  time.Duration // FMN_DISTGIT_REFRESH: how often everything followed is read again

	// Operations (issue 14).
	Retention     time.Duration // FMN_RETENTION: how long the message log and the history are kept
	MetricsListen string        // FMN_METRICS_LISTEN: /metrics, /healthz, /readyz on their own address; empty = none
}

// DefaultRetention keeps three months of the message log and of every
// user's history: a quarter's worth of "what happened to my package" and of
// previews, at tens of thousands of messages a day (Fedora's firehose).
const DefaultRetention = 90 * 24 * time.Hour

// parseRetention reads FMN_RETENTION: a number of days ("90d") or a Go
// duration ("2160h"), a day at least (the log is kept in days).
func parseRetention(v string) (time.Duration, error) {
	var d time.Duration
	if days, ok := strings.CutSuffix(v, "d"); ok {
		n, err := strconv.Atoi(days)
		if err != nil {
			return 0, fmt.Errorf("FMN_RETENTION: %q: want a number of days such as 90d, or a duration such as 2160h", v)
		}
		d = time.Duration(n) * 24 * time.Hour
	} else {
		var err error
		if d, err = time.ParseDuration(v); err != nil {
			return 0, fmt.Errorf("FMN_RETENTION: %q: want a number of days such as 90d, or a duration such as 2160h", v)
		}
	}
	if d < 24*time.Hour {
		return 0, fmt.Errorf("FMN_RETENTION: %q: want a day or more (the log is kept in whole days)", v)
	}
	return d, nil
}

// AMQPBinding binds the AMQP queue to an exchange with a routing key
// (a topic pattern: * one word, # any number).
type AMQPBinding struct {
	Exchange   string
	RoutingKey string
}

// Load reads the config file (if path is not empty) and then the environment
// (env is os.Environ()-shaped), and validates the result. The error lists
// every problem found, not only the first.
func Load(path string, env []string) (Config, error) {
	vals := map[string]string{}
	if path != "" {
		fileVals, err := readFile(path)
		if err != nil {
			return Config{}, err
		}
		for k, v := range fileVals {
			vals[k] = v
		}
	}
	for _, kv := range env {
		k, v, ok := strings.Cut(kv, "=")
		if ok && strings.HasPrefix(k, "FMN_") {
			vals[k] = v
		}
	}
	return parse(vals)
}

func readFile(path string) (map[string]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open config file: %w", err)
	}
	defer f.Close()
	vals := map[string]string{}
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		k = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(k), "export "))
		if !ok || !strings.HasPrefix(k, "FMN_") {
			return nil, fmt.Errorf("config file %s line %d: want FMN_NAME=value", path, n)
		}
		v = strings.TrimSpace(v)
		if len(v) >= 2 && (v[0] == '"' && v[len(v)-1] == '"' || v[0] == '\'' && v[len(v)-1] == '\'') {
			v = v[1 : len(v)-1]
		}
		vals[k] = v
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read config file %s: %w", path, err)
	}
	return vals, nil
}

// known lists every accepted key, so that a typo is reported instead of
// silently ignored.
var known = map[string]bool{
	"FMN_DATABASE_URL": true, "FMN_DATA_DIR": true, "FMN_LISTEN": true, "FMN_BASE_URL": true,
	"FMN_BUS_ENDPOINTS": true, "FMN_BUS_TOPIC_PREFIX": true, "FMN_MAX_MESSAGE_BYTES": true,
	"FMN_BUS_SILENCE": true, "FMN_BUS_BUFFER_BYTES": true, "FMN_BUS_RECONNECT_MAX": true,
	"FMN_AMQP_URL": true, "FMN_AMQP_QUEUE": true, "FMN_AMQP_BINDINGS": true, "FMN_AMQP_PREFETCH": true,
	"FMN_AMQP_CA_CERT": true, "FMN_AMQP_CERT": true, "FMN_AMQP_KEY": true,
	"FMN_VALIDATE_SIGNATURES": true, "FMN_CA_CERT": true, "FMN_CRL": true,
	"FMN_ROUTING_POLICY": true, "FMN_ROUTING_NITPICKY": true, "FMN_BUS_REPLAY": true,
	"FMN_SMTP_URL": true, "FMN_MAIL_FROM": true, "FMN_IRC_URL": true, "FMN_IRC_NICK": true,
	"FMN_VAPID_PUBLIC_KEY": true, "FMN_VAPID_PRIVATE_KEY": true, "FMN_PUSH_SUBJECT": true,
	"FMN_MATRIX_URL": true, "FMN_MATRIX_TOKEN": true, "FMN_MATRIX_USER": true, "FMN_MATRIX_PASSWORD": true,
	"FMN_DEMO": true, "FMN_DEMO_CORPUS": true, "FMN_DEMO_RATE": true,
	"FMN_ADMINS": true, "FMN_LOG_LEVEL": true,
	"FMN_OIDC_ISSUER": true, "FMN_OIDC_CLIENT_ID": true, "FMN_OIDC_CLIENT_SECRET": true, "FMN_OIDC_USERNAME_CLAIM": true,
	"FMN_TRUSTED_PROXIES": true, "FMN_MAX_RULES_PER_USER": true, "FMN_MAX_PATTERNS_PER_RULE": true,
	"FMN_MAX_DESTINATIONS_PER_USER": true, "FMN_PUSH_ALLOW_PRIVATE": true, "FMN_SMTP_TLS": true,
	"FMN_MAX_STREAMS_PER_USER": true, "FMN_MAX_STREAMS": true,
	"FMN_OIDC_GROUPS_CLAIM": true, "FMN_OIDC_SCOPES": true, "FMN_DISTGIT_URL": true, "FMN_DISTGIT_REFRESH": true,
	"FMN_RETENTION": true, "FMN_METRICS_LISTEN": true,
	// Read by the test helpers only; accepted so a developer's shell does not
	// make the service refuse to start.
	"FMN_TEST_DATABASE_URL": true, "FMN_FAULTS": true, "FMN_DENDRITE": true, "FMN_ARTIFACTS": true,
}

func parse(vals map[string]string) (Config, error) {
	var errs []error
	get := func(k, def string) string {
		if v, ok := vals[k]; ok && v != "" {
			return v
		}
		return def
	}
	getBool := func(k string) bool {
		v := get(k, "false")
		b, err := strconv.ParseBool(v)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %q is not a boolean (use true or false)", k, v))
		}
		return b
	}
	for k := range vals {
		if !known[k] {
			errs = append(errs, fmt.Errorf("%s: unknown setting", k))
		}
	}
	c := Config{
		DatabaseURL:        get("FMN_DATABASE_URL", ""),
		DataDir:            get("FMN_DATA_DIR", DefaultDataDir),
		Listen:             get("FMN_LISTEN", DefaultListen),
		BaseURL:            strings.TrimRight(get("FMN_BASE_URL", ""), "/"),
		BusEndpoints:       splitList(get("FMN_BUS_ENDPOINTS", "")),
		BusTopicPrefix:     get("FMN_BUS_TOPIC_PREFIX", ""),
		ValidateSignatures: getBool("FMN_VALIDATE_SIGNATURES"),
		CACert:             get("FMN_CA_CERT", ""),
		CRL:                get("FMN_CRL", ""),
		RoutingPolicy:      get("FMN_ROUTING_POLICY", ""),
		RoutingNitpicky:    getBool("FMN_ROUTING_NITPICKY"),
		BusReplay:          map[string]string{},
		SMTPURL:            get("FMN_SMTP_URL", ""),
		MailFrom:           get("FMN_MAIL_FROM", DefaultMailFrom),
		IRCURL:             get("FMN_IRC_URL", ""),
		IRCNick:            get("FMN_IRC_NICK", DefaultIRCNick),
		VAPIDPublicKey:     get("FMN_VAPID_PUBLIC_KEY", ""),
		VAPIDPrivateKey:    get("FMN_VAPID_PRIVATE_KEY", ""),
		PushSubject:        get("FMN_PUSH_SUBJECT", ""),
		MatrixURL:          strings.TrimRight(get("FMN_MATRIX_URL", ""), "/"),
		MatrixToken:        get("FMN_MATRIX_TOKEN", ""),
		MatrixUser:         get("FMN_MATRIX_USER", ""),
		MatrixPassword:     get("FMN_MATRIX_PASSWORD", ""),
		Demo:               getBool("FMN_DEMO"),
		DemoCorpus:         get("FMN_DEMO_CORPUS", filepath.Join("testdata", "fedmsg-meta.jsonl")),
		Admins:             splitList(get("FMN_ADMINS", "")),
		LogLevel:           get("FMN_LOG_LEVEL", "info"),
		OIDCIssuer:         strings.TrimRight(get("FMN_OIDC_ISSUER", ""), "/"),
		OIDCClientID:       get("FMN_OIDC_CLIENT_ID", ""),
		OIDCClientSecret:   get("FMN_OIDC_CLIENT_SECRET", ""),
		OIDCUsernameClaim:  get("FMN_OIDC_USERNAME_CLAIM", DefaultOIDCUsernameClaim),
		OIDCGroupsClaim:    get("FMN_OIDC_GROUPS_CLAIM", DefaultOIDCGroupsClaim),
		OIDCScopes:         strings.FieldsFunc(get("FMN_OIDC_SCOPES", ""), func(r rune) bool { return r == ',' || r == ' ' }),
		DistgitURL:         strings.TrimRight(get("FMN_DISTGIT_URL", DefaultDistgitURL), "/"),
		AMQPURL:            get("FMN_AMQP_URL", ""),
		AMQPQueue:          get("FMN_AMQP_QUEUE", DefaultAMQPQueue),
		AMQPCACert:         get("FMN_AMQP_CA_CERT", ""),
		AMQPCert:           get("FMN_AMQP_CERT", ""),
		AMQPKey:            get("FMN_AMQP_KEY", ""),
	}
	if c.BaseURL == "" {
		c.BaseURL = "http://" + c.Listen
	}
	if c.PushSubject == "" {
		// Push services want a contact for the sender; the mail sender is one.
		c.PushSubject = "mailto:" + c.MailFrom
	}
	var err error
	if c.MaxMessageBytes, err = strconv.Atoi(get("FMN_MAX_MESSAGE_BYTES", strconv.Itoa(DefaultMaxMessageBytes))); err != nil || c.MaxMessageBytes < 1024 {
		errs = append(errs, fmt.Errorf("FMN_MAX_MESSAGE_BYTES: want a whole number of bytes, at least 1024"))
	}
	if c.BusSilence, err = time.ParseDuration(get("FMN_BUS_SILENCE", DefaultBusSilence.String())); err != nil || c.BusSilence < 0 {
		errs = append(errs, fmt.Errorf("FMN_BUS_SILENCE: want a duration such as 5m (0 turns the watchdog off)"))
	}
	if c.BusBufferBytes, err = strconv.ParseInt(get("FMN_BUS_BUFFER_BYTES", strconv.Itoa(DefaultBusBufferBytes)), 10, 64); err != nil || c.BusBufferBytes < 1<<20 {
		errs = append(errs, fmt.Errorf("FMN_BUS_BUFFER_BYTES: want a whole number of bytes, at least 1048576"))
	}
	if c.DemoRate, err = strconv.ParseFloat(get("FMN_DEMO_RATE", strconv.FormatFloat(DefaultDemoRate, 'f', -1, 64)), 64); err != nil || c.DemoRate <= 0 {
		errs = append(errs, fmt.Errorf("FMN_DEMO_RATE: want a positive number of messages per second"))
	}
	errs = append(errs, c.parseSafety(get)...)
	c.PushAllowPrivate = getBool("FMN_PUSH_ALLOW_PRIVATE")
	if c.DistgitRefresh, err = time.ParseDuration(get("FMN_DISTGIT_REFRESH", DefaultDistgitRefresh.String())); err != nil || c.DistgitRefresh < time.Minute {
		errs = append(errs, fmt.Errorf("FMN_DISTGIT_REFRESH: want a duration of a minute or more, such as 24h"))
	}
	if c.BusReconnectMax, err = time.ParseDuration(get("FMN_BUS_RECONNECT_MAX", DefaultBusReconnectMax.String())); err != nil || c.BusReconnectMax < 100*time.Millisecond {
		errs = append(errs, fmt.Errorf("FMN_BUS_RECONNECT_MAX: want a duration of at least 100ms, such as 1s"))
	}
	if c.AMQPPrefetch, err = strconv.Atoi(get("FMN_AMQP_PREFETCH", strconv.Itoa(DefaultAMQPPrefetch))); err != nil || c.AMQPPrefetch < 1 || c.AMQPPrefetch > 65535 {
		errs = append(errs, fmt.Errorf("FMN_AMQP_PREFETCH: want a whole number of messages from 1 to 65535"))
	}
	for _, pair := range splitList(get("FMN_AMQP_BINDINGS", DefaultAMQPBindings)) {
		ex, key, ok := strings.Cut(pair, ":")
		if !ok || ex == "" || key == "" {
			errs = append(errs, fmt.Errorf("FMN_AMQP_BINDINGS: %q is not an exchange:routing-key pair", pair))
			continue
		}
		c.AMQPBindings = append(c.AMQPBindings, AMQPBinding{Exchange: ex, RoutingKey: key})
	}
	for _, pair := range splitList(get("FMN_BUS_REPLAY", "")) {
		pub, rep, ok := strings.Cut(pair, "=")
		if !ok || pub == "" || rep == "" {
			errs = append(errs, fmt.Errorf("FMN_BUS_REPLAY: %q is not a PUB=REPLAY pair", pair))
			continue
		}
		c.BusReplay[pub] = rep
	}
	if c.Retention, err = parseRetention(get("FMN_RETENTION", "90d")); err != nil {
		errs = append(errs, err)
	}
	if c.MetricsListen = get("FMN_METRICS_LISTEN", ""); c.MetricsListen != "" {
		if _, _, err := net.SplitHostPort(c.MetricsListen); err != nil {
			errs = append(errs, fmt.Errorf("FMN_METRICS_LISTEN: %q is not host:port", c.MetricsListen))
		}
	}
	errs = append(errs, c.validate()...)
	if len(errs) > 0 {
		return c, errors.Join(errs...)
	}
	return c, nil
}

// Validate checks a Config built in code (tests build them directly).
func (c Config) Validate() error { return errors.Join(c.validate()...) }

func (c Config) validate() []error {
	var errs []error
	if c.DatabaseURL != "" {
		if u, err := url.Parse(c.DatabaseURL); err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
			errs = append(errs, errors.New("FMN_DATABASE_URL: want a postgres:// URL"))
		}
	}
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		errs = append(errs, fmt.Errorf("FMN_LISTEN: %q is not host:port", c.Listen))
	}
	if u, err := url.Parse(c.BaseURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		errs = append(errs, fmt.Errorf("FMN_BASE_URL: %q is not an http(s) URL", c.BaseURL))
	}
	for _, ep := range c.BusEndpoints {
		if !strings.HasPrefix(ep, "tcp://") && !strings.HasPrefix(ep, "ipc://") {
			errs = append(errs, fmt.Errorf("FMN_BUS_ENDPOINTS: %q: want tcp://host:port or ipc://path", ep))
		}
	}
	errs = append(errs, c.validateAMQP()...)
	if c.ValidateSignatures && c.CACert == "" {
		errs = append(errs, errors.New("FMN_CA_CERT: required when FMN_VALIDATE_SIGNATURES is true"))
	}
	if c.SMTPURL != "" {
		if u, err := url.Parse(c.SMTPURL); err != nil || (u.Scheme != "smtp" && u.Scheme != "smtps") || u.Hostname() == "" {
			errs = append(errs, errors.New("FMN_SMTP_URL: want smtp://[user:password@]host[:port] or smtps://…"))
		}
	}
	if _, err := mail.ParseAddress(c.MailFrom); err != nil || strings.ContainsAny(c.MailFrom, "\r\n") {
		errs = append(errs, fmt.Errorf("FMN_MAIL_FROM: %q is not an email address", c.MailFrom))
	}
	if c.IRCURL != "" {
		if u, err := url.Parse(c.IRCURL); err != nil || (u.Scheme != "irc" && u.Scheme != "ircs") || u.Hostname() == "" {
			errs = append(errs, errors.New("FMN_IRC_URL: want irc://host:port or ircs://host:port"))
		}
	}
	if c.IRCURL != "" && !ircNickRE.MatchString(c.IRCNick) {
		errs = append(errs, fmt.Errorf("FMN_IRC_NICK: %q is not an IRC nick", c.IRCNick))
	}
	errs = append(errs, c.validateMatrix()...)
	if (c.VAPIDPublicKey == "") != (c.VAPIDPrivateKey == "") {
		errs = append(errs, errors.New("FMN_VAPID_PUBLIC_KEY and FMN_VAPID_PRIVATE_KEY: give both or neither"))
	}
	if !strings.HasPrefix(c.PushSubject, "mailto:") && !strings.HasPrefix(c.PushSubject, "https://") || strings.ContainsAny(c.PushSubject, " \r\n") {
		errs = append(errs, fmt.Errorf("FMN_PUSH_SUBJECT: %q: want mailto:address or an https:// URL", c.PushSubject))
	}
	if c.OIDCIssuer != "" {
		if u, err := url.Parse(c.OIDCIssuer); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			errs = append(errs, fmt.Errorf("FMN_OIDC_ISSUER: %q is not an http(s) URL", c.OIDCIssuer))
		}
		if c.OIDCClientID == "" {
			errs = append(errs, errors.New("FMN_OIDC_CLIENT_ID: required when FMN_OIDC_ISSUER is set"))
		}
	} else if c.OIDCClientID != "" || c.OIDCClientSecret != "" {
		errs = append(errs, errors.New("FMN_OIDC_ISSUER: required when FMN_OIDC_CLIENT_ID or FMN_OIDC_CLIENT_SECRET is set"))
	}
	for _, a := range c.Admins {
		if msg := validAdmin(a); msg != "" {
			errs = append(errs, fmt.Errorf("FMN_ADMINS: %s", msg))
		}
	}
	if u, err := url.Parse(c.DistgitURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" {
		errs = append(errs, fmt.Errorf("FMN_DISTGIT_URL: %q is not the http(s) URL of a Pagure instance", c.DistgitURL))
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		errs = append(errs, fmt.Errorf("FMN_LOG_LEVEL: %q: want debug, info, warn or error", c.LogLevel))
	}
	return errs
}

func (c Config) validateAMQP() []error {
	var errs []error
	if c.AMQPURL == "" {
		if c.AMQPCert != "" || c.AMQPKey != "" || c.AMQPCACert != "" {
			errs = append(errs, errors.New("FMN_AMQP_URL: required when FMN_AMQP_CERT, FMN_AMQP_KEY or FMN_AMQP_CA_CERT is set"))
		}
		return errs
	}
	u, err := url.Parse(c.AMQPURL)
	if err != nil || (u.Scheme != "amqp" && u.Scheme != "amqps") || u.Hostname() == "" {
		return append(errs, errors.New("FMN_AMQP_URL: want amqp://user:password@host:port/vhost or amqps://…"))
	}
	if (c.AMQPCert == "") != (c.AMQPKey == "") {
		errs = append(errs, errors.New("FMN_AMQP_CERT and FMN_AMQP_KEY: give both or neither"))
	}
	if u.Scheme != "amqps" && (c.AMQPCert != "" || c.AMQPCACert != "") {
		errs = append(errs, errors.New("FMN_AMQP_CERT and FMN_AMQP_CA_CERT need an amqps:// FMN_AMQP_URL"))
	}
	for _, f := range []struct{ name, path string }{{"FMN_AMQP_CA_CERT", c.AMQPCACert}, {"FMN_AMQP_CERT", c.AMQPCert}, {"FMN_AMQP_KEY", c.AMQPKey}} {
		if f.path != "" {
			if _, err := os.Stat(f.path); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", f.name, err))
			}
		}
	}
	if c.AMQPQueue == "" || len(c.AMQPQueue) > 255 {
		errs = append(errs, errors.New("FMN_AMQP_QUEUE: want a queue name of 1 to 255 bytes"))
	}
	if len(c.AMQPBindings) == 0 {
		errs = append(errs, errors.New("FMN_AMQP_BINDINGS: want at least one exchange:routing-key pair"))
	}
	return errs
}

// Redacted returns a URL fit for a log: the user info's password and the
// values of password-like query parameters (FMN_DATABASE_URL may carry
// ?password=, a push endpoint ?token=) are replaced with "xxxxx".
func Redacted(raw string) string {
	if raw == "" {
		return ""
	}
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparseable)"
	}
	if u.RawQuery != "" {
		q := u.Query()
		for k := range q {
			if secretParam(k) {
				q[k] = []string{"xxxxx"}
			}
		}
		u.RawQuery = q.Encode()
	}
	return u.Redacted()
}

// secretParam reports whether a query parameter's name says it carries a
// secret: password, pass, pwd, token, secret, key, auth, credential,
// signature, in any case and as part of a longer name (sslpassword,
// access_token, api_key, X-Amz-Signature).
func secretParam(name string) bool {
	n := strings.ToLower(name)
	for _, w := range []string{"pass", "pwd", "token", "secret", "key", "auth", "credential", "signature", "sig"} {
		if strings.Contains(n, w) {
			return true
		}
	}
	return false
}

// LogValues lists the settings for the start-up log line, with secrets
// redacted.
func (c Config) LogValues() []any {
	db := "embedded:" + c.DataDir
	if c.DatabaseURL != "" {
		db = Redacted(c.DatabaseURL)
	}
	smtp := "folder:" + filepath.Join(c.DataDir, "mail")
	if c.SMTPURL != "" {
		smtp = Redacted(c.SMTPURL)
	}
	return []any{"database", db, "listen", c.Listen, "base_url", c.BaseURL,
		"bus_endpoints", c.BusEndpoints, "amqp", Redacted(c.AMQPURL), "smtp", smtp, "smtp_tls", c.SMTPTLS, "irc", Redacted(c.IRCURL), "matrix", c.MatrixURL, "demo", c.Demo}
}

// ircNickRE is RFC 2812's nick syntax, up to 30 characters.
var ircNickRE = regexp.MustCompile("^[A-Za-z\\[\\]\\\\`_^{|}][A-Za-z0-9\\[\\]\\\\`_^{|}-]{0,29}$")

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// validateMatrix: a homeserver URL, and exactly one way to sign in.
func (c Config) validateMatrix() []error {
	if c.MatrixURL == "" {
		if c.MatrixToken != "" || c.MatrixUser != "" || c.MatrixPassword != "" {
			return []error{errors.New("FMN_MATRIX_TOKEN, FMN_MATRIX_USER and FMN_MATRIX_PASSWORD need FMN_MATRIX_URL")}
		}
		return nil
	}
	var errs []error
	if u, err := url.Parse(c.MatrixURL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User != nil {
		errs = append(errs, errors.New("FMN_MATRIX_URL: want the homeserver's https:// URL, like https://matrix.example.org"))
	}
	switch {
	case c.MatrixToken != "" && (c.MatrixUser != "" || c.MatrixPassword != ""):
		errs = append(errs, errors.New("FMN_MATRIX_TOKEN: give a token or FMN_MATRIX_USER and FMN_MATRIX_PASSWORD, not both"))
	case c.MatrixToken == "" && (c.MatrixUser == "" || c.MatrixPassword == ""):
		errs = append(errs, errors.New("FMN_MATRIX_URL: give FMN_MATRIX_TOKEN, or FMN_MATRIX_USER and FMN_MATRIX_PASSWORD"))
	case c.MatrixUser != "" && !fmn.ValidMatrixID(c.MatrixUser):
		errs = append(errs, fmt.Errorf("FMN_MATRIX_USER: %q is not a Matrix user ID like @fmn:example.org", c.MatrixUser))
	}
	return errs
}
