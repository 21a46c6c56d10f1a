package main

import (
	"context"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"golang.org/x/sync/errgroup"

	"fmn"
	"fmn/config"
	"fmn/delivery"
	"fmn/delivery/irc"
	"fmn/delivery/push"
	"fmn/store"
)

// configured lists the channels this fmn can deliver through: email and
// push always, IRC and Matrix when their server is set. Every role knows it
// from the configuration, so the web role offers only these.
func configured(cfg config.Config) []fmn.Kind {
	ks := []fmn.Kind{fmn.KindEmail}
	if cfg.IRCURL != "" {
		ks = append(ks, fmn.KindIRC)
	}
	if cfg.MatrixURL != "" {
		ks = append(ks, fmn.KindMatrix)
	}
	return append(ks, fmn.KindPush)
}

// setUpChannels prepares the channels besides email: the VAPID keys (any
// role that serves the web or works needs them; made on first start), and
// in the work role push and, when configured, the IRC bot and the Matrix
// bot, whose routes it adds to j.
func setUpChannels(ctx context.Context, g *errgroup.Group, cfg config.Config, st *store.Store,
	r roles, j *delivery.Jobs, log *slog.Logger) (channelSetup, error) {
	var starts []func(*river.Client[pgx.Tx])
	cs := channelSetup{start: func(c *river.Client[pgx.Tx]) {
		for _, s := range starts {
			s(c)
		}
	}}
	if !r.work && !r.web {
		return cs, nil
	}
	pub, priv, err := push.VAPIDKeys(ctx, st, cfg.VAPIDPublicKey, cfg.VAPIDPrivateKey)
	if err != nil {
		return cs, err
	}
	cs.vapidPublic = pub
	if !r.work {
		return cs, nil
	}
	pusher := &push.Pusher{Settings: push.Settings{
		Subject: cfg.PushSubject, BaseURL: cfg.BaseURL, PublicKey: pub, PrivateKey: priv},
		Guard: push.Guard{AllowPrivate: cfg.PushAllowPrivate}}
	j.Routes = append(j.Routes, pusher.Route())
	if cfg.IRCURL != "" {
		starts = append(starts, setUpIRC(ctx, g, cfg, st, j, log))
	}
	if cfg.MatrixURL != "" {
		sess, s, err := setUpMatrix(ctx, g, cfg, st, j, log)
		if err != nil {
			return cs, err
		}
		starts = append(starts, s)
		cs.states = func() map[string]string { return map[string]string{string(fmn.KindMatrix): sess.State()} }
	}
	return cs, nil
}

// channelSetup is what setUpChannels made.
type channelSetup struct {
	// vapidPublic is the VAPID public key, for browsers subscribing.
	vapidPublic string
	// start starts the bots in g, once the job client exists, until ctx
	// ends.
	start func(*river.Client[pgx.Tx])
	// states reports the bots' connections for /readyz (nil: none here).
	states func() map[string]string
}

// setUpIRC: however many work processes run, one holds the lock and the
// connection, and only it works the irc queue.
func setUpIRC(ctx context.Context, g *errgroup.Group, cfg config.Config, st *store.Store, j *delivery.Jobs, log *slog.Logger) func(*river.Client[pgx.Tx]) {
	bot := &irc.Bot{Settings: irc.Settings{URL: cfg.IRCURL, Nick: cfg.IRCNick, BaseURL: cfg.BaseURL},
		Commands: &delivery.Commands{Kind: fmn.KindIRC, Store: st, BaseURL: cfg.BaseURL, Log: log}, Log: log,
		Lock: func(ctx context.Context) (<-chan struct{}, func(), error) {
			return st.HoldLock(ctx, store.LockIRCBot, 5*time.Second)
		}}
	route := (&irc.Channel{Bot: bot}).Route()
	j.Routes = append(j.Routes, route)
	return func(jobs *river.Client[pgx.Tx]) {
		bot.OnLead = func(leading bool) {
			var err error
			if leading {
				err = jobs.Queues().Add(string(fmn.KindIRC), route.QueueConfig())
			} else {
				rctx, cancel := context.WithTimeout(context.Background(), time.Minute)
				err = jobs.Queues().Remove(rctx, string(fmn.KindIRC))
				cancel()
			}
			if err != nil {
				log.Error("change the irc queue", "working", leading, "err", err)
			}
		}
		log.Info("IRC bot starting", "server", config.Redacted(cfg.IRCURL), "nick", cfg.IRCNick)
		g.Go(func() error { return bot.Run(ctx) })
	}
}
