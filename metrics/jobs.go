package metrics

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// JobStat is how many of one queue's jobs are in one state, and how long
// the oldest of them has been there.
type JobStat struct {
	Queue  string
	State  string
	Count  int64
	Oldest time.Duration // available: waiting since due; running: since started
}

// WatchJobs exports the job queue at every scrape, from read (River's job
// table): fmn_jobs{queue,state} and fmn_jobs_oldest_seconds{queue,state}.
// A backlog, a stuck job or jobs given up show there whichever process
// holds them; every process reads the same table, so alert on max().
func (m *Metrics) WatchJobs(read func(context.Context) ([]JobStat, error)) {
	m.register(&jobsCollector{read: read,
		count: prometheus.NewDesc("fmn_jobs", "Jobs in River's table, per queue and state (completed ones aside).",
			[]string{"queue", "state"}, nil),
		oldest: prometheus.NewDesc("fmn_jobs_oldest_seconds", "Age of the oldest job per queue and state: available ones since they were due, running ones since they started.",
			[]string{"queue", "state"}, nil),
		up: prometheus.NewDesc("fmn_jobs_scrape_ok", "1 when the job table could be read for this scrape.", nil, nil),
	})
}

type jobsCollector struct {
	read              func(context.Context) ([]JobStat, error)
	count, oldest, up *prometheus.Desc
}

func (c *jobsCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.count
	ch <- c.oldest
	ch <- c.up
}

// Collect reads the table with a deadline of its own: a slow database
// must not hang the scrape.
func (c *jobsCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	stats, err := c.read(ctx)
	if err != nil {
		ch <- prometheus.MustNewConstMetric(c.up, prometheus.GaugeValue, 0)
		return
	}
	ch <- prometheus.MustNewConstMetric(c.up, prometheus.GaugeValue, 1)
	for _, s := range stats {
		ch <- prometheus.MustNewConstMetric(c.count, prometheus.GaugeValue, float64(s.Count), s.Queue, s.State)
		ch <- prometheus.MustNewConstMetric(c.oldest, prometheus.GaugeValue, s.Oldest.Seconds(), s.Queue, s.State)
	}
}
