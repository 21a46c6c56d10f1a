package metrics

import (
	"context"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// TestAlertRulesNameExportedMetrics holds contrib/prometheus/fmn-alerts.yml
// to fmn: every metric its expressions name is one this registry exports
// (up is Prometheus's own), every rule has an expression, a severity and a
// summary, and the failure modes the metrics show each have a rule.
func TestAlertRulesNameExportedMetrics(t *testing.T) {
	t.Parallel()
	const path = "../contrib/prometheus/fmn-alerts.yml"
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	m := New()
	m.WatchJobs(func(context.Context) ([]JobStat, error) { return nil, nil })
	exported := m.Names()
	if !slices.Contains(exported, "fmn_bus_messages_received_total") || !slices.Contains(exported, "fmn_jobs_oldest_seconds") {
		t.Fatalf("Names misses metrics: %v", exported)
	}

	// One rule per "- alert:" item; its expr is on its line or, after
	// "expr: |", on the lines indented below it.
	type rule struct{ name, expr, body string }
	var rules []rule
	lines := strings.Split(string(b), "\n")
	for i := 0; i < len(lines); i++ {
		l := strings.TrimSpace(lines[i])
		if name, ok := strings.CutPrefix(l, "- alert: "); ok {
			rules = append(rules, rule{name: name})
			continue
		}
		if len(rules) == 0 || strings.HasPrefix(l, "#") {
			continue
		}
		r := &rules[len(rules)-1]
		r.body += l + "\n"
		if e, ok := strings.CutPrefix(l, "expr: "); ok {
			if e == "|" {
				indent := len(lines[i]) - len(strings.TrimLeft(lines[i], " "))
				for i+1 < len(lines) && len(lines[i+1])-len(strings.TrimLeft(lines[i+1], " ")) > indent {
					i++
					e += " " + strings.TrimSpace(lines[i])
				}
				e = strings.TrimPrefix(e, "| ")
			}
			r.expr = e
		}
	}
	if len(rules) < 8 {
		t.Fatalf("%d rules read from %s", len(rules), path)
	}
	metricName := regexp.MustCompile(`\b(?:fmn|go|process)_[a-z0-9_]+\b|\bup\b`)
	used := map[string]bool{}
	for _, r := range rules {
		if r.expr == "" || !strings.Contains(r.body, "severity: ") || !strings.Contains(r.body, "summary: ") {
			t.Errorf("rule %s lacks an expr, a severity or a summary:\n%s", r.name, r.body)
		}
		for _, name := range metricName.FindAllString(r.expr, -1) {
			used[name] = true
			if name != "up" && !slices.Contains(exported, name) {
				t.Errorf("rule %s names %s, which fmn does not export", r.name, name)
			}
		}
	}
	for _, want := range []string{"fmn_bus_endpoint_last_message_seconds", "fmn_jobs_oldest_seconds", "fmn_delivery_failures_total",
		"fmn_bus_ingest_retrying", "fmn_jobs"} {
		if !used[want] {
			t.Errorf("no rule watches %s", want)
		}
	}

	// Where Prometheus's own checker is installed, the file must pass it.
	if promtool, err := exec.LookPath("promtool"); err == nil {
		if out, err := exec.Command(promtool, "check", "rules", path).CombinedOutput(); err != nil {
			t.Fatalf("promtool check rules: %v\n%s", err, out)
		}
	} else {
		t.Log("promtool not installed: the rules' syntax is not checked here")
	}
}
