package matrix

import (
	"fmt"
	"strconv"
	"testing"
	"time"

	"fmn"
	"fmn/delivery/deliverytest"
	"fmn/delivery/matrix/dendritetest"
)

// BenchmarkMatrix: notifications sent per second through River and the
// client-server API into a real Dendrite (SQLite), five users with a room
// each; a notification counts once the homeserver took it.
func BenchmarkMatrix(b *testing.B) {
	const users, msgs = 5, 40
	hs := dendritetest.Start(b)
	botUser := hs.Register(b, "fmnbot", "bot-password-1")
	h := deliverytest.New(b)
	sess, err := SignIn(b.Context(), h.St, Login{URL: hs.URL, Token: botUser.Token})
	if err != nil {
		b.Fatal(err)
	}
	ch := &Channel{Session: sess, Store: h.St, BaseURL: "http://fmn.test"}
	h.Start(ch.Route())
	var dests []fmn.Destination
	for i := range users {
		u := hs.Register(b, "user"+strconv.Itoa(i), "password-"+strconv.Itoa(i))
		dests = append(dests, h.ConfirmedDestination(h.User("u"+strconv.Itoa(i)), fmn.KindMatrix, u.ID))
	}
	// The rooms are made by a first notification each, outside the timing.
	for _, id := range h.Notify(deliverytest.Bodhi("warm-up"), dests...) {
		h.WaitStatus(id, time.Minute, fmn.StatusSent)
	}
	var elapsed time.Duration
	b.ResetTimer()
	for n := range b.N {
		start := time.Now()
		var ids []int64
		for m := range msgs {
			ids = append(ids, h.Notify(deliverytest.Bodhi(fmt.Sprintf("bench %d.%d", n, m)), dests...)...)
		}
		for _, id := range ids {
			h.WaitStatus(id, 2*time.Minute, fmn.StatusSent)
		}
		elapsed += time.Since(start)
	}
	b.StopTimer()
	benchLines["matrix_msgs_per_s"] = fmt.Sprintf("bench: matrix_msgs_per_s %.0f msgs/s", float64(b.N*users*msgs)/elapsed.Seconds())
}

// benchLines holds each figure's last measurement (see deliverytest.Bench).
var benchLines = map[string]string{}

func TestMain(m *testing.M) { deliverytest.Bench(m, benchLines) }
