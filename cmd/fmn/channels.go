package main

import (
	"context"
	"log/slog"

	"golang.org/x/sync/errgroup"

	"fmn/config"
	"fmn/delivery"
	"fmn/metrics"
	"fmn/store"
)

// setUpChannels prepares IRC and Web Push: the VAPID keys (any role that
// serves the web or works needs them; made on first start), and in the work
// role the push workers, and the IRC bot when FMN_IRC_URL is set, run in g
// until ctx ends. It returns the VAPID public key.
func setUpChannels(ctx context.Context, g *errgroup.Group, cfg config.Config, st *store.Store, m *metrics.Metrics,
	r roles, w *delivery.Workers, log *slog.Logger) (string, error) {
	if !r.work && !r.web {
		return "", nil
	}
	pub, priv, err := delivery.VAPIDKeys(ctx, st, cfg.VAPIDPublicKey, cfg.VAPIDPrivateKey)
	if err != nil {
		return "", err
	}
	if !r.work {
		return pub, nil
	}
	pusher := &delivery.Pusher{Settings: delivery.PushSettings{
		Subject: cfg.PushSubject, BaseURL: cfg.BaseURL, PublicKey: pub, PrivateKey: priv}}
	w.Push = &delivery.PushWorker{Store: st, Pusher: pusher, Metrics: m, Log: log}
	w.PushConfirm = &delivery.PushConfirmWorker{Store: st, Pusher: pusher, Log: log}
	if cfg.IRCURL != "" {
		bot := &delivery.IRCBot{Settings: delivery.IRCSettings{URL: cfg.IRCURL, Nick: cfg.IRCNick, BaseURL: cfg.BaseURL},
			Store: st, Log: log}
		w.IRC = &delivery.IRCWorker{Store: st, Bot: bot, Metrics: m, Log: log}
		w.IRCConfirm = &delivery.IRCConfirmWorker{Store: st, Bot: bot, BaseURL: cfg.BaseURL, Log: log}
		g.Go(func() error { return bot.Run(ctx) })
		log.Info("IRC bot starting", "server", config.Redacted(cfg.IRCURL), "nick", cfg.IRCNick)
	}
	return pub, nil
}
