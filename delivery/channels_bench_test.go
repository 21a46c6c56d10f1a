package delivery_test

import (
	"context"
	"fmt"
	"maps"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"fmn/delivery"
	"fmn/delivery/irctest"
	"fmn/store"
)

// BenchmarkIRCBursts: ten users, each with a burst of ten notifications at
// once, through River, the bot's paced queues and a real ngircd (whose flood
// limit is about three lines a second) to ten real IRC clients. The latency
// of a notification is from its commit to the arrival of the line carrying
// it (its own, or the "N more" line standing for it).
func BenchmarkIRCBursts(b *testing.B) {
	const users, burst = 10, 10
	for range b.N {
		srv := irctest.Start(b)
		h := newHarness(b)
		bot := startBotB(b, h, srv)
		var clients []*irctest.Client
		var dests []store.Destination
		for i := range users {
			nick := "user" + strconv.Itoa(i)
			clients = append(clients, srv.Connect(b, nick))
			dests = append(dests, h.confirmedDestination(h.user(nick), "irc", nick))
		}
		_ = bot
		committed := make([]time.Time, burst)
		b.ResetTimer()
		for m := range burst {
			h.notify(bodhi("burst message "+strconv.Itoa(m)), dests...)
			committed[m] = time.Now()
		}
		more := regexp.MustCompile(`^(\d+) more: `)
		var lat, lineLat []time.Duration
		for _, c := range clients {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			seen := map[int]bool{}
			accounted := 0
			for accounted < burst {
				pms, ok := c.WaitPMs(ctx, len(seen)+1+accountedMore(c.PMs(), more))
				if !ok {
					b.Fatalf("%s got %d lines accounting for %d of %d", c.Nick, len(pms), accounted, burst)
				}
				accounted = 0
				for _, p := range pms {
					if mm := more.FindStringSubmatch(p.Text); mm != nil {
						n, _ := strconv.Atoi(mm[1])
						accounted += n
					} else if i := strings.Index(p.Text, "burst message "); i >= 0 {
						n, _ := strconv.Atoi(strings.Fields(p.Text[i+len("burst message "):])[0])
						seen[n] = true
						accounted++
					}
				}
			}
			cancel()
			// Individual lines by their message; each "N more" line for the
			// latest N messages not seen alone.
			var rest []int
			for m := burst - 1; m >= 0; m-- {
				if !seen[m] {
					rest = append(rest, m)
				}
			}
			for _, p := range c.PMs() {
				lineLat = append(lineLat, p.At.Sub(committed[0]))
				if mm := more.FindStringSubmatch(p.Text); mm != nil {
					n, _ := strconv.Atoi(mm[1])
					for _, m := range rest[:n] {
						lat = append(lat, p.At.Sub(committed[m]))
					}
					rest = rest[n:]
				} else if i := strings.Index(p.Text, "burst message "); i >= 0 {
					m, _ := strconv.Atoi(strings.Fields(p.Text[i+len("burst message "):])[0])
					lat = append(lat, p.At.Sub(committed[m]))
				}
			}
		}
		b.StopTimer()
		slices.Sort(lat)
		slices.Sort(lineLat)
		ms := func(d time.Duration) string {
			return strconv.FormatFloat(float64(d)/float64(time.Millisecond), 'f', 0, 64)
		}
		benchLines["irc_pm_latency_p50_ms"] = "bench: irc_pm_latency_p50_ms " + ms(lat[len(lat)/2]) + " ms"
		benchLines["irc_pm_latency_p95_ms"] = "bench: irc_pm_latency_p95_ms " + ms(lat[len(lat)*95/100]) + " ms"
		benchLines["irc_lines"] = fmt.Sprintf("bench: irc_lines_for_%d_notifications %d lines", len(lat), len(lineLat))
		benchLines["irc_line_latency_p50_ms"] = "bench: irc_line_latency_p50_ms " + ms(lineLat[len(lineLat)/2]) + " ms"
	}
}

func accountedMore(pms []irctest.PM, more *regexp.Regexp) int {
	n := 0
	for _, p := range pms {
		if mm := more.FindStringSubmatch(p.Text); mm != nil {
			k, _ := strconv.Atoi(mm[1])
			n += k - 1
		}
	}
	return -n // a "N more" line is one line standing for N
}

func startBotB(b *testing.B, h *harness, srv *irctest.Server) *delivery.IRCBot {
	bot := &delivery.IRCBot{Settings: delivery.IRCSettings{URL: srv.URL(), Nick: "fmnbot", BaseURL: "http://fmn.test"}, Store: h.st, Log: h.log}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- bot.Run(ctx) }()
	b.Cleanup(func() { cancel(); <-done })
	select {
	case <-bot.Connected():
	case <-time.After(20 * time.Second):
		b.Fatal("bot did not connect")
	}
	h.start(delivery.Workers{
		IRC:        &delivery.IRCWorker{Store: h.st, Bot: bot, Metrics: h.metrics, Log: h.log},
		IRCConfirm: &delivery.IRCConfirmWorker{Store: h.st, Bot: bot, BaseURL: "http://fmn.test", Log: h.log},
	})
	return bot
}

// BenchmarkPush: notifications pushed per second through River and
// webpush-go (encryption and VAPID signing per push) to a loopback push
// service that verifies and decrypts each one.
func BenchmarkPush(b *testing.B) {
	const subs, msgs = 10, 20
	h := newHarness(b)
	ps := startPush(b, h)
	var dests []store.Destination
	for i := range subs {
		_, addr := ps.Subscribe()
		dests = append(dests, h.confirmedDestination(h.user("u"+strconv.Itoa(i)), "push", addr))
	}
	var elapsed time.Duration
	b.ResetTimer()
	for n := range b.N {
		start := time.Now()
		for m := range msgs {
			h.notify(bodhi("push message "+strconv.Itoa(n*msgs+m)), dests...)
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
	benchLines["push_msgs_per_s"] = fmt.Sprintf("bench: push_msgs_per_s %.0f msgs/s", float64(b.N*subs*msgs)/elapsed.Seconds())
}

// benchLines holds each figure's last measurement: the testing package runs
// a benchmark several times to find its b.N, and only the last run counts.
// TestMain prints them once at the end.
var benchLines = map[string]string{}

func TestMain(m *testing.M) {
	code := m.Run()
	for _, k := range slices.Sorted(maps.Keys(benchLines)) {
		fmt.Println(benchLines[k])
	}
	os.Exit(code)
}
