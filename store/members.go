package store

import (
	"context"
	"regexp"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
)

// Group membership, by bus name: from the OIDC groups claim at each sign-in
// (the whole list) and from the account system's bus messages (one change
// each). "my_groups" rules follow it.

// maxGroups bounds the groups kept per user from a claim: Fedora's busiest
// accounts are in a few hundred.
const maxGroups = 1000

// groupNameRE is what a group name may be: FAS and Pagure group names, with
// room for other providers' conventions, never blanks or control characters.
var groupNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.@+-]{0,127}$`)

// ValidGroupName reports whether name can be a group's name.
func ValidGroupName(name string) bool { return groupNameRE.MatchString(name) }

// cleanGroups keeps the usable names, sorted and unique.
func cleanGroups(groups []string) []string {
	out := make([]string, 0, len(groups))
	for _, g := range groups {
		if ValidGroupName(g) {
			out = append(out, g)
		}
	}
	slices.Sort(out)
	out = slices.Compact(out)
	if len(out) > maxGroups {
		out = out[:maxGroups]
	}
	return out
}

// setMemberships makes user's groups exactly groups, as a diff: a sign-in
// with an unchanged claim writes nothing, so nothing is logged and no
// matcher does any work.
func setMemberships(ctx context.Context, tx pgx.Tx, user string, groups []string, source string) error {
	groups = cleanGroups(groups)
	if _, err := tx.Exec(ctx, `DELETE FROM group_members WHERE user_name = $1 AND NOT (group_name = ANY($2::text[]))`,
		user, groups); err != nil {
		return translate(err, "remove memberships")
	}
	_, err := tx.Exec(ctx, `INSERT INTO group_members (user_name, group_name, source)
		SELECT $1, g, $3 FROM unnest($2::text[]) g ON CONFLICT DO NOTHING`, user, groups, source)
	return translate(err, "add memberships")
}

// ApplyMembership records in tx that the account system added user to
// group (or removed them). Only users fmn knows are recorded: the bus
// speaks of everyone, and the others have no rule to follow it.
func ApplyMembership(ctx context.Context, tx pgx.Tx, user, group string, added bool) error {
	if !ValidGroupName(group) || ValidUserName(user) != nil {
		return nil
	}
	if !added {
		_, err := tx.Exec(ctx, `DELETE FROM group_members WHERE user_name = $1 AND group_name = $2`, user, group)
		return translate(err, "remove membership")
	}
	_, err := tx.Exec(ctx, `INSERT INTO group_members (user_name, group_name, source)
		SELECT $1, $2, 'bus' WHERE EXISTS (SELECT 1 FROM users WHERE name = $1)
		ON CONFLICT DO NOTHING`, user, group)
	return translate(err, "add membership")
}

// Membership is one group of a user, as the settings page shows it.
type Membership struct {
	Group     string    `json:"group"`
	Source    string    `json:"source"` // "oidc" or "bus"
	UpdatedAt time.Time `json:"updated_at"`
}

// ListMemberships returns user's groups by name.
func (s *Store) ListMemberships(ctx context.Context, user string) ([]Membership, error) {
	rows, err := s.Pool.Query(ctx, `SELECT group_name, source, updated_at FROM group_members WHERE user_name = $1 ORDER BY group_name`, user)
	if err != nil {
		return nil, translate(err, "list memberships")
	}
	ms, err := pgx.CollectRows(rows, pgx.RowToStructByPos[Membership])
	return ms, translate(err, "list memberships")
}
