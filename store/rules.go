package store

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/jackc/pgx/v5"

	"fmn/apperr"
	"fmn/rules"
)

const ruleCols = `r.id, r.user_id, r.name, r.enabled, r.track, r.filters,
	coalesce((SELECT array_agg(rd.destination_id ORDER BY rd.destination_id) FROM rule_destinations rd WHERE rd.rule_id = r.id), '{}')`

func scanRule(row pgx.Row) (rules.Rule, error) {
	var r rules.Rule
	var track, filters []byte
	if err := row.Scan(&r.ID, &r.UserID, &r.Name, &r.Enabled, &track, &filters, &r.Destinations); err != nil {
		return r, err
	}
	if err := json.Unmarshal(track, &r.Track); err != nil {
		return r, fmt.Errorf("decode rule %d track: %w", r.ID, err)
	}
	if err := json.Unmarshal(filters, &r.Filters); err != nil {
		return r, fmt.Errorf("decode rule %d filters: %w", r.ID, err)
	}
	return r, nil
}

// ListRules returns a user's rules, oldest first.
func (s *Store) ListRules(ctx context.Context, userID int64) ([]rules.Rule, error) {
	rows, err := s.Pool.Query(ctx, `SELECT `+ruleCols+` FROM rules r WHERE r.user_id = $1 ORDER BY r.id`, userID)
	if err != nil {
		return nil, translate(err, "list rules")
	}
	rs, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (rules.Rule, error) { return scanRule(r) })
	return rs, translate(err, "list rules")
}

// GetRule returns one of a user's rules.
func (s *Store) GetRule(ctx context.Context, userID, id int64) (rules.Rule, error) {
	r, err := scanRule(s.Pool.QueryRow(ctx, `SELECT `+ruleCols+` FROM rules r WHERE r.id = $1 AND r.user_id = $2`, id, userID))
	return r, translate(err, "get rule")
}

// SaveRule creates the rule (ID 0) or replaces it, with its destinations, in
// one transaction. The rule must be valid; its destinations must be the
// user's own.
func (s *Store) SaveRule(ctx context.Context, r rules.Rule) (rules.Rule, error) {
	return s.SaveRuleWithin(ctx, r, 0)
}

// SaveRuleWithin is SaveRule refusing to create a user's rule beyond
// maxRules of them (FMN_MAX_RULES_PER_USER; 0: no limit): every rule costs
// the matcher on every message, so one scripted account must not be able
// to add thousands. Replacing a rule is always allowed.
func (s *Store) SaveRuleWithin(ctx context.Context, r rules.Rule, maxRules int) (rules.Rule, error) {
	track, err := json.Marshal(r.Track)
	if err != nil {
		return r, fmt.Errorf("encode track: %w", err)
	}
	filters, err := json.Marshal(r.Filters)
	if err != nil {
		return r, fmt.Errorf("encode filters: %w", err)
	}
	var saved rules.Rule
	err = s.InTx(ctx, func(tx pgx.Tx) error {
		if r.ID == 0 {
			if err := checkQuota(ctx, tx, r.UserID, "rules", maxRules); err != nil {
				return err
			}
		}
		var owned int
		if err := tx.QueryRow(ctx, `SELECT count(*) FROM destinations WHERE user_id = $1 AND id = ANY($2)`,
			r.UserID, r.Destinations).Scan(&owned); err != nil {
			return translate(err, "check rule destinations")
		}
		if owned != len(r.Destinations) {
			return apperr.Invalid("destinations", "no such destination of yours")
		}
		id := r.ID
		if id == 0 {
			err = tx.QueryRow(ctx, `INSERT INTO rules (user_id, name, enabled, track, filters)
				VALUES ($1, $2, $3, $4, $5) RETURNING id`, r.UserID, r.Name, r.Enabled, track, filters).Scan(&id)
		} else {
			err = tx.QueryRow(ctx, `UPDATE rules SET name = $3, enabled = $4, track = $5, filters = $6, updated_at = now()
				WHERE id = $1 AND user_id = $2 RETURNING id`, r.ID, r.UserID, r.Name, r.Enabled, track, filters).Scan(&id)
		}
		if err != nil {
			return translate(err, "save rule")
		}
		if _, err := tx.Exec(ctx, `DELETE FROM rule_destinations WHERE rule_id = $1`, id); err != nil {
			return translate(err, "replace rule destinations")
		}
		if _, err := tx.Exec(ctx, `INSERT INTO rule_destinations (rule_id, destination_id)
			SELECT $1, unnest($2::bigint[])`, id, r.Destinations); err != nil {
			return translate(err, "save rule destinations")
		}
		saved, err = scanRule(tx.QueryRow(ctx, `SELECT `+ruleCols+` FROM rules r WHERE r.id = $1`, id))
		return translate(err, "read saved rule")
	})
	return saved, err
}

// DeleteRule removes one of a user's rules.
func (s *Store) DeleteRule(ctx context.Context, userID, id int64) error {
	tag, err := s.Pool.Exec(ctx, `DELETE FROM rules WHERE id = $1 AND user_id = $2`, id, userID)
	if err != nil {
		return translate(err, "delete rule")
	}
	if tag.RowsAffected() == 0 {
		return apperr.ErrNotFound
	}
	return nil
}

