package owners

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"fmn/store"
)

// Refresher keeps the store's copy of dist-git current for the principals
// enabled rules follow. One process at a time does it (it holds
// store.LockDistgit; another takes over when it stops). It works when woken
// (a bus request, a rule or membership change: NOTIFY fmn_distgit and
// fmn_rules) and at least every Poll:
//
//  1. SyncPrincipals: principals newly referenced are added, never read;
//     those no rule follows any more are dropped with their rows;
//  2. projects the bus said changed are read again (GetProject);
//  3. principals never read, then those last read more than Every ago, are
//     read (UserProjects, GroupProjects), a batch per round.
//
// Every write is a diff of one principal or one project, so matching never
// pauses or sees a half-empty copy; when dist-git is down the copy stays as
// it is and the error is recorded for /admin.
type Refresher struct {
	Store  *store.Store
	Client *Client
	Every  time.Duration // FMN_DISTGIT_REFRESH
	Log    *slog.Logger

	// Poll bounds the time between rounds when nothing wakes the
	// refresher; Retry is how long a principal that failed waits before
	// it is tried again. Zero values take the defaults.
	Poll, Retry time.Duration
	// Rounds, when set, is called after each round (tests wait on it).
	Rounds func(Round)
}

// Round is what one round did.
type Round struct {
	Synced           bool
	Added, Removed   int // principals
	Projects         int // read for bus requests
	Fetched, Failed  int // principals read, failed
	Err              error
	MorePrincipals   bool // a batch was full: another round follows at once
	PendingRequested bool
}

// Defaults: rounds are cheap when idle (three small queries); a minute
// bounds how late a change no notification announced is noticed.
const (
	defaultPoll  = time.Minute
	defaultRetry = 5 * time.Minute
	// principalBatch principals are read per round, so that bus requests
	// are never stuck behind a day's full refresh.
	principalBatch = 20
	requestBatch   = 50
	// minGap coalesces a burst of notifications into one round.
	minGap = 200 * time.Millisecond
)

