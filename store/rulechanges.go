package store

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/jackc/pgx/v5"

	"fmn/rules"
)

// sinceSQL reads, in one statement and so one snapshot, the current version,
// the log horizon, and the current form of every rule changed after $1: a
// NULL rule id when nothing changed, enabled false when the rule is gone or
// disabled. Only destinations that may receive now are listed.
const sinceSQL = `
WITH v AS (SELECT version, logged_after FROM rules_version),
ids AS (
    SELECT DISTINCT c.rule_id FROM rule_changes c, v
    WHERE c.version > $1 AND c.version <= v.version
)
SELECT v.version, v.logged_after, ids.rule_id,
    coalesce(r.enabled, false), coalesce(u.name, ''), r.user_id, r.track, r.filters,
    coalesce((SELECT array_agg(d.id ORDER BY d.id) FROM rule_destinations rd
        JOIN destinations d ON d.id = rd.destination_id
        WHERE rd.rule_id = r.id AND d.enabled AND d.confirmed_at IS NOT NULL), '{}')
FROM v
LEFT JOIN ids ON true
LEFT JOIN rules r ON r.id = ids.rule_id
LEFT JOIN users u ON u.id = r.user_id`

// RuleChangesSince implements rules.Source.Since.
func RuleChangesSince(ctx context.Context, tx pgx.Tx, since int64) (rules.Changes, bool, error) {
	var ch rules.Changes
	rows, err := tx.Query(ctx, sinceSQL, since)
	if err != nil {
		return ch, false, translate(err, "read rule changes")
	}
	defer rows.Close()
	var loggedAfter int64
	for rows.Next() {
		var id, userID *int64
		var enabled bool
		var owner string
		var track, filters []byte
		var dests []int64
		if err := rows.Scan(&ch.Version, &loggedAfter, &id, &enabled, &owner, &userID, &track, &filters, &dests); err != nil {
			return ch, false, translate(err, "read rule changes")
		}
		if id == nil {
			continue
		}
		if !enabled || owner == "" || userID == nil {
			ch.Deleted = append(ch.Deleted, *id)
			continue
		}
		r := rules.Rule{ID: *id, UserID: *userID, Owner: owner, Enabled: true, Destinations: dests}
		if err := json.Unmarshal(track, &r.Track); err != nil {
			return ch, false, fmt.Errorf("decode rule %d track: %w", r.ID, err)
		}
		if err := json.Unmarshal(filters, &r.Filters); err != nil {
			return ch, false, fmt.Errorf("decode rule %d filters: %w", r.ID, err)
		}
		ch.Upserts = append(ch.Upserts, r)
	}
	if err := rows.Err(); err != nil {
		return ch, false, translate(err, "read rule changes")
	}
	if since < loggedAfter {
		return ch, false, nil
	}
	if err := ownershipSince(ctx, tx, since, &ch); err != nil {
		return ch, false, err
	}
	return ch, true, nil
}

// Since implements rules.Source.
func (RuleSource) Since(ctx context.Context, tx pgx.Tx, since int64) (rules.Changes, bool, error) {
	return RuleChangesSince(ctx, tx, since)
}