// RulesVersion reads the counter that every change to what can match bumps.
func RulesVersion(ctx context.Context, tx pgx.Tx) (int64, error) {
	var v int64
	err := tx.QueryRow(ctx, `SELECT version FROM rules_version`).Scan(&v)
	return v, translate(err, "read rules version")
}

// LoadMatchable returns every enabled rule with its owner's name and only
// those of its destinations that may receive notifications now (enabled and
// confirmed), with the version they correspond to. It reads in tx so that the
// version and the rules are one snapshot.
func LoadMatchable(ctx context.Context, tx pgx.Tx) (int64, []rules.Rule, error) {
	v, err := RulesVersion(ctx, tx)
	if err != nil {
		return 0, nil, err
	}
	rows, err := tx.Query(ctx, `
		SELECT r.id, r.user_id, u.name, r.name, r.track, r.filters,
			coalesce(array_agg(d.id ORDER BY d.id) FILTER (WHERE d.id IS NOT NULL), '{}')
		FROM rules r
		JOIN users u ON u.id = r.user_id
		LEFT JOIN rule_destinations rd ON rd.rule_id = r.id
		LEFT JOIN destinations d ON d.id = rd.destination_id AND d.enabled AND d.confirmed_at IS NOT NULL
		WHERE r.enabled
		GROUP BY r.id, u.name`)
	if err != nil {
		return 0, nil, translate(err, "load rules")
	}
	rs, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (rules.Rule, error) {
		var r rules.Rule
		var track, filters []byte
		if err := row.Scan(&r.ID, &r.UserID, &r.Owner, &r.Name, &track, &filters, &r.Destinations); err != nil {
			return r, err
		}
		r.Enabled = true
		if err := json.Unmarshal(track, &r.Track); err != nil {
			return r, fmt.Errorf("decode rule %d track: %w", r.ID, err)
		}
		if err := json.Unmarshal(filters, &r.Filters); err != nil {
			return r, fmt.Errorf("decode rule %d filters: %w", r.ID, err)
		}
		return r, nil
	})
	return v, rs, translate(err, "load rules")
}

// RuleSource lets the rules package load rules without knowing SQL.
type RuleSource struct{}

// Version implements rules.Source.
func (RuleSource) Version(ctx context.Context, tx pgx.Tx) (int64, error) {
	return RulesVersion(ctx, tx)
}

// Load implements rules.Source.
func (RuleSource) Load(ctx context.Context, tx pgx.Tx) (rules.Changes, error) {
	return LoadMatchState(ctx, tx)
}

// AttachDestination adds one of a user's destinations to some of their
// rules, in one transaction (rules already sending there are left as they
// are), and returns how many rules it was added to. Another user's rule or
// destination is ErrNotFound. The caller has validated each rule with the
// destination added (rules.Rule.Validate holds the limits).
func (s *Store) AttachDestination(ctx context.Context, userID, destID int64, ruleIDs []int64) (int, error) {
	var n int
	err := s.InTx(ctx, func(tx pgx.Tx) error {
		var ok bool
		if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM destinations WHERE id = $1 AND user_id = $2)
			AND (SELECT count(*) FROM rules WHERE user_id = $2 AND id = ANY($3)) = cardinality($3::bigint[])`,
			destID, userID, ruleIDs).Scan(&ok); err != nil {
			return translate(err, "find destination and rules")
		}
		if !ok {
			return apperr.ErrNotFound
		}
		tag, err := tx.Exec(ctx, `INSERT INTO rule_destinations (rule_id, destination_id)
			SELECT unnest($1::bigint[]), $2 ON CONFLICT DO NOTHING`, ruleIDs, destID)
		if err != nil {
			return translate(err, "attach destination")
		}
		n = int(tag.RowsAffected())
		return nil
	})
	return n, err
}

// quotas: what each counted kind of object is called in the table, in
// the API's error field, and in words.
var quotas = map[string]struct{ table, words string }{
	"rules":        {"rules", "you have %d rules, the most one account may have: delete one you no longer need first"},
	"destinations": {"destinations", "you have %d destinations, the most one account may have: delete one you no longer need first"},
}

// checkQuota refuses, in tx, one more object of kind (a key of quotas)
// for a user who has max of them already (max <= 0: no limit). It locks
// the user's row first, so that concurrent additions count one after the
// other and cannot overshoot together.
func checkQuota(ctx context.Context, tx pgx.Tx, userID int64, kind string, max int) error {
	if max <= 0 {
		return nil
	}
	q := quotas[kind]
	if _, err := tx.Exec(ctx, `SELECT 1 FROM users WHERE id = $1 FOR UPDATE`, userID); err != nil {
		return translate(err, "lock user for "+kind+" count")
	}
	var n int
	if err := tx.QueryRow(ctx, `SELECT count(*) FROM `+q.table+` WHERE user_id = $1`, userID).Scan(&n); err != nil {
		return translate(err, "count "+kind)
	}
	if n >= max {
		return apperr.Invalid(kind, q.words, n)
	}
	return nil
}
