package store

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"fmn"
	"fmn/apperr"
	"fmn/rules"
)

// Preview is what a rule would have matched among the stored messages.
type Preview struct {
	Count    int64         `json:"count"`
	Days     int           `json:"days"`
	Messages []fmn.Message `json:"messages"` // the latest, newest first
}

// previewTimeout bounds each statement of a preview: the editor previews
// as the user types, and a slow answer is worth less than none. Short,
// because a preview is the one query a user can make heavy at will.
const previewTimeout = "3s"

// PreviewRule returns the messages received in the last days days that
// rule r, owned by the user called owner, would have matched (its
// destinations aside): their count and the latest limit of them.
//
// The rule becomes one SQL condition: each tracking entry is an arm of an
// OR that an index serves (the GIN indexes on the name arrays, btree on app
// and topic; a glob over names or topics is first turned into the stored
// names it matches, see namesLike), so PostgreSQL can combine bitmap scans
// instead of reading the whole window; the filters are applied to those
// rows.
func (s *Store) PreviewRule(ctx context.Context, r rules.Rule, owner string, days, limit int) (Preview, error) {
	p := Preview{Days: days, Messages: []fmn.Message{}}
	var q sqlArgs
	where := fmt.Sprintf("m.received_at > now() - make_interval(days => %s) AND (%s)%s",
		q.add(days), previewTracked(&q, r, owner), previewFilters(&q, r, owner))
	pool := s.Previews
	if pool == nil {
		pool = s.Pool
	}
	tx, err := pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return p, translate(err, "begin preview")
	}
	defer tx.Rollback(ctx)
	// One core per preview: parallel workers would let one preview take
	// every core of the database server.
	if _, err := tx.Exec(ctx, "SET LOCAL statement_timeout = '"+previewTimeout+"'; SET LOCAL max_parallel_workers_per_gather = 0"); err != nil {
		return p, translate(err, "preview")
	}
	if err := tx.QueryRow(ctx, `SELECT count(*) FROM messages m WHERE `+where, q.args...).Scan(&p.Count); err != nil {
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && pgErr.Code == "57014" { // query_canceled: the timeout
			return p, apperr.Invalid("track", "this rule matches too much to preview quickly; narrow it down or preview fewer days")
		}
		return p, translate(err, "count preview")
	}
	if p.Count == 0 {
		return p, nil
	}
	rows, err := tx.Query(ctx, `SELECT `+messageCols+` FROM messages m WHERE `+where+
		` ORDER BY m.id DESC LIMIT `+q.add(limit), q.args...)
	if err != nil {
		return p, translate(err, "preview")
	}
	p.Messages, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (fmn.Message, error) { return scanMessage(r) })
	return p, translate(err, "preview")
}

type sqlArgs struct{ args []any }

func (q *sqlArgs) add(v any) string {
	q.args = append(q.args, v)
	return fmt.Sprintf("$%d", len(q.args))
}

// split separates literal names from globs.
func split(ps []string) (exact []string, globs []rules.Glob) {
	for _, p := range ps {
		if g := rules.CompileGlob(p); g.IsLiteral() {
			exact = append(exact, p)
		} else {
			globs = append(globs, g)
		}
	}
	return exact, globs
}

func previewTracked(q *sqlArgs, r rules.Rule, owner string) string {
	var arms []string
	// The arrays' GIN indexes leave empty arrays out (migration 0014):
	// each overlap says so, for the planner to use them.
	arrayArms := func(col string, ps []string, extra ...string) {
		exact, globs := split(ps)
		exact = append(exact, extra...)
		if len(exact) > 0 {
			arms = append(arms, fmt.Sprintf("(m.%s <> '{}' AND m.%s && %s::text[])", col, col, q.add(exact)))
		}
		if len(globs) > 0 {
			arms = append(arms, fmt.Sprintf("(m.%s <> '{}' AND m.%s && %s)", col, col, namesLike(q, col, globs)))
		}
	}
	var mine []string
	if r.Track.Mine {
		mine = append(mine, owner)
	}
	arrayArms("usernames", r.Track.Users, mine...)
	arrayArms("packages", r.Track.Packages)
	arrayArms("containers", r.Track.Containers)
	arrayArms("modules", r.Track.Modules)
	arrayArms("flatpaks", r.Track.Flatpaks)
	arms = append(arms, previewOwned(q, r, owner)...)
	scalarArms := func(col string, ps []string) {
		exact, globs := split(ps)
		if len(exact) > 0 {
			arms = append(arms, fmt.Sprintf("m.%s = ANY(%s::text[])", col, q.add(exact)))
		}
		if len(globs) == 0 {
			return
		}
		if col == "topic" {
			arms = append(arms, fmt.Sprintf("m.topic = ANY(%s)", namesLike(q, col, globs)))
			return
		}
		for _, g := range globs {
			arms = append(arms, fmt.Sprintf("m.%s LIKE %s", col, q.add(g.Like())))
		}
	}
	scalarArms("app", r.Track.Apps)
	scalarArms("topic", r.Track.Topics)
	// A message without an agent was done by nobody: agents never match it.
	n := len(arms)
	scalarArms("agent", r.Track.Agents)
	for i := n; i < len(arms); i++ {
		arms[i] = "(m.agent <> '' AND " + arms[i] + ")"
	}
	if len(arms) == 0 {
		return "false"
	}
	return strings.Join(arms, " OR ")
}

