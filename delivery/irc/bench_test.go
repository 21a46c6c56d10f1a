package irc_test

import (
	"context"
	"fmn/delivery/deliverytest"
	"fmn/delivery/irc"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"fmn"
	"fmn/delivery/irc/irctest"
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
		h := deliverytest.New(b)
		bot := startBotB(b, h, srv)
		var clients []*irctest.Client
		var dests []fmn.Destination
		for i := range users {
			nick := "user" + strconv.Itoa(i)
			clients = append(clients, srv.Connect(b, nick))
			dests = append(dests, h.ConfirmedDestination(h.User(nick), fmn.KindIRC, nick))
		}
		_ = bot
		committed := make([]time.Time, burst)
		b.ResetTimer()
		for m := range burst {
			h.Notify(deliverytest.Bodhi("burst message "+strconv.Itoa(m)), dests...)
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

func startBotB(b *testing.B, h *deliverytest.Harness, srv *irctest.Server) *irc.Bot {
	return startBot(b, h, srv, "fmnbot")
}

// benchLines holds each figure's last measurement (see deliverytest.Bench).
var benchLines = map[string]string{}

func TestMain(m *testing.M) { deliverytest.Bench(m, benchLines) }
