package main

import (
	"context"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"golang.org/x/sync/errgroup"

	"fmn/config"
	"fmn/delivery"
	"fmn/metrics"
	"fmn/store"
)

// setUpChannels prepares IRC and Web Push: the VAPID keys (any role that
// serves the web or works needs them; made on first start), and in the work
// role the push workers and, when FMN_IRC_URL is set, the IRC bot. It returns
// the VAPID public key and a function that starts the bot in g, once the job
// client exists, until ctx ends.
func setUpChannels(ctx context.Context, g *errgroup.Group, cfg config.Config, st *store.Store, m *metrics.Metrics,
	r roles, w *delivery.Workers, log *slog.Logger) (string, func(*river.Client[pgx.Tx]), error) {
	start := func(*river.Client[pgx.Tx]) {}
	if !r.work && !r.web {
		return "", start, nil
	}
	pub, priv, err := delivery.VAPIDKeys(ctx, st, cfg.VAPIDPublicKey, cfg.VAPIDPrivateKey)
	if err != nil {
		return "", nil, err
	}
	if !r.work {
		return pub, start, nil
	}
	pusher := &delivery.Pusher{Settings: delivery.PushSettings{
		Subject: cfg.PushSubject, BaseURL: cfg.BaseURL, PublicKey: pub, PrivateKey: priv}}
	w.Push = &delivery.PushWorker{Store: st, Pusher: pusher, Metrics: m, Log: log}
	w.PushConfirm = &delivery.PushConfirmWorker{Store: st, Pusher: pusher, Log: log}
	if cfg.IRCURL == "" {
		return pub, start, nil
	}
	// However many work processes run, one holds the lock and the
	// connection, and only it works the irc queue.
	bot := &delivery.IRCBot{Settings: delivery.IRCSettings{URL: cfg.IRCURL, Nick: cfg.IRCNick, BaseURL: cfg.BaseURL},
		Store: st, Log: log,
		Lock: func(ctx context.Context) (<-chan struct{}, func(), error) {
			return st.HoldLock(ctx, store.LockIRCBot, 5*time.Second)
		}}
	w.IRC = &delivery.IRCWorker{Store: st, Bot: bot, Metrics: m, Log: log}
	w.IRCConfirm = &delivery.IRCConfirmWorker{Store: st, Bot: bot, BaseURL: cfg.BaseURL, Log: log}
	start = func(jobs *river.Client[pgx.Tx]) {
		bot.OnLead = func(leading bool) {
			var err error
			if leading {
				err = jobs.Queues().Add(delivery.ChannelIRC, delivery.IRCQueueConfig)
			} else {
				rctx, cancel := context.WithTimeout(context.Background(), time.Minute)
				err = jobs.Queues().Remove(rctx, delivery.ChannelIRC)
				cancel()
			}
			if err != nil {
				log.Error("change the irc queue", "working", leading, "err", err)
			}
		}
		log.Info("IRC bot starting", "server", config.Redacted(cfg.IRCURL), "nick", cfg.IRCNick)
		g.Go(func() error { return bot.Run(ctx) })
	}
	return pub, start, nil
}
