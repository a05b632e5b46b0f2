package messagelog

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/qmq-go/qmq/internal/metricsutil"
)

type metrics struct {
	reg           prometheus.Registerer
	collectors    []prometheus.Collector
	appendSeconds prometheus.Histogram
	flushSeconds  prometheus.Histogram
}

// newMetrics creates the log's metrics and registers them on reg (if not
// nil). Segment count and bytes are read at scrape time, so appends pay only
// for the latency histogram.
func newMetrics(reg prometheus.Registerer, l *Log) (*metrics, error) {
	m := &metrics{
		reg: reg,
		appendSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "qmq_messagelog_append_seconds",
			Help:    "Latency of message log appends (one batch), including the fsync wait with flush.sync.",
			Buckets: prometheus.ExponentialBuckets(1e-6, 4, 12), // 1µs .. ~4s
		}),
		flushSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "qmq_messagelog_flush_seconds",
			Help:    "Latency of message log flushes (fsync).",
			Buckets: prometheus.ExponentialBuckets(1e-5, 4, 10), // 10µs .. ~2.6s
		}),
	}
	m.collectors = []prometheus.Collector{
		m.appendSeconds,
		m.flushSeconds,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "qmq_messagelog_segments",
			Help: "Number of message log segment files.",
		}, func() float64 { return float64(l.seg.SegmentCount()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "qmq_messagelog_bytes",
			Help: "Bytes stored in the message log (write position minus first offset).",
		}, func() float64 { return float64(l.seg.WrotePosition() - l.seg.MinOffset()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "qmq_messagelog_unflushed_bytes",
			Help: "Bytes appended but not yet fsynced.",
		}, func() float64 { return float64(l.seg.WrotePosition() - l.seg.FlushedPosition()) }),
	}
	if err := metricsutil.RegisterAll(reg, m.collectors...); err != nil {
		return nil, fmt.Errorf("register metrics: %w", err)
	}
	return m, nil
}

func (m *metrics) unregister() { metricsutil.UnregisterAll(m.reg, m.collectors...) }
