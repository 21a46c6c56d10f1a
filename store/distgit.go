package store

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"
)

// dist-git's copy: which users and groups fmn follows (those enabled rules
// name), what each maintains, the bus's requests to read a project again,
// and the refresher's last run. Every write is a diff, so matching never
// sees an emptied table and the change log names only what changed.

// wantedPrincipalsSQL lists the principals enabled rules refer to: the
// owner (owned), owned_by, groups, and the owner's groups (my_groups).
const wantedPrincipalsSQL = `
	WITH r AS (SELECT r.track, u.name AS owner FROM rules r JOIN users u ON u.id = r.user_id WHERE r.enabled)
	SELECT 'user' AS kind, owner AS name FROM r WHERE (track->>'owned')::boolean
	UNION SELECT 'user', jsonb_array_elements_text(track->'owned_by') FROM r WHERE jsonb_typeof(track->'owned_by') = 'array'
	UNION SELECT 'group', jsonb_array_elements_text(track->'groups') FROM r WHERE jsonb_typeof(track->'groups') = 'array'
	UNION SELECT 'group', m.group_name FROM r JOIN group_members m ON m.user_name = r.owner WHERE (track->>'my_groups')::boolean`

// SyncPrincipals makes distgit_principals the principals enabled rules
// refer to: new ones are added (never fetched yet), and the maintainers'
// rows of those no rule follows any more are removed with them.
func (s *Store) SyncPrincipals(ctx context.Context) (added, removed int, err error) {
	err = s.InTx(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, lockDistgitSync); err != nil {
			return translate(err, "lock principals")
		}
		tag, err := tx.Exec(ctx, `INSERT INTO distgit_principals (kind, name) SELECT kind, name FROM (`+wantedPrincipalsSQL+`) w
			ON CONFLICT DO NOTHING`)
		if err != nil {
			return translate(err, "add principals")
		}
		added = int(tag.RowsAffected())
		// wanted_at in the future is a page's pin (PinPrincipal).
		rows, err := tx.Query(ctx, `DELETE FROM distgit_principals p
			WHERE NOT EXISTS (SELECT 1 FROM (`+wantedPrincipalsSQL+`) w WHERE w.kind = p.kind AND w.name = p.name)
			  AND p.wanted_at < now()
			RETURNING kind, name`)
		if err != nil {
			return translate(err, "drop principals")
		}
		var kinds, names []string
		var k, n string
		if _, err := pgx.ForEachRow(rows, []any{&k, &n}, func() error { kinds, names = append(kinds, k), append(names, n); return nil }); err != nil {
			return translate(err, "drop principals")
		}
		removed = len(kinds)
		if removed == 0 {
			return nil
		}
		_, err = tx.Exec(ctx, `DELETE FROM distgit_access a USING unnest($1::text[], $2::text[]) AS g(kind, name)
			WHERE a.principal_kind = g.kind AND a.principal = g.name`, kinds, names)
		return translate(err, "drop principals' projects")
	})
	return added, removed, err
}

// pinFor is how long a page's interest keeps a principal followed without
// a rule: the rule editor shows "Packages I maintain (43)" before the rule
// that follows them is saved.
const pinFor = "1 hour"

// PinPrincipal asks for a principal to be read soon and kept for a while
// without a rule naming it (distgit_principals.wanted_at holds, for such
// a pin, the time until which it is kept), and wakes the refresher.
func (s *Store) PinPrincipal(ctx context.Context, kind, name string) error {
	_, err := s.Pool.Exec(ctx, `WITH pin AS (
			INSERT INTO distgit_principals (kind, name, wanted_at) VALUES ($1, $2, now() + $3::interval)
			ON CONFLICT (kind, name) DO UPDATE SET wanted_at = greatest(distgit_principals.wanted_at, excluded.wanted_at)
			RETURNING 1)
		SELECT pg_notify('fmn_distgit', '') FROM pin`, kind, name, pinFor)
	return translate(err, "pin principal")
}

// lockDistgitSync serialises SyncPrincipals ("fmn!" + 2).
const lockDistgitSync int64 = 0x666d6e21 + 2

// LockDistgit: one refresher reads dist-git at a time, whatever the number
// of work processes ("fmn!" + 3).
const LockDistgit int64 = 0x666d6e21 + 3

// Principal is a dist-git user or group fmn follows.
type Principal struct {
	Kind      string // "user" or "group"
	Name      string
	FetchedAt *time.Time
}

// DuePrincipals returns up to limit principals to read: never read first,
// then those last read before staleBefore, oldest first; one that failed
// waits until failedBefore, so a dist-git outage is not hammered.
func (s *Store) DuePrincipals(ctx context.Context, staleBefore, failedBefore time.Time, limit int) ([]Principal, error) {
	rows, err := s.Pool.Query(ctx, `SELECT kind, name, fetched_at FROM distgit_principals
		WHERE (fetched_at IS NULL OR fetched_at < $1) AND (error_at IS NULL OR error_at < $2)
		ORDER BY fetched_at NULLS FIRST, wanted_at LIMIT $3`, staleBefore, failedBefore, limit)
	if err != nil {
		return nil, translate(err, "list due principals")
	}
	ps, err := pgx.CollectRows(rows, pgx.RowToStructByPos[Principal])
	return ps, translate(err, "list due principals")
}

