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

// setUpMatrix signs the bot in (a wrong token or password fails the
// start), adds the matrix route, and returns what starts the sync loop:
// however many work processes run, the one holding the lock reads the
// rooms; every one of them sends.
func setUpMatrix(ctx context.Context, g *errgroup.Group, cfg config.Config, st *store.Store, j *delivery.Jobs, log *slog.Logger) (func(*river.Client[pgx.Tx]), error) {
	sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	client, self, err := matrix.Session(sctx, st, cfg.MatrixURL, cfg.MatrixToken, cfg.MatrixUser, cfg.MatrixPassword)
	if err != nil {
		return nil, fmt.Errorf("FMN_MATRIX_URL: sign in to %s: %w", cfg.MatrixURL, err)
	}
	ch := &matrix.Channel{Client: client, Store: st, BaseURL: cfg.BaseURL}
	j.Routes = append(j.Routes, ch.Route())
	bot := &matrix.Bot{Client: client, UserID: self, Store: st, Log: log,
		Commands: &delivery.Commands{Kind: fmn.KindMatrix, Store: st, BaseURL: cfg.BaseURL, Log: log},
		Lock: func(ctx context.Context) (<-chan struct{}, func(), error) {
			return st.HoldLock(ctx, store.LockMatrixBot, 5*time.Second)
		}}
	return func(*river.Client[pgx.Tx]) {
		log.Info("Matrix bot starting", "homeserver", cfg.MatrixURL, "user", self)
		g.Go(func() error { return bot.Run(ctx) })
	}, nil
}
