package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"golang.org/x/sync/errgroup"

	"fmn"
	"fmn/config"
	"fmn/consumer"
	"fmn/consumer/fedmsg"
	"fmn/delivery"
	"fmn/delivery/email"
	"fmn/delivery/push"
	"fmn/metrics"
	"fmn/owners"
	"fmn/pgcluster"
	"fmn/rules"
	"fmn/store"
	"fmn/web"
)

type roles struct{ consume, work, web bool }

// Shutdown budget. SIGINT or SIGTERM ends the process within stopBudget
// whatever the database does: an operator's Ctrl-C during a database
// outage must not need a SIGKILL, and systemd's stop timeout must never be
// reached. Each stage gets its own share, none beyond stopBudget; the
// channels then get hardStop and closing closeGrace, under 5 s in all:
//
//   - ingestGrace: the ingester stores what the subscribers already read.
//     When the database cannot take it in time, it is left unstored, as
//     in a crash: a numbered ZeroMQ stream replays it at the next start
//     (or records the gap), an AMQP broker redelivers what was not acked.
//   - httpGrace: requests in flight finish.
//   - softStop, then hardStop: workers finish a send, then have their
//     contexts cancelled (a send cut off is recorded as such, never
//     repeated blindly; see delivery's claims).
//   - closeGrace: connections are closed; with the private cluster,
//     clusterGrace more for its own shutdown checkpoint (a cluster's first
//     stop after initdb and the migrations writes all of that: over a
//     second here), so that Ctrl-C never leaves it half stopped.
const (
	stopBudget   = 3500 * time.Millisecond
	ingestGrace  = 2 * time.Second
	httpGrace    = time.Second
	softStop     = 1500 * time.Millisecond
	hardStop     = 500 * time.Millisecond
	closeGrace   = time.Second
	clusterGrace = 3 * time.Second
)

// openDatabase connects to FMN_DATABASE_URL, or starts the private cluster.
// The returned stop function releases the cluster (pgcluster.Release): it
// stops one this call started and leaves one it found running alone, so a
// tool run beside `make run` never takes make run's database down.
func openDatabase(ctx context.Context, cfg config.Config, log *slog.Logger) (*store.Store, func(), error) {
	url, stop := cfg.DatabaseURL, func() {}
	if url == "" {
		cl, err := pgcluster.Start(ctx, filepath.Join(cfg.DataDir, "postgres"), pgcluster.Options{}, log)
		if err != nil {
			return nil, nil, err
		}
		url = cl.URL
		stop = func() {
			if err := cl.Release(context.Background()); err != nil {
				log.Error("stop private PostgreSQL", "err", err)
			}
		}
		log.Info("using private PostgreSQL cluster", "dir", filepath.Join(cfg.DataDir, "postgres"))
	}
	st, err := store.Open(ctx, url)
	if err != nil {
		stop()
		return nil, nil, err
	}
	return st, stop, nil
}

// openMigrated opens the database (see openDatabase) and applies the
// migrations; close releases both.
func openMigrated(ctx context.Context, cfg config.Config, log *slog.Logger) (st *store.Store, close func(), err error) {
	st, stop, err := openDatabase(ctx, cfg, log)
	if err != nil {
		return nil, nil, err
	}
	if err := store.Migrate(ctx, st.Pool, log); err != nil {
		st.Close()
		stop()
		return nil, nil, err
	}
	return st, func() { st.Close(); stop() }, nil
}

