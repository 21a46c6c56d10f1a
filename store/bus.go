package store

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"
)

// BusGap is a gap found in an endpoint's seq_id stream.
type BusGap struct {
	ID         int64     `json:"id"`
	Endpoint   string    `json:"endpoint"`
	AfterSeq   int64     `json:"after_seq"`
	BeforeSeq  int64     `json:"before_seq"`
	Recovered  int64     `json:"recovered"`
	Missed     int64     `json:"missed"`
	Error      string    `json:"error,omitempty"`
	DetectedAt time.Time `json:"detected_at"`
}

// BusPositions returns the last stored seq_id of every endpoint.
func (s *Store) BusPositions(ctx context.Context) (map[string]int64, error) {
	rows, err := s.Pool.Query(ctx, `SELECT endpoint, last_seq FROM bus_positions`)
	if err != nil {
		return nil, translate(err, "read bus positions")
	}
	out := map[string]int64{}
	var ep string
	var seq int64
	_, err = pgx.ForEachRow(rows, []any{&ep, &seq}, func() error { out[ep] = seq; return nil })
	return out, translate(err, "read bus positions")
}

// SaveBusPositions records endpoints' last seq_ids in tx, the transaction
// that stores the messages carrying them.
func SaveBusPositions(ctx context.Context, tx pgx.Tx, pos map[string]int64) error {
	if len(pos) == 0 {
		return nil
	}
	eps := make([]string, 0, len(pos))
	seqs := make([]int64, 0, len(pos))
	for ep, seq := range pos {
		eps = append(eps, ep)
		seqs = append(seqs, seq)
	}
	_, err := tx.Exec(ctx, `
		INSERT INTO bus_positions (endpoint, last_seq)
		SELECT * FROM unnest($1::text[], $2::bigint[])
		ON CONFLICT (endpoint) DO UPDATE SET last_seq = excluded.last_seq, updated_at = now()`, eps, seqs)
	return translate(err, "save bus positions")
}

// InsertBusGaps records gaps in tx.
func InsertBusGaps(ctx context.Context, tx pgx.Tx, gaps []BusGap) error {
	for _, g := range gaps {
		if _, err := tx.Exec(ctx, `
			INSERT INTO bus_gaps (endpoint, after_seq, before_seq, recovered, missed, error)
			VALUES ($1, $2, $3, $4, $5, $6)`, g.Endpoint, g.AfterSeq, g.BeforeSeq, g.Recovered, g.Missed, g.Error); err != nil {
			return translate(err, "record bus gap")
		}
	}
	return nil
}

// RecentBusGaps returns the newest gaps, newest first, for the admin page.
func (s *Store) RecentBusGaps(ctx context.Context, limit int) ([]BusGap, error) {
	rows, err := s.Pool.Query(ctx, `SELECT id, endpoint, after_seq, before_seq, recovered, missed, error, detected_at
		FROM bus_gaps ORDER BY id DESC LIMIT $1`, limit)
	if err != nil {
		return nil, translate(err, "list bus gaps")
	}
	gs, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (BusGap, error) {
		var g BusGap
		err := r.Scan(&g.ID, &g.Endpoint, &g.AfterSeq, &g.BeforeSeq, &g.Recovered, &g.Missed, &g.Error, &g.DetectedAt)
		return g, err
	})
	return gs, translate(err, "list bus gaps")
}
