package main

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"golang.org/x/sync/errgroup"

	"fmn"
	"fmn/config"
	"fmn/delivery"
	"fmn/delivery/matrix"
	"fmn/store"
)

// matrixStartWait is how long the start waits for the homeserver's first
// answer before going on without it.
const matrixStartWait = 10 * time.Second

// setUpMatrix signs the bot in, adds the matrix route, and returns the
// session and what starts the sync loop: however many work processes
// run, the one holding the lock reads the rooms; every one of them sends.
// A homeserver that refuses the sign-in (a wrong token or password) fails
// the start, naming the setting; one that does not answer, or fails, is
// no reason to keep email, IRC and push from starting (a host reboot
// brings the homeserver back later): a warning, and the session is
// retried in the background while Matrix's jobs wait for it.
func setUpMatrix(ctx context.Context, g *errgroup.Group, cfg config.Config, st *store.Store, j *delivery.Jobs, log *slog.Logger) (*matrix.Session, func(*river.Client[pgx.Tx]), error) {
	sess := &matrix.Session{Store: st, Log: log, Login: matrix.Login{URL: cfg.MatrixURL,
		Token: cfg.MatrixToken, User: cfg.MatrixUser, Password: cfg.MatrixPassword}}
	sctx, cancel := context.WithTimeout(ctx, matrixStartWait)
	err := sess.SignIn(sctx)
	cancel()
	switch {
	case matrix.Refused(err):
		return nil, nil, fmt.Errorf("%s: the Matrix homeserver %s refuses the bot's sign-in: %w", sess.Login.Setting(), cfg.MatrixURL, err)
	case err != nil && ctx.Err() != nil:
		return nil, nil, ctx.Err()
	case err != nil:
		log.Warn("Matrix homeserver not reachable: starting without it; the bot keeps trying to sign in and Matrix notifications wait",
			"homeserver", cfg.MatrixURL, "err", err)
		g.Go(func() error { sess.Retry(ctx); return nil })
	}
	ch := &matrix.Channel{Session: sess, Store: st, BaseURL: cfg.BaseURL}
	j.Routes = append(j.Routes, ch.Route())
	bot := &matrix.Bot{Session: sess, Store: st, Log: log,
		Commands: &delivery.Commands{Kind: fmn.KindMatrix, Store: st, BaseURL: cfg.BaseURL, Log: log},
		Lock: func(ctx context.Context) (<-chan struct{}, func(), error) {
			return st.HoldLock(ctx, store.LockMatrixBot, 5*time.Second)
		}}
	return sess, func(*river.Client[pgx.Tx]) {
		log.Info("Matrix bot starting", "homeserver", cfg.MatrixURL)
		g.Go(func() error { return bot.Run(ctx) })
	}, nil
}