func (e env) service(ctx context.Context, args []string, r roles) error {
	fs := e.flags("serve")
	cfgPath := fs.String("config", "", "config file of FMN_*=value lines")
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg, err := e.loadConfig(*cfgPath)
	if err != nil {
		return err
	}
	log := e.logger(cfg.LogLevel)
	log.Info("starting fmn", append([]any{"consume", r.consume, "work", r.work, "web", r.web}, cfg.LogValues()...)...)
	if cfg.PushAllowPrivate {
		log.Warn("FMN_PUSH_ALLOW_PRIVATE is on: push endpoints may be plain http and reach loopback and private addresses; for tests and private deployments only")
	}

	// Listen first: a busy port fails the start, not a minute later.
	var ln net.Listener
	if r.web {
		if ln, err = net.Listen("tcp", cfg.Listen); err != nil {
			return fmt.Errorf("listen on %s: %w", cfg.Listen, err)
		}
		defer ln.Close()
	}
	// FMN_METRICS_LISTEN: /metrics, /healthz and /readyz on an address of
	// their own, for the roles without the web UI (fmn consume, fmn work).
	var opsLn net.Listener
	if cfg.MetricsListen != "" {
		if opsLn, err = net.Listen("tcp", cfg.MetricsListen); err != nil {
			return fmt.Errorf("listen on %s (FMN_METRICS_LISTEN): %w", cfg.MetricsListen, err)
		}
		defer opsLn.Close()
	}

	st, closeDB, err := openMigrated(ctx, cfg, log)
	if err != nil {
		return err
	}
	// A pool with a connection stuck on an unreachable server would
	// block its Close forever: closing gets closeGrace (and the private
	// cluster's stop clusterGrace), then the process exits without it.
	closeWait := closeGrace
	if cfg.DatabaseURL == "" {
		closeWait += clusterGrace
	}
	defer waitAtMost(closeWait, func() error { closeDB(); return nil }, "closing the database", log)

	m := metrics.New()
	m.WatchJobs(func(ctx context.Context) ([]metrics.JobStat, error) {
		ss, err := st.JobStats(ctx)
		out := make([]metrics.JobStat, len(ss))
		for i, s := range ss {
			out[i] = metrics.JobStat(s)
		}
		return out, err
	})
	var mailer email.Mailer = email.FolderMailer{Dir: filepath.Join(cfg.DataDir, "mail")}
	if cfg.SMTPURL != "" {
		sm, err := email.NewSMTPMailerTLS(cfg.SMTPURL, cfg.SMTPTLS, 0)
		if err != nil {
			return err
		}
		defer sm.Close()
		mailer = sm
	} else if r.work {
		log.Info("no FMN_SMTP_URL: writing mail to a folder", "dir", filepath.Join(cfg.DataDir, "mail"))
	}
	render, err := email.NewRenderer()
	if err != nil {
		return fmt.Errorf("parse mail templates: %w", err)
	}
	mailCh := &email.Channel{Store: st, Mailer: mailer, Render: render,
		Settings:    email.Settings{From: cfg.MailFrom, BaseURL: cfg.BaseURL},
		Unsubscribe: &email.Unsubscriber{Store: st}, Metrics: m, Log: log}
	jobsCfg := delivery.Jobs{Routes: []delivery.Route{mailCh.Route()}, Register: []func(*river.Workers){mailCh.Register}, Log: log}
	// The other channels live beside the workers and stop after them.
	chanCtx, stopChannels := context.WithCancel(context.WithoutCancel(ctx))
	var chans errgroup.Group
	defer func() { stopChannels(); waitAtMost(hardStop, chans.Wait, "channels (IRC bot, push)", log) }()
	chs, err := setUpChannels(chanCtx, &chans, cfg, st, r, &jobsCfg, log)
	if err != nil {
		return err
	}
	dl := delivery.NewDeliverer(st, m, log, jobsCfg.Routes...)
	mailCh.Deliverer = dl
	jobsCfg.Deliverer = dl
	jobsCfg.Register = append(jobsCfg.Register, func(w *river.Workers) {
		river.AddWorker(w, &store.RetentionWorker{Store: st, Keep: cfg.Retention, Log: log})
	})
	if r.work {
		jobsCfg.Periodic = append(jobsCfg.Periodic, mailCh.Periodic(), retentionJob())
	}
	jobsCfg.Log = riverLogger(log)
	jobs, err := delivery.NewClient(st.Pool, jobsCfg, r.work)
	if err != nil {
		return err
	}
	queue := delivery.NewQueue(jobs, jobsCfg.Routes)
	chs.start(jobs)

	busCtx, stopBus := context.WithCancel(ctx)
	defer stopBus()
	ingCtx, stopIngest := context.WithCancel(context.WithoutCancel(ctx))
	defer stopIngest()
	bus, _ := errgroup.WithContext(busCtx)
	var sub *consumer.Subscriber
	var amqpSrc *consumer.AMQPSource
	var ing *consumer.Ingester
	if r.consume {
		endpoints := cfg.BusEndpoints
		if cfg.Demo {
			pub, err := startDemo(busCtx, bus, cfg, log)
			if err != nil {
				return err
			}
			endpoints = append(endpoints, pub)
		}
		if len(endpoints) == 0 && cfg.AMQPURL == "" {
			log.Warn("no bus configured (FMN_BUS_ENDPOINTS, FMN_AMQP_URL): nothing will be consumed")
		}
		verifier, replayer, err := busChecks(cfg, m, log)
		if err != nil {
			return err
		}
		sub = &consumer.Subscriber{Endpoints: endpoints, TopicPrefix: cfg.BusTopicPrefix,
			MaxBytes: cfg.MaxMessageBytes, Verifier: verifier, Silence: cfg.BusSilence,
			BacklogBytes: cfg.BusBufferBytes, ReconnectMax: cfg.BusReconnectMax, Metrics: m, Log: log}
		sources := []consumer.Source{sub}
		if cfg.AMQPURL != "" {
			if amqpSrc, err = amqpSource(cfg, m, log); err != nil {
				return err
			}
			sources = append(sources, amqpSrc)
		}
		ch := make(chan consumer.Received, 4096)
		live := rules.NewLive(store.RuleSource{})
		ing = &consumer.Ingester{Store: st, Rules: live,
			Queue: queue, Replay: replayer, Metrics: m, Log: log,
			InTx: owners.Watcher{DistgitURL: cfg.DistgitURL}.InTx}
		bus.Go(func() error { return st.FollowRules(busCtx, live, log) })
		// Every source (ZeroMQ endpoints, the AMQP broker) feeds the one
		// ingester; the channel closes when all of them have returned.
		var srcs sync.WaitGroup
		for _, src := range sources {
			srcs.Add(1)
			bus.Go(func() error { defer srcs.Done(); return src.Run(busCtx, ch) })
		}
		// The ingester outlives the sources by the time it takes to store
		// what they already read (and so have the broker's messages
		// acknowledged): it stops on the closed channel, or when the
		// shutdown's ingestGrace is over (stopIngest).
		bus.Go(func() error {
			go func() { srcs.Wait(); close(ch) }()
			err := ing.Run(ingCtx, ch)
			// Whatever the sources still hand over after a deadline is
			// dropped, so that they can finish.
			left := 0
			for range ch {
				left++
			}
			if left > 0 {
				log.Warn("shutdown: messages read from the bus were not stored in time; numbered streams replay them and the broker redelivers them at the next start", "messages", left)
			}
			return err
		})
	}

	if r.work {
		if err := jobs.Start(ctx); err != nil {
			return fmt.Errorf("start delivery workers: %w", err)
		}
		// Who maintains what: one refresher across the work processes.
		ref := &owners.Refresher{Store: st, Client: owners.NewClient(cfg.DistgitURL), Every: cfg.DistgitRefresh, Log: log}
		bus.Go(func() error { return ref.Run(busCtx) })
	}

	deps := web.Deps{Store: st, Jobs: jobs, Channels: configured(cfg), Metrics: m, BaseURL: cfg.BaseURL, Log: log, VAPIDPublicKey: chs.vapidPublic, ChannelStates: chs.states, Retention: cfg.Retention,
		TrustedProxies: cfg.TrustedProxies, PushGuard: push.Guard{AllowPrivate: cfg.PushAllowPrivate}, Limits: web.Limits{RulesPerUser: cfg.MaxRulesPerUser,
			PatternsPerRule: cfg.MaxPatternsPerRule, DestinationsPerUser: cfg.MaxDestinationsPerUser,
			StreamsPerUser: cfg.MaxStreamsPerUser, Streams: cfg.MaxStreams},
		Auth: web.AuthConfig{
			OIDCIssuer: cfg.OIDCIssuer, OIDCClientID: cfg.OIDCClientID, OIDCClientSecret: cfg.OIDCClientSecret,
			OIDCUsernameClaim: cfg.OIDCUsernameClaim, OIDCGroupsClaim: cfg.OIDCGroupsClaim, OIDCScopes: cfg.OIDCScopes,
			Admins: cfg.Admins}, DistgitURL: cfg.DistgitURL}
	if sub != nil {
		deps.Endpoints = func() []consumer.EndpointStatus {
			eps := sub.Status()
			if amqpSrc != nil {
				eps = append(eps, amqpSrc.Status()...)
			}
			return eps
		}
		deps.Ingesting = ing.Retrying
	}
	var srv, opsSrv *http.Server
	httpErr := make(chan error, 2)
	if r.web {
		hub := web.NewHub(st, log)
		bus.Go(func() error { return hub.Run(busCtx) })
		deps.Hub = hub
		ws, err := web.New(deps)
		if err != nil {
			return err
		}
		srv = web.NewHTTPServer(ws.Handler(), web.DefaultTimeouts)
		srv.RegisterOnShutdown(ws.Close)
		go func() { httpErr <- srv.Serve(ln) }()
		log.Info("web UI listening", "url", "http://"+ln.Addr().String())
	}
	if opsLn != nil {
		ws, err := web.New(deps)
		if err != nil {
			return err
		}
		opsSrv = web.NewHTTPServer(ws.OpsHandler(), web.DefaultTimeouts)
		go func() { httpErr <- opsSrv.Serve(opsLn) }()
		log.Info("health and metrics listening", "url", "http://"+opsLn.Addr().String())
	}

	select {
	case <-ctx.Done():
	case err := <-httpErr:
		if !errors.Is(err, http.ErrServerClosed) {
			log.Error("web server failed", "err", err)
		}
	}
	log.Info("shutting down")
	deadline := time.Now().Add(stopBudget)
	within := func(d time.Duration) (context.Context, context.CancelFunc) {
		end := time.Now().Add(d)
		if end.After(deadline) {
			end = deadline
		}
		return context.WithDeadline(context.Background(), end)
	}
	// Order: stop taking bus input first, then let the ingester store what
	// was read, the web server finish its requests and the workers their
	// sends side by side (none needs another running: jobs queued
	// meanwhile wait in the database for the next start), then close the
	// channels and the pool.
	stopBus()
	workersStopped := make(chan struct{})
	go func() {
		defer close(workersStopped)
		if r.work {
			stopWorkers(jobs, within, log)
		}
	}()
	ictx, cancel := within(ingestGrace)
	stopAfter := context.AfterFunc(ictx, stopIngest)
	if err := bus.Wait(); err != nil {
		log.Error("bus shutdown", "err", err)
	}
	stopAfter()
	cancel()
	for _, h := range []*http.Server{srv, opsSrv} {
		if h == nil {
			continue
		}
		sctx, cancel := within(httpGrace)
		if h.Shutdown(sctx) != nil {
			_ = h.Close()
		}
		cancel()
	}
	<-workersStopped
	log.Info("stopped")
	return nil
}

