package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"golang.org/x/sync/errgroup"

	"fmn/config"
	"fmn/consumer"
	"fmn/consumer/fedmsg"
	"fmn/delivery"
	"fmn/metrics"
	"fmn/pgcluster"
	"fmn/rules"
	"fmn/store"
	"fmn/web"
)

type roles struct{ consume, work, web bool }

// Shutdown budget: workers get this long to finish a send before their
// contexts are cancelled.
const softStop = 10 * time.Second

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

	// Listen first: a busy port fails the start, not a minute later.
	var ln net.Listener
	if r.web {
		if ln, err = net.Listen("tcp", cfg.Listen); err != nil {
			return fmt.Errorf("listen on %s: %w", cfg.Listen, err)
		}
		defer ln.Close()
	}

	st, closeDB, err := openMigrated(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer closeDB()

	m := metrics.New()
	var mailer delivery.Mailer = delivery.FolderMailer{Dir: filepath.Join(cfg.DataDir, "mail")}
	if cfg.SMTPURL != "" {
		sm, err := delivery.NewSMTPMailer(cfg.SMTPURL, 0)
		if err != nil {
			return err
		}
		defer sm.Close()
		mailer = sm
	} else if r.work {
		log.Info("no FMN_SMTP_URL: writing mail to a folder", "dir", filepath.Join(cfg.DataDir, "mail"))
	}
	render, err := delivery.NewRenderer()
	if err != nil {
		return fmt.Errorf("parse mail templates: %w", err)
	}
	ms := delivery.MailSettings{From: cfg.MailFrom, BaseURL: cfg.BaseURL}
	sender := &delivery.Sender{Store: st, Mailer: mailer, Render: render, Settings: ms,
		Unsubscribe: &delivery.Unsubscriber{Store: st}, Metrics: m, Log: log}
	workers := delivery.Workers{
		Email:      &delivery.EmailWorker{Sender: sender},
		Confirm:    &delivery.ConfirmWorker{Store: st, Mailer: mailer, Render: render, Settings: ms, Log: log},
		Login:      &delivery.LoginWorker{Store: st, Mailer: mailer, Render: render, Settings: ms, Log: log},
		Test:       &delivery.TestSendWorker{Store: st, Mailer: mailer, Settings: ms, Log: log},
		Digest:     &delivery.DigestWorker{Sender: sender},
		DigestTick: &delivery.DigestTickWorker{Sender: sender},
	}
	// The IRC bot and push live beside the workers and stop after them.
	chanCtx, stopChannels := context.WithCancel(context.WithoutCancel(ctx))
	var chans errgroup.Group
	defer func() { stopChannels(); _ = chans.Wait() }()
	vapidPub, startChannels, err := setUpChannels(chanCtx, &chans, cfg, st, m, r, &workers, log)
	if err != nil {
		return err
	}
	jobs, err := delivery.NewClient(st.Pool, workers, r.work, log)
	if err != nil {
		return err
	}
	startChannels(jobs)

	busCtx, stopBus := context.WithCancel(ctx)
	defer stopBus()
	bus, _ := errgroup.WithContext(busCtx)
	var sub *consumer.Subscriber
	if r.consume {
		endpoints := cfg.BusEndpoints
		if cfg.Demo {
			pub, err := startDemo(busCtx, bus, cfg, log)
			if err != nil {
				return err
			}
			endpoints = append(endpoints, pub)
		}
		if len(endpoints) == 0 {
			log.Warn("no bus endpoints configured (FMN_BUS_ENDPOINTS): nothing will be consumed")
		}
		verifier, replayer, err := busChecks(cfg, m, log)
		if err != nil {
			return err
		}
		sub = &consumer.Subscriber{Endpoints: endpoints, TopicPrefix: cfg.BusTopicPrefix,
			MaxBytes: cfg.MaxMessageBytes, Verifier: verifier, Silence: cfg.BusSilence,
			BacklogBytes: cfg.BusBufferBytes, Metrics: m, Log: log}
		ch := make(chan consumer.Received, 4096)
		live := rules.NewLive(store.RuleSource{})
		ing := &consumer.Ingester{Store: st, Rules: live,
			Queue: delivery.Queue{Client: jobs}, Replay: replayer, Metrics: m, Log: log}
		bus.Go(func() error { return st.FollowRules(busCtx, live, log) })
		subDone := make(chan struct{})
		bus.Go(func() error { defer close(subDone); return sub.Run(busCtx, ch) })
		// The ingester outlives the subscribers by the time it takes to
		// store what they already read: it stops on the closed channel,
		// not on the cancelled context.
		bus.Go(func() error {
			go func() { <-subDone; close(ch) }()
			return ing.Run(context.WithoutCancel(busCtx), ch)
		})
	}

	if r.work {
		if err := jobs.Start(ctx); err != nil {
			return fmt.Errorf("start delivery workers: %w", err)
		}
	}

	var srv *http.Server
	httpErr := make(chan error, 1)
	if r.web {
		hub := web.NewHub(st, log)
		bus.Go(func() error { return hub.Run(busCtx) })
		deps := web.Deps{Store: st, Jobs: jobs, Metrics: m, Hub: hub, BaseURL: cfg.BaseURL, Log: log, VAPIDPublicKey: vapidPub,
			TrustedProxies: cfg.TrustedProxies, Auth: web.AuthConfig{
				OIDCIssuer: cfg.OIDCIssuer, OIDCClientID: cfg.OIDCClientID, OIDCClientSecret: cfg.OIDCClientSecret,
				OIDCUsernameClaim: cfg.OIDCUsernameClaim, Admins: cfg.Admins}}
		if sub != nil {
			deps.Endpoints = sub.Status
		}
		ws, err := web.New(deps)
		if err != nil {
			return err
		}
		srv = &http.Server{Handler: ws.Handler(), ReadHeaderTimeout: 10 * time.Second}
		srv.RegisterOnShutdown(ws.Close)
		go func() { httpErr <- srv.Serve(ln) }()
		log.Info("web UI listening", "url", "http://"+ln.Addr().String())
	}

	select {
	case <-ctx.Done():
	case err := <-httpErr:
		if !errors.Is(err, http.ErrServerClosed) {
			log.Error("web server failed", "err", err)
		}
	}
	log.Info("shutting down")
	// Order: stop taking bus input (and store what was read), then the web
	// server, then the workers (soft, then hard), then the pool.
	stopBus()
	if err := bus.Wait(); err != nil {
		log.Error("bus shutdown", "err", err)
	}
	if srv != nil {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_ = srv.Shutdown(sctx)
		cancel()
	}
	if r.work {
		stopWorkers(jobs, log)
	}
	stopChannels()
	_ = chans.Wait()
	log.Info("stopped")
	return nil
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

func stopWorkers(jobs *river.Client[pgx.Tx], log *slog.Logger) {
	sctx, cancel := context.WithTimeout(context.Background(), softStop)
	defer cancel()
	if err := jobs.Stop(sctx); err != nil {
		log.Warn("workers did not stop in time, cancelling their jobs", "err", err)
		hctx, hcancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer hcancel()
		_ = jobs.StopAndCancel(hctx)
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
