package rules

import (
	"context"
	"fmt"
	"sync"

	"github.com/jackc/pgx/v5"
)

// Source loads rules from the database. The version is a counter that every
// change to rules, their destinations or their owners bumps.
type Source interface {
	Version(ctx context.Context, tx pgx.Tx) (int64, error)
	Load(ctx context.Context, tx pgx.Tx) (int64, []Rule, error)
}

// Live keeps a Set current. The consumer asks it for the Set inside the very
// transaction that stores a message, and Live checks the version there: a rule
// committed before the message is always seen, with no window in which a
// changed rule is missing.
type Live struct {
	src     Source
	mu      sync.Mutex
	version int64
	set     *Set
}

// NewLive returns a Live that loads on first use.
func NewLive(src Source) *Live { return &Live{src: src} }

// Current returns the Set as of tx's snapshot, reloading when rules changed.
func (l *Live) Current(ctx context.Context, tx pgx.Tx) (*Set, error) {
	v, err := l.src.Version(ctx, tx)
	if err != nil {
		return nil, err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.set != nil && l.version == v {
		return l.set, nil
	}
	v, rs, err := l.src.Load(ctx, tx)
	if err != nil {
		return nil, fmt.Errorf("load rules: %w", err)
	}
	l.set, l.version = NewSet(rs), v
	return l.set, nil
}