// retentionJob keeps the message log within FMN_RETENTION (see
// store.RetentionWorker), run by River's leader. It goes on the email
// queue, the one every work process works; a run takes seconds at most.
func retentionJob() *river.PeriodicJob {
	return river.NewPeriodicJob(river.PeriodicInterval(store.RetentionEvery),
		func() (river.JobArgs, *river.InsertOpts) {
			return store.RetentionArgs{}, &river.InsertOpts{Queue: string(fmn.KindEmail), MaxAttempts: 3}
		},
		&river.PeriodicJobOpts{RunOnStart: true})
}

// waitAtMost waits for wait to return, at most for d; past that the
// process goes on (and exits) without it.
func waitAtMost(d time.Duration, wait func() error, what string, log *slog.Logger) {
	done := make(chan struct{})
	go func() { _ = wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(d):
		log.Warn("shutdown: gave up waiting", "for", what, "after", d)
	}
}

// amqpSource builds the fedora-messaging source from FMN_AMQP_*.
func amqpSource(cfg config.Config, m *metrics.Metrics, log *slog.Logger) (*consumer.AMQPSource, error) {
	src := &consumer.AMQPSource{URL: cfg.AMQPURL, Queue: cfg.AMQPQueue, Prefetch: cfg.AMQPPrefetch,
		MaxBytes: cfg.MaxMessageBytes, ReconnectMax: cfg.BusReconnectMax, DrainTimeout: ingestGrace, Metrics: m, Log: log}
	for _, b := range cfg.AMQPBindings {
		src.Bindings = append(src.Bindings, consumer.AMQPBinding{Exchange: b.Exchange, RoutingKey: b.RoutingKey})
	}
	if strings.HasPrefix(cfg.AMQPURL, "amqps://") {
		conf, err := consumer.AMQPTLS(cfg.AMQPCACert, cfg.AMQPCert, cfg.AMQPKey)
		if err != nil {
			return nil, fmt.Errorf("FMN_AMQP_*: %w", err)
		}
		src.TLS, src.External = conf, cfg.AMQPCert != ""
	}
	log.Info("consuming fedora-messaging", "endpoint", src.Endpoint(), "bindings", cfg.AMQPBindings,
		"prefetch", src.Prefetch, "sasl_external", src.External)
	return src, nil
}

