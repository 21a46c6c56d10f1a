package push_test

import (
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
// messages each.
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
	b.ResetTimer()
	for n := range b.N {
		start := time.Now()
		for m := range msgs {
			h.Notify(deliverytest.Bodhi("push message "+strconv.Itoa(n*msgs+m)), dests...)
		}
		deadline := time.Now().Add(2 * time.Minute)
		for ps.Total() < (n+1)*subs*msgs {
			if time.Now().After(deadline) {
				b.Fatalf("%d of %d pushed", ps.Total(), (n+1)*subs*msgs)
			}
			time.Sleep(2 * time.Millisecond) // polling a counter with a deadline
		}
		elapsed += time.Since(start)
	}
	b.StopTimer()
	benchLines[name] = fmt.Sprintf("bench: %s %.0f msgs/s", name, float64(b.N*subs*msgs)/elapsed.Seconds())
}

// benchLines holds each figure's last measurement (see deliverytest.Bench).
var benchLines = map[string]string{}

func TestMain(m *testing.M) { deliverytest.Bench(m, benchLines) }
