package web

import (
	"fmt"
	"net/http"
	"slices"
	"time"

	"fmn/apperr"
	"fmn/consumer"
	"fmn/store"
)

type gapCount struct {
	Endpoint string
	Gaps     float64
}

type adminPage struct {
	Page
	Endpoints    []consumer.EndpointStatus
	Consuming    bool
	Rates        []store.EndpointRate
	Gaps         []gapCount
	RecentGaps   []store.BusGap
	Queues       []store.QueueDepth
	Failing      []store.FailingDestination
	DeadJobs     []store.DeadJob
	MessageCount int64
	Storage      []storageRow
	Oldest       *time.Time
	Retention    string
	DistgitURL   string
	Distgit      store.DistgitStatus
}

// storageRow is one table's line on the admin page.
type storageRow struct {
	Table      string
	Size       string
	Rows       int64
	Partitions int
}

// byteSize writes n bytes as people read them (binary units).
func byteSize(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	v, u := float64(n)/unit, 0
	for v >= unit && u < 4 {
		v /= unit
		u++
	}
	return fmt.Sprintf("%.1f %ciB", v, "KMGTP"[u])
}

// adminPage shows the service's health to the users named in FMN_ADMINS;
// to anyone else it does not exist.
func (s *Server) adminPage(w http.ResponseWriter, r *http.Request) error {
	if !s.isAdmin(r) {
		return apperr.ErrNotFound
	}
	ctx := r.Context()
	data := adminPage{Page: s.base(r, "Admin")}
	if s.Endpoints != nil {
		data.Consuming, data.Endpoints = true, s.Endpoints()
	}
	var err error
	if data.Rates, err = s.Store.BusRates(ctx); err != nil {
		return err
	}
	if data.Queues, err = s.Store.QueueDepths(ctx); err != nil {
		return err
	}
	if data.Failing, err = s.Store.FailingDestinations(ctx, 100); err != nil {
		return err
	}
	if data.DeadJobs, err = s.Store.DeadJobs(ctx, 50); err != nil {
		return err
	}
	if data.MessageCount, err = s.Store.CountMessages(ctx); err != nil {
		return err
	}
	storage, err := s.Store.StorageStats(ctx)
	if err != nil {
		return err
	}
	for _, t := range storage.Tables {
		data.Storage = append(data.Storage, storageRow{Table: t.Table, Size: byteSize(t.Bytes), Rows: t.Rows, Partitions: t.Partitions})
	}
	data.Oldest = storage.OldestMessage
	if s.Retention > 0 {
		data.Retention = fmt.Sprintf("%d days", int(s.Retention.Hours()/24))
	}
	if data.Distgit, err = s.Store.GetDistgitStatus(ctx); err != nil {
		return err
	}
	data.DistgitURL = s.DistgitURL
	data.Gaps = s.gapCounts()
	if data.RecentGaps, err = s.Store.RecentBusGaps(ctx, 50); err != nil {
		return err
	}
	s.renderStatus(w, http.StatusOK, "admin.html", data)
	return nil
}

// gapCounts reads this process's gap counter per endpoint from the metrics
// registry (gaps are seen by the consumer, not stored).
func (s *Server) gapCounts() []gapCount {
	if s.Metrics == nil {
		return nil
	}
	mfs, err := s.Metrics.Registry.Gather()
	if err != nil {
		s.log.Warn("gather metrics", "err", err)
		return nil
	}
	var out []gapCount
	for _, mf := range mfs {
		if mf.GetName() != "fmn_bus_gaps_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			g := gapCount{Gaps: m.GetCounter().GetValue()}
			for _, l := range m.GetLabel() {
				if l.GetName() == "endpoint" {
					g.Endpoint = l.GetValue()
				}
			}
			out = append(out, g)
		}
	}
	slices.SortFunc(out, func(a, b gapCount) int {
		if a.Endpoint < b.Endpoint {
			return -1
		}
		if a.Endpoint > b.Endpoint {
			return 1
		}
		return 0
	})
	return out
}
