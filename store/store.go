// Package store is fmn's Postgres layer. Each file owns the SQL of one kind of
// object; every method takes a context first and translates driver errors into
// apperr values at this edge, so no caller ever sees pgx.
package store

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"fmn/apperr"
)

// Store wraps the pools. It is safe for concurrent use.
type Store struct {
	Pool *pgxpool.Pool
	// Previews is a small pool of its own for rule previews (PreviewRule),
	// the one query a user can make arbitrarily heavy: however many
	// previews run, they never hold a connection ingest, delivery or the
	// pages need. It opens connections only when a preview runs.
	Previews *pgxpool.Pool

	// partitionsChecked is when EnsurePartitions next looks (unix
	// seconds; 0: at once).
	partitionsChecked atomic.Int64
}

// PreviewConns is the size of the previews' pool: with the web role's
// own per-process budget (web.previewGate) in front of it, at most this
// many previews run at once per process, each on one core.
const PreviewConns = 2

// minPoolConns is the pool size unless the database URL sets one.
const minPoolConns = 16

// Open connects and pings, so that a wrong URL fails at start.
func Open(ctx context.Context, url string) (*Store, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("parse database URL: %w", err)
	}
	// pgxpool's default (four connections on a small machine) is too few
	// for fmn: the rule follower, the live view's listener, the IRC and
	// Matrix bots' locks and the dist-git refresher each keep one for
	// good, and the ingester, the workers and the web need the rest. A
	// pool_max_conns in the URL still decides.
	if !strings.Contains(url, "pool_max_conns") && cfg.MaxConns < minPoolConns {
		cfg.MaxConns = minPoolConns
	}
	pcfg := cfg.Copy()
	pcfg.MaxConns, pcfg.MinConns = PreviewConns, 0
	pcfg.ConnConfig.RuntimeParams["application_name"] = "fmn preview"
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("open database pool: %w", err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("connect to database: %w", err)
	}
	previews, err := pgxpool.NewWithConfig(ctx, pcfg)
	if err != nil {
		pool.Close()
		return nil, fmt.Errorf("open preview pool: %w", err)
	}
	return &Store{Pool: pool, Previews: previews}, nil
}

// Close closes the pools.
func (s *Store) Close() {
	if s.Previews != nil {
		s.Previews.Close()
	}
	s.Pool.Close()
}

// Ping reports whether the database answers.
func (s *Store) Ping(ctx context.Context) error { return s.Pool.Ping(ctx) }

// InTx runs fn in one transaction, committed when fn returns nil.
func (s *Store) InTx(ctx context.Context, fn func(pgx.Tx) error) error {
	tx, err := s.Pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("begin transaction: %w", err)
	}
	defer tx.Rollback(ctx)
	if err := fn(tx); err != nil {
		return err
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

// translate maps driver errors to domain errors; others are wrapped with what
// failed.
func translate(err error, what string) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, pgx.ErrNoRows) {
		return apperr.ErrNotFound
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch pgErr.Code {
		case "23505": // unique_violation
			return apperr.ErrConflict
		case "23503": // foreign_key_violation
			return apperr.ErrNotFound
		}
	}
	return fmt.Errorf("%s: %w", what, err)
}

// NewSecret returns a random URL-safe secret (32 characters, 192 bits) with
// the given prefix, and the hash under which it is stored. Secrets are looked
// up by hash, so the comparison never leaks timing about the secret itself.
func NewSecret(prefix string) (secret string, hash []byte) {
	b := make([]byte, 24)
	if _, err := rand.Read(b); err != nil {
		panic("crypto/rand failed: " + err.Error()) // cannot happen on Linux
	}
	secret = prefix + base64.RawURLEncoding.EncodeToString(b)
	return secret, HashSecret(secret)
}

// HashSecret is the stored form of a secret.
func HashSecret(secret string) []byte {
	h := sha256.Sum256([]byte(secret))
	return h[:]
}

// Secret returns the named server secret (32 random bytes), creating it on
// first use. Concurrent first uses agree on one value.
func (s *Store) Secret(ctx context.Context, name string) ([]byte, error) {
	fresh := make([]byte, 32)
	if _, err := rand.Read(fresh); err != nil {
		return nil, err
	}
	var v []byte
	var err error
	// A second try covers a concurrent first use that committed after this
	// statement's snapshot was taken.
	for range 2 {
		err = s.Pool.QueryRow(ctx, `WITH ins AS (
				INSERT INTO secrets (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING RETURNING value)
			SELECT value FROM ins UNION ALL SELECT value FROM secrets WHERE name = $1 LIMIT 1`, name, fresh).Scan(&v)
		if err != pgx.ErrNoRows {
			break
		}
	}
	return v, translate(err, "read secret")
}
