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
	"runtime"
	"strings"
	"sync/atomic"
	"time"

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

	// connConfig opens the Dedicated connections of those that hold one
	// for good (listeners, lock holders), outside both pools.
	connConfig *pgx.ConnConfig

	// partitionsChecked is when EnsurePartitions next looks (unix
	// seconds; 0: at once).
	partitionsChecked atomic.Int64
}

// PreviewConns is the size of the previews' pool: with the web role's
// own per-process budget (web.previewGate) in front of it, at most this
// many previews run at once per process, each on one core.
const PreviewConns = 2

// poolConns is the working pool's size unless the database URL sets one:
// two more than pgxpool's own default (one per core, at least four).
// Whatever holds a connection for good (the rule follower, the live
// view's listener, the bots' and the refresher's locks) takes a Dedicated
// one, and River's listener leaves the pool too, so the pool is only for
// short work and sized to the cores: more connections than that only make
// the ingester's, the workers' and the pages' statements wait for CPU. On
// two cores, interleaved push runs (7 each) gave 560 msgs/s with 4, 580
// with 6 and 443 with 16 (and the holders inside), against 535 at the
// base commit.
func poolConns() int32 { return int32(max(4, runtime.NumCPU())) + 2 }

// Open connects and pings, so that a wrong URL fails at start.
func Open(ctx context.Context, url string) (*Store, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("parse database URL: %w", err)
	}
	if !strings.Contains(url, "pool_max_conns") {
		cfg.MaxConns = poolConns()
	}
	dcfg := cfg.ConnConfig.Copy()
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
	return &Store{Pool: pool, Previews: previews, connConfig: dcfg}, nil
}

// Dedicated opens a connection outside the pools for one that keeps it
// for good: a LISTEN, a session advisory lock. Such holders in the pool
// would take its connections from the short work it is sized for, and a
// few of them at once could leave none. The caller closes it; closing it
// also ends its LISTENs and releases its session locks. role names it in
// pg_stat_activity ("fmn " + role).
func (s *Store) Dedicated(ctx context.Context, role string) (*pgx.Conn, error) {
	cfg := s.connConfig.Copy()
	cfg.RuntimeParams["application_name"] = "fmn " + role
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("connect for %s: %w", role, err)
	}
	return conn, nil
}

// closeWait bounds how long closing a Dedicated connection waits for the
// server's side of it: a database that went away must not hold up a
// shutdown.
const closeWait = 5 * time.Second

// CloseDedicated closes a connection from Dedicated, ending its LISTENs and
// releasing its session locks, waiting at most closeWait.
func CloseDedicated(conn *pgx.Conn) {
	ctx, cancel := context.WithTimeout(context.Background(), closeWait)
	defer cancel()
	_ = conn.Close(ctx)
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