// busChecks builds the signature verifier (when FMN_VALIDATE_SIGNATURES is
// on) and the replayer (when FMN_BUS_REPLAY names replay endpoints).
func busChecks(cfg config.Config, m *metrics.Metrics, log *slog.Logger) (*fedmsg.Verifier, consumer.Replayer, error) {
	var v *fedmsg.Verifier
	if cfg.ValidateSignatures {
		var err error
		if v, err = fedmsg.LoadVerifierFiles(cfg.CACert, cfg.CRL, cfg.RoutingPolicy, cfg.RoutingNitpicky); err != nil {
			return nil, nil, fmt.Errorf("FMN_VALIDATE_SIGNATURES: %w", err)
		}
		log.Info("validating bus message signatures", "ca", cfg.CACert, "crl", cfg.CRL, "routing_policy", cfg.RoutingPolicy)
	}
	var r consumer.Replayer
	if len(cfg.BusReplay) > 0 {
		r = &consumer.ZMQReplayer{Endpoints: cfg.BusReplay, MaxBytes: cfg.MaxMessageBytes, Verifier: v, Metrics: m, Log: log}
	}
	return v, r, nil
}

func stopWorkers(jobs *river.Client[pgx.Tx], within func(time.Duration) (context.Context, context.CancelFunc), log *slog.Logger) {
	sctx, cancel := within(softStop)
	defer cancel()
	if err := jobs.Stop(sctx); err != nil {
		log.Warn("workers did not stop in time, cancelling their jobs", "err", err)
		hctx, hcancel := within(hardStop)
		defer hcancel()
		if err := jobs.StopAndCancel(hctx); err != nil {
			log.Warn("workers did not stop after cancelling their jobs", "err", err)
		}
	}
}

