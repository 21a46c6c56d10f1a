package config

import (
	"strings"
	"testing"
	"time"
)

func TestRetention(t *testing.T) {
	t.Parallel()
	c, err := Load("", nil)
	if err != nil || c.Retention != 90*24*time.Hour {
		t.Fatalf("default: %v %v", c.Retention, err)
	}
	for v, want := range map[string]time.Duration{"90d": 90 * 24 * time.Hour, "2160h": 2160 * time.Hour, "1d": 24 * time.Hour, "400d": 400 * 24 * time.Hour} {
		c, err := Load("", []string{"FMN_RETENTION=" + v})
		if err != nil || c.Retention != want {
			t.Errorf("FMN_RETENTION=%s: %v %v, want %v", v, c.Retention, err, want)
		}
	}
	for _, v := range []string{"12h", "0d", "-3d", "ninety days", "90 d", "3w"} {
		if _, err := Load("", []string{"FMN_RETENTION=" + v}); err == nil || !strings.Contains(err.Error(), "FMN_RETENTION") {
			t.Errorf("FMN_RETENTION=%s accepted: %v", v, err)
		}
	}
}
