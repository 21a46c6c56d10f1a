package main

import (
	"context"
	"log/slog"
	"strings"
)

// riverLogger is the logger River's client gets. River reports its routine
// work at info: every producer says "Producer job counts" every 5 s while
// jobs run, each maintenance service that ran says so, the client says it
// started and stopped. That was about three quarters of `make run`'s
// output, burying fmn's own lines. So River's info records become debug
// (FMN_LOG_LEVEL=debug shows them), except the ones about a job going
// wrong, which an operator wants beside fmn's own: a job given up or
// panicking becomes a warning, a job retried stays info. River's warnings
// and errors pass unchanged.
func riverLogger(log *slog.Logger) *slog.Logger {
	return slog.New(riverHandler{log.Handler()})
}

type riverHandler struct{ inner slog.Handler }

// riverLevel is the level an info record of River's is logged at.
func riverLevel(msg string) slog.Level {
	switch {
	case strings.HasSuffix(msg, ": Job errored"), strings.HasSuffix(msg, ": Job panicked"),
		strings.HasSuffix(msg, ": Notifier unhealthy"):
		return slog.LevelWarn
	case strings.HasSuffix(msg, ": Job errored; retrying"):
		return slog.LevelInfo
	}
	return slog.LevelDebug
}

// Enabled must answer before the message is known: an info record may
// come out at debug or at warn.
func (h riverHandler) Enabled(ctx context.Context, l slog.Level) bool {
	if l == slog.LevelInfo {
		return h.inner.Enabled(ctx, slog.LevelDebug) || h.inner.Enabled(ctx, slog.LevelWarn)
	}
	return h.inner.Enabled(ctx, l)
}

func (h riverHandler) Handle(ctx context.Context, r slog.Record) error {
	if r.Level == slog.LevelInfo {
		r.Level = riverLevel(r.Message)
		if !h.inner.Enabled(ctx, r.Level) {
			return nil
		}
	}
	return h.inner.Handle(ctx, r)
}

func (h riverHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return riverHandler{h.inner.WithAttrs(as)}
}

func (h riverHandler) WithGroup(name string) slog.Handler {
	return riverHandler{h.inner.WithGroup(name)}
}
