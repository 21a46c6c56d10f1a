package push_test

import (
	"context"
	"fmn/delivery/deliverytest"
	"fmt"
	"strconv"
	"testing"
	"time"

	"fmn"
)

// BenchmarkPush: notifications pushed per second through River and
// webpush-go (encryption and VAPID signing per push) to a loopback push
// service that verifies and decrypts each one: ten subscribers, twenty
// messages each, timed from the moment the stored burst may be worked.
func BenchmarkPush(b *testing.B) {
	benchPush(b, "push_msgs_per_s", 10, 20)
}

// BenchmarkPushOneDestination: a burst of 100 to one subscription, which
// has one push in flight at a time: it drains at the speed of the push
// service's answers.
func BenchmarkPushOneDestination(b *testing.B) {
	benchPush(b, "push_one_destination_msgs_per_s", 1, 100)
}

func benchPush(b *testing.B, name string, subs, msgs int) {
	h := deliverytest.New(b)
	ps := startPush(b, h)
	var dests []fmn.Destination
	for i := range subs {
		_, addr := ps.Subscribe()
		dests = append(dests, h.ConfirmedDestination(h.User("u"+strconv.Itoa(i)), fmn.KindPush, addr))
	}
	var elapsed time.Duration
	var timed int // pushes made after a resume
	b.ResetTimer()
	for n := range b.N {
		// The burst is stored with the queue paused, then timed from
		// the resume: the figure is delivery's, not the harness's
		// inserts (which share the database and the cores).
		if err := h.Jobs.QueuePause(context.Background(), string(fmn.KindPush), nil); err != nil {
			b.Fatal(err)
		}
		for m := range msgs {
			h.Notify(deliverytest.Bodhi("push message "+strconv.Itoa(n*msgs+m)), dests...)
		}
		before := ps.Total() // n*subs*msgs, unless the pause came late
		start := time.Now()
		if err := h.Jobs.QueueResume(context.Background(), string(fmn.KindPush), nil); err != nil {
			b.Fatal(err)
		}
		deadline := time.Now().Add(2 * time.Minute)
		for ps.Total() < (n+1)*subs*msgs {
			if time.Now().After(deadline) {
				b.Fatalf("%d of %d pushed", ps.Total(), (n+1)*subs*msgs)
			}
			time.Sleep(2 * time.Millisecond) // polling a counter with a deadline
		}
		elapsed += time.Since(start)
		timed += (n+1)*subs*msgs - before
	}
	b.StopTimer()
	benchLines[name] = fmt.Sprintf("bench: %s %.0f msgs/s", name, float64(timed)/elapsed.Seconds())
}

// benchLines holds each figure's last measurement (see deliverytest.Bench).
var benchLines = map[string]string{}

func TestMain(m *testing.M) { deliverytest.Bench(m, benchLines) }