// namesLike is the array of the stored names of column col (a message
// array, or topic) that match any of globs. message_names holds every name
// any stored message has (a trigger on the log fills it), so the glob is
// matched against a few thousand names rather than every message, and the
// messages are then found by name through col's index, as for names given
// literally. The ARRAY(…) is computed once per statement (an InitPlan).
func namesLike(q *sqlArgs, col string, globs []rules.Glob) string {
	likes := make([]string, len(globs))
	for i, g := range globs {
		likes[i] = g.Like()
	}
	return fmt.Sprintf("ARRAY(SELECT n.name FROM message_names n WHERE n.kind = '%s' AND n.name LIKE ANY(%s::text[]))", col, q.add(likes))
}

// artifactColumns are the message columns of each dist-git namespace.
var artifactColumns = []struct{ namespace, column string }{
	{"rpms", "packages"}, {"container", "containers"}, {"modules", "modules"}, {"flatpaks", "flatpaks"},
}

// previewOwned turns owned, owned_by, groups and my_groups into one arm per
// artifact kind: the message's artifacts overlap what the principals
// maintain, as stored now. The ARRAY(…) is computed once (an InitPlan),
// so the overlap is served by the column's GIN index like a literal list.
func previewOwned(q *sqlArgs, r rules.Rule, owner string) []string {
	t := r.Track
	if !t.OwnershipKinds() {
		return nil
	}
	users := slices.Clone(t.OwnedBy)
	if t.Owned {
		users = append(users, owner)
	}
	if users == nil {
		users = []string{}
	}
	groups := slices.Clone(t.Groups)
	if groups == nil {
		groups = []string{}
	}
	pu, pg, pmine, powner := q.add(users), q.add(groups), q.add(t.MyGroups), q.add(owner)
	var arms []string
	for _, ac := range artifactColumns {
		arms = append(arms, fmt.Sprintf(`(m.%s <> '{}' AND m.%s && ARRAY(SELECT a.project FROM distgit_access a WHERE a.namespace = '%s' AND (
			a.principal_kind = 'user' AND a.principal = ANY(%s::text[]) OR
			a.principal_kind = 'group' AND (a.principal = ANY(%s::text[]) OR
				%s::boolean AND a.principal IN (SELECT group_name FROM group_members WHERE user_name = %s)))))`,
			ac.column, ac.column, ac.namespace, pu, pg, pmine, powner))
	}
	return arms
}

func likes(ps []string) []string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = rules.CompileGlob(p).Like()
	}
	return out
}

func previewFilters(q *sqlArgs, r rules.Rule, owner string) string {
	var b strings.Builder
	f := r.Filters
	if len(f.Apps) > 0 {
		fmt.Fprintf(&b, " AND m.app LIKE ANY(%s::text[])", q.add(likes(f.Apps)))
	}
	if len(f.AppsExclude) > 0 {
		fmt.Fprintf(&b, " AND NOT (m.app LIKE ANY(%s::text[]))", q.add(likes(f.AppsExclude)))
	}
	if len(f.TopicsExclude) > 0 {
		fmt.Fprintf(&b, " AND NOT (m.topic LIKE ANY(%s::text[]))", q.add(likes(f.TopicsExclude)))
	}
	if f.NotMyActions {
		fmt.Fprintf(&b, " AND m.agent <> %s", q.add(owner))
	}
	// Ranked as the matcher ranks them: no severity and unknown words
	// count as info, so "at least info" only leaves out debug.
	sevs := rules.Severities()
	switch min := rules.SeverityRank(f.SeverityAtLeast); {
	case sevs[min] == "debug":
	case sevs[min] == "info":
		fmt.Fprintf(&b, " AND m.severity <> %s", q.add("debug"))
	default:
		fmt.Fprintf(&b, " AND m.severity = ANY(%s::text[])", q.add(sevs[min:]))
	}
	return b.String()
}