// Run refreshes until ctx ends.
func (r *Refresher) Run(ctx context.Context) error {
	for ctx.Err() == nil {
		err := r.lead(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			r.Log.Warn("dist-git refresher: retrying", "err", err)
		}
		sleep(ctx, 5*time.Second)
	}
	return nil
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// lead takes the lock and runs rounds while it holds it. One connection
// of its own (store.Dedicated) holds the session lock and listens on
// fmn_distgit (a bus request) and fmn_rules (rules, memberships, its own
// writes); its rounds use the pool. Losing the connection loses the lock; lead returns and
// another process (or this one, later) takes over. It returns nil, having
// done nothing, while another process holds the lock.
func (r *Refresher) lead(ctx context.Context) error {
	// The connection holds the lock and listens, and is closed
	// (releasing both) when lead returns.
	pc, err := r.Store.Dedicated(ctx, "dist-git refresher")
	if err != nil {
		return err
	}
	defer store.CloseDedicated(pc)
	var mine bool
	if err := pc.QueryRow(ctx, `SELECT pg_try_advisory_lock($1)`, store.LockDistgit).Scan(&mine); err != nil {
		return fmt.Errorf("take the refresher's lock: %w", err)
	}
	if !mine {
		return nil
	}
	for _, ch := range []string{"fmn_distgit", "fmn_rules"} {
		if _, err := pc.Exec(ctx, "LISTEN "+ch); err != nil {
			return fmt.Errorf("listen on %s: %w", ch, err)
		}
	}
	r.Log.Info("dist-git refresher running", "url", r.Client.BaseURL, "every", r.Every)
	poll := r.Poll
	if poll <= 0 {
		poll = defaultPoll
	}
	for {
		round := r.round(ctx)
		if r.Rounds != nil {
			r.Rounds(round)
		}
		next := poll
		if round.MorePrincipals || round.PendingRequested {
			next = minGap
		}
		// Wait for a notification or the poll; the wait also checks the
		// connection, and with it the lock.
		wctx, cancel := context.WithTimeout(ctx, next)
		_, err := pc.WaitForNotification(wctx)
		cancel()
		if ctx.Err() != nil {
			return nil
		}
		if err != nil && !errors.Is(err, context.DeadlineExceeded) {
			return fmt.Errorf("lost the refresher's connection: %w", err)
		}
		if err == nil {
			// A burst of notifications makes one round.
			sleep(ctx, minGap)
			for {
				dctx, cancel := context.WithTimeout(ctx, time.Millisecond)
				_, err := pc.WaitForNotification(dctx)
				cancel()
				if err != nil {
					break
				}
			}
		}
	}
}

// round does one round of work, and records it for /admin when it read
// dist-git.
func (r *Refresher) round(ctx context.Context) Round {
	var rd Round
	started := time.Now()
	var err error
	if rd.Added, rd.Removed, err = r.Store.SyncPrincipals(ctx); err != nil {
		rd.Err = err
		return rd
	}
	rd.Synced = true
	lastErr := ""
	fail := func(what string, err error) {
		rd.Err = err
		lastErr = what + ": " + err.Error()
		r.Log.Warn("dist-git read failed", "what", what, "err", err)
	}

	reqs, err := r.Store.PendingRequests(ctx, requestBatch)
	if err != nil {
		rd.Err = err
		return rd
	}
	for _, req := range reqs {
		fetched := time.Now()
		p, err := r.Client.GetProject(ctx, req.Namespace, req.Project)
		if err != nil && !errors.Is(err, ErrNotFound) {
			fail(req.Namespace+"/"+req.Project, err)
			break // dist-git is failing: the requests wait for the next round
		}
		var a Access // a project gone from dist-git: nobody maintains it
		if err == nil {
			a = p.maintainers()
		}
		if err := r.Store.ApplyProject(ctx, req, a.Users, a.Groups, fetched); err != nil {
			rd.Err = err
			return rd
		}
		rd.Projects++
	}
	rd.PendingRequested = len(reqs) == requestBatch && rd.Err == nil

	retry := r.Retry
	if retry <= 0 {
		retry = defaultRetry
	}
	due, err := r.Store.DuePrincipals(ctx, started.Add(-r.Every), started.Add(-retry), principalBatch)
	if err != nil {
		rd.Err = err
		return rd
	}
	for _, p := range due {
		readAt := time.Now()
		var ps []Project
		if p.Kind == "group" {
			ps, err = r.Client.GroupProjects(ctx, p.Name)
			if errors.Is(err, ErrNotFound) {
				ps, err = nil, nil // no such group in dist-git: it maintains nothing
			}
		} else {
			ps, err = r.Client.UserProjects(ctx, p.Name)
		}
		if err != nil {
			rd.Failed++
			fail(p.Kind+" "+p.Name, err)
			if e := r.Store.PrincipalFailed(ctx, p.Kind, p.Name, err.Error()); e != nil {
				rd.Err = e
				return rd
			}
			continue
		}
		if err := r.Store.ApplyPrincipal(ctx, p.Kind, p.Name, accessRows(ps, p), readAt); err != nil {
			rd.Err = err
			return rd
		}
		rd.Fetched++
	}
	rd.MorePrincipals = len(due) == principalBatch
	if rd.Fetched+rd.Failed+rd.Projects > 0 || lastErr != "" {
		now := time.Now()
		if err := r.Store.SetDistgitRun(ctx, started, &now, rd.Fetched+rd.Projects, rd.Failed, lastErr); err != nil {
			r.Log.Warn("record dist-git refresh", "err", err)
		}
		r.Log.Debug("dist-git round", "added", rd.Added, "removed", rd.Removed, "projects", rd.Projects,
			"fetched", rd.Fetched, "failed", rd.Failed)
	}
	return rd
}

// accessRows turns a principal's projects into its rows, with its role.
func accessRows(ps []Project, p store.Principal) []store.AccessRow {
	var rows []store.AccessRow
	for _, pr := range ps {
		a := pr.maintainers()
		role := a.Users[p.Name]
		if p.Kind == "group" {
			role = a.Groups[p.Name]
		}
		if role != "" {
			rows = append(rows, store.AccessRow{Namespace: pr.Namespace, Project: pr.Name, Role: role})
		}
	}
	return rows
}
