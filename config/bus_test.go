package config

import (
	"strings"
	"testing"
	"time"
)

func TestBusSettings(t *testing.T) {
	t.Parallel()
	c, err := Load("", nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.BusSilence != DefaultBusSilence || c.BusBufferBytes != DefaultBusBufferBytes {
		t.Fatalf("defaults: %v %v", c.BusSilence, c.BusBufferBytes)
	}
	c, err = Load("", []string{"FMN_BUS_SILENCE=0", "FMN_BUS_BUFFER_BYTES=2097152"})
	if err != nil || c.BusSilence != 0 || c.BusBufferBytes != 2<<20 {
		t.Fatalf("set: %v %v %v", c.BusSilence, c.BusBufferBytes, err)
	}
	c, err = Load("", []string{"FMN_BUS_SILENCE=90s"})
	if err != nil || c.BusSilence != 90*time.Second {
		t.Fatalf("90s: %v %v", c.BusSilence, err)
	}
	_, err = Load("", []string{"FMN_BUS_SILENCE=soon", "FMN_BUS_BUFFER_BYTES=12"})
	if err == nil || !strings.Contains(err.Error(), "FMN_BUS_SILENCE") || !strings.Contains(err.Error(), "FMN_BUS_BUFFER_BYTES") {
		t.Fatalf("bad values: %v", err)
	}
}
