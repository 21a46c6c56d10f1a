package rules

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/jackc/pgx/v5"
)

// Changes is what changed in the rules between two versions.
type Changes struct {
	Version int64
	// Upserts holds the current form of every changed rule that can match
	// (enabled, with an owner name and its deliverable destinations).
	Upserts []Rule
	// Deleted holds the changed rules that can no longer match: deleted,
	// disabled, or whose owner is gone.
	Deleted []int64
	// Artifacts holds the current maintainers of every artifact whose
	// maintainers changed; Members the current groups of every user whose
	// groups changed. A full load lists them all.
	Artifacts []ArtifactOwners
	Members   []Membership
}

// Source reads rules from the database. The version is a counter that every
// change to rules, their destinations or their owners bumps, and each bump
// records which rules it touched.
type Source interface {
	// Version reads the current version in tx.
	Version(ctx context.Context, tx pgx.Tx) (int64, error)
	// Load reads the whole state, at one version: every rule that can
	// match (Upserts), every artifact's maintainers and every user's groups.
	Load(ctx context.Context, tx pgx.Tx) (Changes, error)
	// Since reads the changes after version since; ok is false when the
	// change log no longer reaches back that far.
	Since(ctx context.Context, tx pgx.Tx, since int64) (ch Changes, ok bool, err error)
}

// Live keeps a Set current. The consumer asks it for the Set inside the very
// transaction that stores a message, and Live compares versions there: a rule
// committed before the message is always seen, with no window in which a
// changed rule is missing. A change is applied with Set.With, touching only
// the changed rules, into a new Set; a reader holding the previous Set keeps
// matching against it, whole, so no message ever meets a half-updated index.
type Live struct {
	src     Source
	mu      sync.Mutex // one updater at a time
	current atomic.Pointer[liveSet]

	// Loads and Updates count full loads and incremental updates, for tests
	// and metrics.
	Loads, Updates atomic.Int64
}

type liveSet struct {
	version int64
	set     *Set
}

// NewLive returns a Live that loads on first use.
func NewLive(src Source) *Live { return &Live{src: src} }

// Current returns a Set at least as new as tx's view of the rules.
func (l *Live) Current(ctx context.Context, tx pgx.Tx) (*Set, error) {
	v, err := l.src.Version(ctx, tx)
	if err != nil {
		return nil, err
	}
	if cur := l.current.Load(); cur != nil && cur.version >= v {
		return cur.set, nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	cur := l.current.Load()
	if cur != nil && cur.version >= v {
		return cur.set, nil
	}
	if cur != nil {
		ch, ok, err := l.src.Since(ctx, tx, cur.version)
		if err != nil {
			return nil, fmt.Errorf("read rule changes: %w", err)
		}
		if ok {
			next := &liveSet{version: ch.Version, set: cur.set.Apply(ch)}
			l.current.Store(next)
			l.Updates.Add(1)
			return next.set, nil
		}
	}
	all, err := l.src.Load(ctx, tx)
	if err != nil {
		return nil, fmt.Errorf("load rules: %w", err)
	}
	next := &liveSet{version: all.Version, set: NewSetFrom(all)}
	l.current.Store(next)
	l.Loads.Add(1)
	return next.set, nil
}

// Peek returns the Set Live holds now, without asking the database; nil
// before the first load.
func (l *Live) Peek() *Set {
	if cur := l.current.Load(); cur != nil {
		return cur.set
	}
	return nil
}
