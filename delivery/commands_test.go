package delivery

import (
	"testing"
	"time"
)

func TestParseMute(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]time.Duration{"2h": 2 * time.Hour, "30m": 30 * time.Minute, "1d": 24 * time.Hour, "1H30M": 90 * time.Minute} {
		if d, ok := parseMute(in); !ok || d != want {
			t.Errorf("parseMute(%q) = %v %v", in, d, ok)
		}
	}
	for _, in := range []string{"", "0m", "30s", "31d", "-2h", "forever"} {
		if _, ok := parseMute(in); ok {
			t.Errorf("parseMute(%q) accepted", in)
		}
	}
}
