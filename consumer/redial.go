package consumer

import "time"

// redial is a source's reconnect schedule: the first wait is min, each
// further one doubles, up to max; a connection that worked starts the
// schedule over. fedmsg's consumers use 100 ms and 1 s
// (zmq_reconnect_ivl, zmq_reconnect_ivl_max), so a restarted publisher is
// heard again about a second later at worst.
type redial struct {
	min, max, cur time.Duration
}

// DefaultReconnectMax is the cap when a source is given none.
const DefaultReconnectMax = time.Second

func newRedial(first, limit time.Duration) *redial {
	if limit <= 0 {
		limit = DefaultReconnectMax
	}
	return &redial{min: first, max: max(first, limit)}
}

// next returns how long to wait before the next dial.
func (r *redial) next() time.Duration {
	if r.cur == 0 {
		r.cur = r.min
	} else {
		r.cur = min(r.cur*2, r.max)
	}
	return r.cur
}

// reset starts the schedule over (after a connection that worked).
func (r *redial) reset() { r.cur = 0 }
