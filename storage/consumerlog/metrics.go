package consumerlog

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/qmq-go/qmq/internal/metricsutil"
)

// metrics are registered on the Config's Registerer and unregistered by
// Close, so a store can be reopened with the same registry. A nil *metrics
// (no Registerer) records nothing.
type metrics struct {
	reg        prometheus.Registerer
	collectors []prometheus.Collector
	blanks     prometheus.Counter
	deleted    prometheus.Counter
	released   prometheus.Counter
}

func newMetrics(reg prometheus.Registerer, m *Manager) (*metrics, error) {
	if reg == nil {
		return nil, nil
	}
	x := &metrics{
		reg: reg,
		blanks: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "qmq_consumerlog_blank_units_total",
			Help: "Blank units written to fill skipped sequences.",
		}),
		deleted: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "qmq_consumerlog_deleted_segments_total",
			Help: "Consumer log segments deleted by retention.",
		}),
		released: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "qmq_consumerlog_released_total",
			Help: "Idle consumer logs closed to stay within the bound of open logs (each is reopened on its next use); growing fast means the bound is below the subjects in use.",
		}),
	}
	x.collectors = []prometheus.Collector{
		x.blanks,
		x.deleted,
		x.released,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "qmq_consumerlog_subjects",
			Help: "Subjects with a consumer log.",
		}, func() float64 { return float64(len(m.Subjects())) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "qmq_consumerlog_open_subjects",
			Help: "Subjects whose consumer log is open.",
		}, func() float64 { n, _, _ := m.usage(); return float64(n) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "qmq_consumerlog_segments",
			Help: "Consumer log segment files, all subjects.",
		}, func() float64 { _, n, _ := m.usage(); return float64(n) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "qmq_consumerlog_bytes",
			Help: "Bytes of consumer log segment files (preallocated size), all subjects.",
		}, func() float64 { _, _, n := m.usage(); return float64(n) }),
	}
	if err := metricsutil.RegisterAll(reg, x.collectors...); err != nil {
		return nil, fmt.Errorf("register consumer log metrics: %w", err)
	}
	return x, nil
}

func (x *metrics) blankUnits(n int64) {
	if x != nil && n > 0 {
		x.blanks.Add(float64(n))
	}
}

func (x *metrics) deletedSegments(n int) {
	if x != nil && n > 0 {
		x.deleted.Add(float64(n))
	}
}

func (x *metrics) releasedLogs(n int) {
	if x != nil && n > 0 {
		x.released.Add(float64(n))
	}
}

func (x *metrics) unregister() {
	if x != nil {
		metricsutil.UnregisterAll(x.reg, x.collectors...)
	}
}

// usage sums segments and bytes over every subject: open logs report their
// segments, the others what was found on disk at Open.
func (m *Manager) usage() (open int, segments, bytes int64) {
	for _, s := range m.snapshot() {
		s.rw.RLock()
		if s.log != nil {
			open++
			for _, seg := range s.log.Segments() {
				segments++
				bytes += seg.Size
			}
		} else if s.onDisk.Load() {
			segments += s.diskSegments
			bytes += s.diskBytes
		}
		s.rw.RUnlock()
	}
	return open, segments, bytes
}