// startDemo runs the built-in demo bus: a publisher replaying the corpus in a
// loop, each pass as fresh messages, so a first run has something to show.
func startDemo(ctx context.Context, g *errgroup.Group, cfg config.Config, log *slog.Logger) (string, error) {
	envs, err := consumer.ReadCorpus(cfg.DemoCorpus)
	if err != nil {
		return "", fmt.Errorf("demo bus: %w", err)
	}
	if len(envs) == 0 {
		return "", fmt.Errorf("demo bus: no envelopes in %s", cfg.DemoCorpus)
	}
	pub, err := consumer.NewPublisher(ctx, "tcp://127.0.0.1:0", false)
	if err != nil {
		return "", fmt.Errorf("demo bus: %w", err)
	}
	log.Info("demo bus publishing", "endpoint", pub.Addr(), "corpus", cfg.DemoCorpus, "rate", cfg.DemoRate)
	g.Go(func() error {
		defer pub.Close()
		pub.WaitSubscribers(ctx, time.Minute)
		for ctx.Err() == nil {
			if err := pub.Replay(ctx, envs, cfg.DemoRate); err != nil && ctx.Err() == nil {
				return fmt.Errorf("demo bus: %w", err)
			}
		}
		return nil
	})
	return pub.Addr(), nil
}