// AccessRow is one project a principal maintains, with its role.
type AccessRow struct {
	Namespace, Project, Role string
}

// ApplyPrincipal makes the stored projects of one principal exactly rows,
// read from dist-git in a listing begun at started. A project read whole
// since then (by a bus request) is left as that newer reading says. The
// principal is marked fetched; one no longer followed is not written.
func (s *Store) ApplyPrincipal(ctx context.Context, kind, name string, rows []AccessRow, started time.Time) error {
	ns, projects, roles := make([]string, len(rows)), make([]string, len(rows)), make([]string, len(rows))
	for i, r := range rows {
		ns[i], projects[i], roles[i] = r.Namespace, r.Project, r.Role
	}
	return s.InTx(ctx, func(tx pgx.Tx) error {
		// Shared with other writers, exclusive with SyncPrincipals: a
		// principal it drops never keeps rows written meanwhile.
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock_shared($1)`, lockDistgitSync); err != nil {
			return translate(err, "lock principals")
		}
		var one int
		err := tx.QueryRow(ctx, `SELECT 1 FROM distgit_principals WHERE kind = $1 AND name = $2 FOR UPDATE`, kind, name).Scan(&one)
		if err == pgx.ErrNoRows {
			return nil // no rule follows it any more
		}
		if err != nil {
			return translate(err, "check principal")
		}
		if _, err := tx.Exec(ctx, `
			DELETE FROM distgit_access a
			WHERE a.principal_kind = $1 AND a.principal = $2
			  AND NOT EXISTS (SELECT 1 FROM unnest($3::text[], $4::text[]) AS w(ns, project) WHERE w.ns = a.namespace AND w.project = a.project)
			  AND NOT EXISTS (SELECT 1 FROM distgit_projects p WHERE p.namespace = a.namespace AND p.project = a.project AND p.fetched_at > $5)`,
			kind, name, ns, projects, started); err != nil {
			return translate(err, "remove projects of "+name)
		}
		if _, err := tx.Exec(ctx, `
			INSERT INTO distgit_access (namespace, project, principal_kind, principal, role)
			SELECT w.ns, w.project, $1, $2, w.role FROM unnest($3::text[], $4::text[], $5::text[]) AS w(ns, project, role)
			WHERE NOT EXISTS (SELECT 1 FROM distgit_projects p WHERE p.namespace = w.ns AND p.project = w.project AND p.fetched_at > $6)
			ON CONFLICT (namespace, project, principal_kind, principal) DO UPDATE SET role = excluded.role
				WHERE distgit_access.role <> excluded.role`,
			kind, name, ns, projects, roles, started); err != nil {
			return translate(err, "store projects of "+name)
		}
		_, err = tx.Exec(ctx, `UPDATE distgit_principals SET fetched_at = $3, error = NULL, error_at = NULL WHERE kind = $1 AND name = $2`,
			kind, name, started)
		return translate(err, "mark principal read")
	})
}

// PrincipalFailed records why a principal could not be read. Its stored
// projects stay: matching goes on with what is known.
func (s *Store) PrincipalFailed(ctx context.Context, kind, name, reason string) error {
	_, err := s.Pool.Exec(ctx, `UPDATE distgit_principals SET error = $3, error_at = now() WHERE kind = $1 AND name = $2`, kind, name, reason)
	return translate(err, "record principal failure")
}

// RequestProject asks, in tx (the transaction storing the bus message that
// says it changed), for a project to be read again.
func RequestProject(ctx context.Context, tx pgx.Tx, namespace, project string) error {
	_, err := tx.Exec(ctx, `INSERT INTO distgit_requests (namespace, project) VALUES ($1, $2)`, namespace, project)
	return translate(err, "request a dist-git read")
}

// ProjectRequest is a project the bus said changed.
type ProjectRequest struct {
	Namespace, Project string
	UpTo               int64 // the newest request id for it
}

// PendingRequests returns up to limit projects waiting to be read, oldest
// request first.
func (s *Store) PendingRequests(ctx context.Context, limit int) ([]ProjectRequest, error) {
	rows, err := s.Pool.Query(ctx, `SELECT namespace, project, max(id) FROM distgit_requests
		GROUP BY namespace, project ORDER BY min(id) LIMIT $1`, limit)
	if err != nil {
		return nil, translate(err, "list dist-git requests")
	}
	rs, err := pgx.CollectRows(rows, pgx.RowToStructByPos[ProjectRequest])
	return rs, translate(err, "list dist-git requests")
}

// ApplyProject makes the stored maintainers of one project exactly users
// and groups (name → role; empty for a project dist-git no longer has),
// among the principals fmn follows, as read at fetched; and drops the
// requests it answers.
func (s *Store) ApplyProject(ctx context.Context, req ProjectRequest, users, groups map[string]string, fetched time.Time) error {
	var kinds, names, roles []string
	for n, r := range users {
		kinds, names, roles = append(kinds, "user"), append(names, n), append(roles, r)
	}
	for n, r := range groups {
		kinds, names, roles = append(kinds, "group"), append(names, n), append(roles, r)
	}
	return s.InTx(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock_shared($1)`, lockDistgitSync); err != nil {
			return translate(err, "lock principals")
		}
		if _, err := tx.Exec(ctx, `
			DELETE FROM distgit_access a WHERE a.namespace = $1 AND a.project = $2
			  AND NOT EXISTS (SELECT 1 FROM unnest($3::text[], $4::text[]) AS w(kind, name) WHERE w.kind = a.principal_kind AND w.name = a.principal)`,
			req.Namespace, req.Project, kinds, names); err != nil {
			return translate(err, "remove maintainers")
		}
		if _, err := tx.Exec(ctx, `
			INSERT INTO distgit_access (namespace, project, principal_kind, principal, role)
			SELECT $1, $2, w.kind, w.name, w.role FROM unnest($3::text[], $4::text[], $5::text[]) AS w(kind, name, role)
			WHERE EXISTS (SELECT 1 FROM distgit_principals p WHERE p.kind = w.kind AND p.name = w.name)
			ON CONFLICT (namespace, project, principal_kind, principal) DO UPDATE SET role = excluded.role
				WHERE distgit_access.role <> excluded.role`,
			req.Namespace, req.Project, kinds, names, roles); err != nil {
			return translate(err, "store maintainers")
		}
		if _, err := tx.Exec(ctx, `INSERT INTO distgit_projects (namespace, project, fetched_at) VALUES ($1, $2, $3)
			ON CONFLICT (namespace, project) DO UPDATE SET fetched_at = greatest(distgit_projects.fetched_at, excluded.fetched_at)`,
			req.Namespace, req.Project, fetched); err != nil {
			return translate(err, "record project read")
		}
		_, err := tx.Exec(ctx, `DELETE FROM distgit_requests WHERE namespace = $1 AND project = $2 AND id <= $3`,
			req.Namespace, req.Project, req.UpTo)
		return translate(err, "drop answered requests")
	})
}

