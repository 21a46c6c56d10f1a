package web

import (
	"fmt"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestPreviewFloodLoad is a load generator (FMN_BENCH=1, make bench): the
// review's attack on previews, measured from the victim's side.
//
//	bench: me_p99_ms_idle N ms                  GET /api/v1/me, nobody else busy
//	bench: me_p99_ms_during_preview_flood N ms  the same while another user floods
//	                                            previews of a rule with 200 exclude
//	                                            patterns over 150,000 messages
//	bench: me_p99_flood_over_idle N x           the ratio of the two
//
// The goal is at most 100 ms during the flood (before the previews' budget
// it was 5–12 s).
func TestPreviewFloodLoad(t *testing.T) {
	if os.Getenv("FMN_BENCH") == "" {
		t.Skip("a load generator: set FMN_BENCH=1 (make bench does)")
	}
	f := newAPIFixture(t)
	start := time.Now()
	fillMessages(t, f.st, 150000)
	t.Logf("150,000 messages stored in %s", time.Since(start).Round(time.Millisecond))
	victim, flooder := f.token(t, "victim"), f.token(t, "flooder")
	const n = 500
	p99 := func() float64 {
		lat := make([]time.Duration, n)
		for i := range lat {
			s := time.Now()
			if st, _, raw := f.do(t, victim, "GET", "/api/v1/me", ""); st != 200 {
				t.Fatalf("GET /api/v1/me: %d %s", st, raw)
			}
			lat[i] = time.Since(s)
		}
		slices.Sort(lat)
		return float64(lat[n*99/100]) / float64(time.Millisecond)
	}
	idle := p99()

	// Six clients of one user post the heavy preview back to back, as the
	// review did, for as long as the victim measures.
	rule := heavyRule()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var served, refused, other atomic.Int64
	for range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				switch st, _, _ := f.do(t, flooder, "POST", "/api/v1/rules/preview", rule); st {
				case 200, 400: // 400: stopped by the statement timeout
					served.Add(1)
				case 429:
					refused.Add(1)
				default:
					other.Add(1)
				}
			}
		}()
	}
	// Let the flood reach its stride before measuring.
	deadline := time.Now().Add(10 * time.Second)
	for served.Load()+refused.Load() < 6 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	flood := p99()
	close(stop)
	wg.Wait()
	t.Logf("flood: %d previews run, %d refused (429), %d other answers", served.Load(), refused.Load(), other.Load())
	fmt.Printf("bench: me_p99_ms_idle %.1f ms\n", idle)
	fmt.Printf("bench: me_p99_ms_during_preview_flood %.1f ms\n", flood)
	fmt.Printf("bench: me_p99_flood_over_idle %.1f x\n", flood/idle)
}
