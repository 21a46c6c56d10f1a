package store

import (
	"context"

	"github.com/jackc/pgx/v5"

	"fmn/rules"
)

// The matcher's view of ownership: every artifact's maintainers and every
// user's groups, whole at start (LoadMatchState) and then as changes
// (ownership_changes, logged by the triggers of migration 0008 under the
// rules version counter).

const artifactOwnersSQL = `
	SELECT namespace, project,
		coalesce(array_agg(principal ORDER BY principal) FILTER (WHERE principal_kind = 'user'), '{}'),
		coalesce(array_agg(principal ORDER BY principal) FILTER (WHERE principal_kind = 'group'), '{}')
	FROM distgit_access GROUP BY namespace, project`

const membersSQL = `SELECT user_name, array_agg(group_name ORDER BY group_name) FROM group_members GROUP BY user_name`

// ownershipSinceSQL reads the current maintainers of every artifact, and
// the current groups of every user, changed after $1 up to $2: empty lists
// when nobody (or no group) is left.
const ownershipSinceSQL = `
WITH ch AS (SELECT DISTINCT kind, key FROM ownership_changes WHERE version > $1 AND version <= $2)
SELECT ch.kind, ch.key,
	coalesce((SELECT array_agg(a.principal ORDER BY a.principal) FROM distgit_access a
		WHERE ch.kind = 'artifact' AND a.namespace = split_part(ch.key, '/', 1)
		  AND a.project = substr(ch.key, length(split_part(ch.key, '/', 1)) + 2) AND a.principal_kind = 'user'), '{}'),
	coalesce((SELECT array_agg(a.principal ORDER BY a.principal) FROM distgit_access a
		WHERE ch.kind = 'artifact' AND a.namespace = split_part(ch.key, '/', 1)
		  AND a.project = substr(ch.key, length(split_part(ch.key, '/', 1)) + 2) AND a.principal_kind = 'group'), '{}'),
	coalesce((SELECT array_agg(m.group_name ORDER BY m.group_name) FROM group_members m
		WHERE ch.kind = 'member' AND m.user_name = ch.key), '{}')
FROM ch`

// LoadMatchState reads everything the matcher needs, in tx: the rules that
// can match at their version (as LoadMatchable), every artifact's
// maintainers and every user's groups.
func LoadMatchState(ctx context.Context, tx pgx.Tx) (rules.Changes, error) {
	v, rs, err := LoadMatchable(ctx, tx)
	if err != nil {
		return rules.Changes{}, err
	}
	ch := rules.Changes{Version: v, Upserts: rs}
	rows, err := tx.Query(ctx, artifactOwnersSQL)
	if err != nil {
		return ch, translate(err, "load maintainers")
	}
	var a rules.ArtifactOwners
	if _, err := pgx.ForEachRow(rows, []any{&a.Namespace, &a.Name, &a.Users, &a.Groups}, func() error {
		ch.Artifacts = append(ch.Artifacts, a)
		return nil
	}); err != nil {
		return ch, translate(err, "load maintainers")
	}
	rows, err = tx.Query(ctx, membersSQL)
	if err != nil {
		return ch, translate(err, "load memberships")
	}
	var m rules.Membership
	if _, err := pgx.ForEachRow(rows, []any{&m.User, &m.Groups}, func() error {
		ch.Members = append(ch.Members, m)
		return nil
	}); err != nil {
		return ch, translate(err, "load memberships")
	}
	return ch, nil
}

// ownershipSince adds to ch the ownership changes after since up to
// ch.Version. It runs after the rules' statement, so in read-committed tx
// it may see a later state of some artifact than ch.Version: harmless, as
// every change after ch.Version is logged above it and read again by the
// next call, which converges on the same state.
func ownershipSince(ctx context.Context, tx pgx.Tx, since int64, ch *rules.Changes) error {
	rows, err := tx.Query(ctx, ownershipSinceSQL, since, ch.Version)
	if err != nil {
		return translate(err, "read ownership changes")
	}
	var kind, key string
	var users, groups, memberOf []string
	_, err = pgx.ForEachRow(rows, []any{&kind, &key, &users, &groups, &memberOf}, func() error {
		if kind == "member" {
			ch.Members = append(ch.Members, rules.Membership{User: key, Groups: memberOf})
			return nil
		}
		ns, name, ok := cutArtifact(key)
		if ok {
			ch.Artifacts = append(ch.Artifacts, rules.ArtifactOwners{Namespace: ns, Name: name, Users: users, Groups: groups})
		}
		return nil
	})
	return translate(err, "read ownership changes")
}

// cutArtifact splits "rpms/python-foo".
func cutArtifact(key string) (ns, name string, ok bool) {
	for i := 0; i < len(key); i++ {
		if key[i] == '/' {
			return key[:i], key[i+1:], i > 0 && i < len(key)-1
		}
	}
	return "", "", false
}
