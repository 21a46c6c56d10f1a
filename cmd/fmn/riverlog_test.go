package main

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
)

// TestRiverLoggerLevels: River's routine info lines are debug, its job
// failures stay visible, its warnings and errors pass unchanged; attributes
// and groups added through the wrapper keep the wrapping.
func TestRiverLoggerLevels(t *testing.T) {
	t.Parallel()
	for _, level := range []slog.Level{slog.LevelInfo, slog.LevelDebug} {
		var buf bytes.Buffer
		log := riverLogger(slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: level}))).With("client", "c1")
		log.Info("producer: Producer job counts", "queue", "email")
		log.Info("River client started")
		log.Info("JobExecutor: Job errored", "job_id", 7)
		log.Info("JobExecutor: Job errored; retrying", "job_id", 8)
		log.Warn("leadership.Elector: Error attempting to resign")
		log.WithGroup("g").Error("producer: Error fetching jobs")
		out := buf.String()
		routine := strings.Contains(out, "Producer job counts") || strings.Contains(out, "River client started")
		if level == slog.LevelInfo && routine {
			t.Fatalf("routine River lines at info:\n%s", out)
		}
		if level == slog.LevelDebug && (!strings.Contains(out, `level=DEBUG msg="producer: Producer job counts" client=c1`) || !strings.Contains(out, "River client started")) {
			t.Fatalf("routine River lines missing at debug:\n%s", out)
		}
		for _, want := range []string{
			`level=WARN msg="JobExecutor: Job errored" client=c1 job_id=7`,
			`level=INFO msg="JobExecutor: Job errored; retrying" client=c1 job_id=8`,
			`level=WARN msg="leadership.Elector: Error attempting to resign"`,
			`level=ERROR msg="producer: Error fetching jobs" client=c1`,
		} {
			if !strings.Contains(out, want) {
				t.Fatalf("at %v, missing %s in:\n%s", level, want, out)
			}
		}
	}
}