// DistgitStatus is the refresher's state, for /admin.
type DistgitStatus struct {
	StartedAt, FinishedAt *time.Time
	Fetched, Failed       int
	Error                 string
	ErrorAt               *time.Time
	Principals            int // followed
	NeverFetched          int
	Artifacts             int // distinct projects stored
	PendingRequests       int
}

// SetDistgitRun records a refresh run: started, then finished with counts
// and the last error ("" for none).
func (s *Store) SetDistgitRun(ctx context.Context, started time.Time, finished *time.Time, fetched, failed int, lastErr string) error {
	_, err := s.Pool.Exec(ctx, `UPDATE distgit_status SET started_at = $1, finished_at = $2, fetched = $3, failed = $4,
		error = CASE WHEN $5 = '' THEN error ELSE $5 END, error_at = CASE WHEN $5 = '' THEN error_at ELSE now() END`,
		started, finished, fetched, failed, lastErr)
	return translate(err, "record refresh")
}

// GetDistgitStatus reads the refresher's state and the copy's size.
func (s *Store) GetDistgitStatus(ctx context.Context) (DistgitStatus, error) {
	var st DistgitStatus
	var errText *string
	err := s.Pool.QueryRow(ctx, `SELECT started_at, finished_at, fetched, failed, error, error_at,
			(SELECT count(*) FROM distgit_principals), (SELECT count(*) FROM distgit_principals WHERE fetched_at IS NULL),
			(SELECT count(*) FROM (SELECT DISTINCT namespace, project FROM distgit_access) a),
			(SELECT count(*) FROM distgit_requests)
		FROM distgit_status`).Scan(&st.StartedAt, &st.FinishedAt, &st.Fetched, &st.Failed, &errText, &st.ErrorAt,
		&st.Principals, &st.NeverFetched, &st.Artifacts, &st.PendingRequests)
	if errText != nil {
		st.Error = *errText
	}
	return st, translate(err, "read dist-git status")
}

// Maintained lists what a principal maintains as stored, per namespace.
type Maintained struct {
	Namespace, Project, Role string
}

// ListMaintained returns the stored projects of a principal, by namespace
// and name; fetched says whether dist-git was read for it yet.
func (s *Store) ListMaintained(ctx context.Context, kind, name string) (ms []Maintained, fetched bool, err error) {
	err = s.Pool.QueryRow(ctx, `SELECT fetched_at IS NOT NULL FROM distgit_principals WHERE kind = $1 AND name = $2`, kind, name).Scan(&fetched)
	if err != nil && err != pgx.ErrNoRows {
		return nil, false, translate(err, "read principal")
	}
	rows, err := s.Pool.Query(ctx, `SELECT namespace, project, role FROM distgit_access
		WHERE principal_kind = $1 AND principal = $2 ORDER BY namespace, project`, kind, name)
	if err != nil {
		return nil, false, translate(err, "list maintained")
	}
	ms, err = pgx.CollectRows(rows, pgx.RowToStructByPos[Maintained])
	return ms, fetched, translate(err, "list maintained")
}
