package consumer

import (
	"context"
	"fmt"
	"maps"

	"fmn/store"
)

// Gap handling follows fedmsg's check_for_replay: an endpoint's position
// is the last seq_id seen from it; a message whose seq_id is more than one
// past it reveals a gap, and the publisher's replay endpoint is asked for
// {"seq_id_range": [last, current]}. Unlike the reference, fmn keeps the
// position in the database (bus_positions, written with the messages), so
// messages published while fmn was stopped are fetched after a restart too.
// An endpoint fmn has never heard from has no position: its first message
// starts the count (asking for a publisher's whole history would be wrong).
// A seq_id at or below the position means the publisher started a new
// store (or a relay interleaves publishers): it is stored like any other
// message and becomes the new position. Messages without seq_id play no
// part: "i" restarts with every publishing process and interleaves on
// relays, so it cannot tell a loss from a restart.

// maxReplay is the largest gap fmn asks a replay endpoint to fill.
const maxReplay = 100000

// batchPlan is a batch ready to store: the messages in order, replayed
// ones before the message that revealed their gap, and what to record.
type batchPlan struct {
	msgs      []Received
	positions map[string]int64 // endpoint → last seq_id after this batch
	gaps      []store.BusGap
}

// loadPositions reads the durable positions once.
func (in *Ingester) loadPositions(ctx context.Context) error {
	if in.positions != nil {
		return nil
	}
	pos, err := in.Store.BusPositions(ctx)
	if err != nil {
		return err
	}
	in.positions = pos
	return nil
}

// plan checks the batch's sequence numbers against the positions and
// fetches what a gap lost. It changes no state: the positions move only
// once the batch is committed.
func (in *Ingester) plan(ctx context.Context, batch []Received) (batchPlan, error) {
	if err := in.loadPositions(ctx); err != nil {
		return batchPlan{}, err
	}
	p := batchPlan{msgs: make([]Received, 0, len(batch)), positions: map[string]int64{}}
	pos := maps.Clone(in.positions)
	for _, r := range batch {
		seq := r.Envelope.SeqID
		if seq <= 0 || r.Replayed {
			p.msgs = append(p.msgs, r)
			continue
		}
		last, known := pos[r.Endpoint]
		switch {
		case !known || seq == last+1:
		case seq <= last:
			in.Log.Info("bus sequence restarted", "endpoint", r.Endpoint, "last_seq", last, "seq_id", seq)
		default:
			g := store.BusGap{Endpoint: r.Endpoint, AfterSeq: last, BeforeSeq: seq}
			missing := seq - last - 1
			if missing > maxReplay {
				// A jump this big is a publisher whose store was replaced,
				// not a few lost messages: asking would stall the bus for
				// long and fetch what fmn may never have been meant to see.
				g.Error = fmt.Sprintf("gap of %d messages is too large to replay (limit %d)", missing, maxReplay)
			} else if in.Replay != nil && in.Replay.CanReplay(r.Endpoint) {
				got, err := in.Replay.Replay(ctx, r.Endpoint, last, seq)
				p.msgs = append(p.msgs, got...)
				g.Recovered = int64(len(got))
				if err != nil {
					g.Error = err.Error()
				} else if g.Recovered < missing {
					g.Error = "the replay endpoint no longer has them"
				}
			} else {
				g.Error = "no replay endpoint"
			}
			g.Missed = missing - g.Recovered
			p.gaps = append(p.gaps, g)
			log := in.Log.Info
			if g.Missed > 0 {
				log = in.Log.Warn
			}
			log("bus sequence gap", "endpoint", r.Endpoint, "after_seq", last, "before_seq", seq,
				"recovered", g.Recovered, "missed", g.Missed, "err", g.Error)
		}
		pos[r.Endpoint] = seq
		p.positions[r.Endpoint] = seq
		p.msgs = append(p.msgs, r)
	}
	return p, nil
}

// committed moves the positions and counts the gaps once a plan is stored.
func (in *Ingester) committed(p batchPlan) {
	for ep, seq := range p.positions {
		in.positions[ep] = seq
	}
	for _, g := range p.gaps {
		in.Metrics.BusGaps.WithLabelValues(g.Endpoint).Inc()
		in.Metrics.BusReplayed.WithLabelValues(g.Endpoint).Add(float64(g.Recovered))
		in.Metrics.BusMissed.WithLabelValues(g.Endpoint).Add(float64(g.Missed))
	}
}

func (p batchPlan) String() string {
	return fmt.Sprintf("%d messages, %d gaps", len(p.msgs), len(p.gaps))
}
