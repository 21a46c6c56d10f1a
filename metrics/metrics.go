// Package metrics defines fmn's Prometheus collectors on a registry of their
// own (never the global one), so that each service instance, and each test,
// counts for itself.
package metrics

import (
	"net/http"
	"regexp"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Metrics holds every collector fmn updates.
type Metrics struct {
	Registry *prometheus.Registry

	BusReceived  *prometheus.CounterVec // endpoint
	BusStored    prometheus.Counter
	BusDuplicate prometheus.Counter
	BusDropped   *prometheus.CounterVec // reason
	BusGaps      *prometheus.CounterVec // endpoint
	BusReplayed  *prometheus.CounterVec // endpoint
	BusMissed    *prometheus.CounterVec // endpoint
	BusConnected *prometheus.GaugeVec   // endpoint
	BusLastSeen  *prometheus.GaugeVec   // endpoint, unix seconds

	Matched  prometheus.Counter
	Sent     *prometheus.CounterVec // channel
	Failures *prometheus.CounterVec // channel
	// Waits counts sends put off because the channel's turn for the
	// destination had not come (push's one in flight per destination):
	// nothing was tried, so they are no failures.
	Waits *prometheus.CounterVec // channel

	// IngestRetrying is 1 while the ingester backs off after a failed
	// store (the database down or refusing): nothing read is stored then.
	IngestRetrying prometheus.Gauge

	all []prometheus.Collector // everything registered, for Names
}

// New creates and registers the collectors, with the Go runtime's own.
func New() *Metrics {
	r := prometheus.NewRegistry()
	m := &Metrics{
		Registry: r,
		BusReceived: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "fmn_bus_messages_received_total", Help: "Bus messages received, valid or not, per endpoint.",
		}, []string{"endpoint"}),
		BusStored: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "fmn_bus_messages_stored_total", Help: "Bus messages stored for the first time.",
		}),
		BusDuplicate: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "fmn_bus_messages_duplicate_total", Help: "Bus messages whose msg_id was already stored.",
		}),
		BusDropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "fmn_bus_messages_dropped_total", Help: "Bus messages refused, by reason.",
		}, []string{"reason"}),
		BusGaps: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "fmn_bus_gaps_total", Help: "Sequence gaps seen per endpoint.",
		}, []string{"endpoint"}),
		BusReplayed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "fmn_bus_messages_replayed_total", Help: "Missed messages fetched from a replay endpoint, per endpoint.",
		}, []string{"endpoint"}),
		BusMissed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "fmn_bus_messages_missed_total", Help: "Messages known lost in sequence gaps (not replayed), per endpoint.",
		}, []string{"endpoint"}),
		BusConnected: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "fmn_bus_endpoint_connected", Help: "1 while the endpoint's socket is connected.",
		}, []string{"endpoint"}),
		BusLastSeen: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "fmn_bus_endpoint_last_message_seconds", Help: "Unix time of the last message from the endpoint.",
		}, []string{"endpoint"}),
		Matched: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "fmn_notifications_created_total", Help: "Notifications created by rule matches.",
		}),
		Sent: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "fmn_notifications_sent_total", Help: "Notifications delivered, per channel.",
		}, []string{"channel"}),
		Failures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "fmn_delivery_failures_total", Help: "Failed delivery attempts, per channel.",
		}, []string{"channel"}),
		Waits: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "fmn_delivery_waits_total", Help: "Sends put off for the destination's turn (no failure), per channel.",
		}, []string{"channel"}),
		IngestRetrying: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "fmn_bus_ingest_retrying", Help: "1 while the bus ingester backs off after a failed store.",
		}),
	}
	m.register(m.BusReceived, m.BusStored, m.BusDuplicate, m.BusDropped, m.BusGaps, m.BusReplayed, m.BusMissed, m.BusConnected,
		m.BusLastSeen, m.Matched, m.Sent, m.Failures, m.Waits, m.IngestRetrying,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	for _, ch := range []string{"email", "irc", "matrix", "push"} {
		m.Sent.WithLabelValues(ch)
		m.Failures.WithLabelValues(ch)
		m.Waits.WithLabelValues(ch)
	}
	return m
}

func (m *Metrics) register(cs ...prometheus.Collector) {
	m.Registry.MustRegister(cs...)
	m.all = append(m.all, cs...)
}

// Names lists the name of every metric this registry can export, whether
// or not it has a value yet (a vector with no labels seen exports none):
// what alert rules may refer to.
func (m *Metrics) Names() []string {
	ch := make(chan *prometheus.Desc)
	go func() {
		for _, c := range m.all {
			c.Describe(ch)
		}
		close(ch)
	}()
	var names []string
	for d := range ch {
		// Desc has no getter for its name; its String form carries it.
		if mm := fqName.FindStringSubmatch(d.String()); mm != nil {
			names = append(names, mm[1])
		}
	}
	return names
}

var fqName = regexp.MustCompile(`fqName: "([^"]+)"`)

// Handler serves the registry in Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{})
}
