package actionlog

import (
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/qmq-go/qmq/internal/metricsutil"
)

// metrics are registered on the Config's Registerer and unregistered by
// Close, so the log can be reopened with the same registry. A nil *metrics
// (no Registerer) records nothing.
type metrics struct {
	reg          prometheus.Registerer
	collectors   []prometheus.Collector
	actions      [4]prometheus.Counter // by Type
	bytes        prometheus.Counter
	appendTime   prometheus.Observer
	flushTime    prometheus.Observer
	flushErrors  prometheus.Counter
	truncatedCut prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer, l *Log, truncated int64) (*metrics, error) {
	if reg == nil {
		return nil, nil
	}
	actions := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "qmq_actionlog_actions_total",
		Help: "Actions appended to the action log, by type.",
	}, []string{"type"})
	appendTime := prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "qmq_actionlog_append_duration_seconds",
		Help:    "Latency of one action log Append (a batch), excluding validation.",
		Buckets: prometheus.ExponentialBuckets(1e-6, 4, 10),
	})
	flushTime := prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "qmq_actionlog_flush_duration_seconds",
		Help:    "Latency of action log flushes (msync + fsync).",
		Buckets: prometheus.ExponentialBuckets(1e-4, 4, 10),
	})
	x := &metrics{
		reg: reg,
		bytes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "qmq_actionlog_appended_bytes_total",
			Help: "Bytes of action records appended.",
		}),
		appendTime: appendTime,
		flushTime:  flushTime,
		flushErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "qmq_actionlog_flush_errors_total",
			Help: "Failed action log flushes.",
		}),
		truncatedCut: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "qmq_actionlog_recovery_truncated_bytes",
			Help: "Bytes cut from the action log tail by recovery at the last Open (including the zero tail of the last segment).",
		}),
	}
	for _, t := range []Type{Pull, RangeAck, ForeverOffline, Reset} {
		x.actions[t] = actions.WithLabelValues(t.String())
	}
	x.truncatedCut.Set(float64(truncated))
	x.collectors = []prometheus.Collector{
		actions, x.bytes, appendTime, flushTime, x.flushErrors, x.truncatedCut,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "qmq_actionlog_segments",
			Help: "Action log segment files.",
		}, func() float64 { return float64(len(l.seg.Segments())) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "qmq_actionlog_wrote_position_bytes",
			Help: "Offset of the end of the action log.",
		}, func() float64 { return float64(l.seg.WrotePosition()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "qmq_actionlog_unflushed_bytes",
			Help: "Bytes appended to the action log and not yet flushed.",
		}, func() float64 { return float64(l.seg.WrotePosition() - l.seg.FlushedPosition()) }),
	}
	if err := metricsutil.RegisterAll(reg, x.collectors...); err != nil {
		return nil, fmt.Errorf("register action log metrics: %w", err)
	}
	return x, nil
}

func (x *metrics) appended(actions []Action, n int) {
	if x == nil {
		return
	}
	for i := range actions {
		x.actions[actions[i].Type].Inc()
	}
	x.bytes.Add(float64(n))
}

func (x *metrics) appendLatency(d time.Duration) {
	if x != nil {
		x.appendTime.Observe(d.Seconds())
	}
}

func (x *metrics) flushed(d time.Duration, err error) {
	if x == nil {
		return
	}
	x.flushTime.Observe(d.Seconds())
	if err != nil {
		x.flushErrors.Inc()
	}
}

func (x *metrics) unregister() {
	if x != nil {
		metricsutil.UnregisterAll(x.reg, x.collectors...)
	}
}
